"""The logits check (issue 26, part 1): a probabilistic loss's from_logits against the
values the model really outputs, on a real fit on Keras 3 (TensorFlow here, JAX in a
subprocess) and tf_keras, each bug with its correct twin silent."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import safegen
from safegen._detectors.logits import LossSpec, judge, message

# Imported before pytester snapshots sys.modules (see test_pytest_plugin.py).
if importlib.util.find_spec("keras") is not None:
    import keras  # noqa: F401

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent

BCE = LossSpec("'binary_crossentropy'", "binary", False, -1, "binary_crossentropy")
SCCE = LossSpec(
    "'sparse_categorical_crossentropy'", "sparse_categorical", False, -1,
    "sparse_categorical_crossentropy",
)  # fmt: skip
CCE = LossSpec("'categorical_crossentropy'", "categorical", False, -1, "categorical_crossentropy")


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


class TestJudge:
    """The rule, on NumPy values (no framework)."""

    def test_logits_for_probabilities(self):
        """Values outside [0, 1] given to a loss expecting probabilities are logits."""
        z = np.random.default_rng(0).normal(size=(32, 1)).astype("float32")
        verdict = judge(BCE, z)
        assert verdict is not None and verdict.problem == "logits"
        assert verdict.low == pytest.approx(float(z.min()))
        assert verdict.rows == 32

    def test_probabilities_for_probabilities(self):
        """Sigmoid and softmax values are silent with from_logits=False, saturated too."""
        z = np.random.default_rng(0).normal(scale=30, size=(32, 5)).astype("float32")
        assert judge(BCE, _sigmoid(z)) is None
        assert judge(SCCE, _softmax(z)) is None
        assert judge(CCE, _softmax(z).astype("float16")) is None

    def test_unnormalized_rows(self):
        """Categorical rows in [0, 1] not summing to 1 are reported for a categorical
        loss, not for a binary one (multi-label sigmoids)."""
        p = _sigmoid(np.random.default_rng(0).normal(size=(32, 4)))
        assert judge(CCE, p).problem == "unnormalized"
        assert judge(BCE, p) is None

    def test_class_axis(self):
        """Rows are read along the loss's axis."""
        p = _softmax(np.random.default_rng(0).normal(size=(8, 5, 3)), axis=1)
        assert judge(CCE._replace(axis=1), p) is None
        assert judge(CCE, p).problem == "unnormalized"

    def test_probabilities_for_logits(self):
        """Rows summing to 1 given to a loss expecting logits are probabilities; a binary
        output needs a sigmoid/softmax layer besides its values."""
        z = np.random.default_rng(0).normal(size=(32, 3))
        logits = SCCE._replace(from_logits=True)
        assert judge(logits, _softmax(z)).problem == "probabilities"
        assert judge(logits, z) is None
        p = _sigmoid(z[:, :1])
        assert judge(BCE._replace(from_logits=True), p) is None
        assert judge(BCE._replace(from_logits=True), p, "sigmoid").problem == "probabilities"

    def test_linear_head_in_unit_interval_is_silent(self):
        """A linear head whose values fall in (0, 1) by chance is not reported."""
        values = np.random.default_rng(0).uniform(0.2, 0.8, size=(64, 1))
        assert judge(BCE._replace(from_logits=True), values) is None
        assert judge(CCE._replace(from_logits=True), values) is None

    def test_nothing_to_say(self):
        """Non-finite, empty or integer outputs are not judged."""
        assert judge(BCE, np.array([[np.nan], [3.0]])) is None
        assert judge(BCE, np.zeros((0, 1))) is None
        assert judge(BCE, np.array([[2], [3]])) is None

    @given(
        shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
        classes=st.integers(2, 12),
        scale=st.floats(0.01, 60),
        dtype=st.sampled_from(["float16", "float32", "float64"]),
        seed=st.integers(0, 2**16),
    )
    def test_no_false_alarm_on_probabilities(self, shape, classes, scale, dtype, seed):
        """Softmax rows and sigmoid values of any logits, any batch shape, 16 to 64-bit
        floats: never reported for a loss expecting probabilities."""
        z = np.random.default_rng(seed).normal(scale=scale, size=(*shape, classes))
        rows = _softmax(z).astype(dtype)
        assert judge(CCE, rows) is None and judge(SCCE, rows) is None
        assert judge(BCE, _sigmoid(z).astype(dtype)) is None

    def test_message(self):
        """The message names model, loss, output, values and the fix."""
        z = np.array([[-2.5], [0.3], [4.0]])
        text = message(BCE, judge(BCE, z), model="clf", output="head", method="fit")
        first, *rest = text.splitlines()
        assert first == (
            "model 'clf' at fit: loss 'binary_crossentropy' of output 'head' expects "
            "probabilities (from_logits=False), but the model's output holds values from "
            "-2.5 to 4 (3 values of the first batch): those are logits, not probabilities."
        )
        assert "BinaryCrossentropy(from_logits=True)" in rest[-1]
        logits = SCCE._replace(from_logits=True)
        text = message(logits, judge(logits, _softmax(np.eye(3))), model="clf")
        assert "rows summing to 1 along axis -1" in text
        assert "SparseCategoricalCrossentropy(from_logits=False)" in text


