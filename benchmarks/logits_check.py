"""What the logits check costs a ``fit``: once per compiled model, one forward pass.

The model: ``Input((20,))`` -> ``Dense(64, relu)`` -> ``Dense(1, sigmoid)``,
``binary_crossentropy``, Adam, batches of 64 from NumPy arrays (graph mode, Keras 3 on
TensorFlow). The check runs before ``fit``: it reads the compiled loss, runs the model
once in inference on the first 64 rows, and judges the values; a model already judged
with its compiled loss costs a dictionary look-up.

Measured, per round, in a new random order each round:

* ``check_ms``: the check alone (``safegen.integrations._logits.check`` on the call,
  the model's verdict forgotten first so that it judges again), and its ratio to the
  bare train step of the same round (``bare``'s epoch, from ``on_epoch_begin`` to
  ``on_epoch_end``, divided by its steps): the per-fit cost, in train steps.
* ``bare``, ``bare again``: ``fit`` (one epoch of ``--steps`` steps) without safegen, on
  two models of their own: ``bare again`` / ``bare`` is the A/A control, the machine's
  noise.
* ``judged``: the same ``fit`` with the check run on the call (the verdict forgotten
  before each fit, as after a new ``compile``), ``cached``: with the check run but the
  model already judged (a loop of ``fit(epochs=1)``); each against ``bare``, timed
  around the whole ``fit`` call (the check runs before the first step).

Ratios are computed per round and summarized as a median with a 95% bootstrap interval
and min-max.

Usage::

    python benchmarks/logits_check.py            # 30 rounds: 4 min at load 11 to 16
    python benchmarks/logits_check.py --quick    # smoke run: 1 min at load 10

Writes ``logits_check.json`` and ``.md`` into ``--out`` (default ``benchmarks/results/``;
quick runs write ``logits_check_quick.*``).
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

from safegen.integrations import _calls, _logits  # noqa: E402

BATCH = 64
VARIANTS = ("bare", "bare again", "judged", "cached")


def build() -> Any:
    """The model, compiled; the same initial weights for every variant."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(), "binary_crossentropy")
    return model


def call_of(model: Any, x: np.ndarray, y: np.ndarray) -> _calls.Call:
    """The call as the fit wrapper hands it to the checks."""
    arguments = {"x": x, "y": y, "batch_size": BATCH, "epochs": 1, "verbose": 0}
    return _calls.Call("keras", "fit", model, arguments, _calls.handling_for(model, "raise"))


def check(model: Any, x: np.ndarray, y: np.ndarray, *, forget: bool) -> float:
    """Run the check on a fit call of ``model``; returns its time in seconds."""
    if forget:
        _logits._JUDGED.pop(model, None)
    start = time.perf_counter()
    _logits.check(call_of(model, x, y))
    return time.perf_counter() - start


def fit(model: Any, x: np.ndarray, y: np.ndarray, variant: str, timer: Any = None) -> float:
    """One timed fit of ``variant``, the check (if any) included."""
    start = time.perf_counter()
    if variant in ("judged", "cached"):
        check(model, x, y, forget=variant == "judged")
    callbacks = [] if timer is None else [timer]
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=None, help="train steps per fit")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--note", default="", help="a sentence on the conditions")
    args = parser.parse_args(argv)
    load_start = load_average()
    rounds = args.rounds or (3 if args.quick else 30)
    steps = args.steps or (10 if args.quick else 50)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * BATCH, 20)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")

    models = {v: build() for v in VARIANTS}
    for v in VARIANTS:  # warm-up: trace the train function, judge once
        fit(models[v], x, y, v)
    probe = build()
    check(probe, x, y, forget=True)  # warm-up of the eager forward pass
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    timer = epoch_timer()  # bare's epoch, without fit's own set-up: its steps
    check_s: list[float] = []
    order = [*VARIANTS, "check"]
    for _ in range(rounds):
        random.shuffle(order)
        for v in order:
            if v == "check":
                check_s.append(check(probe, x, y, forget=True))
            else:
                times[v].append(fit(models[v], x, y, v, timer if v == "bare" else None))

    step_s = [t / steps for t in timer.times]
    ratios = {
        v: bootstrap([a / b for a, b in zip(times[v], times["bare"], strict=True)])
        for v in VARIANTS[1:]
    }
    per_step = spread([c / s for c, s in zip(check_s, step_s, strict=True)])
    result: dict[str, Any] = {
        "benchmark": "logits_check",
        "model": "Input((20,)) -> Dense(64, relu) -> Dense(1, sigmoid), binary_crossentropy",
        "mode": "Keras 3 model.fit on NumPy arrays, batches of 64, verbose=0, shuffle=False",
        "quick": args.quick,
        "rounds": rounds,
        "steps_per_fit": steps,
        "note": args.note,
        "load_average": {"start": load_start, "end": load_average()},
        "check_ms": spread([c * 1000 for c in check_s]),
        "bare_step_ms": spread([s * 1000 for s in step_s]),
        "check_in_bare_steps": per_step,
        "fit_seconds": {v: spread(times[v]) for v in VARIANTS},
        "ratio_vs_bare": ratios,
        "environment": environment(),
    }
    c, s = result["check_ms"], result["bare_step_ms"]
    markdown = [
        "# logits_check",
        "",
        f"{result['model']}; {result['mode']}; {rounds} rounds of {steps} steps per fit"
        f"{' (quick)' if args.quick else ''}. Load average "
        f"{load_start[0]:.2f} at the start, {result['load_average']['end'][0]:.2f} at the end.",
        "",
        "| measure | median | min | max |",
        "|---|---|---|---|",
        f"| check alone (ms) | {c['median']:.2f} | {c['min']:.2f} | {c['max']:.2f} |",
        f"| bare train step (ms) | {s['median']:.2f} | {s['min']:.2f} | {s['max']:.2f} |",
        f"| check / bare step | {per_step['median']:.2f} | {per_step['min']:.2f} "
        f"| {per_step['max']:.2f} |",
        "",
        "| fit / bare fit | median | 95% interval | min | max |",
        "|---|---|---|---|---|",
    ]
    for v, r in ratios.items():
        markdown.append(
            f"| {v} | {r['median']:.3f} | {r['ci_low']:.3f} to {r['ci_high']:.3f} "
            f"| {r['min']:.3f} | {r['max']:.3f} |"
        )
    markdown.append("")
    stem = "logits_check_quick" if args.quick else "logits_check"
    write_results(args.out, stem, result, markdown)
    print("\n".join(markdown))
    return result


if __name__ == "__main__":
    main()
