"""Loss shape checks: a loss that broadcasts (batch,) against (batch, 1) raises ShapeError.

The Keras 3 scenarios (tests/loss_models.py) run once per backend: in this process on
TensorFlow, and in a subprocess on JAX (KERAS_BACKEND must be set before Keras is
imported). tf_keras runs in this process next to Keras 3, as in test_tf_keras.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import safegen
from safegen._losses import Step, broadcast, enlarges_both, first_meeting, where_defined

# Imported before pytester snapshots sys.modules (see test_pytest_plugin.py).
if importlib.util.find_spec("keras") is not None:
    import keras  # noqa: F401

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
MISMATCH = (
    r"loss MeanSquares\.call\(\) at tests/loss_models\.py:\d+: y_true of shape \(16,\) and "
    r"y_pred of shape \(16, 1\) broadcast to \(16, 16\) in (Sub|sub) at tests/loss_models\.py:"
    r"\d+; expected shapes that broadcast to one of them\."
)
MISMATCH_OTHER_WAY = (
    r"loss MeanSquares\.call\(\) at tests/loss_models\.py:\d+: y_true of shape \(16, 1\) and "
    r"y_pred of shape \(16,\) broadcast to \(16, 16\) in (Sub|sub) at "
)
SILENT = [
    "mse pred (B,1) true (B,)",
    "mse pred (B,) true (B,1)",
    "function pred (B,1) true (B,)",
    "subclass same shapes",
    "subclass reshaping itself",
    "sparse labels (B,)",
    "sparse labels (B,1)",
    "sample weights",
    "unchecked subclass (B,)",
]
EXECUTIONS = ["graph", "eager", "jit"]
# tests/loss_models.py's public_scenarios(): silent, and reported (with the op's name on
# TensorFlow and on JAX).
RECONCILED = [
    "expand_dims reconciled",
    "squeeze(-1) reconciled",
    "squeeze(axis=-1) reconciled",
    "squeeze() reconciled",
    "[:, 0] reconciled",
    "[:, None] reconciled",
    "ops.reshape reconciled",
    "dice (flatten) reconciled",
    "pairwise over y_pred reconciled",
]
PUBLIC_SILENT = [
    "focal same",
    "huber same",
    "dice (axis) same",
    "contrastive same",
    "quantile same",
    "masked mse same",
    "weighted bce same",
]
PUBLIC_REPORTED = {
    "[:, None] broadcast": ("NewAxisBoth", "Sub|sub"),
    "focal broadcast": ("BinaryFocal", "SelectV2|select_n \\(in _where\\)"),
    "huber broadcast": ("Huber", "Sub|sub"),
    "dice (axis) broadcast": ("AxisDice", "Mul|mul"),
    "contrastive broadcast": ("Contrastive", "Mul|mul"),
    "masked mse broadcast": ("MaskedMSE", "Sub|sub"),
    "weighted bce broadcast": ("WeightedBCE", "Mul|mul"),
}


class TestRule:
    """When broadcasting y_true with y_pred enlarges both (framework-free)."""

    @pytest.mark.parametrize(
        ("y_true", "y_pred", "result"),
        [
            ((32,), (32, 1), (32, 32)),
            ((32, 1), (32,), (32, 32)),
            ((None,), (None, 1), (None, None)),
            ((None, 1), (None,), (None, None)),
            ((8, 3), (8, 1, 3), (8, 8, 3)),
        ],
    )
    def test_both_enlarged(self, y_true, y_pred, result):
        """(B,) against (B, 1), either way, known or unknown batch: the (B, B) case."""
        assert enlarges_both(y_true, y_pred) == result

    @pytest.mark.parametrize(
        ("y_true", "y_pred"),
        [
            ((32, 1), (32, 1)),
            ((None,), (None,)),
            ((32,), (32, 10)),
            ((32, 1), (32, 10)),
            ((None, 1), (None, None)),
            ((), (32, 1)),
            ((1,), (1, 1)),
        ],
    )
    def test_not_both_enlarged(self, y_true, y_pred):
        """Equal shapes, sparse labels against logits, scalars, batch 1: nothing to say."""
        assert enlarges_both(y_true, y_pred) is None

    def test_incompatible_shapes_are_left_to_keras(self):
        """Shapes that cannot broadcast are Keras's error, not ours."""
        assert broadcast((3, 2), (4, 2)) is None
        assert enlarges_both((3,), (4, 1, 2)) is None


def meet(a, b, out, shapes, name="sub"):
    return Step("meet", name, (a, b), shapes, (out,))