@pytest.fixture(scope="module")
def keras3():
    """Keras 3 on TensorFlow."""
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def tfk():
    """tf_keras (Keras 2)."""
    return pytest.importorskip("tf_keras")


@pytest.mark.keras
class TestLossSpecs:
    """Reading what each loss given to compile expects."""

    def test_forms(self, keras3):
        """Names, functions, classes, partials, focal variants; not the user's own loss."""
        from safegen.integrations._logits import loss_spec

        losses = keras3.losses
        assert loss_spec("binary_crossentropy", "keras") == BCE
        assert loss_spec("bce", "keras").kind == "binary"
        assert loss_spec(losses.sparse_categorical_crossentropy, "keras") == SCCE._replace(
            name="sparse_categorical_crossentropy"
        )
        spec = loss_spec(losses.CategoricalCrossentropy(from_logits=True, axis=1), "keras")
        assert (spec.kind, spec.from_logits, spec.axis) == ("categorical", True, 1)
        assert spec.name == "CategoricalCrossentropy(from_logits=True)"
        focal = loss_spec(losses.BinaryFocalCrossentropy(from_logits=True), "keras")
        assert (focal.kind, focal.from_logits) == ("binary", True)
        partial = functools.partial(losses.binary_crossentropy, from_logits=True)
        assert loss_spec(partial, "keras").from_logits is True
        assert loss_spec("mse", "keras") is None

        class Own(losses.BinaryCrossentropy):
            def call(self, y_true, y_pred):
                return super().call(y_true, y_pred)

        assert loss_spec(Own(), "keras") is None


