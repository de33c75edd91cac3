"""``safegen demo``: three silent data bugs, and safegen catching each.

They come from a short article about training a Keras network to predict the mean of two
numbers, numbered as in the README: 1. ``model.fit`` on a generator that refills one
buffer, 2. ``print(next(it), next(it))`` on it, 3. a ``Lambda`` of the wrong rank.
Every guard pins its mode, so ``SAFEGEN_MODE`` does not change what the demo shows;
under ``SAFEGEN_DISABLE=1`` it says so and checks anyway.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import safegen
from safegen import _config
from safegen.cli._common import positive

__all__ = ["add_parser", "run"]

BATCH = 64
INSTALL_HINT = 'pip install -e ".[keras]" in the safegen checkout'


def add_parser(subparsers: Any) -> None:
    """Add the ``demo`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "demo",
        help=(
            "show three silent data bugs from a short article about training a Keras "
            "network to predict the mean of two numbers, and safegen catching each"
        ),
    )
    parser.add_argument(
        "--steps", type=positive, default=40, help="training steps per epoch (default 40)"
    )
    parser.set_defaults(func=_run_args)


def _run_args(args: argparse.Namespace) -> int:
    return run(steps=args.steps)


def reused_buffer(batch_size: int = BATCH, seed: int = 0) -> Iterator[tuple[Any, Any]]:
    """The article's generator: `x` is allocated once and refilled on every step."""
    import numpy as np  # here, so that other subcommands start without NumPy

    rng = np.random.default_rng(seed)
    x = np.zeros((batch_size, 2), np.float32)
    while True:
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield x, np.expand_dims(x_mean, -1)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _first_sentence(text: str) -> str:
    """The first sentence of safegen's message (never cut inside a word)."""
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip().splitlines()[0], maxsplit=1)[0]


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
    except ImportError:
        return None
    keras.utils.set_random_seed(0)
    return keras


def _mean_model(keras: Any, expand: bool = True) -> Any:
    """One Lambda computing the mean: the loss is 0 exactly when x and y agree."""

    def mean(x: Any) -> Any:
        result = (x[:, 0] + x[:, 1]) / 2
        return keras.ops.expand_dims(result, -1) if expand else result

    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.Lambda(mean, output_shape=(1,))(inputs))
    model.compile(loss="mse", optimizer="rmsprop")
    return model


def _fit(keras: Any, batches: Any, steps: int) -> list[float]:
    model = _mean_model(keras)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The model does not have any trainable weights")
        history = model.fit(batches, steps_per_epoch=steps, epochs=2, verbose=0, shuffle=False)
    return [round(float(loss), 1) for loss in history.history["loss"]]


def pitfall_fit(keras: Any, steps: int) -> None:
    _say("1. model.fit on a generator that refills one buffer (the model is one Lambda")
    _say("   computing the mean: its loss is 0 exactly when every input matches its target)")
    plain = _fit(keras, reused_buffer(), steps)
    if any(plain):
        verdict = "<- not 0: inputs drifted away from their targets in this run"
    else:
        verdict = "<- 0 in this run: the bug comes and goes, with where the buffer was allocated"
    _say(f"   plain:          loss per epoch {plain}   {verdict}")
    copied = _fit(keras, safegen.guard(reused_buffer, mode="copy")(), steps)
    _say(f"   guard(copy):    loss per epoch {copied}")
    try:
        _fit(keras, safegen.guard(reused_buffer, mode="check")(), steps)
        _say("   guard(check):   found nothing (unexpected: please report it)")
    except safegen.AliasingError as error:
        _say(f"   guard(check):   AliasingError: {_first_sentence(str(error))}")
    _say()


def pitfall_print() -> None:
    _say("2. print(next(it), next(it)) on that generator, without any framework")
    it = reused_buffer(batch_size=1)
    first, _second = next(it), next(it)
    _say(
        f"   plain:          {first[0].tolist()} mean {first[1].ravel().tolist()}"
        "   <- the mean is not the mean of these numbers"
    )
    it = safegen.guard(reused_buffer, mode="copy")(batch_size=1)
    first, _second = next(it), next(it)
    _say(f"   guard(copy):    {first[0].tolist()} mean {first[1].ravel().tolist()}   <- consistent")
    it = safegen.guard(reused_buffer, mode="check")(batch_size=1)
    next(it)
    try:
        next(it)
    except safegen.AliasingError as error:
        _say(f"   guard(check):   AliasingError: {_first_sentence(str(error))}")
    it = safegen.guard(reused_buffer, mode="freeze")(batch_size=1)
    next(it)
    try:
        next(it)
    except ValueError as error:
        _say(f"   guard(freeze):  ValueError at the generator's own write: {error}")
        _say(f"                   {_first_sentence(error.__notes__[0])}")
    _say()


def pitfall_lambda(keras: Any) -> None:
    _say("3. a Lambda that forgot expand_dims: declares (None, 1), returns (batch,)")
    import numpy as np

    x = np.array([[73.0, 57.0], [10.0, 20.0]], np.float32)
    plain = _mean_model(keras, expand=False)
    _say(
        f"   plain:          model.output_shape {plain.output_shape}, "
        f"predict shape {plain.predict(x, verbose=0).shape}   <- summary lies, no error"
    )
    inputs = keras.Input(shape=(2,))
    layer = safegen.ShapeChecked(
        keras.layers.Lambda(lambda t: (t[:, 0] + t[:, 1]) / 2, output_shape=(1,), name="mean")
    )
    model = keras.Model(inputs, layer(inputs))
    try:
        model.predict(x, verbose=0)
    except safegen.ShapeError as error:
        # Keras adds its own context around the message; show safegen's lines.
        text = str(error).replace("\x1b[1m", "").replace("\x1b[0m", "")
        lines = [line.strip() for line in text.splitlines()]
        found = [line for line in lines if "returned rank" in line or line.startswith("hint:")]
        _say("   ShapeChecked:   ShapeError: " + (found[0] if found else lines[0]))
        for line in found[1:]:
            _say("                   " + line)
    _say()


# The article's programs, unmodified (no `import safegen` in them), in a checkout (found
# from the real file: an editable install's link tree has no examples folder).
UNMODIFIED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
    "examples",
    "unmodified",
)


def _run_unmodified(script: str) -> tuple[str, Any, str]:
    """Run one unmodified program as ``python -m safegen run`` does, in this process.

    Returns how it ended (``"ran"`` or the safegen error's class name), the session, and
    what the program printed.
    """
    import contextlib
    import io
    import runpy

    path = os.path.join(UNMODIFIED, script)
    outcome = "ran"
    printed = io.StringIO()
    with safegen.enabled(mode="check") as session:
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                runpy.run_path(path, run_name="__main__")
            except safegen.SafegenError as error:
                outcome = f"{type(error).__name__}: {_first_sentence(str(error))}"
    return outcome, session, printed.getvalue()


def zero_code() -> None:
    """4. The same bugs, found in programs that do not import safegen."""
    _say("4. The same bugs found without changing the code: python -m safegen run script.py")
    if not os.path.isdir(UNMODIFIED):
        _say("   (the example programs are in the safegen checkout: examples/unmodified/)")
        _say()
        return
    for script, story in (
        ("mean_generator.py", "pitfall 1, the article's program on inputs scaled to [0, 1)"),
        ("mean_lambda.py", "pitfall 3, as the article wrote it"),
        ("mean_fixed.py", "both fixed"),
    ):
        outcome, session, printed = _run_unmodified(script)
        totals = session.as_dict()["totals"]
        _say(f"   examples/unmodified/{script} ({story}):")
        if outcome == "ran":
            _say(
                f"      ran to the end: {totals['sources']} source(s), {totals['batches']} "
                f"batches checked, {totals['violations']} violation(s); "
                f"{totals['layers_checked']} layer(s) checked, {totals['shape_errors']} "
                "shape error(s)"
            )
            # Whether it learned: "mean of 38 and 85: target 61.50, predicted 61.50".
            for line in printed.splitlines():
                if line.startswith("mean of "):
                    _say(f"      it printed: {line}")
        else:
            _say(f"      {outcome}")
    _say()


def run(steps: int = 40) -> int:
    """Print the demo report; returns 0.

    Args:
        steps: training steps per epoch for pitfall 1.

    Returns:
        0.
    """
    _say(
        "safegen demo: three silent data bugs from a short article about training a Keras "
        "network to predict the mean of two numbers"
    )
    _say()
    if _config.disabled():
        _say(
            f"({_config.DISABLE_VAR} is set, which turns safegen's checks off; the demo "
            "checks anyway, to show them)"
        )
        _say()
    with _config.checking_anyway():
        keras = _keras()
        if keras is None:
            _say(f"1. (model.fit needs Keras: {INSTALL_HINT})")
            _say()
            pitfall_print()
            _say(f"3. (ShapeChecked needs Keras: {INSTALL_HINT})")
            return 0
        pitfall_fit(keras, steps)
        pitfall_print()
        pitfall_lambda(keras)
        zero_code()
    _say("Fix the generator: allocate x inside the loop, or yield np.copy(x),")
    _say('or let safegen do it: @safegen.guard(mode="copy").')
    sys.stdout.flush()
    return 0
