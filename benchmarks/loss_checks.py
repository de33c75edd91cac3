"""Training throughput of the seed model with safegen's loss shape checks on and off.

The seed model, data and fit of ``benchmarks/mean_training.py`` (``Input((2,))`` ->
``Dense(1)``, RMSprop, the article's fixed generator, batches of 64, graph mode), with
the loss checks of ``safegen.check_losses(model)`` (what ``safegen.enable()`` and
``python -m safegen run`` install on every compiled model) on or off:

* ``bare``: ``loss="mse"``, unchecked (mean_training's ``bare``); ``bare again``: the
  same on a model of its own, the A/A control whose interval is the machine's noise.
* ``mse, checked``: ``"mse"`` with ``check_losses``: a built-in loss is not wrapped, so
  this is the seed benchmark with loss checks on.
* ``subclass`` / ``subclass, checked``: a ``keras.losses.Loss`` subclass computing the
  same mean squared error (correct shapes), without and with ``check_losses``: the
  checked loss runs its check in the traced train step, once per trace.
* ``eager subclass`` / ``eager subclass, checked``: the same with ``run_eagerly=True``,
  where the check runs every step (a cached verdict: one dictionary look-up).

The check itself runs once per traced signature (shapes and dtypes of ``y_true`` and
``y_pred``): ``verdict_ms`` times that one-off cost directly, the checked subclass's
verdict for a fresh signature (the loss traced and its operations read), for matching
shapes (64, 1) and (64, 1) and for broadcasting ones (64,) and (64, 1), repeated
``--verdicts`` times: median, min and max in milliseconds.

Every round fits one epoch of each variant in a new random order; each checked variant's
steps/s is divided by its unchecked twin's in the same round, and summarized as a median
with a 95% bootstrap interval (and min-max), next to the A/A control's. The number of ops
of the traced loss computation (``model.compute_loss`` in a ``tf.function``) is recorded
for each graph-mode variant: the check adds none, whatever the noise says.

Usage::

    python benchmarks/loss_checks.py            # 40 rounds, about 4 minutes
    python benchmarks/loss_checks.py --quick    # smoke run, about 20 seconds

Writes ``loss_checks.json`` and ``.md`` into ``--out`` (default ``benchmarks/results/``;
quick runs write ``loss_checks_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from _common import (  # noqa: E402
    RESULTS,
    bootstrap,
    environment,
    epoch_timer,
    load_average,
    spread,
    write_results,
)
from keras import ops  # noqa: E402
from mean_training import BATCH, fresh_batches  # noqa: E402
from tqdm import tqdm  # noqa: E402

import safegen  # noqa: E402

# variant -> (loss, run eagerly, checked, the unchecked twin it is compared with)
VARIANTS: dict[str, tuple[str, bool, bool, str]] = {
    "bare": ("mse", False, False, ""),
    "bare again": ("mse", False, False, "bare"),
    "mse, checked": ("mse", False, True, "bare"),
    "subclass": ("subclass", False, False, ""),
    "subclass, checked": ("subclass", False, True, "subclass"),
    "eager subclass": ("subclass", True, False, ""),
    "eager subclass, checked": ("subclass", True, True, "eager subclass"),
}


class MeanSquares(keras.losses.Loss):
    """Mean squared error as a Loss subclass (shapes match: (64, 1) and (64, 1))."""

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


def build(loss: str, eager: bool, checked: bool) -> Any:
    """The seed model, compiled; the same initial weights for every variant."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(
        keras.optimizers.RMSprop(),
        MeanSquares() if loss == "subclass" else "mse",
        run_eagerly=eager,
    )
    if checked:
        safegen.check_losses(model)
    return model


def loss_ops(model: Any) -> int:
    """Number of ops in the traced loss computation (y and y_pred of shape (None, 1))."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, 1), tf.float32)
    traced = tf.function(lambda y, p: model.compute_loss(y=y, y_pred=p))
    return len(traced.get_concrete_function(spec, spec).graph.get_operations())


SIGNATURES = {"(64, 1) and (64, 1)": ((64, 1), (64, 1)), "(64,) and (64, 1)": ((64,), (64, 1))}


def verdict_ms(model: Any, repeats: int) -> dict[str, dict[str, float]]:
    """Milliseconds the check of a checked model's loss takes for a new signature."""
    import time

    checked = model._compile_loss._flat_losses[0].loss
    state = checked._safegen
    out = {}
    for name, (st, sp) in SIGNATURES.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            state.checks._verdict(state, st, sp, "float32", "float32")
            times.append((time.perf_counter() - start) * 1000)
        out[name] = spread(times)
    return out


