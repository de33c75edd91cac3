"""The input-scale check: what it costs fit/predict/evaluate, and the margins of its rule.

Cost. A small image model (``Input((28, 28, 1))`` -> ``Flatten`` -> ``Dense(10)``,
Adam) on 2048 synthetic 28x28 images (``x / 255``, float32), Keras 3 on TensorFlow,
each call timed in three variants:

* ``bare``: safegen off;
* ``enabled``: under ``safegen.enable()`` with no call check (the house without it: the
  data sources guarded, nothing else);
* ``checked``: under ``safegen.enable()`` with the input-scale check, and nothing else.

Calls: ``fit`` on the arrays (1 epoch, batches of 64: 32 steps), ``fit`` on a generator
of the same batches (32 steps: the check watches its first 8 yields), ``evaluate`` on 512
rows, ``predict`` on 512 rows and on 1 row (a predict loop's call). Each round runs every
call and variant once, in a new random order; a variant's time is divided by ``bare``'s
(and ``checked``'s by ``enabled``'s) in the same round: median, min and max over the
rounds. ``sample_ms`` times the check's own work on the 2048 images directly (sample
and percentiles of one input).

Margins. The rule's two statistics (``beyond``: how many training widths the inputs'
5th/95th percentile lies beyond fit's 1st/99th; ``narrower``: how many times narrower
their bulk is) on the bugs it must catch and the correct twins it must not, each on 20
draws: the smallest and largest value seen, against the thresholds (``WIDE`` = 5,
``NARROW`` = 100).

Usage::

    python benchmarks/input_scale_check.py            # 15 rounds, about 3 minutes
    python benchmarks/input_scale_check.py --quick    # smoke run

Writes ``input_scale_check.json`` and ``.md`` into ``--out`` (default
``benchmarks/results/``; quick runs write ``input_scale_check_quick.*``).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _common import RESULTS, environment, load_average, spread, write_results  # noqa: E402

import safegen  # noqa: E402
from safegen._detectors.input_scale import (  # noqa: E402
    NARROW,
    WIDE,
    Sample,
    beyond,
    compare,
    narrower,
)

CHECK = "safegen.integrations._input_scale:check"
VARIANTS = ("bare", "enabled", "checked")
CALLS = ("fit arrays", "fit generator", "evaluate 512", "predict 512", "predict 1")


def _range(values: Any) -> Any:
    sample = Sample()
    sample.add(values)
    return sample.range()


def margins(draws: int) -> dict[str, dict[str, Any]]:
    """The rule's statistics on each scenario, over ``draws`` random draws."""
    cases: dict[str, tuple[bool, Any]] = {}

    def image_pair(rng: Any) -> tuple[Any, Any]:
        images = rng.integers(0, 256, (1024, 28, 28, 1)).astype(np.uint8)
        images[:, :4] = 0  # a dark border, as real images have
        return images[:768], images[768:]

    # name -> (a bug?, draw -> (training values, values given))
    cases["pixels 0-255 given, trained on x / 255 (32 rows)"] = (
        True,
        lambda rng: (lambda t, v: (t / 255.0, v[:32]))(*image_pair(rng)),
    )
    cases["pixels 0-255 given, trained on x / 255 (1 row)"] = (
        True,
        lambda rng: (lambda t, v: (t / 255.0, v[:1]))(*image_pair(rng)),
    )
    cases["x / 255 / 255 given, trained on x / 255 (1 row)"] = (
        True,
        lambda rng: (lambda t, v: (t / 255.0, v[:1] / 255.0 / 255.0))(*image_pair(rng)),
    )
    cases["raw tabular given, trained standardized (1 row)"] = (
        True,
        lambda rng: _tabular(rng, rows=1, raw=True),
    )
    cases["raw tabular given, trained standardized (64 rows)"] = (
        True,
        lambda rng: _tabular(rng, rows=64, raw=True),
    )
    cases["new rows scaled as in fit (1 row)"] = (
        False,
        lambda rng: (lambda t, v: (t / 255.0, v[:1] / 255.0))(*image_pair(rng)),
    )
    cases["new rows scaled as in fit (256 rows)"] = (
        False,
        lambda rng: (lambda t, v: (t / 255.0, v / 255.0))(*image_pair(rng)),
    )
    cases["standardized, 1 row"] = (False, lambda rng: _tabular(rng, rows=1, raw=False))
    cases["standardized, 2x wider (256 rows)"] = (
        False,
        lambda rng: (rng.normal(0, 1, (1024, 8)), rng.normal(0, 2, (256, 8))),
    )
    cases["standardized, 4% of rows 50 sigma out"] = (False, _outliers)
    out = {}
    for name, (bug, draw) in cases.items():
        wide, narrow, verdicts = [], [], []
        for seed in range(draws):
            trained_values, seen_values = draw(np.random.default_rng(seed))
            trained, seen = _range(trained_values), _range(seen_values)
            wide.append(beyond(trained, seen))
            narrow.append(narrower(trained, seen))
            verdicts.append(compare(trained, seen))
        out[name] = {
            "bug": bug,
            "beyond": [min(wide), max(wide)],
            "narrower": [min(narrow), max(narrow)],
            "reported": sum(v is not None for v in verdicts),
            "draws": draws,
        }
    return out


