"""The random-stream detector with Keras 3 on JAX (run by test_random_streams.py).

Usage: KERAS_BACKEND=jax python -m tests.jax_streams_run. Prints one JSON object: for each
scenario, the error fit raised (type and message) or none, and the draws' counts.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings

if os.environ.get("KERAS_BACKEND") != "jax":
    sys.exit("run with KERAS_BACKEND=jax")

import safegen  # noqa: E402
from tests import random_datasets as data  # noqa: E402

# Keras's worker processes fork the process, which JAX warns may deadlock (JAX runs
# threads); the workers only run the dataset's NumPy code.
warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)

PROCESSES = {"workers": 2, "use_multiprocessing": True}


def scenario(kind, mode):
    folder = tempfile.mkdtemp()
    dataset = safegen.guard(getattr(data, kind)(folder=folder, **PROCESSES), mode=mode)
    result = {}
    try:
        data.tiny_model().fit(dataset, epochs=2, verbose=0)
    except Exception as error:  # reported to the test, which checks type and message
        result = {"error": type(error).__name__, "message": str(error)}
    noise = [a.tobytes() for a in data.draws(folder)]
    return {**result, "draws": len(noise), "distinct": len(set(noise))}


if __name__ == "__main__":
    import keras

    found = {
        "backend": keras.backend.backend(),
        "global_check": scenario("GlobalNoise", "check"),
        "generator_check": scenario("GeneratorNoise", "check"),
        "per_index_check": scenario("PerIndex", "check"),
        "global_copy": scenario("GlobalNoise", "copy"),
    }
    print(json.dumps(found))