@pytest.mark.keras
class TestKeras3Fit:
    """Keras 3 on TensorFlow: each bug reported at fit, its twin silent."""

    def test_each_case(self, keras3):
        """Reported exactly where the loss's from_logits contradicts the values."""
        from tests import logits_models

        found = logits_models.outcomes(keras3)
        for name, reported in logits_models.expected(keras3).items():
            if reported:
                assert found[name].startswith("model 'sequential"), (name, found[name])
                assert " those are " in found[name], found[name]
            else:
                assert found[name] == "ok", (name, found[name])

    def test_counted_and_listed(self, keras3):
        """A finding is counted as logits in the session, under the model's check."""
        from tests import logits_models

        net = logits_models.model(keras3, keras3.layers.Dense(1, name="head"))
        net.compile(optimizer="sgd", loss="binary_crossentropy")
        x, y = logits_models.data()
        with pytest.warns(safegen.LogitsWarning, match="those are logits") as caught:
            with safegen.enabled(on_violation="warn") as session:
                for _ in range(2):  # judged once per compile; warned once
                    net.fit(x, y, batch_size=16, epochs=1, verbose=0)
        assert len([w for w in caught if issubclass(w.category, safegen.LogitsWarning)]) == 1
        assert caught[0].filename == __file__
        assert session.counts()["logits"] == 1
        assert f"check model {net.name!r}: 1 time(s), 1 violation(s)" in session.summary()

    def test_multi_output_names_the_output(self, keras3):
        """With two outputs, each loss is judged on its own output, named in the message."""
        from tests import logits_models

        inputs = keras3.Input((logits_models.FEATURES,))
        hidden = keras3.layers.Dense(8, activation="relu")(inputs)
        good = keras3.layers.Dense(1, activation="sigmoid", name="good")(hidden)
        bad = keras3.layers.Dense(logits_models.CLASSES, name="bad")(hidden)
        net = keras3.Model(inputs, [good, bad])
        net.compile(
            optimizer="sgd",
            loss={"good": "binary_crossentropy", "bad": "sparse_categorical_crossentropy"},
        )
        x, y = logits_models.data()
        _, ids = logits_models.data("sparse")
        with pytest.raises(safegen.LogitsError, match="of output 'bad' expects probabilities"):
            with safegen.enabled():
                net.fit(x, {"good": y, "bad": ids}, batch_size=16, epochs=1, verbose=0)
        net.compile(
            optimizer="sgd",
            loss=["binary_crossentropy", keras3.losses.SparseCategoricalCrossentropy(True)],
        )
        with safegen.enabled() as session:
            net.fit(x, [y, ids], batch_size=16, epochs=1, verbose=0)
        assert session.counts()["logits"] == 0

    def test_evaluate(self, keras3):
        """evaluate is checked too."""
        from tests import logits_models

        net = logits_models.model(keras3, keras3.layers.Dense(1))
        net.compile(loss="binary_crossentropy")
        x, y = logits_models.data()
        with pytest.raises(safegen.LogitsError, match="at evaluate: loss 'binary_crossentropy'"):
            with safegen.enabled():
                net.evaluate(x, y, batch_size=16, verbose=0)


def _batches(steps=None):
    """Standardized inputs and 0/1 labels, a fresh array per batch."""
    rng = np.random.default_rng(1)
    while True:
        x = rng.normal(size=(16, 4)).astype("float32")
        yield x, (x[:, :1] > 0).astype("float32")


