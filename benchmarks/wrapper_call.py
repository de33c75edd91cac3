"""What ``guard``'s wrappers cost per call, against the bare function in the same run.

A guarded generator function is a wrapt ``FunctionWrapper`` (a bound method, a
``BoundFunctionWrapper``); calling it calls the function and wraps the generator it
returns (a wrapt ``ObjectProxy``, with safegen's per-generator state). Each round times,
in random order, many calls of:

* ``function``: a module-level generator function, bare and guarded;
* ``method``: a generator method on an instance, bare and guarded;
* ``classmethod``: a generator classmethod, bare and guarded (guard over classmethod);

each call followed by one ``next()`` and ``close()`` of the generator, so that what is
timed is what a training loop pays once per epoch (Keras calls the function once per
``fit``), not per batch; the per-batch cost is ``per_yield.py``'s. "Overhead" is guarded
minus bare in the same round, in microseconds per call: median [min, max] over rounds.
"Dispatch" times the guarded callable under ``safegen.mode("off")``: the wrapper calls
the function and hands its generator back unguarded, so what remains is the wrapper's
own cost (binding, the call through it, reading the mode).

``--root`` imports safegen from another checkout (the previous release, to compare its
hand-written wrapper); ``-I`` is not used, so run from an environment where that
checkout's dependencies are installed.

Run: ``python benchmarks/wrapper_call.py`` (about 20 seconds; ``--quick`` for a smoke run).
Writes ``wrapper_call.json`` and ``.md`` into ``--out`` (default ``benchmarks/results/``;
quick runs write ``wrapper_call_quick.*``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def _variants(safegen: Any, np: Any) -> dict[str, tuple[Any, Any]]:
    """(bare, guarded) callables per kind, each returning a fresh generator."""
    batch = np.zeros((64, 2))

    def function():
        yield batch

    class Holder:
        def method(self):
            yield batch

        guarded_method = safegen.guard(method)

        @classmethod
        def klass(cls):
            yield batch

        guarded_klass = safegen.guard(klass)

    holder = Holder()
    return {
        "function": (function, safegen.guard(function)),
        "method": (holder.method, holder.guarded_method),
        "classmethod": (Holder.klass, Holder.guarded_klass),
    }


def _time(make: Any, calls: int) -> float:
    """Seconds per call of ``make()`` plus one ``next()`` and ``close()``."""
    start = time.perf_counter()
    for _ in range(calls):
        gen = make()
        next(gen)
        gen.close()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 200 calls")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to import safegen from")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root))
    import numpy as np

    import safegen

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import environment, load_average, spread, write_results

    rounds, calls = (3, 200) if args.quick else (args.rounds, args.calls)
    variants = _variants(safegen, np)
    load_before = load_average()
    overhead: dict[str, list[float]] = {name: [] for name in variants}
    dispatch: dict[str, list[float]] = {name: [] for name in variants}
    bare: dict[str, list[float]] = {name: [] for name in variants}
    jobs = [(name, which) for name in variants for which in (0, 1, 2)]
    for _ in range(rounds):
        random.shuffle(jobs)
        seconds = {}
        for name, which in jobs:
            if which == 2:
                with safegen.mode("off"):
                    seconds[(name, 2)] = _time(variants[name][1], calls)
            else:
                seconds[(name, which)] = _time(variants[name][which], calls)
        for name in variants:
            bare[name].append(seconds[(name, 0)] * 1e6)
            overhead[name].append((seconds[(name, 1)] - seconds[(name, 0)]) * 1e6)
            dispatch[name].append((seconds[(name, 2)] - seconds[(name, 0)]) * 1e6)
    result = {
        "environment": environment(),
        "safegen": safegen.__file__,
        "wrapper": type(safegen.guard(lambda: iter(()))).__mro__[1].__qualname__,
        "rounds": rounds,
        "calls": calls,
        "load_before": load_before,
        "load_after": load_average(),
        "bare_us": {name: spread(values) for name, values in bare.items()},
        "overhead_us": {name: spread(values) for name, values in overhead.items()},
        "dispatch_us": {name: spread(values) for name, values in dispatch.items()},
    }
    lines = [
        "# guard's wrappers: cost per call (call, next(), close())",
        "",
        f"{rounds} rounds of {calls} calls; safegen from `{result['safegen']}` "
        f"(guarded function's base: `{result['wrapper']}`); load "
        f"{load_before[0]:.1f} before, {result['load_after'][0]:.1f} after.",
        "",
        "| kind | bare µs per call | guarded: overhead µs | dispatch only µs |",
        "|---|---:|---:|---:|",
    ]

    def cell(row: dict[str, float]) -> str:
        return f"{row['median']:.2f} [{row['min']:.2f}, {row['max']:.2f}]"

    for name in variants:
        lines.append(
            f"| {name} | {cell(result['bare_us'][name])} "
            f"| {cell(result['overhead_us'][name])} | {cell(result['dispatch_us'][name])} |"
        )
    lines.append("")
    write_results(args.out, "wrapper_call_quick" if args.quick else "wrapper_call", result, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
