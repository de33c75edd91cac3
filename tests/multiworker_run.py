"""One worker of a tf_keras MultiWorkerMirroredStrategy job, training on a guarded source.

Run by tests/test_multiworker.py, twice at once, each process with its own ``TF_CONFIG``
(``{"cluster": {"worker": ["127.0.0.1:P0", "127.0.0.1:P1"]}, "task": {"type": "worker",
"index": I}}``). Either launcher works, because the script guards its own sources:

    python tests/multiworker_run.py SOURCE MODE DATA
    python -m safegen run tests/multiworker_run.py SOURCE MODE DATA

SOURCE is ``generator`` (a generator function through ``tf.data.Dataset.from_generator``),
``sequence`` (a ``tf_keras.utils.Sequence`` given to ``fit``) or ``both`` (one, then the
other, on the same model); MODE is a safegen mode; DATA is ``fresh`` (a new array per
batch) or ``reused`` (the article's bug: one buffer refilled in place). Prints one JSON
line (task index, and per source the losses and safegen's stats) on success. An
``AliasingError`` in check mode ends the worker with TensorFlow's error, whose text
carries safegen's message, and a non-zero exit status.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import safegen  # noqa: E402

BATCH = 32
STEPS = 10
EPOCHS = 2


def fresh_batches():
    """A correct source: a new array per batch."""
    rng = np.random.default_rng(int(os.environ.get("SAFEGEN_WORKER_SEED", "0")))
    while True:
        x = rng.integers(0, 100, size=(BATCH, 2)).astype(np.float32)
        yield x, x.mean(axis=1, keepdims=True)


def reused_batches():
    """The article's bug: one buffer, refilled in place and yielded again."""
    rng = np.random.default_rng(int(os.environ.get("SAFEGEN_WORKER_SEED", "0")))
    x = np.zeros((BATCH, 2), np.float32)
    while True:
        for i in range(BATCH):
            x[i][0] = rng.integers(0, 100)
            x[i][1] = rng.integers(0, 100)
        yield x, x.mean(axis=1, keepdims=True)


class Batches(tf_keras.utils.Sequence):
    """STEPS batches; with ``reused=True`` every call fills and returns the same arrays."""

    def __init__(self, reused):
        super().__init__()
        self.reused = reused
        self.x = np.zeros((BATCH, 2), np.float32)
        self.y = np.zeros((BATCH, 1), np.float32)

    def __len__(self):
        return STEPS

    def __getitem__(self, index):
        values = np.random.default_rng(index).integers(0, 100, size=(BATCH, 2))
        values = values.astype(np.float32)
        if not self.reused:
            return values, values.mean(axis=1, keepdims=True)
        self.x[:] = values
        self.y[:, 0] = values.mean(axis=1)
        return self.x, self.y


def fit_generator_source(model, mode, data):
    """Train on a guarded generator function through from_generator; its stats."""
    guarded = safegen.guard(reused_batches if data == "reused" else fresh_batches, mode=mode)
    signature = (tf.TensorSpec((BATCH, 2), tf.float32), tf.TensorSpec((BATCH, 1), tf.float32))
    dataset = tf.data.Dataset.from_generator(guarded, output_signature=signature)
    # Each worker reads its own source: do not shard one worker's batches.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    history = model.fit(
        dataset.with_options(options), steps_per_epoch=STEPS, epochs=EPOCHS, verbose=0
    )
    return history.history["loss"], safegen.stats(guarded)


def fit_sequence_source(model, mode, data):
    """Train on a guarded Sequence instance; its stats."""
    guarded = safegen.guard(Batches(reused=data == "reused"), mode=mode)
    history = model.fit(guarded, epochs=EPOCHS, verbose=0, shuffle=False)
    return history.history["loss"], safegen.stats(guarded)


def main(source, mode, data):
    tf_keras.utils.set_random_seed(0)  # the same initial weights in every run
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf_keras.Sequential([tf_keras.Input((2,)), tf_keras.layers.Dense(1)])
        model.compile(loss="mse", optimizer=tf_keras.optimizers.RMSprop(0.05))
    found = {"task": strategy.cluster_resolver.task_id, "replicas": strategy.num_replicas_in_sync}
    sources = {"generator": fit_generator_source, "sequence": fit_sequence_source}
    for name in ("generator", "sequence") if source == "both" else (source,):
        loss, stats = sources[name](model, mode, data)
        found[name] = {"loss": loss, "yields": stats.yields, "violations": stats.violations}
    print(json.dumps(found), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
