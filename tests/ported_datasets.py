"""Clean datasets with augmentation, ported from public projects to Keras 3 PyDatasets
with synthetic data (module level, so that worker processes find them).

Each keeps its project's way of drawing random numbers; the tests check that the
detectors stay silent where that way is correct.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402


def _images(count, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (count, 8, 8, 1)).astype(np.float32)
    y = x.mean(axis=(1, 2))
    return x, y


class ShuffledIndexes(keras.utils.PyDataset):
    """The common "DataGenerator" (e.g. hasibzunair/thyroid-nodule-sc, data_utils.py):
    indexes reshuffled with np.random.shuffle in on_epoch_end, in the parent process;
    __getitem__ draws nothing. Clean with threads and with processes."""

    def __init__(self, count=128, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = _images(count)
        self.batch_size = batch_size
        self.on_epoch_end()

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, index):
        rows = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.indexes = np.arange(len(self.x))
        np.random.shuffle(self.indexes)


class FlipSome(keras.utils.PyDataset):
    """A share of each batch flipped at random from NumPy's global state (e.g.
    augustin-barillec/tortue-rapide, ram_sequence.py with its horizontal_flip_inplace).
    Clean in one process or with worker threads (one shared state)."""

    def __init__(self, count=128, batch_size=16, proportion=0.2, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = _images(count, seed=1)
        self.batch_size, self.proportion = batch_size, proportion

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x, y = self.x[rows].copy(), self.y[rows].copy()
        flip = np.random.choice(len(x), int(len(x) * self.proportion), replace=False)
        x[flip] = x[flip, :, ::-1]
        return x, y


class SeededAugmenter(keras.utils.PyDataset):
    """A RandomState made from a seed argument and kept on the instance for shifts and
    noise (the "random_seed=42" DataGenerator pattern). Clean with worker threads."""

    def __init__(self, count=128, batch_size=16, random_seed=42, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = _images(count, seed=2)
        self.batch_size = batch_size
        self.random = np.random.RandomState(random_seed)

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x = np.roll(self.x[rows], self.random.randint(-2, 3), axis=2)
        x = x + self.random.normal(0, 0.01, x.shape).astype(np.float32)
        return x, self.y[rows]


def image_model():
    """A Dense(1) on flattened 8x8 images."""
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(loss="mse", optimizer="sgd")
    return model
