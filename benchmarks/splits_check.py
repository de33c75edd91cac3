"""What the split and pairing checks (issue 27) cost, per batch and per ``fit``.

Per batch, for three batches (the seed's, x (64, 2) float64 with y (64, 1); an MNIST-like
x (32, 784) float32 with integer labels; a CIFAR-like x (32, 32, 32, 3) float32, whose
rows of 12 KiB are sampled one in one), interleaved in random order within each round:

* ``step``: one training step of ``model.fit`` of a small Keras model on such batches
  (Dense layers; a small convolution for the images), the baseline: the median time
  between two ``on_train_batch_end`` callbacks of one epoch over the pool;
* ``pairing, epoch 1``: the pairing detector on a batch it has never seen (row keys of
  inputs and targets, then one dictionary insert per row);
* ``pairing, epoch 2``: the same batch again in a later epoch (row keys, then one
  comparison per row);
* ``collector``: the validation-overlap row collector on the batch (row keys of the
  inputs, kept);
* ``row keys``: the inputs' row keys alone, against ``batch hash``: XXH3 of the whole
  input array at once (what check mode already pays).

Each figure is the median [min, max] over rounds of the paired ratio against ``step`` (or
against ``batch hash``) of the same round.

Per ``fit``, end to end: the seed model (``Input((2,))`` -> ``Dense(1)``) trained for 2
epochs on the seed's generator (fresh rows every step) bare, guarded in check mode,
and under ``safegen.enabled()`` (the generator guarded, the call check run, the generator
tapped for the pairing detector); and on a ``PyDataset`` of 3,200 such rows shuffled
each epoch (one permutation), guarded, with the pairing detector on and off. Time per
step of the epochs (``on_epoch_begin`` to ``on_epoch_end``), ratios paired per round.

Per ``fit`` with arrays: the one-class split and the validation overlap on an MNIST-sized
x (60000, 784) float32 (training) and (10000, 784) (validation), timed as the call check
runs them, against ``np.copy`` of the same training bytes.

Run: ``python benchmarks/splits_check.py`` (about a minute; ``--quick`` for a smoke run of
a few seconds). Writes ``splits_check.json`` and ``splits_check.md`` into ``--out``
(default ``benchmarks/results/``; quick runs write ``splits_check_quick.*``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import RESULTS, environment, load_average, spread, write_results  # noqa: E402

from safegen._detectors.pairing import Pairing  # noqa: E402
from safegen._detectors.rows import RowCollector, leaves, row_keys  # noqa: E402
from safegen._detectors.splits import class_labels, one_class_split, overlap  # noqa: E402
from safegen._fingerprint import hash_buffer  # noqa: E402

POOL = 32  # distinct batches per round


def _batches(kind, rng):
    if kind == "seed (64, 2) float64":
        x = rng.integers(0, 100, (64, 2)).astype(np.float64)
        return x, np.expand_dims(x.mean(axis=1), -1)
    if kind == "MNIST-like (32, 784) float32":
        return rng.random((32, 784), dtype=np.float32), rng.integers(0, 10, 32)
    return rng.random((32, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, 32)


def _model(kind):
    if kind.startswith("seed"):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("rmsprop", "mse")
    elif kind.startswith("MNIST"):
        model = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy")
    else:
        model = keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _per_batch(fn, pool):
    start = time.perf_counter()
    for index, batch in enumerate(pool):
        fn(batch, index)
    return (time.perf_counter() - start) / len(pool)


class _Steps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def _fit_step(model, pool):
    """The median time of one fit step over the pool's batches."""
    x = np.concatenate([batch[0] for batch in pool])
    y = np.concatenate([batch[1] for batch in pool])
    steps = _Steps()
    model.fit(
        x, y, batch_size=len(pool[0][0]), epochs=1, shuffle=False, verbose=0, callbacks=[steps]
    )
    return float(np.median(np.diff(steps.times)))