def _tabular(rng: Any, rows: int, raw: bool) -> tuple[Any, Any]:
    data = np.column_stack(
        [
            rng.normal(40, 12, 1024 + rows),
            rng.normal(52_000, 9_000, 1024 + rows),
            rng.uniform(0, 5, 1024 + rows),
            rng.integers(0, 2, 1024 + rows),
        ]
    )
    mean, std = data[:1024].mean(axis=0), data[:1024].std(axis=0)
    given = data[1024:] if raw else (data[1024:] - mean) / std
    return (data[:1024] - mean) / std, given


def _outliers(rng: Any) -> tuple[Any, Any]:
    given = rng.normal(0, 1, (1000, 8))
    given[::25] = 50.0
    return rng.normal(0, 1, (1024, 8)), given


def _model(keras: Any) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def cost(rounds: int) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """Seconds per call, by call and variant, over ``rounds`` interleaved rounds; and
    the check's own sampling time in milliseconds."""
    import keras

    from safegen.integrations.keras import training

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (2048, 28, 28, 1)) / 255.0).astype(np.float32)
    labels = rng.integers(0, 10, 2048)

    def batches() -> Any:
        for start in range(0, 2048, 64):
            yield images[start : start + 64], labels[start : start + 64]

    models = {v: _model(keras) for v in VARIANTS}

    def call(name: str, model: Any) -> None:
        if name == "fit arrays":
            model.fit(images, labels, epochs=1, batch_size=64, verbose=0, shuffle=False)
        elif name == "fit generator":
            model.fit(batches(), epochs=1, verbose=0, shuffle=False)
        elif name == "evaluate 512":
            model.evaluate(images[:512], labels[:512], verbose=0)
        elif name == "predict 512":
            model.predict(images[:512], verbose=0)
        else:
            model.predict(images[:1], verbose=0)

    def timed(name: str, variant: str) -> float:
        model = models[variant]
        if variant == "bare":
            start = time.perf_counter()
            call(name, model)
            return time.perf_counter() - start
        saved = training.CHECKS
        training.CHECKS = (CHECK,) if variant == "checked" else ()
        try:
            with safegen.enabled(shapes=False):
                start = time.perf_counter()
                call(name, model)
                return time.perf_counter() - start
        finally:
            training.CHECKS = saved

    for variant in VARIANTS:  # warm-up: trace each function, record fit's range
        for name in CALLS:
            timed(name, variant)
    times: dict[str, dict[str, list[float]]] = {n: {v: [] for v in VARIANTS} for n in CALLS}
    jobs = [(n, v) for n in CALLS for v in VARIANTS]
    for _ in range(rounds):
        random.shuffle(jobs)
        for name, variant in jobs:
            times[name][variant].append(timed(name, variant))
    sampling = []
    for _ in range(rounds * 4):
        start = time.perf_counter()
        _range(images)
        sampling.append((time.perf_counter() - start) * 1000)
    return times, sampling


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--note", default="", help="a sentence on the conditions")
    args = parser.parse_args(argv)
    load_start = load_average()
    rounds = args.rounds or (2 if args.quick else 15)
    found_margins = margins(3 if args.quick else 20)
    times, sampling = cost(rounds)
    ratios = {}
    for name in CALLS:
        t = times[name]
        ratios[name] = {
            "enabled / bare": spread([a / b for a, b in zip(t["enabled"], t["bare"], strict=True)]),
            "checked / bare": spread([a / b for a, b in zip(t["checked"], t["bare"], strict=True)]),
            "checked / enabled": spread(
                [a / b for a, b in zip(t["checked"], t["enabled"], strict=True)]
            ),
        }
    result: dict[str, Any] = {
        "benchmark": "input_scale_check",
        "model": "Input((28, 28, 1)) -> Flatten -> Dense(10), Adam; 2048 images",
        "quick": args.quick,
        "rounds": rounds,
        "note": args.note,
        "load_average": {"start": load_start, "end": load_average()},
        "seconds": {n: {v: spread(times[n][v]) for v in VARIANTS} for n in CALLS},
        "ratios": ratios,
        "sample_ms": spread(sampling),
        "margins": found_margins,
        "thresholds": {"wide": WIDE, "narrow": NARROW},
        "environment": environment(),
    }
    write(result, args.out)
    return result


