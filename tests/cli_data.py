"""Data sources for the `python -m safegen check` tests."""

from __future__ import annotations

import numpy as np

import safegen

NOT_ITERABLE = 3


def reused(batch_size=4):
    """Buggy: refills one buffer."""
    x = np.zeros((batch_size, 2))
    rng = np.random.default_rng(0)
    while True:
        x[:] = rng.random((batch_size, 2))
        yield x, x.sum(axis=1)


def fresh(batch_size=4):
    """Clean: a new buffer each time."""
    rng = np.random.default_rng(0)
    while True:
        x = rng.random((batch_size, 2))
        yield x, x.sum(axis=1)


def short():
    """Clean and finite: ends after 3 items."""
    for _ in range(3):
        yield np.zeros(2)


def returns_number():
    return 3


def broken():
    yield np.zeros(2)
    raise KeyError("the data source itself fails")


def interrupted():
    """Raises KeyboardInterrupt at the 3rd item, as a Ctrl-C there would (no race)."""
    for step in range(100):
        if step == 2:
            raise KeyboardInterrupt
        yield np.zeros(2)


@safegen.guard(mode="copy")
def guarded_batches(batch_size=4):
    """A guarded generator function at module level (picklable by reference)."""
    yield from reused(batch_size)


@safegen.guard
def guarded_refilled():
    """Buggy and guarded by itself, in the mode of the environment: refills one dict."""
    batch = {"x": None}
    for i in range(5):
        batch["x"] = np.full(3, i)
        yield batch


class Holder:
    """A class with a guarded generator method (picklable through its instance)."""

    def __init__(self):
        self.x = np.zeros(2)

    @safegen.guard
    def batches(self):
        while True:
            self.x += 1
            yield self.x

    @safegen.guard
    @classmethod
    def fresh(cls, n):
        for i in range(n):
            yield np.full(1, float(i))


def first_two_distinct(source, *args):
    """In a worker process: whether the first two batches of ``source(*args)`` are
    distinct memory, and how many yields safegen counted (used with ``spawn``)."""
    gen = source(*args)
    first, second = next(gen), next(gen)
    return (not np.shares_memory(first[0], second[0]), safegen.stats(source).yields)


class PyDataset:
    """A stand-in for ``keras.utils.PyDataset`` (safegen knows it by its name and module),
    for the tests that run without Keras."""

    def __init__(self, **kwargs):
        pass


PyDataset.__module__ = "keras.src.trainers.data_adapters.py_dataset_adapter"


class SharedBatches(PyDataset):
    """Buggy: every batch is the same buffer, refilled."""

    def __init__(self, batches=4):
        super().__init__()
        self.batches = batches
        self.buffer = np.zeros(3)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        self.buffer[:] = index
        return self.buffer


class Shuffles(PyDataset):
    """Buggy: batches are views of one array that on_epoch_end shuffles in place."""

    def __init__(self, batches=4):
        super().__init__()
        self.x = np.arange(batches * 2.0)
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return len(self.x) // 2

    def __getitem__(self, index):
        return self.x[2 * index : 2 * index + 2]

    def on_epoch_end(self):
        self.rng.shuffle(self.x)


def helper_batches(n=10):
    """Clean: a fresh array each time."""
    for i in range(n):
        yield np.full(2, float(i))


def uses_a_copying_helper():
    """Clean, not guarded itself: it reads a helper guarded in copy mode."""
    for batch in safegen.guard(helper_batches, mode="copy")():
        yield batch + 1
