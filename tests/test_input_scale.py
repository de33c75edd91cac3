"""The input-scale check: inputs at predict/evaluate on another scale than at fit.

The rule (safegen._detectors.input_scale) is tested on NumPy samples; the check on real
fit/predict/evaluate calls under safegen.enable(), in this process on Keras 3 with
TensorFlow and on tf_keras, and in a subprocess on Keras 3 with JAX (KERAS_BACKEND must
be set before Keras is imported); `python -m safegen run` on a buggy and a correct script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import safegen
from safegen._detectors.input_scale import (
    MAX_VALUES,
    Range,
    Sample,
    compare,
    sample_values,
)

ROOT = Path(__file__).resolve().parent.parent


def _range(values, dtype=None):
    sample = Sample()
    sample.add(np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype))
    return sample.range()


RNG = np.random.default_rng(7)
PIXELS = RNG.integers(0, 256, (512, 8, 8, 1)).astype(np.uint8)
TABULAR_RAW = np.column_stack(
    [RNG.normal(40, 12, 1024), RNG.normal(52_000, 9_000, 1024), RNG.uniform(0, 5, 1024)]
)
MEAN, STD = TABULAR_RAW.mean(axis=0), TABULAR_RAW.std(axis=0)


class TestRule:
    def test_pixels_against_unit_range_are_too_wide(self):
        """Raw 0-255 pixels against a model trained on x / 255: reported as too wide."""
        assert compare(_range(PIXELS / 255.0), _range(PIXELS[:4])) == "wide"

    def test_twice_rescaled_is_too_narrow(self):
        """x / 255 / 255 against x / 255: reported as too narrow."""
        assert compare(_range(PIXELS / 255.0), _range(PIXELS[:4] / 255.0 / 255.0)) == "narrow"

    def test_raw_features_against_standardized(self):
        """Raw tabular features against standardized ones: reported as too wide."""
        trained = _range((TABULAR_RAW - MEAN) / STD)
        assert compare(trained, _range(TABULAR_RAW[:16])) == "wide"
        assert compare(trained, _range(TABULAR_RAW[:1])) == "wide"  # one row too

    def test_quiet_stretch_and_near_black_images_are_silent(self):
        """Found by the sweep over official examples: a quiet stretch of a standardized
        series (within +-0.01 of its mean) and near-black images (below 2/255) are data
        from the training distribution, not another scale: silent."""
        rng = np.random.default_rng(2)
        series = rng.normal(0, 0.75, (2000, 1))
        quiet = rng.uniform(-0.01, 0.01, (256, 1))
        assert compare(_range(series), _range(quiet)) is None
        images = PIXELS / 255.0
        dark = rng.uniform(0, 2 / 255, (4, *PIXELS.shape[1:]))
        assert compare(_range(images), _range(dark)) is None

    def test_same_scale_new_rows_are_silent(self):
        """New data scaled as in fit is not reported, from 1 row to many."""
        trained = _range(PIXELS[:256] / 255.0)
        for rows in (1, 2, 7, 256):
            assert compare(trained, _range(PIXELS[256 : 256 + rows] / 255.0)) is None

    def test_a_little_wider_and_outliers_are_silent(self):
        """Standardized data 1.5 times wider, or with 4% of rows 50 sigma out: silent."""
        rng = np.random.default_rng(1)
        trained = _range(rng.normal(0, 1, (1000, 10)))
        assert compare(trained, _range(rng.normal(0, 1.5, (1000, 10)))) is None
        test = rng.normal(0, 1, (1000, 10))
        test[::25] = 50.0
        assert compare(trained, _range(test)) is None

    def test_constant_inputs_are_never_reported(self):
        """A constant training input has no scale; a constant input given is a blank image."""
        assert compare(_range(np.ones((64, 4))), _range(np.full((64, 4), 255.0))) is None
        assert compare(_range(PIXELS / 255.0), _range(np.zeros((4, 8, 8, 1)))) is None

    def test_constant_feature_among_others(self):
        """A constant column next to varying ones does not make new data a finding."""
        rng = np.random.default_rng(2)
        train = np.column_stack([rng.normal(0, 1, 500), np.zeros(500), rng.normal(0, 1, 500)])
        test = np.column_stack([rng.normal(0, 1, 50), np.zeros(50), rng.normal(0, 1, 50)])
        assert compare(_range(train), _range(test)) is None

    def test_integer_ids_are_never_too_narrow(self):
        """Token ids: a short padded sentence against the vocabulary is not reported."""
        rng = np.random.default_rng(3)
        trained = _range(rng.integers(0, 20_000, (512, 40)))
        sentence = np.zeros((1, 200), dtype=np.int64)
        sentence[0, :6] = [5, 17, 2, 9, 40, 3]
        assert compare(trained, _range(sentence)) is None

    def test_float_narrow_side_needs_enough_values(self):
        """Two close values given to a model trained on 0..100 are not 'too narrow'."""
        trained = _range(np.linspace(0.5, 100.5, 1000))
        assert compare(trained, _range([[50.0], [50.3]])) is None

    def test_raw_floats_against_unit_uint8_scaled_model(self):
        """A model trained on raw uint8 pixels, given x / 255 (64+ values): too narrow."""
        assert compare(_range(PIXELS), _range(PIXELS[:2] / 255.0)) == "narrow"

    def test_sample_is_capped_and_deterministic(self):
        """Sampling takes at most MAX_VALUES values, evenly spaced, the same every time."""
        big = np.arange(10 * MAX_VALUES, dtype=np.float32).reshape(-1, 10)
        first, second = sample_values(big), sample_values(big)
        assert first.size <= MAX_VALUES
        np.testing.assert_array_equal(first, second)
        assert first.min() == 0 and first.max() > 0.9 * big.max()

    def test_non_numbers_and_nan_are_left_out(self):
        """Strings give no sample; NaN and inf are left out of one."""
        assert sample_values(np.array(["a", "b"])) is None
        found = _range(np.array([np.nan, 1.0, np.inf, 2.0]))
        assert (found.min, found.max, found.count) == (1.0, 2.0, 2)

    def test_union_widens(self):
        """Two fits of one input give the wider of each bound."""
        a = Range("float32", 10, 0.0, 1.0, 0.0, 1.0, False, 0.1, 0.9)
        b = Range("float64", 10, -1.0, 0.5, -2.0, 0.5, False, -0.5, 0.4)
        assert a.union(b) == Range("float32/float64", 20, -1.0, 1.0, -2.0, 1.0, False, -0.5, 0.9)

    @given(
        loc=st.floats(-1e3, 1e3),
        scale=st.floats(1e-3, 1e3),
        rows=st.integers(1, 500),
        features=st.integers(1, 12),
        widen=st.floats(0.5, 2.0),
        seed=st.integers(0, 2**16),
    )
    def test_same_distribution_is_never_reported(self, loc, scale, rows, features, widen, seed):
        """Any new sample of the training distribution, up to twice as wide, is silent."""
        rng = np.random.default_rng(seed)
        trained = _range(rng.normal(loc, scale, (1000, features)))
        seen = _range(rng.normal(loc, scale * widen, (rows, features)))
        assert compare(trained, seen) is None


# -- Real fit/predict/evaluate -------------------------------------------------------------


def scenarios(keras):
    """Each scenario a real fit, then predict/evaluate, under safegen.enable(): the error
    it raised (type and message) or the findings counted. Runs on any Keras."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (256, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 2, (256, 1)).astype(np.float32)
    raw = np.column_stack(
        [rng.normal(40, 12, 512), rng.normal(52_000, 9_000, 512), rng.uniform(0, 5, 512)]
    ).astype(np.float32)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    targets = rng.normal(0, 1, (512, 1)).astype(np.float32)

    def image_model():
        model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile("adam", "binary_crossentropy")
        return model

    def tabular_model():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        return model

    def two_inputs():
        image = keras.Input((8, 8, 1), name="image")
        meta = keras.Input((3,), name="meta")
        joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
        model = keras.Model({"image": image, "meta": meta}, keras.layers.Dense(1)(joined))
        model.compile("adam", "mse")
        return model

    def batches(x, y, size=32):
        for start in range(0, len(x), size):
            yield x[start : start + size], y[start : start + size]

    def scaled_batches(size=32):
        while True:
            yield from batches(pixels / 255.0, labels, size)

    def run(steps):
        try:
            with safegen.enabled(on_violation="raise") as session:
                steps()
        except Exception as error:  # reported to the test, which checks type and message
            return {"error": type(error).__name__, "message": str(error)}
        return {"counts": session.counts()["input_scales"]}

    fit = {"epochs": 1, "verbose": 0}
    out = {}
    # Bugs.
    model = image_model()
    out["raw_predict"] = run(
        lambda: (model.fit(pixels / 255.0, labels, **fit), model.predict(pixels[:8], verbose=0))
    )
    model = tabular_model()
    out["raw_evaluate"] = run(
        lambda: (
            model.fit((raw - mean) / std, targets, **fit),
            model.evaluate(raw[:64], targets[:64], verbose=0),
        )
    )
    model = image_model()
    out["twice"] = run(
        lambda: (
            model.fit(pixels / 255.0, labels, **fit),
            model.predict(pixels[:8] / 255.0 / 255.0, verbose=0),
        )
    )
    model = image_model()
    out["generator_fit"] = run(
        lambda: (
            model.fit(scaled_batches(), steps_per_epoch=8, **fit),
            model.predict(pixels[:8], verbose=0),
        )
    )
    model = image_model()
    out["generator_evaluate"] = run(
        lambda: (
            model.fit(pixels / 255.0, labels, **fit),
            model.evaluate(batches(pixels, labels), verbose=0),
        )
    )
    model = image_model()
    out["validation"] = run(
        lambda: model.fit(pixels / 255.0, labels, validation_data=(pixels, labels), **fit)
    )
    model = two_inputs()
    both = {"image": pixels / 255.0, "meta": (raw[:256] - mean) / std}
    out["dict_inputs"] = run(
        lambda: (
            model.fit(both, labels, **fit),
            model.predict({"image": pixels[:8], "meta": both["meta"][:8]}, verbose=0),
        )
    )
    # Correct twins.
    model = image_model()
    out["same_scale"] = run(
        lambda: (
            model.fit(pixels[:128] / 255.0, labels[:128], **fit),
            model.predict(pixels[128:] / 255.0, verbose=0),
            model.predict(pixels[200:201] / 255.0, verbose=0),  # one row
            model.evaluate(batches(pixels[128:] / 255.0, labels[128:]), verbose=0),
        )
    )
    model = tabular_model()
    wider = rng.normal(0, 1.3, (256, 3)).astype(np.float32)
    outliers = ((raw[256:] - mean) / std).copy()
    outliers[::100] = 40.0
    out["standardized_twins"] = run(
        lambda: (
            model.fit((raw[:256] - mean) / std, targets[:256], **fit),
            model.evaluate(wider, targets[:256], verbose=0),
            model.evaluate(outliers, targets[256:], verbose=0),
            model.predict(((raw[300:301] - mean) / std), verbose=0),
        )
    )
    model = image_model()
    out["before_fit"] = run(lambda: model.predict(pixels[:8], verbose=0))
    model = two_inputs()
    out["dict_twin"] = run(
        lambda: (
            model.fit(both, labels, **fit),
            model.predict({"image": pixels[:8] / 255.0, "meta": both["meta"][:8]}, verbose=0),
        )
    )
    return out


