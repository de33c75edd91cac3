"""tf_keras (Keras 2) Sequence classes and the mean model, shared by the tf_keras tests.

Module level, so that worker processes find them. Importing this module imports tf_keras;
only tests that already skip without tf_keras import it.
"""

from __future__ import annotations

import time

import numpy as np
import tf_keras


class SharedBuffer(tf_keras.utils.Sequence):
    """The bug: __getitem__ writes into self.x and self.y and returns them.

    Keras 2 takes ``workers`` and ``use_multiprocessing`` in ``fit``, not in the Sequence.
    """

    def __init__(self, batches=60, batch_size=32, fresh_first=0, pause=0.0):
        super().__init__()
        self.batches, self.batch_size, self.fresh_first = batches, batch_size, fresh_first
        self.pause = pause
        self.x = np.zeros((batch_size, 2), np.float32)
        self.y = np.zeros((batch_size, 1), np.float32)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        values = np.random.default_rng(index).integers(0, 100, size=(self.batch_size, 2))
        values = values.astype(np.float32)
        if index < self.fresh_first:
            return values, values.mean(axis=1, keepdims=True)
        for row in range(self.batch_size):  # row by row, as in the seed: a wide race window
            self.x[row] = values[row]
        if self.pause:
            time.sleep(self.pause)  # lets another worker thread overwrite self.x meanwhile
        self.y[:, 0] = values.mean(axis=1)
        return self.x, self.y


class Clean(tf_keras.utils.Sequence):
    """A correct Sequence: fresh arrays, shuffled indices."""

    def __init__(self, batches=30, batch_size=16):
        super().__init__()
        self.batches, self.batch_size = batches, batch_size
        self.order = np.random.default_rng(0).permutation(batches)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        seed = int(self.order[index])
        values = np.random.default_rng(seed).integers(0, 100, size=(self.batch_size, 2))
        values = values.astype(np.float32)
        return values, values.mean(axis=1, keepdims=True)

    def on_epoch_end(self):
        self.order = np.random.default_rng(len(self.order)).permutation(self.batches)


def mean_model():
    """One Lambda computing the mean (loss 0 iff x and y agree), and a metric: the
    fraction of mismatched batches."""
    inputs = tf_keras.Input((2,))
    outputs = tf_keras.layers.Lambda(
        lambda t: tf_keras.backend.expand_dims((t[:, 0] + t[:, 1]) / 2, -1), output_shape=(1,)
    )(inputs)
    model = tf_keras.Model(inputs, outputs)

    def mismatched(y_true, y_pred):
        wrong = tf_keras.backend.any(tf_keras.backend.abs(y_true - y_pred) > 1e-3)
        return tf_keras.backend.cast(wrong, "float32")

    model.compile(loss="mse", optimizer="rmsprop", metrics=[mismatched])
    return model
