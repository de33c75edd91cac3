"""A data module as a project might have it: one buggy generator, one fixed.

`python -m safegen check examples.pipeline:train_batches` finds the bug (exit status 1);
`examples.pipeline:fixed_batches` is clean (exit status 0). See ci_check.sh.
"""

from __future__ import annotations

import numpy as np


def train_batches(batch_size=64):
    """Buggy: refills one buffer on every step."""
    rng = np.random.default_rng(0)
    x = np.zeros((batch_size, 2))
    while True:
        x[:] = rng.integers(0, 100, size=x.shape)
        yield x, x.mean(axis=1, keepdims=True)


def fixed_batches(batch_size=64):
    """Fixed: a new array on every step."""
    rng = np.random.default_rng(0)
    while True:
        x = rng.integers(0, 100, size=(batch_size, 2)).astype(np.float64)
        yield x, x.mean(axis=1, keepdims=True)
