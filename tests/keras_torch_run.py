"""Keras 3 on the torch backend: guards, PyDataset workers, Lambda and loss checks (run
by test_keras_torch.py).

Usage: KERAS_BACKEND=torch python -m tests.keras_torch_run. The backend must be chosen
before Keras is imported, hence a subprocess. Prints one JSON object: for each scenario,
what fit returned or the error it raised (type and message), and whether TensorFlow was
imported.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings

if os.environ.get("KERAS_BACKEND") != "torch":
    sys.exit("run with KERAS_BACKEND=torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402
from tests import loss_models  # noqa: E402
from tests import random_datasets as noisy  # noqa: E402
from tests.datasets import Clean, SharedBuffer, mean_model  # noqa: E402

warnings.filterwarnings("ignore", "The model does not have any trainable weights")
warnings.filterwarnings("ignore", "`shuffle=True` was passed")
PROCESSES = {"workers": 2, "use_multiprocessing": True}


def reused(batch_size=64):
    """The seed's bug: one buffer refilled in place, the target a fresh array."""
    rng = np.random.default_rng(0)
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i] = rng.integers(0, 100, size=2)
        yield x, (x[:, 0] + x[:, 1])[:, None] / 2


def _outcome(run):
    try:
        return {"result": run()}
    except Exception as error:  # reported to the test, which checks type and message
        return {"error": type(error).__name__, "message": str(error)}


def _losses(data, **kwargs):
    return mean_model().fit(data, verbose=0, **kwargs).history["loss"]


def _noise(kind, mode):
    folder = tempfile.mkdtemp()
    dataset = safegen.guard(getattr(noisy, kind)(folder=folder, **PROCESSES), mode=mode)
    found = _outcome(lambda: noisy.tiny_model().fit(dataset, epochs=2, verbose=0) and None)
    draws = [a.tobytes() for a in noisy.draws(folder)]
    return {**found, "draws": len(draws), "distinct": len(set(draws))}


def _mean_bad(x):
    return (x[:, 0] + x[:, 1]) / 2  # (batch,), declared (batch, 1)


def _lambda():
    with safegen.enabled():
        inputs = keras.Input((2,))
        outputs = keras.layers.Lambda(_mean_bad, output_shape=(1,), name="mean")(inputs)
        model = keras.Model(inputs, outputs)
        return model.predict(np.ones((4, 2), "float32"), verbose=0).shape


def _enabled_loss():
    with safegen.enabled() as session:
        x, y1 = loss_models.data(1)
        outcome = loss_models.fit(
            loss_models.regression(), loss_models.MeanSquares(), x, y1, check=False
        )
        return outcome, session.as_dict()["totals"]["losses_checked"]


if __name__ == "__main__":
    steps = {"steps_per_epoch": 10, "epochs": 2}
    x, y1 = loss_models.data(1)
    _, y2 = loss_models.data(2)
    found = {
        "backend": keras.backend.backend(),
        "generator_check": _outcome(lambda: _losses(safegen.guard(reused)(), **steps)),
        "generator_copy": _outcome(lambda: _losses(safegen.guard(reused, mode="copy")(), **steps)),
        "dataset_check": _outcome(lambda: _losses(safegen.guard(SharedBuffer(20, **PROCESSES)))),
        "clean_check": _outcome(lambda: _losses(safegen.guard(Clean(**PROCESSES)), epochs=2)),
        "generator_noise": _noise("GeneratorNoise", "check"),
        "per_index": _noise("PerIndex", "check"),
        "global_copy": _noise("GlobalNoise", "copy"),
        "lambda": _outcome(_lambda),
        "loss_broadcast": loss_models.fit(
            loss_models.regression(), loss_models.MeanSquares(), x, y1
        ),
        "loss_same": loss_models.fit(loss_models.regression(), loss_models.MeanSquares(), x, y2),
        "loss_focal": loss_models.fit(
            loss_models.regression(activation="sigmoid"), loss_models.BinaryFocal(), x, y1
        ),
        "loss_mse": loss_models.fit(loss_models.regression(), "mse", x, y1),
        "loss_enabled": _enabled_loss(),
    }
    found["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(found, default=str))