def section(kind, rounds):
    rng = np.random.default_rng(0)
    model = _model(kind)
    pools = [[_batches(kind, rng) for _ in range(POOL)] for _ in range(rounds)]
    _fit_step(model, pools[0])  # traced: not timed

    times = {
        name: []
        for name in (
            "step",
            "pairing, epoch 1",
            "pairing, epoch 2",
            "collector",
            "row keys",
            "batch hash",
        )
    }
    for pool in pools:
        pairing = Pairing("bench", "", lambda finding: None)
        collector = RowCollector()

        variants = {
            "step": None,
            "pairing, epoch 1": pairing.seen,
            "collector": collector.seen,
            "row keys": lambda batch, index: row_keys(leaves(batch[0])),
            "batch hash": lambda batch, index: hash_buffer(batch[0]),
        }
        order = list(variants)
        random.shuffle(order)
        for name in order:
            if name == "step":
                times[name].append(_fit_step(model, pool))
            else:
                times[name].append(_per_batch(variants[name], pool))
        pairing.epoch_passed()
        pairing.checkpoint = 1 << 60  # time the comparisons, not a report
        times["pairing, epoch 2"].append(_per_batch(pairing.seen, pool))
    step = times["step"]
    out = {"step_us": spread([t * 1e6 for t in step])}
    for name in ("pairing, epoch 1", "pairing, epoch 2", "collector", "row keys"):
        out[name] = {
            "us": spread([t * 1e6 for t in times[name]]),
            "vs_step": spread([t / s for t, s in zip(times[name], step, strict=True)]),
        }
    out["row keys"]["vs_batch_hash"] = spread(
        [t / h for t, h in zip(times["row keys"], times["batch hash"], strict=True)]
    )
    out["batch hash_us"] = spread([t * 1e6 for t in times["batch hash"]])
    return out


def fit_arrays(rounds, rows=60000, validation=10000):
    """The array checks at fit (one-class split and overlap) against np.copy of x."""
    rng = np.random.default_rng(1)
    x = rng.random((rows, 784), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    xv = rng.random((validation, 784), dtype=np.float32)
    checks, copies = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        labels = class_labels(y)
        one_class_split(labels, 0.2)
        train, val = row_keys(leaves(x))[1], row_keys(leaves(xv))[1]
        overlap(train, val, validation_rows=validation, training_rows=rows, sampled=False)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.copy(x)
        copies.append(time.perf_counter() - start)
    return {
        "rows": rows,
        "validation_rows": validation,
        "check_ms": spread([t * 1e3 for t in checks]),
        "copy_ms": spread([t * 1e3 for t in copies]),
        "vs_copy": spread([c / k for c, k in zip(checks, copies, strict=True)]),
    }


def _seed_batches(seed):
    """The seed's generator (fresh arrays, rows of two numbers 0..99 and their mean)."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.integers(0, 100, (64, 2)).astype(np.float64)
        yield x, np.expand_dims(x.mean(axis=1), -1)


class _SeedRows(keras.utils.PyDataset):
    """The seed's rows as a PyDataset of 50 batches, shuffled (one permutation) each epoch."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.x = rng.integers(0, 100, (3200, 2)).astype(np.float64)
        self.y = np.expand_dims(self.x.mean(axis=1), -1)

    def __len__(self):
        return 50

    def __getitem__(self, index):
        return self.x[index * 64 : (index + 1) * 64], self.y[index * 64 : (index + 1) * 64]

    def on_epoch_end(self):
        p = np.random.permutation(len(self.x))
        self.x, self.y = self.x[p], self.y[p]


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.total = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.total += time.perf_counter() - self.start


def _seed_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.RMSprop(), "mse")
    return model


