"""The random-stream detector with worker processes started by ``spawn`` (run by
test_random_streams.py): the dataset reaches each worker by pickling, channel included.

Usage: python -m tests.spawn_streams_run. Prints one JSON object: for each scenario, the
error fit raised (type and message) or none.
"""

from __future__ import annotations

import json
import multiprocessing

import safegen
from tests import random_datasets as data


def scenario(kind):
    dataset = safegen.guard(getattr(data, kind)(workers=2, use_multiprocessing=True))
    try:
        data.tiny_model().fit(dataset, epochs=2, verbose=0)
    except Exception as error:  # reported to the test, which checks type and message
        return {"error": type(error).__name__, "message": str(error)}
    return {}


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    found = {kind: scenario(kind) for kind in ("GeneratorNoise", "GlobalNoise")}
    print(json.dumps(found))