@pytest.mark.keras
class TestSources:
    """Where the rows come from: guarded generators and PyDatasets, plain tf.data."""

    def _fit(self, keras3, data, activation, **fit_options):
        from tests import logits_models

        net = logits_models.model(keras3, keras3.layers.Dense(1, activation=activation))
        net.compile(optimizer="sgd", loss="binary_crossentropy")
        try:
            with safegen.enabled() as session:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "`shuffle=True` was passed")
                    net.fit(data, epochs=1, verbose=0, **fit_options)
        except safegen.LogitsError as error:
            return str(error).splitlines()[0]
        return session.counts()["logits"], session.summary()

    def test_generator(self, keras3):
        """A guarded generator's batch is read from its handle: nothing drawn from it."""
        found = self._fit(keras3, _batches(), None, steps_per_epoch=3)
        assert "those are logits" in found
        counts, summary = self._fit(keras3, _batches(), "sigmoid", steps_per_epoch=3)
        assert counts == 0 and "check model" in summary

    def test_pydataset(self, keras3):
        """A guarded PyDataset's (threads) last batch is read from its handle."""

        class Batches(keras3.utils.PyDataset):
            def __len__(self):
                return 4

            def __getitem__(self, index):
                rng = np.random.default_rng(index)
                x = rng.normal(size=(16, 4)).astype("float32")
                return x, (x[:, :1] > 0).astype("float32")

        assert "those are logits" in self._fit(keras3, Batches(), None)
        counts, _ = self._fit(keras3, Batches(), "sigmoid")
        assert counts == 0

    def test_nothing_drawn_and_training_unchanged(self, keras3):
        """With the check (a model with dropout, judged on a generator's batch), fit ends
        with the same weights as without safegen: no batch taken from training, no random
        draw. (How many batches tf.data prefetches beyond the last step depends on timing:
        not compared.)"""
        from tests import logits_models

        def trained(enabled):
            keras3.utils.set_random_seed(0)
            net = logits_models.model(
                keras3, keras3.layers.Dropout(0.5), keras3.layers.Dense(1, activation="sigmoid")
            )
            net.compile(optimizer="sgd", loss="binary_crossentropy")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "`shuffle=True` was passed")
                if enabled:
                    with safegen.enabled() as session:
                        net.fit(_batches(), steps_per_epoch=4, epochs=2, verbose=0)
                    assert "check model" in session.summary()
                else:
                    net.fit(_batches(), steps_per_epoch=4, epochs=2, verbose=0)
            return net.get_weights()

        weights, weights_checked = trained(False), trained(True)
        for a, b in zip(weights, weights_checked, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_plain_dataset(self, keras3):
        """A tf.data pipeline of slices, a stateless map and batch: its first batch."""
        import tensorflow as tf

        x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        ds = tf.data.Dataset.from_tensor_slices((x, (x[:, :1] > 0).astype("float32")))
        ds = ds.map(lambda a, b: (a * 2.0, b)).batch(16).prefetch(1)
        assert "those are logits" in self._fit(keras3, ds, None)

    def test_stateful_dataset_skipped(self, keras3):
        """A shuffled dataset is not iterated again (its order would move): not judged,
        and its epoch order is the one it has without safegen."""
        import tensorflow as tf

        x = np.arange(64, dtype="float32").reshape(16, 4) / 64
        ds = tf.data.Dataset.from_tensor_slices((x, np.ones((16, 1), "float32")))
        tf.random.set_seed(3)
        ds = ds.shuffle(16).batch(4)
        counts, summary = self._fit(keras3, ds, None)
        assert counts == 0 and "check model" not in summary


@pytest.mark.keras
class TestCheckLogits:
    """safegen.check_logits(model, x): the per-model door."""

    def test_raises_and_returns(self, keras3):
        """Raises LogitsError on a mix-up; returns the outputs judged otherwise."""
        from tests import logits_models

        x, _ = logits_models.data()
        net = logits_models.model(keras3, keras3.layers.Dense(1, name="head"))
        net.compile(loss=keras3.losses.BinaryCrossentropy(from_logits=True))
        assert safegen.check_logits(net, x) == ["head"]
        net.compile(loss="binary_crossentropy")
        with pytest.raises(safegen.LogitsError, match="at check_logits: loss 'binary_cross"):
            safegen.check_logits(net, x)
        net.compile(loss="mse")
        assert safegen.check_logits(net, x) == []

    def test_bad_input(self, keras3):
        """A clear error names what was expected."""
        from tests import logits_models

        net = logits_models.model(keras3, keras3.layers.Dense(1))
        with pytest.raises(TypeError, match="model must be a Keras 3"):
            safegen.check_logits(object(), np.ones((2, 4)))
        with pytest.raises(ValueError, match="is not compiled"):
            safegen.check_logits(net, np.ones((2, 4)))
        net.compile(loss="binary_crossentropy")
        with pytest.raises(TypeError, match="x must be an array"):
            safegen.check_logits(net, "rows")
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            safegen.check_logits(net, np.ones((2, 4)), batch_size=0)


@pytest.mark.keras
class TestPublicModels:
    """Models and losses written by others stay silent; a public bug is caught."""

    def test_loss_models_silent(self, keras3):
        """The loss checks' public losses (tests/loss_models.py) under enable(): no finding."""
        from tests import loss_models

        with safegen.enabled(on_violation="warn") as session:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", safegen.SafegenWarning)
                loss_models.public_scenarios()
        assert session.counts()["logits"] == 0

    def test_tutorial_models_silent(self, keras3):
        """The official patterns: a CNN with softmax and categorical_crossentropy (keras-io
        mnist_convnet), a linear head with SparseCategoricalCrossentropy(from_logits=True)
        (TensorFlow's classification tutorial), a sigmoid head with binary_crossentropy
        (keras-io structured data), a linear head with BinaryCrossentropy(from_logits=True)
        (keras-io image_classification_from_scratch); synthetic data."""
        layers = keras3.layers
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, size=(32, 8, 8, 1)).astype("float32")
        labels = rng.integers(0, 10, size=32)
        convnet = keras3.Sequential([
            keras3.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
            layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
        ])  # fmt: skip
        convnet.compile(loss="categorical_crossentropy", optimizer="adam")
        tutorial = keras3.Sequential([
            keras3.Input((8, 8, 1)), layers.Flatten(), layers.Dense(16, activation="relu"),
            layers.Dense(10),
        ])  # fmt: skip
        tutorial.compile("adam", keras3.losses.SparseCategoricalCrossentropy(from_logits=True))
        tabular = keras3.Sequential([
            keras3.Input((4,)), layers.Dense(8, activation="relu"), layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"),
        ])  # fmt: skip
        tabular.compile("adam", "binary_crossentropy")
        scratch = keras3.Sequential([
            keras3.Input((8, 8, 1)), layers.Rescaling(1.0), layers.Conv2D(4, 3),
            layers.GlobalAveragePooling2D(), layers.Dropout(0.25), layers.Dense(1),
        ])  # fmt: skip
        scratch.compile("adam", keras3.losses.BinaryCrossentropy(from_logits=True))
        with safegen.enabled() as session:
            convnet.fit(images, np.eye(10)[labels], batch_size=8, epochs=1, verbose=0)
            tutorial.fit(images, labels, batch_size=8, epochs=1, verbose=0)
            tabular.fit(rng.normal(size=(32, 4)), rng.integers(0, 2, (32, 1)), verbose=0)
            scratch.fit(images, rng.integers(0, 2, (32, 1)), batch_size=8, verbose=0)
        assert session.counts()["logits"] == 0
        assert session.summary().count("check model") == 4

    def test_public_bug_caught(self, keras3):
        """A public model (CADindustries/nncad, models/keras_signs_drawn_cut): a
        per-class sigmoid head given to SparseCategoricalCrossentropy(from_logits=True)."""
        rng = np.random.default_rng(0)
        net = keras3.Sequential([
            keras3.Input((6, 6, 1)), keras3.layers.Flatten(), keras3.layers.Dense(12),
            keras3.layers.Dense(3, activation="sigmoid"),
        ])  # fmt: skip
        net.compile(
            keras3.optimizers.Adam(),
            [keras3.losses.SparseCategoricalCrossentropy(from_logits=True)],
        )
        with pytest.raises(safegen.LogitsError, match="activation is sigmoid: those are prob"):
            with safegen.enabled():
                net.fit(rng.uniform(size=(16, 6, 6, 1)), rng.integers(0, 3, 16), verbose=0)


