"""Keras PyDatasets that shuffle or refill between epochs, buggy and clean (module level,
so that worker processes can import them)."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402


class _Rows(keras.utils.PyDataset):
    """Rows of two numbers in 0..99; a batch is (rows, their mean), the target a new array."""

    def __init__(self, batches=100, batch_size=8, **kwargs):
        super().__init__(**kwargs)
        self.batches, self.batch_size = batches, batch_size
        rng = np.random.default_rng(0)
        self.x = rng.integers(0, 100, size=(batches * batch_size, 2)).astype(np.float32)
        self.rng = np.random.default_rng(1)

    def __len__(self):
        return self.batches

    def rows(self, index):
        return slice(index * self.batch_size, (index + 1) * self.batch_size)


class ShuffledInPlace(_Rows):
    """The bug: batches are views of self.x, and on_epoch_end shuffles self.x in place."""

    def __getitem__(self, index):
        x = self.x[self.rows(index)]
        return x, x.mean(axis=1, keepdims=True)

    def on_epoch_end(self):
        self.rng.shuffle(self.x)


class CopiedRows(ShuffledInPlace):
    """The same dataset without the bug: __getitem__ returns copies."""

    def __getitem__(self, index):
        x = self.x[self.rows(index)].copy()
        return x, x.mean(axis=1, keepdims=True)


class Rebound(_Rows):
    """Clean: on_epoch_end rebinds self.x to a new, shuffled array."""

    def __getitem__(self, index):
        x = self.x[self.rows(index)]
        return x, x.mean(axis=1, keepdims=True)

    def on_epoch_end(self):
        self.x = self.x[self.rng.permutation(len(self.x))]


class ShuffledIndex(_Rows):
    """Clean: on_epoch_end shuffles an index array in place; __getitem__ indexes with it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.index = np.arange(len(self.x))

    def __getitem__(self, index):
        x = self.x[self.index[self.rows(index)]]  # fancy indexing: a new array
        return x, x.mean(axis=1, keepdims=True)

    def on_epoch_end(self):
        self.rng.shuffle(self.index)


class RefilledAtBegin(_Rows):
    """The bug at the other end: on_epoch_begin refills self.x in place."""

    def __getitem__(self, index):
        x = self.x[self.rows(index)]
        return x, x.mean(axis=1, keepdims=True)

    def on_epoch_begin(self):
        self.x[:] = self.rng.integers(0, 100, size=self.x.shape)
