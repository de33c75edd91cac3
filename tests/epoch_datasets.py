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


# Ports of two Keras Sequences of a public chess-engine project (package `chessbot`,
# found with the code search; rewritten here with synthetic positions, the buffer logic
# unchanged): one refills preallocated arrays in place at each epoch end, the other
# shuffles its array in place; both return slices of those arrays from __getitem__.


def _positions(count, seed):
    """Synthetic one-hot chess positions: 773 booleans each."""
    return np.random.default_rng(seed).random((count, 773)) < 0.05


class ChessPairs(keras.utils.PyDataset):
    """Pairs of positions (won, lost) in random order, refilled in place every epoch."""

    def __init__(self, sample_size=128, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.win, self.loss = _positions(400, 1), _positions(400, 2)
        self.x_left = np.empty((sample_size, 773), dtype=bool)
        self.x_right = np.empty((sample_size, 773), dtype=bool)
        self.y = np.empty((sample_size, 2), dtype=int)
        self.batch_size, self.sample_size = batch_size, sample_size
        self.rng = np.random.default_rng(3)
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.x_left) // self.batch_size)

    def __getitem__(self, idx):
        rows = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
        return (self.x_left[rows], self.x_right[rows]), self.y[rows]

    def on_epoch_end(self):
        won = self.rng.choice(len(self.win), self.sample_size)
        lost = self.rng.choice(len(self.loss), self.sample_size)
        for i, (w, lo) in enumerate(zip(won, lost, strict=True)):
            white_left = self.rng.random() < 0.5
            self.x_left[i] = self.win[w] if white_left else self.loss[lo]
            self.x_right[i] = self.loss[lo] if white_left else self.win[w]
            self.y[i] = (1, 0) if white_left else (0, 1)


class PositionAutoencoder(keras.utils.PyDataset):
    """Positions as both input and target (an autoencoder), shuffled in place each epoch."""

    def __init__(self, count=256, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.x = _positions(count, 4).astype(np.float32)
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, idx):
        x_batch = self.x[idx * self.batch_size : (idx + 1) * self.batch_size]
        return x_batch, x_batch

    def on_epoch_end(self):
        np.random.shuffle(self.x)