@pytest.mark.tf_keras
class TestTfKeras:
    """tf_keras: each bug reported at fit, its twin silent; a model built at its first step."""

    def test_each_case(self, tfk):
        """Reported exactly where the loss's from_logits contradicts the values."""
        from tests import logits_models

        found = logits_models.outcomes(tfk)
        for name, reported in logits_models.expected(tfk).items():
            assert (found[name] != "ok") is reported, (name, found[name])

    def test_unbuilt_model_and_generator(self, tfk):
        """A Sequential without an input shape, fed by a generator: judged after the
        first step, from the generator's last batch."""
        net = tfk.Sequential([tfk.layers.Dense(8, activation="relu"), tfk.layers.Dense(1)])
        net.compile(optimizer="sgd", loss="binary_crossentropy")
        with pytest.raises(safegen.LogitsError, match="those are logits"):
            with safegen.enabled():
                net.fit(_batches(), steps_per_epoch=3, epochs=1, verbose=0)
        net = tfk.Sequential([tfk.layers.Dense(8), tfk.layers.Dense(1, activation="sigmoid")])
        net.compile(optimizer="sgd", loss="binary_crossentropy")
        with safegen.enabled() as session:
            net.fit(_batches(), steps_per_epoch=3, epochs=1, verbose=0)
        assert session.counts()["logits"] == 0
        assert "check model" in session.summary()


