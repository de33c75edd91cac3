"""A tf_keras program, no safegen in it: ``fit(batches(), steps_per_epoch=20, workers=2,
use_multiprocessing=True)`` on a generator that counts its steps (argument ``counting``)
or draws noise from NumPy's global state (``noise``). Each worker process runs a copy of
the generator. Run by tests/test_random_generators.py under ``python -m safegen run``."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tf_keras  # noqa: E402

from tests import tf_keras_random_generators as gens  # noqa: E402

if __name__ == "__main__":
    batches = {"counting": gens.counting, "noise": gens.global_noise}[sys.argv[1]]
    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(
        batches(gens.barrier()),
        steps_per_epoch=20,
        verbose=0,
        workers=2,
        use_multiprocessing=True,
    )
    print("trained")
