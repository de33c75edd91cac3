"""safegen.guard with real Keras 3 training and real tf.data pipelines (TF backend)."""

from __future__ import annotations

import numpy as np
import pytest

import safegen
from tests import seed

pytestmark = [
    pytest.mark.keras,
    # The mean model is one Lambda: it has no weights, which Keras warns about.
    pytest.mark.filterwarnings("ignore:The model does not have any trainable weights"),
]
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _mean_model():
    """A model that is one Lambda computing the mean: its loss is 0 iff x and y agree."""
    inputs = keras.Input(shape=(2,), name="x")
    outputs = keras.layers.Lambda(
        lambda x: keras.ops.expand_dims((x[:, 0] + x[:, 1]) / 2, -1), output_shape=(1,)
    )(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse", optimizer="rmsprop")
    return model


def _tuple_batches(factory):
    """Adapt the seed's `[x], [y]` batches to Keras 3's (x, y) tuples."""

    def adapted(*args, **kwargs):
        for xs, ys in factory(*args, **kwargs):
            yield xs[0], ys[0]

    return adapted


class TestModelFit:
    """model.fit on guarded generators."""

    def test_check_mode_raises_within_first_epoch(self):
        """The reused-buffer generator makes fit raise AliasingError in epoch 1."""
        guarded = safegen.guard(_tuple_batches(seed.reused_buffer_keras))
        model = _mean_model()
        with pytest.raises(safegen.AliasingError, match="changed after it was yielded"):
            model.fit(
                guarded(batch_size=64), steps_per_epoch=20, epochs=1, verbose=0, shuffle=False
            )

    def test_without_safegen_the_loss_is_not_zero(self):
        """The control: unguarded, the reused buffer makes the mean model's loss nonzero."""
        model = _mean_model()
        history = model.fit(
            _tuple_batches(seed.reused_buffer_keras)(batch_size=64),
            steps_per_epoch=20,
            epochs=1,
            verbose=0,
            shuffle=False,
        )
        assert history.history["loss"][0] > 0

    def test_copy_mode_trains_to_zero_loss(self):
        """The same generator in copy mode trains the mean model to a loss of exactly 0."""
        guarded = safegen.guard(_tuple_batches(seed.reused_buffer_keras), mode="copy")
        model = _mean_model()
        history = model.fit(
            guarded(batch_size=64), steps_per_epoch=20, epochs=2, verbose=0, shuffle=False
        )
        assert history.history["loss"] == [0.0, 0.0]
        assert safegen.stats(guarded).yields >= 40

    def test_fixed_generator_in_check_mode_trains(self):
        """A fresh-buffer generator trains in check mode with no report."""
        guarded = safegen.guard(_tuple_batches(seed.fresh_buffer_keras))
        model = _mean_model()
        history = model.fit(
            guarded(batch_size=32), steps_per_epoch=10, epochs=1, verbose=0, shuffle=False
        )
        assert history.history["loss"] == [0.0]

    def test_dense_model_trains_on_guarded_generator(self):
        """The seed's Dense(1) model trains on a checked fresh-buffer generator."""

        @safegen.guard
        def batches():
            rng = np.random.default_rng(0)
            while True:
                x = rng.integers(0, 100, size=(64, 2)).astype("float32")
                yield x, x.mean(axis=1, keepdims=True)

        model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer="rmsprop")
        model.fit(batches(), steps_per_epoch=30, epochs=1, verbose=0, shuffle=False)
        assert safegen.stats(batches).violations == 0
        assert safegen.stats(batches).yields >= 30


class TestFromGenerator:
    """tf.data.Dataset.from_generator over guarded generators."""

    def test_copies_are_wrapped_without_a_second_copy(self):
        """Copy mode's aligned arrays are wrapped by TensorFlow in place (zero copy)."""
        handed = []

        def source():
            x = np.zeros((512, 128), np.float32)
            while True:
                x += 1
                yield x

        def record(gen):
            for value in gen:
                handed.append(value)
                yield value

        ds = tf.data.Dataset.from_generator(
            lambda: record(safegen.guard(source(), mode="copy")),
            output_signature=tf.TensorSpec((512, 128), tf.float32),
        )
        tensor = next(iter(ds))
        copy = handed[0]
        assert copy.ctypes.data % 64 == 0
        assert float(tensor[0, 0]) == 1.0
        copy[0, 0] = 1234.0  # only to observe aliasing: TensorFlow holds our copy itself
        assert float(tensor[0, 0]) == 1234.0

    def test_recycled_buffers_never_change_live_tensors(self):
        """A tensor that wraps a copy keeps it: its buffer is not recycled under it."""

        def source():
            x = np.zeros((512, 128), np.float32)
            while True:
                x += 1
                yield x

        ds = tf.data.Dataset.from_generator(
            lambda: safegen.guard(source(), mode="copy"),
            output_signature=tf.TensorSpec((512, 128), tf.float32),
        ).prefetch(4)
        iterator = iter(ds)
        kept = [next(iterator) for _ in range(3)]
        for expected, tensor in enumerate([next(iterator) for _ in range(40)], start=4):
            assert float(tensor[0, 0]) == expected  # each batch as it was produced
        assert [float(t[5, 5]) for t in kept] == [1.0, 2.0, 3.0]

    def test_check_mode_error_surfaces(self):
        """Check mode inside from_generator ends the iteration with safegen's message."""
        ds = tf.data.Dataset.from_generator(
            lambda: safegen.guard(seed.reused_buffer)(batch_size=4),
            output_signature=(tf.TensorSpec((4, 2), tf.float64), tf.TensorSpec((4,), tf.float64)),
        )
        with pytest.raises(Exception, match="changed after it was yielded"):
            for _ in ds.take(5):
                pass