@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax():
    """Keras 3 on JAX (a subprocess): the same cases, and a guarded generator."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.jax_logits_run"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["backend"] == "jax" and found["tensorflow_imported"] is False
    for name, reported in found["expected"].items():
        assert (found["scenarios"][name] != "ok") is reported, (name, found["scenarios"][name])
    assert "those are logits" in found["generator linear"]
    assert found["generator sigmoid"] == "ok"


BUGGY = """
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
import numpy as np

x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1{activation})])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
print("accuracy", history.history["accuracy"][-1])
"""


@pytest.mark.keras
@pytest.mark.slow
class TestRun:
    """`python -m safegen run` on an unmodified training script."""

    def run(self, tmp_path, program):
        path = tmp_path / "train.py"
        path.write_text(program)
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", str(path)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip

    def test_buggy_script_exits_1(self, tmp_path):
        """A linear head with binary_crossentropy: exit 1 with the LogitsError."""
        result = self.run(tmp_path, BUGGY.format(activation=""))
        assert result.returncode == 1, result.stderr[-3000:]
        assert (
            "safegen.LogitsError: model 'sequential' at fit: loss 'binary_crossentropy' "
            "expects probabilities (from_logits=False)"
        ) in result.stderr, result.stderr[-3000:]

    def test_tf_keras_script_exits_1(self, tmp_path):
        """The same bug in a tf_keras script, whose Sequential is built at its first
        step: exit 1 with the LogitsError."""
        pytest.importorskip("tf_keras")
        program = BUGGY.format(activation="").replace(
            "import keras\n", "import tf_keras as keras\n"
        )
        program = program.replace(
            "[keras.Input((4,)), keras.layers.Dense(8,", "[keras.layers.Dense(8,"
        )
        result = self.run(tmp_path, program)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.LogitsError: model 'sequential' at fit: loss 'binary_crossentropy'" in (
            result.stderr
        ), result.stderr[-3000:]

    def test_correct_script_exits_0(self, tmp_path):
        """The sigmoid head: exit 0, the model checked once."""
        result = self.run(tmp_path, BUGGY.format(activation=', activation="sigmoid"'))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "accuracy" in result.stdout
        assert "check model 'sequential': 1 time(s), 0 violation(s)" in result.stderr


@pytest.mark.keras
@pytest.mark.slow
class TestBenchmark:
    """benchmarks/logits_check.py, in a smoke run."""

    def test_quick(self, tmp_path):
        """--quick times the check alone against the bare step, and each fit variant."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "logits_check.py"), "--quick",
             "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads((tmp_path / "logits_check_quick.json").read_text())
        assert set(report["ratio_vs_bare"]) == {"bare again", "judged", "cached"}
        assert report["check_ms"]["min"] > 0 and report["check_in_bare_steps"]["median"] > 0
        assert "| check / bare step |" in (tmp_path / "logits_check_quick.md").read_text()


PYTEST_MODULE = """
import keras
import numpy as np


def fit(activation):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation=activation)])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    model.fit(x, (x[:, :1] > 0).astype("float32"), batch_size=16, epochs=1, verbose=0)


def test_linear_head():
    fit(None)


def test_sigmoid_head():
    fit("sigmoid")
"""


@pytest.mark.keras
class TestPytestPlugin:
    """`pytest --safegen` fails the test whose model mixes logits and probabilities."""

    def test_fails_the_buggy_test_only(self, pytester, keras3):
        """The linear head's test fails with the LogitsError; the sigmoid twin passes."""
        pytester.makepyfile(test_model=PYTEST_MODULE)
        pytester.makeini(
            "[pytest]\nfilterwarnings =\n    ignore::UserWarning\n    ignore::DeprecationWarning\n"
        )
        pytester.syspathinsert(str(ROOT))
        result = pytester.runpytest(
            "-p", "no:safegen", "-p", "safegen.integrations.pytest_plugin", "--safegen"
        )
        result.assert_outcomes(failed=1, passed=1)
        result.stdout.fnmatch_lines(
            ["E * safegen.LogitsError: model 'sequential*' at fit: loss 'binary_crossentropy'*"]
        )