def fit_section(rounds, steps, epochs=2):
    """The seed model's fit, 2 epochs, per variant: the time of its epochs per step."""
    import safegen
    from safegen._detectors import pairing

    def run(model, data, **kwargs):
        timer = _Epochs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(data, epochs=epochs, verbose=0, callbacks=[timer], **kwargs)
        return timer.total / (epochs * kwargs.get("steps_per_epoch", 50))

    def generator(guard=False, enable=False):
        def variant(model, seed):
            data = _seed_batches(seed)
            if guard:
                data = safegen.guard(data, mode="check")
            if enable:
                with safegen.enabled():
                    return run(model, data, steps_per_epoch=steps)
            return run(model, data, steps_per_epoch=steps)

        return variant

    def dataset(pairing_on):
        def variant(model, seed):
            saved = pairing.Pairing.seen
            if not pairing_on:
                pairing.Pairing.seen = lambda self, batch, index: False  # retires at once
            try:
                return run(model, safegen.guard(_SeedRows(), mode="check"))
            finally:
                pairing.Pairing.seen = saved

        return variant

    variants = {
        "generator, bare": generator(),
        "generator, bare again": generator(),
        "generator, guard (check mode)": generator(guard=True),
        "generator, enable() (checks on)": generator(enable=True),
        "PyDataset, guard, pairing off": dataset(False),
        "PyDataset, guard (pairing on)": dataset(True),
    }
    models = {name: _seed_model() for name in variants}
    for name, variant in variants.items():
        variant(models[name], 1000)  # traced: not timed
    times = {name: [] for name in variants}
    for r in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            times[name].append(variants[name](models[name], r))
    out = {name: {"step_us": spread([t * 1e6 for t in ts])} for name, ts in times.items()}
    for name, base in (
        ("generator, bare again", "generator, bare"),
        ("generator, guard (check mode)", "generator, bare"),
        ("generator, enable() (checks on)", "generator, bare"),
        ("generator, enable() (checks on)", "generator, guard (check mode)"),
        ("PyDataset, guard (pairing on)", "PyDataset, guard, pairing off"),
    ):
        ratios = [t / b for t, b in zip(times[name], times[base], strict=True)]
        out[name][f"vs {base}"] = spread(ratios)
    return out


def _fmt(s, digits=2, unit=""):
    return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 15)
    load_start = load_average()
    kinds = (
        "seed (64, 2) float64",
        "MNIST-like (32, 784) float32",
        "CIFAR-like (32, 32, 32, 3) float32",
    )
    result = {kind: section(kind, rounds) for kind in kinds}
    result["fit"] = fit_section(3 if args.quick else 20, 20 if args.quick else 100)
    result["fit arrays"] = fit_arrays(
        rounds, rows=6000 if args.quick else 60000, validation=1000 if args.quick else 10000
    )
    result["load"] = {"start": load_start, "end": load_average()}
    result["environment"] = environment()
    lines = [
        "# The split and pairing checks: per batch, and per fit with arrays",
        "",
        f"{rounds} interleaved rounds of {POOL} batches; median [min, max] of the paired "
        f"ratios. Load average (1, 5, 15 min) at the start {load_start}, at the end "
        f"{result['load']['end']}.",
        "",
        "| batch | step (µs) | pairing, epoch 1 / step | pairing, epoch 2 / step "
        "| collector / step | row keys / batch hash |",
        "|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        row = result[kind]
        ratios = [row[name]["vs_step"] for name in ("pairing, epoch 1", "pairing, epoch 2")]
        ratios.append(row["collector"]["vs_step"])
        cells = " | ".join(_fmt(r, 3) for r in ratios)
        lines.append(
            f"| {kind} | {_fmt(row['step_us'], 0)} | {cells} "
            f"| {_fmt(row['row keys']['vs_batch_hash'], 1)} |"
        )
    lines += ["", "Absolute times (µs per batch):", ""]
    for kind in kinds:
        row = result[kind]
        parts = [
            f"{name} {_fmt(row[name]['us'], 1)}"
            for name in ("pairing, epoch 1", "pairing, epoch 2", "collector", "row keys")
        ]
        parts.append(f"batch hash {_fmt(row['batch hash_us'], 1)}")
        lines.append(f"- {kind}: " + ", ".join(parts))
    lines += [
        "",
        "The seed model's fit, 2 epochs (time per step of the epochs; ratios paired per round):",
        "",
        "| variant | step (µs) | ratio |",
        "|---|---|---|",
    ]
    for name, row in result["fit"].items():
        ratios = "; ".join(f"{_fmt(v, 3)} {k}" for k, v in row.items() if k.startswith("vs "))
        lines.append(f"| {name} | {_fmt(row['step_us'], 0)} | {ratios or '-'} |")
    fit = result["fit arrays"]
    lines += [
        "",
        f"At fit with arrays, x ({fit['rows']}, 784) float32 and validation "
        f"({fit['validation_rows']}, 784): the one-class split and the overlap took "
        f"{_fmt(fit['check_ms'], 1, ' ms')}, {_fmt(fit['vs_copy'], 2)} times np.copy of x "
        f"({_fmt(fit['copy_ms'], 1, ' ms')}).",
        "",
        ", ".join(f"{k} {v}" for k, v in result["environment"].items()),
        "",
    ]
    stem = "splits_check_quick" if args.quick else "splits_check"
    write_results(args.out, stem, result, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