class TestFirstMeeting:
    """Where a value from y_true meets one from y_pred and both grow (framework-free)."""

    def test_direct(self):
        """y_true (B,) minus y_pred (B, 1): the first op, with both shapes and the result."""
        found = first_meeting([meet("t", "p", "d", ((8,), (8, 1)))], "t", "p")
        assert found is not None
        assert (found.true_shape, found.pred_shape, found.result) == ((8,), (8, 1), (8, 8))

    def test_through_other_ops(self):
        """Values computed from each side carry it: neg(y_true) + exp(y_pred) is found."""
        steps = [
            Step("other", "neg", ("t",), ((8,),), ("a",)),
            Step("other", "exp", ("p",), ((8, 1),), ("b",)),
            meet("a", "b", "c", ((8,), (8, 1)), "add"),
        ]
        assert first_meeting(steps, "t", "p").step.name == "add"

    def test_reconciled_first(self):
        """A reshape before the meeting (same shapes): nothing."""
        steps = [
            Step("other", "reshape", ("t",), ((8,),), ("a",)),
            meet("a", "p", "c", ((8, 1), (8, 1))),
        ]
        assert first_meeting(steps, "t", "p") is None

    @pytest.mark.parametrize(
        "steps",
        [
            [meet("p", "p2", "c", ((8,), (8, 1)))],  # y_pred with a slice of itself
            [meet("q", "p", "c", ((1, 9), (8, 1)))],  # a constant (quantile) vector
            [meet("t", "t2", "c", ((8,), (8, 1)))],  # y_true with itself
            [meet("t", "p", "c", ((8,), (8, 10)))],  # sparse labels against logits
        ],
        ids=["pred-pred", "constant-pred", "true-true", "sparse"],
    )
    def test_not_true_meeting_pred(self, steps):
        """y_pred with itself, a constant with y_pred, y_true with itself, sparse labels
        against logits: nothing."""
        steps = [Step("other", "slice", ("p",), ((8, 1),), ("p2",))] + steps
        steps = [Step("other", "slice", ("t",), ((8, 1),), ("t2",))] + steps
        assert first_meeting(steps, "t", "p") is None

    def test_shape_reads_carry_nothing(self):
        """A mask built from y_true's shape only (``eye(shape(y_true)[0])``) is not y_true."""
        steps = [
            Step("shape", "Shape", ("t",), ((8,),), ("s",)),
            Step("other", "eye", ("s",), ((1,),), ("m",)),
            meet("m", "p", "c", ((8, 8), (8, 1)), "mul"),
        ]
        assert first_meeting(steps, "t", "p") is None

    def test_explicit_broadcast_before_the_op(self):
        """JAX broadcasts operands itself (``broadcast_in_dim``) before an op of equal
        shapes: the shapes before that repetition decide."""
        steps = [
            Step("broadcast", "broadcast_in_dim", ("t",), ((8,),), ("a",), dims=(1,),
                 out_shape=(8, 8)),
            Step("broadcast", "broadcast_in_dim", ("p",), ((8, 1),), ("b",), dims=(0, 1),
                 out_shape=(8, 8)),
            meet("a", "b", "c", ((8, 8), (8, 8)), "select_n"),
        ]  # fmt: skip
        found = first_meeting(steps, "t", "p")
        assert (found.true_shape, found.pred_shape) == ((1, 8), (8, 1))

    def test_through_a_call(self):
        """Into a nested call's body and back out (aliases), as a jitted ``where``."""
        steps = [
            Step("alias", "pjit", ("t", "p"), ((8,), (8, 1)), ("t_in", "p_in")),
            Step("other", "neg", ("t_in",), ((8,),), ("r",)),
            Step("alias", "pjit", ("r",), ((8,),), ("out",)),
            meet("out", "p", "c", ((8,), (8, 1))),
        ]
        assert first_meeting(steps, "t", "p").step.name == "sub"

    def test_residuals_paired_with_each_other(self):
        """Residuals ``d = y_true - y_pred`` (shapes agree) paired with their transpose
        (``d - ops.transpose(d)``): deliberate, nothing; ``d`` against a column of y_pred
        alone is reported."""
        steps = [
            meet("t", "p", "d", ((8, 1), (8, 1))),
            Step("other", "transpose", ("d",), ((8, 1),), ("dt",)),
            meet("d", "dt", "pairs", ((8, 1), (1, 8))),
        ]
        assert first_meeting(steps, "t", "p") is None
        steps[1:] = [
            Step("other", "slice", ("p",), ((8, 1),), ("p0",)),
            meet("d", "p0", "bad", ((8, 1), (8,)), "mul"),
        ]
        assert first_meeting(steps, "t", "p").step.name == "mul"

    def test_call_arguments_keep_their_own_side(self):
        """A call given (y_true, y_pred) passes each argument's side to its parameter only:
        a pairwise term over the y_pred parameter inside is not y_true meeting y_pred."""
        steps = [
            Step("alias", "pjit", ("t", "p"), ((8, 1), (8, 1)), ("a", "b")),
            Step("other", "transpose", ("b",), ((8, 1),), ("bt",)),
            meet("b", "bt", "pairs", ((8, 1), (1, 8))),
        ]
        assert first_meeting(steps, "t", "p") is None