def _check_found(found):
    """The assertions shared by every stack."""
    for name in ("raw_predict", "generator_fit", "validation", "generator_evaluate"):
        assert found[name]["error"] == "InputScaleError", (name, found[name])
        assert "divide by 255 as in fit (x / 255" in found[name]["message"], name
    assert ".predict() at " in found["raw_predict"]["message"]
    assert "input x is on another scale than at fit" in found["raw_predict"]["message"]
    assert "given: uint8, 1st-99th percentile" in found["raw_predict"]["message"]
    assert "validation input x" in found["validation"]["message"]
    assert ".evaluate() at " in found["generator_evaluate"]["message"]
    message = found["raw_evaluate"]["message"]
    assert found["raw_evaluate"]["error"] == "InputScaleError"
    assert "apply the same normalization as in fit" in message
    assert found["twice"]["error"] == "InputScaleError"
    assert "times narrower" in found["twice"]["message"]
    assert "divided by 255 twice" in found["twice"]["message"]
    assert found["dict_inputs"]["error"] == "InputScaleError"
    assert "input x['image']" in found["dict_inputs"]["message"]
    for name in ("same_scale", "standardized_twins", "before_fit", "dict_twin"):
        assert found[name] == {"counts": 0}, (name, found[name])


@pytest.fixture(scope="module")
def tf_found():
    """The scenarios on Keras 3 with TensorFlow, run once."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend runs here; JAX in a subprocess")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras: a generator ran out of data
        return scenarios(keras)


@pytest.fixture(scope="module")
def tf_keras_found():
    """The scenarios on tf_keras, run once."""
    tf_keras = pytest.importorskip("tf_keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return scenarios(tf_keras)


@pytest.mark.keras
class TestKerasTensorFlow:
    def test_bugs_raise_and_twins_stay_silent(self, tf_found):
        """Each bug raises InputScaleError naming the input, the ranges and the fix;
        each correct twin counts no finding."""
        _check_found(tf_found)

    def test_validation_split_is_fits_own_rows(self):
        """fit's own evaluation of a validation_split (sorted, heavy-tailed rows, whose
        last fifth alone the rule would call too wide) is not compared."""
        import keras

        x = np.sort(np.random.default_rng(0).lognormal(0, 2, (1000, 1)), axis=0)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        with safegen.enabled() as session:
            model.fit(x, np.log(x), validation_split=0.2, epochs=2, verbose=0)
        assert session.counts()["input_scales"] == 0
        assert "check inputs of model" not in session.summary()

    def test_warn_counts_and_warns_at_the_users_line(self):
        """With on_violation='warn', predict returns, the finding is counted, and the
        warning points at the predict line."""
        import keras

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        train = np.random.default_rng(0).uniform(0, 1, (64, 4))
        with safegen.enabled(on_violation="warn") as session:
            model.fit(train, train[:, :1], epochs=1, verbose=0)
            with pytest.warns(safegen.InputScaleWarning, match="training widths above") as caught:
                line = sys._getframe().f_lineno + 1
                model.predict(train * 255, verbose=0)
        assert caught[0].filename == __file__ and caught[0].lineno == line
        assert session.counts()["input_scales"] == 1
        assert "check inputs of model" in session.summary()


@pytest.mark.keras
@pytest.mark.tf_keras
class TestTfKeras:
    def test_bugs_raise_and_twins_stay_silent(self, tf_keras_found):
        """The same bugs and twins on tf_keras."""
        _check_found(tf_keras_found)

    def test_plain_iterator_at_fit_is_sampled(self):
        """tf_keras takes a plain iterator: its first batches are fit's record."""
        tf_keras = pytest.importorskip("tf_keras")
        images = PIXELS[:256] / 255.0
        batches = [(images[i : i + 32], np.zeros((32, 1))) for i in range(0, 256, 32)]
        model = tf_keras.Sequential(
            [tf_keras.Input((8, 8, 1)), tf_keras.layers.Flatten(), tf_keras.layers.Dense(1)]
        )
        model.compile("sgd", "mse")
        with safegen.enabled() as session:
            model.fit(iter(batches), steps_per_epoch=8, epochs=1, verbose=0)
            model.predict(images[:8], verbose=0)
            assert session.counts()["input_scales"] == 0
            with pytest.raises(safegen.InputScaleError, match="divide by 255"):
                model.predict(PIXELS[:8], verbose=0)


