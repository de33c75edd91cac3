"""The seed article's generators, ported to Python 3 and NumPy 2 (shared by tests)."""

from __future__ import annotations

import numpy as np


def reused_buffer(batch_size=1, seed=0):
    """Pitfall 2: `x` is allocated once and refilled in place on every step."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield x, x_mean


def reused_buffer_keras(batch_size=64, seed=0):
    """Pitfall 1: the article's training generator, `yield [x], [x_mean_ex]`."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        x_mean_ex = np.expand_dims(x_mean, -1)
        yield [x], [x_mean_ex]


def fresh_buffer(batch_size=1, seed=0):
    """Fix 1: allocate `x` inside the loop."""
    rng = np.random.default_rng(seed)
    while True:
        x = np.zeros((batch_size, 2))
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield x, x_mean


def fresh_buffer_keras(batch_size=64, seed=0):
    """Pitfall 1 fixed: `x` allocated inside the loop, `yield [x], [x_mean_ex]`."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.integers(0, 100, size=(batch_size, 2)).astype(np.float64)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield [x], [np.expand_dims(x_mean, -1)]


def copied_buffer(batch_size=1, seed=0):
    """Fix 2: yield a copy of the reused buffer."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield np.copy(x), x_mean


def consistent(batch):
    """Whether a yielded (x, x_mean) pair agrees: each mean is its row's mean."""
    x, mean = batch
    x = np.asarray(x[0] if isinstance(x, list) else x)
    mean = np.asarray(mean[0] if isinstance(mean, list) else mean).reshape(-1)
    return bool(np.array_equal((x[:, 0] + x[:, 1]) / 2, mean))