@pytest.fixture(scope="module")
def tf_found():
    """tests/loss_models.py's scenarios on Keras 3 with TensorFlow, run once."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend runs here; JAX in a subprocess")
    from tests import loss_models

    return loss_models.scenarios()


@pytest.fixture(scope="module")
def jax_found():
    """The same scenarios and a safegen.enable() run on JAX, in a subprocess."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.jax_losses_run"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(
    params=["tensorflow", pytest.param("jax", marks=[pytest.mark.jax, pytest.mark.slow])]
)
def found(request):
    """The scenarios' results on each Keras 3 backend."""
    if request.param == "tensorflow":
        return request.getfixturevalue("tf_found")
    return request.getfixturevalue("jax_found")["scenarios"]


class TestWhereDefined:
    """Where a loss is defined, as its messages name it."""

    def test_a_symbolic_link_names_the_file_it_points_to(self, tmp_path, monkeypatch):
        """A loss loaded through a symbolic link (an editable install's link tree) is
        named by the source file, relative to the working directory."""
        (tmp_path / "src").mkdir()
        real = tmp_path / "src" / "losses.py"
        real.write_text("def loss(y_true, y_pred):\n    return y_true - y_pred\n")
        (tmp_path / "linked.py").symlink_to(real)
        namespace: dict = {}
        exec(compile(real.read_text(), str(tmp_path / "linked.py"), "exec"), namespace)
        monkeypatch.chdir(tmp_path)
        assert where_defined(namespace["loss"].__code__) == os.path.join("src", "losses.py") + ":1"


@pytest.mark.keras
class TestKeras3:
    """check_losses(model) on Keras 3, with real fit, on TensorFlow and JAX."""

    @pytest.mark.parametrize("execution", EXECUTIONS)
    def test_targets_one_rank_short(self, found, execution):
        """A Loss subclass given (B,) targets for a (B, 1) output raises, naming both."""
        message = found[f"subclass pred (B,1) true (B,) {execution}"]
        assert re.match(MISMATCH, message), message
        assert "hint: the targets are one rank short" in message

    @pytest.mark.parametrize("execution", EXECUTIONS)
    def test_output_one_rank_short(self, found, execution):
        """A Loss subclass given (B, 1) targets for a (B,) output raises, with its fix."""
        message = found[f"subclass pred (B,) true (B,1) {execution}"]
        assert re.match(MISMATCH_OTHER_WAY, message), message
        assert "hint: the model's output is one rank short of the targets" in message

    @pytest.mark.parametrize("execution", EXECUTIONS)
    def test_inside_the_train_step(self, found, execution):
        """With the loss already built, the check runs in the traced, jitted or eager step."""
        assert re.match(MISMATCH, found[f"in the train step {execution}"])

    @pytest.mark.parametrize("name", SILENT)
    def test_silent(self, found, name):
        """Built-in mse, plain functions, equal shapes, a loss that reshapes itself, sparse
        labels against logits, sample weights: no error."""
        assert found[name] == "ok"

    @pytest.mark.parametrize("name", RECONCILED)
    def test_reconciling_idioms_silent(self, found, name):
        """(B,) targets for a (B, 1) output, reconciled inside the loss (expand_dims,
        squeeze with and without an axis, [:, 0], [:, None], reshape, flattening), or a
        pairwise term over y_pred alone: no error (issue 24: the first five were reported)."""
        assert found[name] == "ok"

    @pytest.mark.parametrize("name", PUBLIC_SILENT)
    def test_public_losses_silent_on_consistent_shapes(self, found, name):
        """Losses from public projects given (B, 1) targets for a (B, 1) output: no error,
        also where a constant quantile vector broadcasts against the error."""
        assert found[name] == "ok"

    @pytest.mark.parametrize("name", list(PUBLIC_REPORTED))
    def test_public_losses_reported_when_they_broadcast(self, found, name):
        """The same losses given (B,) targets for a (B, 1) output raise, naming the loss
        and the op where y_true meets y_pred, with its line (the focal loss: issue 24's
        miss)."""
        loss, op = PUBLIC_REPORTED[name]
        message = found[name]
        assert re.match(
            rf"loss {loss}\.call\(\) at tests/loss_models\.py:\d+: .* broadcast to \(16, 16\) "
            rf"in ({op}) at tests/loss_models\.py:\d+; expected shapes",
            message,
        ), message

    @pytest.mark.jax
    @pytest.mark.slow
    def test_jax_without_tensorflow(self, jax_found):
        """On JAX, safegen.enable() checks too, and TensorFlow is never imported."""
        assert jax_found["backend"] == "jax"
        assert re.match(MISMATCH, jax_found["enabled"])
        assert jax_found["losses_checked"] == 1
        assert jax_found["tensorflow_imported"] is False


