"""Training throughput of the seed's mean-of-two-numbers model, with and without safegen.

The model and data are the seed article's, ported to Keras 3 (TensorFlow backend): a
``keras.Input((2,))`` feeding one ``Dense(1)``, MSE loss, RMSprop, trained with
``model.fit(generator, steps_per_epoch=STEPS, epochs=1, verbose=0, shuffle=False)`` in
graph mode. The generator makes batches of 64 rows of two numbers in 0..99, filled row by
row with ``rng.integers(0, 100)`` as in the article; the target is the row mean with
``np.expand_dims(..., -1)``; it yields ``(x, y)`` tuples (Keras 3 refuses the article's
``[x], [y]`` lists). Keras runs the generator inside ``tf.data.Dataset.from_generator``
with ``prefetch(AUTOTUNE)``, after peeking at 2 batches.

Variants, each a model of its own built once (same initial weights) and warmed up with
one ``fit`` (tracing), then reused in every round:

* ``bare``: the article's fixed generator, ``x`` allocated afresh each step.
* ``check``, ``copy``, ``freeze``: that generator under ``safegen.guard(..., mode=...)``.
* ``bare again``: the same bare generator on a model of its own, an A/A control whose
  ratio to ``bare`` shows how far from 1.0 this machine's noise alone moves a ratio.
* ``hand copy``: the buggy generator (one reused ``x``) fixed by hand:
  ``yield np.copy(x), y``.

Every round fits one epoch of each variant, in a new random order, each with a new
generator; the epoch is timed from ``on_epoch_begin`` to ``on_epoch_end``. Reported:
steps per second (median, min, max over rounds); each variant's ratio to ``bare``,
computed per round (pairs run close together, so the slow drifts of a shared machine
cancel) and summarized as median [min, max]; and safegen's own time from
``safegen.stats`` (per yield, and per trained step as a share of bare's step time).
Target: check and copy at least 0.99 of bare's steps per second (median paired ratio).

Usage::

    python benchmarks/mean_training.py           # full run, about 1.5 minutes
    python benchmarks/mean_training.py --quick   # smoke run, about 10 seconds

Writes ``mean_training.json`` and ``.md`` into ``--out`` (default ``benchmarks/results/``;
quick runs write ``mean_training_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import RESULTS, environment, epoch_timer, spread, write_results  # noqa: E402
from tqdm import tqdm  # noqa: E402

import safegen  # noqa: E402

BATCH = 64
VARIANTS = ("bare", "bare again", "check", "copy", "freeze", "hand copy")
GUARDED = ("check", "copy", "freeze")
TARGET = 0.99


def fresh_batches(batch_size: int = BATCH, seed: int = 0) -> Any:
    """The article's fixed generator: ``x`` allocated inside the loop."""
    rng = np.random.default_rng(seed)
    while True:
        x = np.zeros((batch_size, 2))
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield x, np.expand_dims(x_mean, -1)


def hand_copied_batches(batch_size: int = BATCH, seed: int = 0) -> Any:
    """The article's buggy generator (one reused ``x``), fixed with ``np.copy``."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield np.copy(x), np.expand_dims(x_mean, -1)


def generator_functions() -> dict[str, Any]:
    """A generator function per variant (guarded ones sum their stats over generators)."""
    functions: dict[str, Any] = {
        "bare": fresh_batches,
        "bare again": fresh_batches,  # an A/A control: the noise floor of the ratios
        "hand copy": hand_copied_batches,
    }
    for mode in GUARDED:
        functions[mode] = safegen.guard(fresh_batches, mode=mode)
    return functions


def build() -> Any:
    """The seed model, compiled; the same initial weights for every variant."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.RMSprop(), "mse")
    return model