def fit(model: Any, steps: int, seed: int, callbacks: list[Any]) -> Any:
    return model.fit(
        fresh_batches(BATCH, seed),
        steps_per_epoch=steps,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=None, help="train steps per epoch")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--note", default="", help="a sentence on the conditions")
    parser.add_argument("--verdicts", type=int, default=None, help="verdicts timed")
    args = parser.parse_args(argv)
    load_start = load_average()
    rounds = args.rounds or (3 if args.quick else 40)
    steps = args.steps or (20 if args.quick else 200)

    models = {v: build(*VARIANTS[v][:3]) for v in VARIANTS}
    timers = {v: epoch_timer() for v in VARIANTS}
    for v in VARIANTS:  # warm-up: trace the train function (and run the checks once)
        fit(models[v], steps, seed=1000, callbacks=[])
    ops = {v: loss_ops(models[v]) for v in VARIANTS if not VARIANTS[v][1]}
    verdicts = verdict_ms(models["subclass, checked"], args.verdicts or (3 if args.quick else 20))
    order = list(VARIANTS)
    with tqdm(total=rounds * len(VARIANTS), desc="loss_checks", unit="epoch") as bar:
        for r in range(rounds):
            random.shuffle(order)
            for v in order:
                fit(models[v], steps, seed=r, callbacks=[timers[v]])
                bar.update(1)

    rates = {v: [steps / t for t in timers[v].times] for v in VARIANTS}
    ratios = {
        v: bootstrap([a / b for a, b in zip(rates[v], rates[twin], strict=True)])
        for v, (_, _, _, twin) in VARIANTS.items()
        if twin
    }
    control = ratios["bare again"]
    targets = {
        f"{v} / {VARIANTS[v][3]}: 95% interval overlaps the A/A control's": {
            **ratios[v],
            "control": [control["ci_low"], control["ci_high"]],
            "met": ratios[v]["ci_low"] <= control["ci_high"]
            and control["ci_low"] <= ratios[v]["ci_high"],
        }
        for v in ("mse, checked", "subclass, checked", "eager subclass, checked")
    }
    result: dict[str, Any] = {
        "benchmark": "loss_checks",
        "model": "Input((2,)) -> Dense(1), RMSprop; mse or a Loss subclass",
        "mode": "Keras 3 model.fit on a Python generator, verbose=0, shuffle=False",
        "quick": args.quick,
        "rounds": rounds,
        "steps_per_epoch": steps,
        "note": args.note,
        "load_average": {"start": load_start, "end": load_average()},
        "steps_per_second": {v: spread(rates[v]) for v in VARIANTS},
        "ratio_vs_twin": ratios,
        "loss_ops": ops,
        "verdict_ms": verdicts,
        "targets": targets,
        "meets_target": all(t["met"] for t in targets.values()),
        "environment": environment(),
    }
    write(result, args.out)
    return result


def write(result: dict[str, Any], out: Path) -> None:
    """Writes loss_checks(_quick).json and .md into ``out``."""
    stem = "loss_checks_quick" if result["quick"] else "loss_checks"
    load = result["load_average"]
    lines = [
        "# Training the seed model with loss shape checks on",
        "",
        f"Model: `{result['model']}`; {result['mode']}; {result['rounds']} interleaved "
        f"rounds x {result['steps_per_epoch']} steps{' (quick run)' if result['quick'] else ''}"
        f". {result['note'] + ' ' if result['note'] else ''}Load average (1, 5, 15 min) at "
        f"the start {tuple(round(x, 2) for x in load['start'])}, at the end "
        f"{tuple(round(x, 2) for x in load['end'])}.",
        "",
        "Ratio: a checked variant's steps/s over its unchecked twin's, per round; median, "
        "95% bootstrap interval of the median, [min, max]. `bare again` / `bare` is the "
        "A/A control.",
        "",
        "| variant | steps/s median [min, max] | ratio to its twin: median (95% interval) "
        "[min, max] | ops in the traced loss |",
        "|---|---|---|---:|",
    ]
    for v, s in result["steps_per_second"].items():
        r = result["ratio_vs_twin"].get(v)
        ratio = (
            f"{r['median']:.4f} ({r['ci_low']:.4f}, {r['ci_high']:.4f}) "
            f"[{r['min']:.3f}, {r['max']:.3f}] vs {VARIANTS[v][3]}"
            if r
            else "-"
        )
        ops = result["loss_ops"].get(v, "-")
        lines.append(
            f"| {v} | {s['median']:.0f} [{s['min']:.0f}, {s['max']:.0f}] | {ratio} | {ops} |"
        )
    lines += [
        "",
        "The check's one-off cost per signature (the subclass's verdict for a new pair of "
        "shapes), milliseconds:",
        "",
        "| y_true and y_pred | median | min | max |",
        "|---|---:|---:|---:|",
    ]
    for name, t in result.get("verdict_ms", {}).items():
        lines.append(f"| {name} | {t['median']:.1f} | {t['min']:.1f} | {t['max']:.1f} |")
    lines += ["", "| target | median | 95% interval | A/A control's interval | met? |"]
    lines += ["|---|---:|---|---|---|"]
    for name, t in result["targets"].items():
        low, high = t["control"]
        lines.append(
            f"| {name} | {t['median']:.4f} | ({t['ci_low']:.4f}, {t['ci_high']:.4f}) | "
            f"({low:.4f}, {high:.4f}) | {'yes' if t['met'] else '**no**'} |"
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
    print(json.dumps({"ratio_vs_twin": res["ratio_vs_twin"], "targets": res["targets"]}, indent=2))