def write(result: dict[str, Any], out: Path) -> None:
    """Writes input_scale_check(_quick).json and .md into ``out``."""
    stem = "input_scale_check_quick" if result["quick"] else "input_scale_check"
    load = result["load_average"]
    lines = [
        "# The input-scale check: cost and margins",
        "",
        f"Model: `{result['model']}`; Keras 3 on TensorFlow; {result['rounds']} interleaved "
        f"rounds{' (quick run)' if result['quick'] else ''}. "
        f"{result['note'] + ' ' if result['note'] else ''}Load average (1, 5, 15 min) at "
        f"the start {tuple(round(x, 2) for x in load['start'])}, at the end "
        f"{tuple(round(x, 2) for x in load['end'])}.",
        "",
        "Time of each call, and its ratio to `bare` (safegen off) and to `enabled` "
        "(safegen.enable() without the check) in the same round: median [min, max].",
        "",
        "| call | bare, ms | checked / bare | enabled / bare | checked / enabled |",
        "|---|---:|---|---|---|",
    ]
    for name, r in result["ratios"].items():
        bare = result["seconds"][name]["bare"]["median"] * 1000
        cells = [
            f"{r[k]['median']:.3f} [{r[k]['min']:.3f}, {r[k]['max']:.3f}]"
            for k in ("checked / bare", "enabled / bare", "checked / enabled")
        ]
        lines.append(f"| {name} | {bare:.1f} | " + " | ".join(cells) + " |")
    s = result["sample_ms"]
    lines += [
        "",
        f"The check's own work on the 2048 images (sampling one input and its percentiles): "
        f"{s['median']:.2f} ms median [{s['min']:.2f}, {s['max']:.2f}].",
        "",
        "Margins of the rule: `beyond`, how many training widths the 5th/95th percentile of "
        f"the inputs lies beyond fit's 1st/99th (reported above {result['thresholds']['wide']:g}); "
        "`narrower`, how many times narrower their 1st-99th bulk is (reported above "
        f"{result['thresholds']['narrow']:g}, with at least 64 values); min and max over the "
        "draws.",
        "",
        "| scenario | a bug? | beyond [min, max] | narrower [min, max] | reported |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["margins"].items():
        lines.append(
            f"| {name} | {'yes' if m['bug'] else 'no'} | "
            f"{m['beyond'][0]:.3g} .. {m['beyond'][1]:.3g} | "
            f"{m['narrower'][0]:.3g} .. {m['narrower'][1]:.3g} | "
            f"{m['reported']} of {m['draws']} |"
        )
    env = result["environment"]
    lines += [
        "",
        f"Keras {env.get('keras')}, TensorFlow {env.get('tensorflow')}, NumPy {env['numpy']}, "
        f"Python {env['python']}, {env['cpus']} CPUs ({env['machine']}).",
        "",
    ]
    write_results(out, stem, result, lines)


if __name__ == "__main__":
    main()