@pytest.mark.keras
class TestKeras3Details:
    """What the error and check_losses say on Keras 3 (TensorFlow)."""

    def test_names_the_op_and_its_line(self):
        """The message names the op and the line of the loss where the two sides meet,
        and quotes that line."""
        pytest.importorskip("keras")
        import inspect

        from tests.loss_models import MeanSquares, data, fit, regression

        lines, start = inspect.getsourcelines(MeanSquares.call)
        offset = next(i for i, line in enumerate(lines) if "y_true - y_pred" in line)
        x, y = data(1)
        message = fit(regression(), MeanSquares(), x, y)
        assert f"in Sub at tests/loss_models.py:{start + offset};" in message
        assert (
            f"\n  tests/loss_models.py:{start + offset}: "
            "return ops.mean(ops.square(y_true - y_pred), axis=-1)\n"
        ) in message

    def test_tf_reshape_silent(self):
        """``tf.reshape(y_true, tf.shape(y_pred))`` inside the loss: no error."""
        keras = pytest.importorskip("keras")
        tf = pytest.importorskip("tensorflow")
        from tests.loss_models import data, fit, regression

        class TfReshape(keras.losses.Loss):
            def call(self, y_true, y_pred):
                y_true = tf.reshape(y_true, tf.shape(y_pred))
                return tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)

        x, y = data(1)
        for execution in EXECUTIONS:
            assert fit(regression(), TfReshape(), x, y, execution=execution) == "ok"

    def test_broadcast_inside_a_loss_given_equal_shapes(self):
        """Both (B, 1), but the loss indexes only y_true (``y_true[:, 0] - y_pred``): the
        (B, B) inside is reported, with the shapes that meet (shapes alone missed it)."""
        keras = pytest.importorskip("keras")
        from keras import ops

        from tests.loss_models import data, fit, regression

        class OneSided(keras.losses.Loss):
            def call(self, y_true, y_pred):
                return ops.mean(ops.square(y_true[:, 0] - y_pred), axis=-1)

        x, y = data(2)
        message = fit(regression(), OneSided(), x, y)
        assert message.startswith("loss OneSided.call() at tests/test_losses.py:"), message
        assert (
            "a value of shape (16,) computed from y_true (shape (16, 1)) and one of shape "
            "(16, 1) computed from y_pred (shape (16, 1)) broadcast to (16, 16) in Sub at "
            "tests/test_losses.py:"
        ) in message
        assert "hint: give the two values the same shape before they meet at" in message

    def test_plain_function_broadcasting_after_keras_reconciled(self):
        """A plain function (Keras reconciles its inputs' ranks first) that broadcasts
        inside is reported, without saying Keras does not reconcile it."""
        pytest.importorskip("keras")
        from keras import ops

        from tests.loss_models import data, fit, regression

        def one_sided(y_true, y_pred):
            return ops.mean(ops.square(y_true[:, 0] - y_pred), axis=-1)

        x, y = data(1)
        message = fit(regression(), one_sided, x, y)
        assert message.startswith(
            "loss TestKeras3Details.test_plain_function_broadcasting_after_keras_reconciled."
            "<locals>.one_sided() at tests/test_losses.py:"
        ), message
        assert "broadcast to (16, 16) in Sub at tests/test_losses.py:" in message
        assert "Keras reconciles" not in message

    def test_traced_once_per_signature(self, monkeypatch):
        """Eagerly, 4 steps of one shape trace the loss once; a new batch shape once more."""
        pytest.importorskip("keras")
        from safegen.integrations.keras import losses as keras_losses
        from tests.loss_models import ExpandTrue, N, data, fit, regression

        traces = []
        real = keras_losses._checks.trace

        def counting(loss, st, sp, dt, dp):
            traces.append((st, sp))
            return real(loss, st, sp, dt, dp)

        monkeypatch.setattr(keras_losses._checks, "trace", counting)
        x, y = data(1)
        assert fit(regression(), ExpandTrue(), x, y, execution="eager") == "ok"
        assert traces == [((16,), (16, 1))]
        assert fit(regression(), ExpandTrue(), x[: N - 4], y[: N - 4], execution="eager") == "ok"
        assert traces[1:] == [((16,), (16, 1)), ((12,), (12, 1))]  # a new model, then 12

    def test_enable_reports_focal_and_trains_reconciled(self):
        """Under enable() (the zero-code path), real fit: the public focal loss with (B,)
        labels raises; the reconciling loss trains, its loss going down, and is counted."""
        keras = pytest.importorskip("keras")
        from tests.loss_models import BinaryFocal, ExpandTrue, data, regression

        x, y = data(1, binary=True)
        with safegen.enabled() as session:
            model = regression(activation="sigmoid")
            model.compile(optimizer="adam", loss=BinaryFocal())
            with pytest.raises(safegen.ShapeError, match=r"in SelectV2 at tests/loss_models"):
                model.fit(x, y, batch_size=16, epochs=1, verbose=0)
            xm, ym = data(1)
            keras.utils.set_random_seed(0)
            model = regression()
            model.compile(optimizer=keras.optimizers.Adam(0.1), loss=ExpandTrue())
            history = model.fit(xm, ym, batch_size=16, epochs=20, verbose=0)
        losses = history.history["loss"]
        assert losses[-1] < losses[0] / 10, losses
        totals = session.as_dict()["totals"]
        assert (totals["losses_checked"], totals["shape_errors"]) == (2, 1)

    def test_multi_output_names_the_output(self):
        """With two outputs, the message names the output whose loss broadcasts."""
        keras = pytest.importorskip("keras")
        from tests.loss_models import MeanSquares, data

        inputs = keras.Input((2,))
        model = keras.Model(
            inputs,
            {
                "good": keras.layers.Dense(1, name="good")(inputs),
                "bad": keras.layers.Dense(1, name="bad")(inputs),
            },
        )
        model.compile(optimizer="sgd", loss={"good": MeanSquares(), "bad": MeanSquares()})
        assert sorted(safegen.check_losses(model)) == ["bad", "good"]
        x, y = data(1)
        with pytest.raises(safegen.ShapeError, match=r"loss_models\.py:\d+, output 'bad': "):
            model.fit(x, {"good": y[:, None], "bad": y}, batch_size=16, verbose=0)

    def test_refuses_what_it_cannot_check(self):
        """Not a model: TypeError; a model not compiled: ValueError saying to compile."""
        keras = pytest.importorskip("keras")
        with pytest.raises(TypeError, match=r"check_losses\(model\): model must be a Keras"):
            safegen.check_losses(object())
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        with pytest.raises(ValueError, match=r"is not compiled; call model\.compile"):
            safegen.check_losses(model)

    def test_once_per_trace_in_graph_mode(self):
        """Graph mode checks once per trace, eager mode once per step (enable's counts)."""
        pytest.importorskip("keras")
        from tests.loss_models import MeanSquares, data, fit, regression

        x, y = data(2)
        counts = {}
        for execution in ("graph", "eager"):
            with safegen.enabled() as session:
                outcome = fit(regression(), MeanSquares(), x, y, check=False, execution=execution)
                assert outcome == "ok"
                (record,) = session.as_dict()["losses"]
            counts[execution] = record["checks"]
        assert counts["graph"] <= 2  # the symbolic build and one trace, for 4 steps
        assert counts["eager"] >= 4

    def test_enable_checks_and_disable_stops(self):
        """Under enable() a compiled model's loss is checked; after disable() it is not."""
        pytest.importorskip("keras")
        from tests.loss_models import MeanSquares, data, fit, regression

        x, y = data(1)
        with safegen.enabled() as session:
            assert re.match(MISMATCH, fit(regression(), MeanSquares(), x, y, check=False))
        totals = session.as_dict()["totals"]
        assert (totals["losses_checked"], totals["shape_errors"]) == (1, 1)
        assert fit(regression(), MeanSquares(), x, y, check=False) == "ok"

    def test_checks_installed_by_enable_end_with_it(self):
        """A loss wrapped while enabled stops checking after disable(); check_losses then
        switches it on again for good."""
        pytest.importorskip("keras")
        from tests.loss_models import BATCH, MeanSquares, data, regression

        x, y = data(2)
        model = regression()
        # Eagerly: a graph traced for (B, 1) targets would be retraced for (B,) targets
        # with shapes of unknown rank, which Keras's own losses refuse.
        model.compile(optimizer="sgd", loss=MeanSquares(), run_eagerly=True)
        with safegen.enabled():
            model.fit(x, y, batch_size=BATCH, verbose=0)  # builds (and wraps) the loss
        model.fit(x, y[:, 0], batch_size=BATCH, verbose=0)  # disabled: trains silently
        assert safegen.check_losses(model) == ["dense"]
        assert type(model._compile_loss._flat_losses[0].loss).__name__ == "CheckedLoss"
        with pytest.raises(safegen.ShapeError, match=MISMATCH):
            model.fit(x, y[:, 0], batch_size=BATCH, verbose=0)


