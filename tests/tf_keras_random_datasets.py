"""A tf_keras (Keras 2) Sequence drawing noise from NumPy's global state (module level, so
that worker processes find it). Importing this module imports tf_keras."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import numpy as np
import tf_keras


class GlobalNoise(tf_keras.utils.Sequence):
    """The bug: noise from NumPy's global state; fit(workers=2, use_multiprocessing=True).

    The first call in each worker process waits for the other worker's (a barrier shared
    by fork), so that both workers of every epoch make a batch.
    """

    def __init__(self, batches=4, batch_size=32, folder=None):
        super().__init__()
        self.batches, self.batch_size, self.folder = batches, batch_size, folder
        self.home = self.started_in = os.getpid()
        self.barrier = multiprocessing.Barrier(2)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        if os.getpid() not in (self.home, self.started_in):
            self.started_in = os.getpid()
            self.barrier.wait(timeout=600)
        x = np.random.uniform(0, 100, size=(self.batch_size, 2)).astype(np.float32)
        if self.folder is not None:
            np.save(os.path.join(self.folder, f"{index}-{uuid.uuid4().hex}.npy"), x)
        return x, x.mean(axis=1, keepdims=True)


def tiny_model():
    """Dense(1) on two inputs."""
    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer="sgd")
    return model
