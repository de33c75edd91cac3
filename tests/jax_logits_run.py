"""The logits check on Keras 3 with JAX (run by test_logits.py).

Usage: KERAS_BACKEND=jax python -m tests.jax_logits_run. Prints one JSON object: each
scenario of tests/logits_models.py ("ok" or the LogitsError's first line), a guarded
generator's case, and whether TensorFlow was imported.
"""

from __future__ import annotations

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") != "jax":
    sys.exit("run with KERAS_BACKEND=jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402
from tests import logits_models  # noqa: E402


def batches():
    """Standardized inputs and 0/1 labels, a fresh array per batch."""
    rng = np.random.default_rng(1)
    while True:
        x = rng.normal(size=(16, logits_models.FEATURES)).astype("float32")
        yield x, (x[:, :1] > 0).astype("float32")


def generator_case(activation):
    net = logits_models.model(keras, keras.layers.Dense(1, activation=activation))
    net.compile(optimizer="sgd", loss="binary_crossentropy")
    try:
        with safegen.enabled():
            net.fit(batches(), steps_per_epoch=3, epochs=1, verbose=0)
    except safegen.LogitsError as error:
        return str(error).splitlines()[0]
    return "ok"


found = {
    "backend": keras.backend.backend(),
    "scenarios": logits_models.outcomes(keras),
    "expected": logits_models.expected(keras),
    "generator linear": generator_case(None),
    "generator sigmoid": generator_case("sigmoid"),
    "tensorflow_imported": "tensorflow" in sys.modules,
}
print(json.dumps(found))