class TestLossFindings:
    """A loss's ShapeError is a finding of kind LOSS_BROADCAST, counted on the one path."""

    def test_loss_broadcast_counted_by_kind_and_failing(self):
        """A broadcasting loss in a real fit is one loss_broadcasts finding in counts() and
        failures(), counted as raised (not in failures(raised=False)); a correct one is none."""
        pytest.importorskip("keras")
        from tests.loss_models import ExpandTrue, MeanSquares, data, fit, regression

        x, y = data(1)
        with safegen.enabled() as session:
            assert fit(regression(), ExpandTrue(), x, y, check=False) == "ok"
            assert session.failures() == {}
            assert re.match(MISMATCH, fit(regression(), MeanSquares(), x, y, check=False))
            counts = session.counts()
            assert (counts["loss_broadcasts"], counts["layer_shapes"]) == (1, 0)
            assert session.failures() == {"loss_broadcasts": 1}
            assert session.failures(raised=False) == {}
            data_ = session.as_dict()
        totals = data_["totals"]
        assert (totals["losses_checked"], totals["shape_errors"], totals["violations"]) == (2, 1, 1)
        assert sorted(loss["shape_errors"] for loss in data_["losses"]) == [0, 1]
        assert re.match(MISMATCH, data_["shape_errors"][0])


