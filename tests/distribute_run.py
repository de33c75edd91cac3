"""Train the seed model under MirroredStrategy on 2 logical CPUs (run by test_distribute.py).

Usage: python -m tests.distribute_run MODE. Prints one JSON line with the results.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402

import safegen  # noqa: E402
from tests.datasets import Clean  # noqa: E402


def batches(batch_size=64, steps=None):
    rng = np.random.default_rng(0)
    while True:
        x = rng.integers(0, 100, size=(batch_size, 2)).astype(np.float32)
        yield x, x.mean(axis=1, keepdims=True)


def main(mode):
    # Under MirroredStrategy, TensorFlow writes into some yielded arrays that it wrapped
    # without copying; check mode warns about those (it cannot pin them on the generator).
    warnings.simplefilter("ignore", safegen.AliasingWarning)
    keras.utils.set_random_seed(0)  # the same initial weights in every run
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer=keras.optimizers.RMSprop(0.05))
    guarded = safegen.guard(batches, mode=mode)
    from_generator = model.fit(guarded(), steps_per_epoch=30, epochs=2, verbose=0)
    dataset = safegen.guard(Clean(batches=20, batch_size=32, workers=2), mode=mode)
    from_dataset = model.fit(dataset, epochs=1, verbose=0)
    print(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "generator_loss": from_generator.history["loss"],
                "dataset_loss": from_dataset.history["loss"],
                "generator_yields": safegen.stats(guarded).yields,
                "dataset_batches": safegen.stats(dataset).yields,
                "violations": safegen.stats(guarded).violations + safegen.stats(dataset).violations,
                "unattributed": safegen.stats(guarded).unattributed
                + safegen.stats(dataset).unattributed,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
