"""A tf_keras program, no safegen in it, training on a generator of noisy points in 2 worker
processes: each process runs a copy of the generator, and draws the same noise. Run by
tests/test_random_generators.py under ``python -m safegen run``; with NOISE_DIR set, the
noise of every batch is saved there."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tf_keras  # noqa: E402

from tests import tf_keras_random_generators as gens  # noqa: E402

if __name__ == "__main__":
    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer="sgd")
    noise = gens.global_noise(gens.barrier(), os.environ.get("NOISE_DIR"))
    model.fit(noise, steps_per_epoch=4, epochs=2, verbose=0, workers=2, use_multiprocessing=True)
    print("trained")
