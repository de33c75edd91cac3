"""Train-step cost of safegen.ShapeChecked on the seed model, in graph mode.

The model is the issue's seed, fixed and made trainable: ``Input(2)`` feeds a
``Lambda`` computing the row mean with ``expand_dims`` (``output_shape=(1,)``) and a
``Dense(1)``; an ``Add`` sums the two. It is tiny on purpose: the smaller the step, the
larger any per-step cost of the wrapper would look, so this is the worst case for it.

Variants, all compiled the same way (SGD, MSE, graph mode via ``tf.function``):

* ``plain``: the Lambda as is.
* ``checked``: the Lambda checked by ``safegen.ShapeChecked`` (default ``check="rank"``),
  which switches the check on in the layer itself.
* ``checked_shape``: ``ShapeChecked(..., check="shape")``, which adds run-time
  assertions for the batch dimension (unknown while ``fit`` traces).

One interleaved run: every round fits one epoch of each variant, in a rotating order,
and times the epoch from ``on_epoch_begin`` to ``on_epoch_end`` (no data-adapter set-up);
the per-step time is that divided by the number of steps. Reported: the median, min and
max per-step time of each variant; the headline ratio is the median of the per-round
ratios ``variant / plain`` (each pair run back to back, so slow drifts of a shared
machine cancel), with their min and max; the ratio of the two medians is reported
too. The number of ops of the traced forward pass is also recorded, to show that the
static check adds none.

Usage::

    python benchmarks/shape_checked.py            # full run: 100 rounds x 150 steps, < 1 min
    python benchmarks/shape_checked.py --quick    # smoke run, writes shape_checked_quick.*
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import RESULTS, environment, epoch_timer, write_results  # noqa: E402
from tqdm import tqdm  # noqa: E402

import safegen  # noqa: E402

VARIANTS = ("plain", "checked", "checked_shape")


def mean_with_expand_dims(x: Any) -> Any:
    """The seed Lambda, fixed: (batch, 1)."""
    return keras.ops.expand_dims((x[:, 0] + x[:, 1]) / 2, -1)


def build(variant: str) -> Any:
    """Returns the compiled seed model for one variant."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    lam = keras.layers.Lambda(mean_with_expand_dims, output_shape=(1,), name="mean")
    if variant == "checked":
        lam = safegen.ShapeChecked(lam)
    elif variant == "checked_shape":
        lam = safegen.ShapeChecked(lam, check="shape")
    outputs = keras.layers.Add()([lam(inputs), keras.layers.Dense(1)(inputs)])
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(1e-5), "mse")
    return model


def op_count(model: Any) -> int:
    """Number of ops in the traced training-mode forward pass."""
    fn = tf.function(lambda t: model(t, training=True))
    return len(fn.get_concrete_function(tf.TensorSpec((None, 2))).graph.get_operations())


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=None, help="train steps per epoch")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 100)
    steps = args.steps or (20 if args.quick else 150)
    batch = 32

    rng = np.random.default_rng(0)
    x = rng.integers(0, 100, (steps * batch, 2)).astype("float32")
    y = x.mean(axis=1, keepdims=True)

    models = {v: build(v) for v in VARIANTS}
    ops = {v: op_count(m) for v, m in models.items()}
    timers = {v: epoch_timer() for v in VARIANTS}
    for m in models.values():  # warm-up: trace and compile every train function
        m.fit(x, y, batch_size=batch, epochs=1, verbose=0)

    with tqdm(total=rounds * len(VARIANTS), desc="shape_checked", unit="epoch") as bar:
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for v in order:
                models[v].fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timers[v]])
                bar.update(1)

    per_step = {v: [t / steps * 1e6 for t in timers[v].times] for v in VARIANTS}  # µs
    stats = {v: summary(per_step[v]) for v in VARIANTS}
    ratios = {}
    for v in VARIANTS[1:]:
        paired = [a / b for a, b in zip(per_step[v], per_step["plain"], strict=True)]
        ratios[v] = {
            "ratio_of_medians": stats[v]["median"] / stats["plain"]["median"],
            "paired_median": statistics.median(paired),
            "paired_min": min(paired),
            "paired_max": max(paired),
        }
    result: dict[str, Any] = {
        "benchmark": "shape_checked",
        "model": "Input(2) -> [Lambda mean + expand_dims (output_shape=(1,)), Dense(1)] -> Add",
        "mode": "graph (tf.function), model.fit, SGD + MSE",
        "quick": args.quick,
        "rounds": rounds,
        "steps_per_epoch": steps,
        "batch_size": batch,
        "per_step_us": stats,
        "ratios_vs_plain": ratios,
        "forward_ops": ops,
        "target": "checked at most 1% slower than plain (ratio <= 1.01)",
        "headline": "median of per-round ratios checked / plain",
        "meets_target": ratios["checked"]["paired_median"] <= 1.01,
        "environment": environment(),
    }
    write(result, args.out)
    return result


def write(result: dict[str, Any], out: Path) -> None:
    """Writes shape_checked.{json,md} (``_quick`` for a quick run) into ``out``."""
    lines = [
        "# ShapeChecked train-step cost",
        "",
        f"Model: `{result['model']}`; {result['mode']}; "
        f"{result['rounds']} interleaved rounds x {result['steps_per_epoch']} steps, "
        f"batch {result['batch_size']}{' (quick run)' if result['quick'] else ''}.",
        "",
        "| variant | median µs/step | min | max | per-round ratio median [min, max] "
        "| ratio of medians | forward ops |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for v, s in result["per_step_us"].items():
        r = result["ratios_vs_plain"].get(v)
        ratio = f"{r['ratio_of_medians']:.3f}" if r else "1"
        paired = (
            f"{r['paired_median']:.3f} [{r['paired_min']:.3f}, {r['paired_max']:.3f}]" if r else "-"
        )
        lines.append(
            f"| {v} | {s['median']:.1f} | {s['min']:.1f} | {s['max']:.1f} | {paired} | "
            f"{ratio} | {result['forward_ops'][v]} |"
        )
    env = result["environment"]
    lines += [
        "",
        f"Target: {result['target']}, judged on the {result['headline']}; "
        f"met: {result['meets_target']}.",
        f"Keras {env['keras']}, TensorFlow {env['tensorflow']}, Python {env['python']}, "
        f"{env['cpus']} CPUs ({env['machine']}).",
        "",
    ]
    stem = "shape_checked_quick" if result["quick"] else "shape_checked"
    write_results(out, stem, result, lines)


if __name__ == "__main__":
    res = main()
    print(json.dumps(res["ratios_vs_plain"], indent=2))
