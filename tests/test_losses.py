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
from safegen._losses import broadcast, enlarges_both

# Imported before pytester snapshots sys.modules (see test_pytest_plugin.py).
if importlib.util.find_spec("keras") is not None:
    import keras  # noqa: F401

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
MISMATCH = (
    r"loss MeanSquares\.call\(\) at tests/loss_models\.py:\d+: y_true of shape \(16,\) and "
    r"y_pred of shape \(16, 1\) broadcast to \(16, 16\); expected shapes that broadcast to "
    r"one of them\."
)
MISMATCH_OTHER_WAY = (
    r"loss MeanSquares\.call\(\) at tests/loss_models\.py:\d+: y_true of shape \(16, 1\) and "
    r"y_pred of shape \(16,\) broadcast to \(16, 16\);"
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
