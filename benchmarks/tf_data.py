"""End-to-end ``tf.data.Dataset.from_generator`` throughput with and without safegen.

Pipeline: ``tf.data.Dataset.from_generator(gen, output_signature=...).prefetch(k)``,
iterated in Python with ``for batch in ds.take(n)``, the way Keras and custom training
loops consume a generator. The generator cycles through a pool of 16 distinct, pre-made
``(x, y)`` batches (more than check mode's window of 12), so that making a batch costs
nothing and the figures are the pipeline's cost. Batches: the seed's (x (64, 2) and
y (64, 1) float64, 1.5 KiB) and an image batch (x 32x224x224x3 float32, 19.3 MB, y (32, 1)
float32). Variants: the bare generator, and the same generator under
``safegen.guard(..., mode="copy")`` and ``mode="check"``, check mode with its hash made in
place (``check, hash in place``: its background hashing switched off, as it was before),
and a generator that yields ``np.copy`` of each array by hand (``hand copy``), to tell
safegen's cost from the cost of handing TensorFlow a freshly allocated array.

What decides check mode's cost end to end: the large batch is also run under four
conditions, pool of 16 or 6 batches x consumer (``python loop``: the batches are pulled
and dropped, so the pipeline runs at the generator thread's pace, the way this script
always measured; ``tf.function``: each batch goes to a ``tf.function`` that sums it, the
way an independent harness measured), for bare, check, check with the hash in place, and
copy. With a consumer that does work, the producer's cost hides behind it.

Why copy mode may cost almost nothing end to end: TensorFlow 2.x turns a NumPy array
yielded into ``from_generator`` into a tensor *without copying* when its data is 64-byte
aligned, and copies it otherwise. NumPy puts large arrays where ``malloc`` puts them
(usually 16 bytes past a page boundary), so TensorFlow copies the bare generator's large
arrays itself, whereas copy mode's copies are 64-byte aligned from 64 KiB on and are
wrapped as they are: the copy moves from TensorFlow into safegen. This script measures
that fact directly: for every variant it records ``a.ctypes.data % 64`` of the arrays the
pipeline receives, and whether the tensor that comes out of the dataset shares memory
with them (an in-place write to the array after the tensor came out shows in the tensor).

Every round iterates ``n`` batches through each variant's dataset (built once, warmed up),
in a new random order. Reported: batches per second and MB/s (median, min, max over
rounds), each variant's per-round ratio to bare (median [min, max]), and safegen's own
time per batch from ``safegen.stats``. Targets on the large batches: copy at least 0.95
of bare's throughput, check at least 0.9 (in this script's pipeline, and in the
independent harness's conditions).

Usage::

    python benchmarks/tf_data.py           # full run, about 3 minutes (5 when busy)
    python benchmarks/tf_data.py --quick   # smoke run, about 20 seconds

Writes ``tf_data.json``, ``tf_data.md`` and ``tf_data.png`` (throughput ratio to bare,
median with min-max bars, per batch size and mode) into ``--out`` (default
``benchmarks/results/``; quick runs write ``tf_data_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import RESULTS, environment, spread, write_results  # noqa: E402
from tqdm import tqdm  # noqa: E402

import safegen  # noqa: E402
from safegen._handle import handle_of  # noqa: E402

POOL = 16
VARIANTS = ("bare", "copy", "check", "check, hash in place", "hand copy")
TARGET = 0.95
CHECK_TARGET = 0.9
# The conditions compared on the large batch: (pool size, consumer). (16, "python loop")
# is this script's own pipeline; (6, "tf.function") is the independent harness's.
CONDITIONS = ((16, "python loop"), (16, "tf.function"), (6, "python loop"), (6, "tf.function"))
CONDITION_VARIANTS = ("bare", "check", "check, hash in place", "copy")
CONDITION_BATCHES = 150  # per round: long enough for a shared machine's noise to average

# name, x shape, x dtype, y shape, batches per round (full, quick)
FULL_SIZES = (
    ("seed", (64, 2), np.float64, (64, 1), 2_000),
    ("large", (32, 224, 224, 3), np.float32, (32, 1), 60),
)
QUICK_SIZES = (
    ("seed", (64, 2), np.float64, (64, 1), 100),
    ("large (quick: 4x224x224x3)", (4, 224, 224, 3), np.float32, (4, 1), 10),
)


def make_pool(
    x_shape: tuple[int, ...], dtype: Any, y_shape: tuple[int, ...], size: int = POOL
) -> list[Any]:
    """``size`` distinct ``(x, y)`` batches; y is the mean of each sample of x."""
    rng = np.random.default_rng(0)
    pool = []
    for _ in range(size):
        if len(x_shape) == 2:
            x = rng.integers(0, 100, x_shape).astype(dtype)
        else:
            x = rng.random(x_shape, dtype=dtype)
        y = x.reshape(len(x), -1).mean(axis=1).reshape(y_shape).astype(dtype)
        pool.append((x, y))
    return pool


def generator_function(pool: list[Any]) -> Any:
    def batches() -> Any:
        while True:
            yield from pool

    return batches


def hand_copy_function(pool: list[Any]) -> Any:
    def batches() -> Any:
        while True:
            for batch in pool:
                yield tuple(np.copy(a) for a in batch)

    return batches


def in_place_function(guarded: Any) -> Any:
    """``guarded`` with check mode's hash made in place (for comparison; not a public
    switch): what check mode did before it hashed large arrays in the background."""

    def batches() -> Any:
        gen = guarded()
        handle_of(gen).mode.background = False
        return gen

    return batches


@tf.function
def reduce_batch(x: Any, y: Any) -> Any:
    """The ``tf.function`` consumer: a reduction over the whole batch."""
    return tf.reduce_sum(x) + tf.reduce_sum(y)


def dataset(function: Any, pool: list[Any], prefetch: int) -> Any:
    x, y = pool[0]
    signature = (tf.TensorSpec(x.shape, x.dtype), tf.TensorSpec(y.shape, y.dtype))
    return tf.data.Dataset.from_generator(function, output_signature=signature).prefetch(prefetch)


def iterate(ds: Any, n: int, consumer: str = "python loop") -> float:
    """Seconds to pull ``n`` batches through ``ds`` in Python (and hand each batch to the
    ``tf.function`` consumer, if that is the ``consumer``)."""
    start = time.perf_counter()
    if consumer == "tf.function":
        for x, y in ds.take(n):
            reduce_batch(x, y)
    else:
        for _batch in ds.take(n):
            pass
    return time.perf_counter() - start


def zero_copy_probe(pool: list[Any], mode: str | None) -> dict[str, Any]:
    """What ``from_generator`` receives and whether its tensor wraps that memory.

    The generator yields one private copy of ``pool[0]`` (made by ``np.copy``, so placed by
    NumPy's allocator like any array), bare or through ``safegen.guard(mode=...)``; a spy
    records the arrays the dataset is handed. After the tensor comes out of the dataset,
    a write into the handed array shows in the tensor only if TensorFlow did not copy it.
    """
    handed: list[Any] = []
    source = [tuple(np.copy(a) for a in pool[0])]

    def spy() -> Any:
        inner = iter(source) if mode is None else safegen.guard(iter(source), mode=mode)
        for batch in inner:
            handed.append(batch)
            yield batch

    ds = dataset(spy, pool, 1)
    x_tensor, y_tensor = next(iter(ds))
    out: dict[str, Any] = {}
    for name, array, tensor in (("x", handed[0][0], x_tensor), ("y", handed[0][1], y_tensor)):
        before = float(tensor.numpy().flat[0])
        array.flat[0] = before + 1.0
        shared = float(tensor.numpy().flat[0]) == before + 1.0
        out[name] = {
            "nbytes": int(array.nbytes),
            "address_mod_64": int(array.ctypes.data % 64),
            "tensor_shares_memory": shared,
        }
    return out


def run_size(
    name: str, x_shape: Any, dtype: Any, y_shape: Any, n: int, rounds: int, prefetch: int, bar: Any
) -> dict[str, Any]:
    pool = make_pool(x_shape, dtype, y_shape)
    nbytes = sum(a.nbytes for a in pool[0])
    bare = generator_function(pool)
    guarded = {
        "copy": safegen.guard(bare, mode="copy"),
        "check": safegen.guard(bare, mode="check"),
        "check, hash in place": safegen.guard(bare, mode="check"),
    }
    functions = {
        "bare": bare,
        "copy": guarded["copy"],
        "check": guarded["check"],
        "check, hash in place": in_place_function(guarded["check, hash in place"]),
        "hand copy": hand_copy_function(pool),
    }
    datasets = {v: dataset(functions[v], pool, prefetch) for v in VARIANTS}
    for v in VARIANTS:  # warm-up
        iterate(datasets[v], max(2, n // 10))
    before = {v: safegen.stats(g) for v, g in guarded.items()}
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    order = list(VARIANTS)
    for _ in range(rounds):
        random.shuffle(order)
        for v in order:
            times[v].append(iterate(datasets[v], n))
            bar.update(1)
    rates = {v: [n / t for t in times[v]] for v in VARIANTS}
    ratios = {
        v: spread([a / b for a, b in zip(rates[v], rates["bare"], strict=True)])
        for v in VARIANTS
        if v != "bare"
    }
    bare_batch = statistics.median(times["bare"]) / n
    own = {}
    for v, start in before.items():
        now = safegen.stats(guarded[v])
        yields = now.yields - start.yields
        seconds = now.seconds - start.seconds
        own[v] = {
            "yields": yields,
            "us_per_yield": seconds / yields * 1e6 if yields else 0.0,
            "share_of_bare_batch": seconds / yields / bare_batch if yields else 0.0,
            "violations": now.violations,
        }
    return {
        "name": name,
        "batch": f"x {tuple(x_shape)} {np.dtype(dtype).name} + y {tuple(y_shape)}, "
        f"{nbytes / 1e6:.3g} MB",
        "nbytes": nbytes,
        "batches_per_round": n,
        "pool_alignment_mod_64": {
            "x": [int(x.ctypes.data % 64) for x, _ in pool],
            "y": [int(y.ctypes.data % 64) for _, y in pool],
        },
        "zero_copy": {
            "bare": zero_copy_probe(pool, None),
            "copy": zero_copy_probe(pool, "copy"),
            "check": zero_copy_probe(pool, "check"),
        },
        "batches_per_second": {v: spread(rates[v]) for v in VARIANTS},
        "mb_per_second": {v: spread([r * nbytes / 1e6 for r in rates[v]]) for v in VARIANTS},
        "ratio_vs_bare": ratios,
        "safegen_time": own,
    }


def run_conditions(
    x_shape: Any, dtype: Any, y_shape: Any, n: int, rounds: int, prefetch: int, bar: Any
) -> list[dict[str, Any]]:
    """Check and copy against bare on the large batch, under each of ``CONDITIONS``.

    All conditions' datasets are built first, and every round runs every (condition,
    variant) pair in a new random order, so that the conditions see the same machine.
    """
    runs: dict[tuple[int, str, str], Any] = {}
    for size, consumer in CONDITIONS:
        pool = make_pool(x_shape, dtype, y_shape, size)
        bare = generator_function(pool)
        functions = {
            "bare": bare,
            "check": safegen.guard(bare, mode="check"),
            "check, hash in place": in_place_function(safegen.guard(bare, mode="check")),
            "copy": safegen.guard(bare, mode="copy"),
        }
        for v in CONDITION_VARIANTS:
            ds = dataset(functions[v], pool, prefetch)
            iterate(ds, max(2, n // 10), consumer)  # warm-up (and trace the consumer)
            runs[size, consumer, v] = ds
    times: dict[tuple[int, str, str], list[float]] = {key: [] for key in runs}
    order = list(runs)
    for _ in range(rounds):
        random.shuffle(order)
        for key in order:
            times[key].append(iterate(runs[key], n, key[1]))
            bar.update(1)
    out = []
    for size, consumer in CONDITIONS:
        base = times[size, consumer, "bare"]
        out.append(
            {
                "pool": size,
                "consumer": consumer,
                "batches_per_second": {
                    v: spread([n / t for t in times[size, consumer, v]]) for v in CONDITION_VARIANTS
                },
                # throughput ratio = bare's time / the variant's time, per round
                "ratio_vs_bare": {
                    v: spread([b / t for t, b in zip(times[size, consumer, v], base, strict=True)])
                    for v in CONDITION_VARIANTS
                    if v != "bare"
                },
            }
        )
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput ratio to bare per batch size and mode, median with min-max bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    sections = result["sections"]
    width = 0.2
    for i, v in enumerate(("copy", "check", "check, hash in place", "hand copy")):
        xs = [j + (i - 1.5) * width for j in range(len(sections))]
        rows = [s["ratio_vs_bare"][v] for s in sections]
        med = [r["median"] for r in rows]
        err = [
            [m - r["min"] for m, r in zip(med, rows, strict=True)],
            [r["max"] - m for m, r in zip(med, rows, strict=True)],
        ]
        label = "np.copy in the generator" if v == "hand copy" else f"safegen {v}"
        ax.bar(xs, med, width, yerr=err, capsize=4, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8, label="bare")
    ax.axhline(TARGET, color="grey", linestyle="--", linewidth=0.8, label=f"target {TARGET}")
    ax.set_xticks(range(len(sections)), [s["batch"] for s in sections], fontsize=8)
    ax.set_ylabel("throughput / bare throughput (per-round median, min-max)")
    ax.set_title(f"from_generator(...).prefetch({result['prefetch']}), {result['rounds']} rounds")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, about 10 seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--prefetch", type=int, default=2, help="the k of prefetch(k)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--note", default="", help="a sentence on the conditions, stored with the results"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 20)
    condition_rounds = args.rounds or (2 if args.quick else 12)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    load_start = os.getloadavg()

    sections = []
    total = rounds * len(VARIANTS) * len(sizes)
    total += condition_rounds * len(CONDITIONS) * len(CONDITION_VARIANTS)
    with tqdm(total=total, desc="tf_data", unit="run") as bar:
        for name, x_shape, dtype, y_shape, n in sizes:
            sections.append(run_size(name, x_shape, dtype, y_shape, n, rounds, args.prefetch, bar))
        _, x_shape, dtype, y_shape, n = sizes[-1]
        n = n if args.quick else CONDITION_BATCHES
        conditions = run_conditions(
            x_shape, dtype, y_shape, n, condition_rounds, args.prefetch, bar
        )
    large = sections[-1]["ratio_vs_bare"]

    def target(value: dict[str, float], limit: float) -> dict[str, Any]:
        return {**value, "target": limit, "met": value["median"] >= limit}

    harness = next(c for c in conditions if (c["pool"], c["consumer"]) == (6, "tf.function"))
    targets = {
        f"large batch: copy throughput / bare (target >= {TARGET})": target(large["copy"], TARGET),
        f"large batch: check throughput / bare (target >= {CHECK_TARGET})": target(
            large["check"], CHECK_TARGET
        ),
        "large batch, pool of 6 and a tf.function consumer: check throughput / bare "
        f"(target >= {CHECK_TARGET})": target(harness["ratio_vs_bare"]["check"], CHECK_TARGET),
    }
    result: dict[str, Any] = {
        "benchmark": "tf_data",
        "pipeline": f"tf.data.Dataset.from_generator(gen).prefetch({args.prefetch}), "
        "for batch in ds.take(n)",
        "quick": args.quick,
        "rounds": rounds,
        "condition_rounds": condition_rounds,
        "condition_batches": n,
        "prefetch": args.prefetch,
        "note": args.note,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "sections": sections,
        "conditions": conditions,
        "targets": targets,
        "meets_target": all(t["met"] for t in targets.values()),
        "environment": environment(),
    }
    write(result, args.out)
    return result


def _note(result: dict[str, Any]) -> str:
    return f"{result['note']} " if result["note"] else ""


def _load(values: Any) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def write(result: dict[str, Any], out: Path) -> None:
    """Writes tf_data(_quick).json, .md and .png into ``out``."""
    stem = "tf_data_quick" if result["quick"] else "tf_data"
    lines = [
        "# tf.data.Dataset.from_generator throughput",
        "",
        f"Pipeline: `{result['pipeline']}`; {result['rounds']} interleaved rounds"
        f"{' (quick run)' if result['quick'] else ''}. {_note(result)}Load average "
        f"(1, 5, 15 min) at the start {_load(result['load_average']['start'])}, at the end "
        f"{_load(result['load_average']['end'])}.",
        "",
    ]
    for s in result["sections"]:
        lines += [
            f"## {s['name']}: {s['batch']}, {s['batches_per_round']} batches per round",
            "",
            "| variant | batches/s median [min, max] | MB/s median | per-round ratio to bare, "
            "median [min, max] | safegen µs per batch | share of bare's batch time |",
            "|---|---|---:|---|---:|---:|",
        ]
        for v, r in s["batches_per_second"].items():
            ratio = s["ratio_vs_bare"].get(v)
            own = s["safegen_time"].get(v)
            lines.append(
                f"| {v} | {r['median']:.0f} [{r['min']:.0f}, {r['max']:.0f}] | "
                f"{s['mb_per_second'][v]['median']:.0f} | "
                + (
                    f"{ratio['median']:.3f} [{ratio['min']:.3f}, {ratio['max']:.3f}]"
                    if ratio
                    else "-"
                )
                + " | "
                + (
                    f"{own['us_per_yield']:.1f} | {own['share_of_bare_batch']:.1%}"
                    if own
                    else "- | -"
                )
                + " |"
            )
        lines += [
            "",
            "What `from_generator` was handed, and whether its tensor wraps that memory:",
            "",
            "| variant | leaf | bytes | address % 64 | tensor shares the array's memory |",
            "|---|---|---:|---:|---|",
        ]
        for v, leaves in s["zero_copy"].items():
            for leaf, z in leaves.items():
                shared = "yes (no copy)" if z["tensor_shares_memory"] else "no (TF copied)"
                lines.append(
                    f"| {v} | {leaf} | {z['nbytes']:,} | {z['address_mod_64']} | {shared} |"
                )
        align = s["pool_alignment_mod_64"]["x"]
        lines += ["", f"Alignment (% 64) of the bare pool's 16 x arrays: {align}.", ""]
    batch = result["sections"][-1]["batch"]
    lines += [
        f"## What decides check mode's cost: large batch ({batch}) under four conditions",
        "",
        f"{result['condition_rounds']} interleaved rounds of {result['condition_batches']} "
        "batches, every (condition, variant) pair "
        "in a new random order each round. Pool: distinct batches the generator cycles "
        "through. Consumer: `python loop` pulls batches and drops them (the pipeline runs "
        "as fast as the generator's thread); `tf.function` hands each batch to a "
        "`tf.function` that sums it. Throughput ratio to bare, per round: median [min, max].",
        "",
        "| pool | consumer | bare batches/s | check / bare | check, hash in place / bare "
        "| copy / bare |",
        "|---:|---|---:|---|---|---|",
    ]
    for c in result["conditions"]:
        r = c["ratio_vs_bare"]
        cells = " | ".join(
            f"{r[v]['median']:.3f} [{r[v]['min']:.3f}, {r[v]['max']:.3f}]"
            for v in ("check", "check, hash in place", "copy")
        )
        lines.append(
            f"| {c['pool']} | {c['consumer']} | "
            f"{c['batches_per_second']['bare']['median']:.0f} | {cells} |"
        )
    lines += ["", "| target | median | min | max | met? |", "|---|---:|---:|---:|---|"]
    for name, t in result["targets"].items():
        met = "yes" if t["met"] else "**no**"
        lines.append(f"| {name} | {t['median']:.3f} | {t['min']:.3f} | {t['max']:.3f} | {met} |")
    env = result["environment"]
    lines += [
        "",
        f"TensorFlow {env['tensorflow']}, NumPy {env['numpy']}, Python {env['python']}, "
        f"{env['cpus']} CPUs ({env['machine']}).",
        "",
    ]
    write_results(out, stem, result, lines)
    plot(result, out / f"{stem}.png")


if __name__ == "__main__":
    res = main()
    print(json.dumps(res["targets"], indent=2))
