"""Keras PyDataset classes that draw random numbers, for the random-stream and repeated-batch
detectors (module level, so that worker processes can import them)."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

MODULE_RNG = np.random.default_rng(7)


class _Base(keras.utils.PyDataset):
    """Tiny (x, y) batches; each batch's noise is also written to ``folder`` if given.

    With worker processes, the first call in each worker waits for the other worker's
    first call (a barrier shared by fork), so that both workers of every epoch make a
    batch: the interleaving is forced, not hoped for.
    """

    def __init__(self, batches=4, batch_size=32, folder=None, **kwargs):
        super().__init__(**kwargs)
        self.batches, self.batch_size, self.folder = batches, batch_size, folder
        self.x = np.arange(batches * batch_size * 2, dtype=np.float32).reshape(-1, 2)
        self.home = os.getpid()
        self.started_in = self.home
        self.barrier = multiprocessing.Barrier(2) if kwargs.get("use_multiprocessing") else None

    def _first_call_in_worker(self):
        if self.barrier is not None and os.getpid() not in (self.home, self.started_in):
            self.started_in = os.getpid()
            self.barrier.wait(timeout=600)

    def __len__(self):
        return self.batches

    def noise(self, index):
        raise NotImplementedError

    def __getitem__(self, index):
        self._first_call_in_worker()
        noise = self.noise(index).astype(np.float32)
        if self.folder is not None:
            np.save(os.path.join(self.folder, f"{index}-{uuid.uuid4().hex}.npy"), noise)
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x = self.x[rows] + noise
        return x, x.mean(axis=1, keepdims=True)


class GlobalNoise(_Base):
    """The bug: noise from NumPy's global state."""

    def noise(self, index):
        return np.random.uniform(-1, 1, size=(self.batch_size, 2))


class GeneratorNoise(_Base):
    """The bug: noise from a Generator kept on the instance."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(0)

    def noise(self, index):
        return self.rng.normal(size=(self.batch_size, 2))


class ModuleNoise(_Base):
    """The bug: noise from a Generator that is a module global."""

    def noise(self, index):
        return MODULE_RNG.normal(size=(self.batch_size, 2))


class PerIndex(_Base):
    """Correct: a generator made per call from the index."""

    def noise(self, index):
        return np.random.default_rng(index).normal(size=(self.batch_size, 2))


class ReseededPerIndex(_Base):
    """Correct on purpose: the global state reseeded from the index in every call."""

    def noise(self, index):
        np.random.seed(index)
        return np.random.uniform(-1, 1, size=(self.batch_size, 2))


class SeededPerWorker(_Base):
    """Correct: each worker process seeds the global state once, from its pid."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seeded_in = None

    def noise(self, index):
        if self.seeded_in != os.getpid():
            self.seeded_in = os.getpid()
            np.random.seed(os.getpid())
        return np.random.uniform(-1, 1, size=(self.batch_size, 2))


class IgnoresIndex(_Base):
    """The bug: __getitem__ ignores its index and returns the first rows every time."""

    def noise(self, index):
        return np.zeros((self.batch_size, 2))

    def __getitem__(self, index):
        self._first_call_in_worker()
        x = self.x[: self.batch_size].copy()
        return x, x.mean(axis=1, keepdims=True)


class Padded(_Base):
    """Correct: the last batches are all-zero padding, equal to each other."""

    def noise(self, index):
        return np.zeros((self.batch_size, 2))

    def __getitem__(self, index):
        self._first_call_in_worker()
        if index >= self.batches - 2:
            return (
                np.zeros((self.batch_size, 2), np.float32),
                np.zeros((self.batch_size, 1), np.float32),
            )
        return super().__getitem__(index)


def tiny_model():
    """Dense(1) on two inputs: the fastest model fit can train."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    return model


def draws(folder):
    """The noise arrays the dataset wrote to ``folder``."""
    return [np.load(os.path.join(folder, name)) for name in sorted(os.listdir(folder))]