@pytest.mark.jax
@pytest.mark.slow
class TestJax:
    def test_bugs_raise_and_twins_stay_silent(self):
        """The same bugs and twins on Keras 3 with JAX, in a subprocess."""
        if importlib.util.find_spec("jax") is None:
            pytest.skip("jax is not installed")
        program = (
            "import json, warnings; warnings.simplefilter('ignore'); import keras; "
            "assert keras.backend.backend() == 'jax'; "
            "from tests.test_input_scale import scenarios; print(json.dumps(scenarios(keras)))"
        )
        env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        _check_found(json.loads(result.stdout.strip().splitlines()[-1]))


# -- Public code, ported with synthetic data --------------------------------------------------


def _digits(count, seed):
    """MNIST-like uint8 images: about 19% of the pixels of each are strokes, the rest 0."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    strokes = rng.random((count, 28, 28)) < 0.19
    images[strokes] = rng.integers(64, 256, strokes.sum())
    return images, rng.integers(0, 10, count)


@pytest.mark.keras
class TestPorted:
    def test_keras_io_mnist_convnet(self):
        """keras-io examples/vision/mnist_convnet.py (fchollet), its data scaled as there:
        fit with validation_split, evaluate on the test set: silent; the same test set
        left unscaled: reported."""
        import keras
        from keras import layers

        (x_train, y_train), (x_test, y_test) = _digits(512, 0), _digits(128, 1)
        x_train = x_train.astype("float32") / 255
        x_test_raw = np.expand_dims(x_test, -1)
        x_test = x_test.astype("float32") / 255
        x_train = np.expand_dims(x_train, -1)
        x_test = np.expand_dims(x_test, -1)
        y_train = keras.utils.to_categorical(y_train, 10)
        y_test = keras.utils.to_categorical(y_test, 10)
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28, 1)),
                layers.Conv2D(4, kernel_size=(3, 3), activation="relu"),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Flatten(),
                layers.Dropout(0.5),
                layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        with safegen.enabled() as session:
            model.fit(x_train, y_train, batch_size=128, epochs=1, validation_split=0.1, verbose=0)
            model.evaluate(x_test, y_test, verbose=0)
            model.predict(x_test[:10], verbose=0)
            assert session.counts()["input_scales"] == 0
            with pytest.raises(safegen.InputScaleError, match="divide by 255 as in fit"):
                model.evaluate(x_test_raw, y_test, verbose=0)

    def test_book_hello_world_predict_on_ten_digits(self):
        """Deep Learning with Python's first example (flattened digits / 255, predict on
        10 test digits, evaluate): silent."""
        import keras
        from keras import layers

        (train_images, train_labels), (test_images, test_labels) = _digits(512, 2), _digits(64, 3)
        model = keras.Sequential(
            [layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")]
        )
        model.compile(
            optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        train_images = train_images.reshape((512, 28 * 28)).astype("float32") / 255
        test_images = test_images.reshape((64, 28 * 28)).astype("float32") / 255
        with safegen.enabled() as session:
            model.fit(train_images, train_labels, epochs=1, batch_size=128, verbose=0)
            model.predict(test_images[0:10], verbose=0)
            model.evaluate(test_images, test_labels, verbose=0)
        assert session.counts()["input_scales"] == 0

    def test_unscaled_on_both_sides_is_consistent(self):
        """A program that never scales its images (DLContract's motivating example) trains
        and evaluates on one scale: not this check's finding."""
        import keras

        (x_train, y_train), (x_test, y_test) = _digits(256, 4), _digits(64, 5)
        x_train = np.expand_dims(x_train.astype("float32"), -1)
        x_test = np.expand_dims(x_test.astype("float32"), -1)
        model = keras.Sequential(
            [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
        )
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        with safegen.enabled() as session:
            model.fit(x_train, y_train, epochs=1, verbose=0, validation_split=0.1)
            model.evaluate(x_test, y_test, verbose=0)
        assert session.counts()["input_scales"] == 0

    def test_keras_io_weather_forecasting_normalization(self):
        """keras-io timeseries_weather_forecasting.py's normalize(): the training split's
        mean and std applied to a later validation split that drifted: silent."""
        import keras

        rng = np.random.default_rng(6)
        hours = np.arange(3000)
        features = np.column_stack(
            [
                990 + 8 * np.sin(hours / 200) + rng.normal(0, 2, 3000),  # pressure, mbar
                10 + 12 * np.sin(hours / 24) + hours / 600 + rng.normal(0, 1, 3000),  # temp
                60 + 20 * np.cos(hours / 24) + rng.normal(0, 5, 3000),  # humidity
            ]
        ).astype("float32")
        split = 2000

        def normalize(data, train_split):
            data_mean = data[:train_split].mean(axis=0)
            data_std = data[:train_split].std(axis=0)
            return (data - data_mean) / data_std

        features = normalize(features, split)
        x_train, x_val = features[: split - 1], features[split:-1]
        y_train, y_val = features[1:split, 1:2], features[split + 1 :, 1:2]
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
        with safegen.enabled() as session:
            model.fit(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)
            model.predict(x_val[:5], verbose=0)
        assert session.counts()["input_scales"] == 0


# -- The public function ---------------------------------------------------------------------


@pytest.mark.keras
class TestCheckInputs:
    @pytest.fixture
    def model(self):
        """A small Keras 3 model, never fit."""
        import keras

        return keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
        )

    def test_reference_bug_raises(self, model):
        """Raw pixels against a reference of x / 255 raise InputScaleError."""
        with pytest.raises(safegen.InputScaleError, match=r"input x is on another scale"):
            safegen.check_inputs(model, PIXELS[:4], reference=PIXELS / 255.0)

    def test_reference_twin_passes(self, model):
        """New rows scaled as the reference pass, and name the input compared."""
        assert safegen.check_inputs(model, PIXELS[:4] / 255.0, reference=PIXELS / 255.0) == ["x"]

    def test_recorded_fit_is_the_default_reference(self, model):
        """After a fit under enable(), the record made there is compared."""
        model.compile("sgd", "mse")
        with safegen.enabled():
            model.fit(PIXELS / 255.0, np.zeros((512, 1)), epochs=1, verbose=0)
        with pytest.raises(safegen.InputScaleError, match="divide by 255"):
            safegen.check_inputs(model, PIXELS[:2])

    def test_nothing_to_compare_with(self, model):
        """A model never fit under enable(), and no reference: a clear ValueError."""
        with pytest.raises(ValueError, match="was not fit under safegen.enable"):
            safegen.check_inputs(model, PIXELS[:2])

    def test_bad_arguments(self, model):
        """A model of no Keras, or x without arrays: TypeError naming what was expected."""
        with pytest.raises(TypeError, match="must be a Keras 3"):
            safegen.check_inputs(object(), PIXELS[:2], reference=PIXELS)
        with pytest.raises(TypeError, match="x must be an array or tensor"):
            safegen.check_inputs(model, "pixels", reference=PIXELS)


# -- Zero code -------------------------------------------------------------------------------

PROGRAM = """
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
import numpy as np

rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, (256, 8, 8, 1)).astype("uint8")
labels = rng.integers(0, 2, (256, 1))
model = keras.Sequential(
    [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")]
)
model.compile("adam", "binary_crossentropy")
model.fit(pixels / 255.0, labels, epochs=1, verbose=0)
print(model.predict({given}, verbose=0).shape)
"""


@pytest.mark.keras
@pytest.mark.slow
class TestRun:
    def _run(self, tmp_path, given):
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(PROGRAM.format(given=given)))
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", str(script)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip

    def test_buggy_script_exits_1(self, tmp_path):
        """Raw pixels given to predict: exit 1 with the InputScaleError and its fix."""
        result = self._run(tmp_path, "pixels[:8]")
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.InputScaleError: model 'sequential'.predict() at script.py:" in (
            result.stderr
        )
        assert "divide by 255 as in fit" in result.stderr

    def test_correct_script_exits_0(self, tmp_path):
        """The same script scaling as in fit: exit 0, the check counted."""
        result = self._run(tmp_path, "pixels[:8] / 255.0")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "(8, 1)" in result.stdout
        assert "check inputs of model 'sequential': 1 time(s), 0 violation(s)" in result.stderr


class TestDocstrings:
    @pytest.mark.parametrize(
        "module", ["safegen._detectors.input_scale", "safegen.integrations._input_scale"]
    )
    def test_doctests(self, module):
        """The examples in the docstrings run (check_inputs's needs Keras)."""
        import doctest
        import importlib
        import inspect

        if module.startswith("safegen.integrations"):
            pytest.importorskip("keras")
        mod = importlib.import_module(module)
        finder = doctest.DocTestFinder(exclude_empty=True)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        globs = {**vars(mod), "np": np}
        tests = finder.find(mod, globs=globs)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == "safegen":
                tests += finder.find(obj, globs=globs)
        for test in tests:
            runner.run(test)
        assert runner.tries > 0 and runner.failures == 0
