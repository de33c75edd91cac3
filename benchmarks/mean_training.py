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
* ``enabled``: the bare generator, fitted under ``safegen.enabled()`` (what ``safegen
  run`` does): guarded in check mode, and every call check of ``fit`` (logits, input
  scale, splits and pairing, frozen augmentation) and the loss check on.
* ``bare again``: the same bare generator on a model of its own, an A/A control whose
  ratio to ``bare`` shows how far from 1.0 this machine's noise alone moves a ratio.
* ``hand copy``: the buggy generator (one reused ``x``) fixed by hand:
  ``yield np.copy(x), y``.

Every round fits one epoch of each variant, in a new random order, each with a new
generator; the epoch is timed from ``on_epoch_begin`` to ``on_epoch_end``. Reported:
steps per second (median, min, max over rounds); each variant's ratio to ``bare``,
computed per round (pairs run close together, so the slow drifts of a shared machine
cancel) and summarized as its median with a 95% percentile-bootstrap interval for that
median (10,000 resamples of the rounds) and min-max; and safegen's own time from
``safegen.stats`` (per yield, and per trained step as a share of bare's step time).
The A/A control's interval (``bare again``) is shown next to every ratio: it is what the
machine's noise alone gives. Target: the intervals of check and copy overlap the A/A
control's (safegen's cost is not told apart from noise). With 80 rounds the intervals are
about half a percent wide on an idle machine, wider when it is shared.

Usage::

    python benchmarks/mean_training.py           # full run, about 2 minutes (4 when busy)
    python benchmarks/mean_training.py --quick   # smoke run, about 15 seconds

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
from _common import (  # noqa: E402
    RESULTS,
    bootstrap,
    environment,
    epoch_timer,
    load_average,
    spread,
    write_results,
)
from tqdm import tqdm  # noqa: E402

import safegen  # noqa: E402

BATCH = 64
VARIANTS = ("bare", "bare again", "check", "copy", "freeze", "hand copy", "enabled")
GUARDED = ("check", "copy", "freeze")


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
        "enabled": fresh_batches,  # guarded by safegen.enabled() around its fit
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


def fit(
    model: Any, function: Any, steps: int, seed: int, callbacks: list[Any], enabled: bool = False
) -> Any:
    if enabled:
        with safegen.enabled():
            return fit(model, function, steps, seed, callbacks)
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
    parser.add_argument(
        "--note", default="", help="a sentence on the conditions, stored with the results"
    )
    args = parser.parse_args(argv)
    load_start = load_average()
    rounds = args.rounds or (3 if args.quick else 80)
    steps = args.steps or (20 if args.quick else 200)

    functions = generator_functions()
    models = {v: build() for v in VARIANTS}
    timers = {v: epoch_timer() for v in VARIANTS}
    for v in VARIANTS:  # warm-up: trace the train function, start tf.data
        fit(models[v], functions[v], steps, seed=1000, callbacks=[], enabled=v == "enabled")
    before = {v: safegen.stats(functions[v]) for v in GUARDED}

    order = list(VARIANTS)
    losses: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tqdm(total=rounds * len(VARIANTS), desc="mean_training", unit="epoch") as bar:
        for r in range(rounds):
            random.shuffle(order)
            for v in order:
                history = fit(
                    models[v],
                    functions[v],
                    steps,
                    seed=r,
                    callbacks=[timers[v]],
                    enabled=v == "enabled",
                )
                losses[v].append(float(history.history["loss"][-1]))
                bar.update(1)

    rates = {v: [steps / t for t in timers[v].times] for v in VARIANTS}
    bare_step = statistics.median(timers["bare"].times) / steps
    ratios = {
        v: bootstrap([a / b for a, b in zip(rates[v], rates["bare"], strict=True)])
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
    control = ratios["bare again"]
    targets = {
        f"{v} steps/s / bare steps/s: 95% interval overlaps the A/A control's": {
            **ratios[v],
            "control": [control["ci_low"], control["ci_high"]],
            "met": ratios[v]["ci_low"] <= control["ci_high"]
            and control["ci_low"] <= ratios[v]["ci_high"],
        }
        for v in ("check", "copy", "enabled")
    }
    result: dict[str, Any] = {
        "benchmark": "mean_training",
        "model": "Input((2,)) -> Dense(1), MSE, RMSprop",
        "mode": "Keras 3 model.fit on a Python generator, graph mode, verbose=0, shuffle=False",
        "batch": f"x ({BATCH}, 2) float64 of integers 0..99, y = row mean ({BATCH}, 1)",
        "quick": args.quick,
        "rounds": rounds,
        "note": args.note,
        "load_average": {"start": load_start, "end": load_average()},
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


def _note(result: dict[str, Any]) -> str:
    return f"{result['note']} " if result["note"] else ""


def _load(values: Any) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def write(result: dict[str, Any], out: Path) -> None:
    """Writes mean_training(_quick).json and .md into ``out``."""
    stem = "mean_training_quick" if result["quick"] else "mean_training"
    lines = [
        "# Training the seed model on a guarded generator",
        "",
        f"Model: `{result['model']}`; {result['mode']}; batch: {result['batch']}; "
        f"{result['rounds']} interleaved rounds x {result['steps_per_epoch']} steps"
        f"{' (quick run)' if result['quick'] else ''}. {_note(result)}Load average "
        f"(1, 5, 15 min) at the start {_load(result['load_average']['start'])}, at the end "
        f"{_load(result['load_average']['end'])}.",
        "",
        "Ratio: a variant's steps/s over bare's, per round (the two epochs ran close "
        "together); median, with a 95% bootstrap interval for the median (rounds "
        "resampled) and min-max. `bare again` is the A/A control: the same bare generator "
        "on a model of its own, so its interval is what noise alone gives.",
        "",
        "| variant | steps/s median [min, max] | ratio to bare: median (95% interval) "
        "[min, max] | A/A control's interval | safegen µs per yield "
        "| safegen share of bare's step |",
        "|---|---|---|---|---:|---:|",
    ]
    control = result["ratio_vs_bare"]["bare again"]
    for v, s in result["steps_per_second"].items():
        r = result["ratio_vs_bare"].get(v)
        ratio = (
            f"{r['median']:.4f} ({r['ci_low']:.4f}, {r['ci_high']:.4f}) "
            f"[{r['min']:.3f}, {r['max']:.3f}]"
            if r
            else "-"
        )
        aa = f"({control['ci_low']:.4f}, {control['ci_high']:.4f})" if r else "-"
        own = result["safegen_time"].get(v)
        us = f"{own['us_per_yield']:.2f}" if own else "-"
        share = f"{own['share_of_bare_step']:.2%}" if own else "-"
        lines.append(
            f"| {v} | {s['median']:.0f} [{s['min']:.0f}, {s['max']:.0f}] | {ratio} | {aa} | "
            f"{us} | {share} |"
        )
    lines += [
        "",
        "| target | median | 95% interval | A/A control's interval | met? |",
        "|---|---:|---|---|---|",
    ]
    for name, t in result["targets"].items():
        met = "yes" if t["met"] else "**no**"
        low, high = t["control"]
        lines.append(
            f"| {name} | {t['median']:.4f} | ({t['ci_low']:.4f}, {t['ci_high']:.4f}) | "
            f"({low:.4f}, {high:.4f}) | {met} |"
        )
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
