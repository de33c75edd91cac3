"""One process of a Keras 3 + JAX data-parallel job on CPU, training on a guarded generator.

Run by tests/test_multiworker.py, twice at once:

    KERAS_BACKEND=jax python tests/jax_multiprocess_run.py PROCESS_ID PORT MODE DATA

Process 0 runs JAX's coordination service on 127.0.0.1:PORT. Each process feeds its own
batches (``DataParallel(auto_shard_dataset=False)``; Keras makes the global batch with
``jax.make_array_from_process_local_data``) and the gradients are all-reduced over gloo.
MODE is a safegen mode, DATA ``fresh`` or ``reused``. Prints one JSON line on success.

``jax.distributed.initialize`` is called directly rather than through
``keras.distribution.initialize`` (which calls it with JAX's defaults) to shorten
``shutdown_timeout_seconds``: a process that stops on an error waits at exit in JAX's
shutdown barrier for the others, which are blocked in an all-reduce, until that timeout
(300 s by default); then JAX terminates every process (SIGABRT). The same seed on every
process gives the same initial weights, as ``keras.distribution.initialize`` would.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402

BATCH = 32
SHUTDOWN_TIMEOUT = 5


def fresh_batches(seed):
    """A correct source: a new array per batch."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.integers(0, 100, size=(BATCH, 2)).astype(np.float32)
        yield x, x.mean(axis=1, keepdims=True)


def reused_batches(seed):
    """The article's bug: one buffer, refilled in place and yielded again."""
    rng = np.random.default_rng(seed)
    x = np.zeros((BATCH, 2), np.float32)
    while True:
        x[:] = rng.integers(0, 100, size=(BATCH, 2))
        yield x, x.mean(axis=1, keepdims=True)


def main(process_id, port, mode, data):
    process_id = int(process_id)
    jax.distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes=2,
        process_id=process_id,
        shutdown_timeout_seconds=SHUTDOWN_TIMEOUT,
    )
    keras.utils.set_random_seed(0)
    keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer=keras.optimizers.RMSprop(0.05))
    guarded = safegen.guard(reused_batches if data == "reused" else fresh_batches, mode=mode)
    history = model.fit(guarded(process_id), steps_per_epoch=10, epochs=2, verbose=0, shuffle=False)
    stats = safegen.stats(guarded)
    print(
        json.dumps(
            {
                "process": jax.process_index(),
                "devices": jax.device_count(),
                "loss": history.history["loss"],
                "yields": stats.yields,
                "violations": stats.violations,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    warnings.simplefilter("default")
    main(*sys.argv[1:5])