@pytest.mark.tf_keras
class TestTfKeras:
    """check_losses and enable() on tf_keras (Keras 2), with real fit."""

    @pytest.fixture
    def tfk(self):
        tf_keras = pytest.importorskip("tf_keras")
        tf = pytest.importorskip("tensorflow")

        class MeanSquares(tf_keras.losses.Loss):
            def call(self, y_true, y_pred):
                return tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)

        def fit(loss, y, *, squeeze=False, check=True, **compile_kwargs):
            layers = [tf_keras.layers.Dense(1, input_shape=(2,), name="dense")]
            if squeeze:
                layers.append(tf_keras.layers.Lambda(lambda t: tf.squeeze(t, -1)))
            model = tf_keras.Sequential(layers)
            model.compile(optimizer="sgd", loss=loss, **compile_kwargs)
            if check:
                safegen.check_losses(model)
            x = np.random.default_rng(0).uniform(0, 10, (64, 2)).astype("float32")
            y = y if y is not None else x.mean(axis=1)
            try:
                model.fit(x, y, batch_size=16, epochs=1, verbose=0)
            except safegen.ShapeError as error:
                return str(error)
            return "ok"

        return MeanSquares, fit

    @pytest.mark.parametrize("compile_kwargs", [{}, {"run_eagerly": True}, {"jit_compile": True}])
    def test_output_one_rank_short(self, tfk, compile_kwargs):
        """A Loss subclass given (B, 1) targets for a (B,) output raises (graph, eager, XLA)."""
        loss, fit = tfk
        y = np.ones((64, 1), "float32")
        message = fit(loss(), y, squeeze=True, **compile_kwargs)
        assert re.match(
            r"loss MeanSquares\.call\(\) at tests/test_losses\.py:\d+: y_true of shape "
            r"\(16, 1\) and y_pred of shape \(16,\) broadcast to \(16, 16\)",
            message,
        ), message

    def test_silent(self, tfk):
        """(B,) targets for a (B, 1) output (tf_keras expands them itself), and mse either
        way: no error."""
        loss, fit = tfk
        assert fit(loss(), None) == "ok"
        assert fit("mse", np.ones((64, 1), "float32"), squeeze=True) == "ok"

    def test_checked_before_built_container_deep_copies(self, tfk):
        """check_losses before the loss is built leaves the loss container deep-copyable,
        the copy's check bound to the copy; the original still raises at fit."""
        import copy

        tf_keras = pytest.importorskip("tf_keras")
        loss, fit = tfk
        model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
        model.add(tf_keras.layers.Lambda(lambda t: t[:, 0]))
        model.compile(optimizer="sgd", loss=loss())
        safegen.check_losses(model)
        assert not model.compiled_loss.built
        clone = copy.deepcopy(model.compiled_loss)
        assert clone.build.args[1] is clone
        x = np.ones((16, 2), "float32")
        with pytest.raises(safegen.ShapeError, match=r"broadcast to \(16, 16\)"):
            model.fit(x, np.ones((16, 1), "float32"), batch_size=16, verbose=0)

    def test_enable(self, tfk):
        """Under enable() tf_keras models are checked and counted."""
        loss, fit = tfk
        with safegen.enabled() as session:
            message = fit(loss(), np.ones((64, 1), "float32"), squeeze=True, check=False)
        assert "broadcast to (16, 16)" in message
        assert session.as_dict()["totals"]["losses_checked"] == 1

    @pytest.fixture
    def idioms(self):
        """tf_keras losses given (B, 1) targets for a (B,) output (tf_keras itself expands
        (B,) targets to a (B, 1) output's rank, so this is the way round that reaches a
        Loss subclass unreconciled)."""
        tf_keras = pytest.importorskip("tf_keras")
        tf = pytest.importorskip("tensorflow")

        def loss(name, fn):
            return type(name, (tf_keras.losses.Loss,), {"call": lambda self, t, p: fn(t, p)})

        def mse(t, p):
            return tf.reduce_mean(tf.square(t - p), axis=-1)

        def focal(t, p):  # mkocabas/focal-loss-keras, with tf_keras's own backend
            k = tf_keras.backend
            p = k.clip(p, k.epsilon(), 1.0 - k.epsilon())
            pt = tf.where(tf.equal(t, 1), p, 1 - p)
            return -k.mean(0.25 * k.pow(1.0 - pt, 2.0) * k.log(pt))

        def huber(t, p):  # the Hands-on ML HuberLoss, as above
            error = t - p
            small = tf.abs(error) < 1.0
            return tf.where(small, tf.square(error) / 2, tf.abs(error) - 0.5)

        silent = {
            "tf.squeeze(y_true, -1)": loss("SqueezeTrue", lambda t, p: mse(tf.squeeze(t, -1), p)),
            "tf.squeeze(y_true)": loss("SqueezeAll", lambda t, p: mse(tf.squeeze(t), p)),
            "y_true[:, 0]": loss("IndexTrue", lambda t, p: mse(t[:, 0], p)),
            "tf.expand_dims(y_pred, -1)": loss(
                "ExpandPred", lambda t, p: mse(t, tf.expand_dims(p, -1))
            ),
            "y_pred[:, None]": loss("NewAxisPred", lambda t, p: mse(t, p[:, None])),
            "tf.reshape": loss("ReshapeTrue", lambda t, p: mse(tf.reshape(t, tf.shape(p)), p)),
        }
        reported = {
            "focal": (loss("Focal", focal), "SelectV2"),
            "huber": (loss("Huber", huber), "Sub"),
        }
        return silent, reported

    @pytest.mark.parametrize(
        "name",
        [
            "tf.squeeze(y_true, -1)",
            "tf.squeeze(y_true)",
            "y_true[:, 0]",
            "tf.expand_dims(y_pred, -1)",
            "y_pred[:, None]",
            "tf.reshape",
        ],
    )
    def test_reconciling_idioms_silent(self, tfk, idioms, name):
        """A loss that reconciles (B, 1) targets with a (B,) output itself: no error."""
        _, fit = tfk
        silent, _ = idioms
        assert fit(silent[name](), np.ones((64, 1), "float32"), squeeze=True) == "ok"

    @pytest.mark.parametrize("name", ["focal", "huber"])
    def test_public_losses_reported(self, tfk, idioms, name):
        """The focal and Huber losses given (B, 1) targets for a (B,) output raise, naming
        the op where they meet; with matching shapes they are silent."""
        _, fit = tfk
        _, reported = idioms
        loss, op = reported[name]
        message = fit(loss(), np.ones((64, 1), "float32"), squeeze=True)
        assert re.search(rf"broadcast to \(16, 16\) in {op} at tests/test_losses\.py:\d+;", message)
        assert fit(loss(), np.ones((64, 1), "float32")) == "ok"


