"""The loss shape checks on Keras 3 with JAX (run by test_losses.py).

Usage: KERAS_BACKEND=jax python -m tests.jax_losses_run. Prints one JSON object: each
scenario of tests/loss_models.py ("ok" or the ShapeError message), the same under
safegen.enable() with its session, and whether TensorFlow was imported.
"""

from __future__ import annotations

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") != "jax":
    sys.exit("run with KERAS_BACKEND=jax")

import keras  # noqa: E402

import safegen  # noqa: E402
from tests import loss_models  # noqa: E402

found = {"backend": keras.backend.backend(), "scenarios": loss_models.scenarios()}
with safegen.enabled() as session:
    x, y1 = loss_models.data(1)
    found["enabled"] = loss_models.fit(
        loss_models.regression(), loss_models.MeanSquares(), x, y1, check=False
    )
    found["losses_checked"] = session.as_dict()["totals"]["losses_checked"]
found["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(found))
