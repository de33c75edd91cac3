"""Generators for tf_keras fit(workers=2, use_multiprocessing=True), where each worker
process runs its own copy of the generator.

Each waits, at its first call in a worker process, for the other worker's first call (a
barrier shared by fork), so that both workers of the run make a batch. With ``folder``,
every batch's noise is saved there too.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid

import numpy as np

BATCH = 32


def _save(folder, x):
    if folder is not None:
        np.save(os.path.join(folder, f"{uuid.uuid4().hex}.npy"), x)


def _batch(x):
    return x, x.mean(axis=1, keepdims=True)


def global_noise(barrier=None, folder=None):
    """The bug: noise from NumPy's global state, copied into each worker process."""
    home = started_in = os.getpid()
    while True:
        if barrier is not None and os.getpid() not in (home, started_in):
            started_in = os.getpid()
            barrier.wait(timeout=600)
        x = np.random.uniform(0, 100, size=(BATCH, 2)).astype(np.float32)
        _save(folder, x)
        yield _batch(x)


def local_generator_noise(barrier=None):
    """The bug: a Generator made in the generator's frame, copied into each worker."""
    rng = np.random.default_rng()
    home = started_in = os.getpid()
    while True:
        if barrier is not None and os.getpid() not in (home, started_in):
            started_in = os.getpid()
            barrier.wait(timeout=600)
        yield _batch(rng.uniform(0, 100, size=(BATCH, 2)).astype(np.float32))


def seeded_per_process(barrier=None, folder=None):
    """Correct: a Generator made anew in each process, from a SeedSequence spawned with its
    pid as the key (no draw from NumPy's global state)."""
    home = started_in = pid = os.getpid()
    rng = np.random.default_rng()
    while True:
        if barrier is not None and os.getpid() not in (home, started_in):
            started_in = os.getpid()
            barrier.wait(timeout=600)
        if os.getpid() != pid:
            pid = os.getpid()
            rng = np.random.default_rng(np.random.SeedSequence(12, spawn_key=(pid,)))
        x = rng.uniform(0, 100, size=(BATCH, 2)).astype(np.float32)
        _save(folder, x)
        yield _batch(x)


def cycled(barrier=None, batches=4):
    """Deterministic batches, cycled: each worker's copy replays the same ones. (Both
    workers' first two calls wait for each other's: each worker makes two batches.)"""
    x = np.arange(batches * BATCH * 2, dtype=np.float32).reshape(batches * BATCH, 2)
    home = os.getpid()
    step = 0
    while True:
        if barrier is not None and os.getpid() != home and step < 3:
            barrier.wait(timeout=600)
        i = step % batches
        step += 1
        yield _batch(x[i * BATCH : (i + 1) * BATCH])


def barrier():
    """A barrier for the 2 worker processes (shared with them by fork)."""
    return multiprocessing.Barrier(2)


def full_batch(barrier=None):
    """One batch, yielded again and again (full-batch training): not a bug, even in copies."""
    x = np.arange(BATCH * 2, dtype=np.float32).reshape(BATCH, 2)
    home = os.getpid()
    step = 0
    while True:
        if barrier is not None and os.getpid() != home and step < 3:
            barrier.wait(timeout=600)
        step += 1
        yield _batch(x)


def counting(barrier=None):
    """The bug of a step counter: batch ``i`` holds ``i`` throughout (``np.full``), and each
    worker's copy counts from the same ``i``. (Both workers' first two calls wait for each
    other's: each worker makes two batches.)"""
    home = os.getpid()
    i = 0
    while True:
        if barrier is not None and os.getpid() != home and i < 3:
            barrier.wait(timeout=600)
        i += 1
        yield np.full((BATCH, 2), i, dtype=np.float32), np.full((BATCH, 1), i, dtype=np.float32)
