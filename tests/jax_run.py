"""safegen.guard with Keras 3 on JAX, each scenario a real ``model.fit`` (run by test_jax.py).

Usage: KERAS_BACKEND=jax python -m tests.jax_run. The backend must be chosen before Keras
is imported, hence a subprocess. Prints one JSON object: for each scenario, the losses
(and mismatched-batch fractions) fit returned, or the error it raised, and safegen's stats.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

if os.environ.get("KERAS_BACKEND") != "jax":
    sys.exit("run with KERAS_BACKEND=jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402
from tests.datasets import Clean, SharedBuffer, mean_model  # noqa: E402

# Keras's worker processes fork the process, which JAX warns may deadlock (JAX runs
# threads); the workers only run the dataset's NumPy code.
warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
warnings.filterwarnings("ignore", "The model does not have any trainable weights")


def reused(batch_size=64):
    """The seed's bug: one buffer refilled in place, the target a fresh array."""
    rng = np.random.default_rng(0)
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i] = rng.integers(0, 100, size=2)
        yield x, (x[:, 0] + x[:, 1])[:, None] / 2


def fresh(batch_size=64):
    """The fix: a new array per batch."""
    rng = np.random.default_rng(0)
    while True:
        x = rng.integers(0, 100, size=(batch_size, 2)).astype(np.float64)
        yield x, (x[:, 0] + x[:, 1])[:, None] / 2


def _outcome(data, stats_of=None, **fit_kwargs):
    """fit the mean model on ``data``: its history, or the error it raised."""
    result = {}
    try:
        history = mean_model().fit(data, verbose=0, **fit_kwargs).history
        result = {"loss": history["loss"], "mismatched": history["mismatched"]}
    except Exception as error:  # reported to the test, which checks type and message
        result = {
            "error": type(error).__name__,
            "message": str(error),
            "notes": getattr(error, "__notes__", []),
        }
    if stats_of is not None:
        found = safegen.stats(stats_of)
        result["stats"] = {"yields": found.yields, "violations": found.violations}
    return result


def generators():
    steps = {"steps_per_epoch": 20, "epochs": 2, "shuffle": False}
    results = {"unguarded": _outcome(reused(), **steps)}
    for mode in ("check", "copy", "freeze"):
        guarded = safegen.guard(reused, mode=mode)
        results[mode] = _outcome(guarded(), guarded, **steps)
    guarded = safegen.guard(fresh)
    results["fresh_check"] = _outcome(guarded(), guarded, **steps)
    return results


def datasets(processes):
    options = {"workers": 2, "use_multiprocessing": True} if processes else {"workers": 4}
    batches = 20 if processes else 60
    results: dict = {}
    if not processes:
        # The control, without a race: every batch Keras's worker threads hand over,
        # kept, then compared (see tests/test_datasets.py).
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        adapter = PyDatasetAdapter(SharedBuffer(20, **options), shuffle=False)
        kept = list(adapter.get_numpy_iterator())
        results["unguarded_held"] = {
            "batches": len(kept),
            "distinct": len({x.tobytes() for x, _ in kept}),
        }
    for mode in ("check", "copy", "freeze"):
        dataset = safegen.guard(SharedBuffer(batches, pause=0.002, **options), mode=mode)
        results[mode] = _outcome(dataset, dataset)
    dataset = safegen.guard(Clean(**options))
    results["clean_check"] = _outcome(dataset, dataset, epochs=2)
    return results


if __name__ == "__main__":
    found = {
        "backend": keras.backend.backend(),
        "tensorflow_imported": "tensorflow" in sys.modules,
        "generator": generators(),
        "threads": datasets(processes=False),
        "processes": datasets(processes=True),
    }
    print(json.dumps(found))