@pytest.mark.keras
@pytest.mark.slow
class TestRun:
    """The unmodified example under `python -m safegen run`."""

    def test_example_exits_1_with_the_shape_error(self, tmp_path):
        """Exit 1 with the ShapeError; the summary and --report count the loss checked."""
        pytest.importorskip("keras")
        report = tmp_path / "report.json"
        result = subprocess.run(
            [sys.executable, "-m", "safegen", "run", "--report", str(report),
             "examples/unmodified/loss_subclass.py"],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip
        assert result.returncode == 1, result.stderr[-3000:]
        assert (
            "safegen.ShapeError: loss MeanSquares.call() at "
            "examples/unmodified/loss_subclass.py:" in result.stderr
        )
        assert "y_true of shape (64,) and y_pred of shape (64, 1) broadcast to (64, 64)" in (
            result.stderr
        )
        assert "  1 loss(es) checked" in result.stderr
        data = json.loads(report.read_text())
        assert data["totals"]["losses_checked"] == 1
        assert data["losses"][0]["shape_errors"] == 1

    RECONCILED_PROGRAM = """
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
import numpy as np
from keras import ops


class MeanSquares(keras.losses.Loss):
    def call(self, y_true, y_pred):
        y_true = ops.expand_dims(y_true, -1)  # (B,) targets, reconciled here
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


keras.utils.set_random_seed(0)
x = np.random.default_rng(0).uniform(0, 10, (256, 2)).astype("float32")
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.1), loss=MeanSquares())
history = model.fit(x, x.mean(axis=1), batch_size=32, epochs=30, verbose=0)
print("losses", history.history["loss"][0], history.history["loss"][-1])
"""

    FOCAL_PROGRAM = """
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
import numpy as np
from keras import ops


class BinaryFocal(keras.losses.Loss):
    def call(self, y_true, y_pred):
        y_pred = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        pt = ops.where(ops.equal(y_true, 1), y_pred, 1 - y_pred)
        return -ops.mean(0.25 * ops.power(1.0 - pt, 2.0) * ops.log(pt))


x = np.random.default_rng(0).uniform(0, 10, (256, 2)).astype("float32")
y = (x.mean(axis=1) > 5).astype("float32")  # (B,) labels for a (B, 1) sigmoid output
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss=BinaryFocal())
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
"""

    def run(self, tmp_path, program):
        path = tmp_path / "train.py"
        path.write_text(program)
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", str(path)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip

    def test_reconciling_program_exits_0_and_trains(self, tmp_path):
        """A loss reconciling (B,) targets itself (issue 24: exit 1 before) runs to the
        end under safegen run, exit 0, its loss down by a factor of 100, the loss counted."""
        pytest.importorskip("keras")
        result = self.run(tmp_path, self.RECONCILED_PROGRAM)
        assert result.returncode == 0, result.stderr[-3000:]
        first, last = map(float, result.stdout.split("losses")[1].split())
        assert last < first / 100, (first, last)
        assert "  1 loss(es) checked" in result.stderr

    def test_focal_program_exits_1(self, tmp_path):
        """The public focal loss given (B,) labels (issue 24: exit 0 before) exits 1 with
        the ShapeError naming the where() line."""
        pytest.importorskip("keras")
        result = self.run(tmp_path, self.FOCAL_PROGRAM)
        assert result.returncode == 1, result.stderr[-3000:]
        assert (
            "safegen.ShapeError: loss BinaryFocal.call() at train.py:11: y_true of shape (32,) "
            "and y_pred of shape (32, 1) broadcast to (32, 32) in SelectV2 at train.py:13;"
        ) in result.stderr, result.stderr[-3000:]


PYTEST_MODULE = """
import numpy as np
import keras
from keras import ops


class MeanSquares(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


def test_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=MeanSquares())
    x = np.ones((32, 2), "float32")
    model.fit(x, x.mean(axis=1), batch_size=16, epochs=1, verbose=0)
"""

EXPECTED_MODULE = (
    PYTEST_MODULE.replace("def test_fit():", "def fit():")
    + """

def test_expected():
    import pytest
    import safegen

    with pytest.raises(safegen.ShapeError, match="broadcast to"):
        fit()
    mean = keras.layers.Lambda(lambda x: ops.mean(x, axis=1), output_shape=(1,))
    with pytest.raises(safegen.ShapeError, match="returned rank 1"):
        mean(np.ones((4, 2), "float32"))
"""
)


@pytest.mark.keras
class TestPytestPlugin:
    """`pytest --safegen` checks losses (shapes on), and leaves them with --safegen-no-shapes."""

    PLUGIN = ("-p", "no:safegen", "-p", "safegen.integrations.pytest_plugin")

    @pytest.fixture
    def inner(self, pytester):
        pytest.importorskip("keras")
        pytester.makepyfile(test_loss=PYTEST_MODULE)
        pytester.makeini(
            "[pytest]\nfilterwarnings =\n    ignore::UserWarning\n    ignore::DeprecationWarning\n"
        )
        pytester.syspathinsert(str(ROOT))
        return pytester

    def test_safegen_fails_the_test(self, inner):
        """--safegen: the test fails with the ShapeError; the summary counts the loss."""
        result = inner.runpytest(*self.PLUGIN, "--safegen")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "E * safegen.ShapeError: loss MeanSquares.call() at test_loss.py:7: y_true of "
                "shape (16,) and y_pred of shape (16, 1) broadcast to (16, 16)*",
                "*= safegen =*",
                "  1 loss(es) checked",
            ]
        )

    def test_no_shapes(self, inner):
        """--safegen-no-shapes leaves losses alone, as it leaves Lambdas."""
        result = inner.runpytest(*self.PLUGIN, "--safegen", "--safegen-no-shapes")
        result.assert_outcomes(passed=1)

    def test_expected_shape_errors_pass(self, pytester):
        """--safegen: a test that expects the loss's and a Lambda's ShapeError with
        pytest.raises passes (their findings count as raised), and the summary counts them."""
        pytest.importorskip("keras")
        pytester.makepyfile(test_expected=EXPECTED_MODULE)
        pytester.makeini(
            "[pytest]\nfilterwarnings =\n    ignore::UserWarning\n    ignore::DeprecationWarning\n"
        )
        result = pytester.runpytest(*self.PLUGIN, "--safegen")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "safegen: * 2 violation(s) (1 layer shape error(s), 1 loss broadcast(s)); "
                "1 layer(s) checked, 2 shape error(s)*",
            ]
        )


@pytest.mark.keras
class TestDisableSwitch:
    """SAFEGEN_DISABLE=1 switches loss checks off too (issue 19, bug 7)."""

    def test_no_shape_error_under_disable(self, monkeypatch):
        """The issue's loss with (B,) targets trains without a ShapeError when disabled."""
        pytest.importorskip("keras")
        from safegen import _config
        from tests import loss_models

        monkeypatch.setenv("SAFEGEN_DISABLE", "1")
        _config.reset()
        x, y1 = loss_models.data(1)
        assert loss_models.fit(loss_models.regression(), loss_models.MeanSquares(), x, y1) == "ok"