def fit(model: Any, function: Any, steps: int, seed: int, callbacks: list[Any]) -> Any:
    return model.fit(
        function(BATCH, seed),
        steps_per_epoch=steps,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, about 10 seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=None, help="train steps per epoch")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 40)
    steps = args.steps or (20 if args.quick else 200)

    functions = generator_functions()
    models = {v: build() for v in VARIANTS}
    timers = {v: epoch_timer() for v in VARIANTS}
    for v in VARIANTS:  # warm-up: trace the train function, start tf.data
        fit(models[v], functions[v], steps, seed=1000, callbacks=[])
    before = {v: safegen.stats(functions[v]) for v in GUARDED}

    order = list(VARIANTS)
    losses: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tqdm(total=rounds * len(VARIANTS), desc="mean_training", unit="epoch") as bar:
        for r in range(rounds):
            random.shuffle(order)
            for v in order:
                history = fit(models[v], functions[v], steps, seed=r, callbacks=[timers[v]])
                losses[v].append(float(history.history["loss"][-1]))
                bar.update(1)

    rates = {v: [steps / t for t in timers[v].times] for v in VARIANTS}
    bare_step = statistics.median(timers["bare"].times) / steps
    ratios = {
        v: spread([a / b for a, b in zip(rates[v], rates["bare"], strict=True)])
        for v in VARIANTS
        if v != "bare"
    }
    own: dict[str, Any] = {}
    for v in GUARDED:
        delta = safegen.stats(functions[v])
        yields = delta.yields - before[v].yields
        seconds = delta.seconds - before[v].seconds
        per_step = seconds / (rounds * steps)
        own[v] = {
            "yields": yields,
            "steps": rounds * steps,
            "us_per_yield": seconds / yields * 1e6 if yields else 0.0,
            "us_per_step": per_step * 1e6,
            "share_of_bare_step": per_step / bare_step,
            "violations": delta.violations,
        }
    targets = {
        f"{v} steps/s / bare steps/s (target >= {TARGET})": {
            **ratios[v],
            "target": TARGET,
            "met": ratios[v]["median"] >= TARGET,
        }
        for v in ("check", "copy")
    }
    result: dict[str, Any] = {
        "benchmark": "mean_training",
        "model": "Input((2,)) -> Dense(1), MSE, RMSprop",
        "mode": "Keras 3 model.fit on a Python generator, graph mode, verbose=0, shuffle=False",
        "batch": f"x ({BATCH}, 2) float64 of integers 0..99, y = row mean ({BATCH}, 1)",
        "quick": args.quick,
        "rounds": rounds,
        "steps_per_epoch": steps,
        "steps_per_second": {v: spread(rates[v]) for v in VARIANTS},
        "ratio_vs_bare": ratios,
        "safegen_time": own,
        "final_loss": {v: spread(losses[v]) for v in VARIANTS},
        "targets": targets,
        "meets_target": all(t["met"] for t in targets.values()),
        "environment": environment(),
    }
    write(result, args.out)
    return result


def write(result: dict[str, Any], out: Path) -> None:
    """Writes mean_training(_quick).json and .md into ``out``."""
    stem = "mean_training_quick" if result["quick"] else "mean_training"
    lines = [
        "# Training the seed model on a guarded generator",
        "",
        f"Model: `{result['model']}`; {result['mode']}; batch: {result['batch']}; "
        f"{result['rounds']} interleaved rounds x {result['steps_per_epoch']} steps"
        f"{' (quick run)' if result['quick'] else ''}.",
        "",
        "| variant | steps/s median [min, max] | per-round ratio to bare, median [min, max] "
        "| safegen µs per yield | safegen share of bare's step |",
        "|---|---|---|---:|---:|",
    ]
    for v, s in result["steps_per_second"].items():
        r = result["ratio_vs_bare"].get(v)
        ratio = f"{r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}]" if r else "-"
        own = result["safegen_time"].get(v)
        us = f"{own['us_per_yield']:.2f}" if own else "-"
        share = f"{own['share_of_bare_step']:.2%}" if own else "-"
        lines.append(
            f"| {v} | {s['median']:.0f} [{s['min']:.0f}, {s['max']:.0f}] | {ratio} | "
            f"{us} | {share} |"
        )
    lines += ["", "| target | median | min | max | met? |", "|---|---:|---:|---:|---|"]
    for name, t in result["targets"].items():
        met = "yes" if t["met"] else "**no**"
        lines.append(f"| {name} | {t['median']:.3f} | {t['min']:.3f} | {t['max']:.3f} | {met} |")
    env = result["environment"]
    lines += [
        "",
        f"Keras {env['keras']}, TensorFlow {env['tensorflow']}, NumPy {env['numpy']}, "
        f"Python {env['python']}, {env['cpus']} CPUs ({env['machine']}).",
        "",
    ]
    write_results(out, stem, result, lines)


if __name__ == "__main__":
    res = main()
    print(json.dumps({"ratio_vs_bare": res["ratio_vs_bare"], "targets": res["targets"]}, indent=2))
