"""What the detectors (repeated batches, random streams) add to check mode, per batch.

A guarded Keras 3 ``PyDataset`` whose ``__getitem__`` returns a pre-made batch from a pool
of distinct ones (so a batch costs nothing to make and is new to the check), called in one
process as worker threads call it. Two variants, interleaved in random order within each
round: ``check`` is check mode as it was before the detectors (the guard made without
them), ``check + detectors`` is check mode as shipped (the repeated-batch detector runs
after every batch; the random-stream detector only runs in worker processes, for their
first 2 calls, and is timed apart). Batches: the seed's (x (64, 2) float64, y (64, 1),
1.5 KiB; a pool of 256) and a 19.3 MB image batch (32x224x224x3 float32; a pool of 16).
Each round calls every index of the pool once, on a fresh instance; the figure is the
paired difference per batch, median [min, max] over rounds.

The detectors' call alone: ``guard.after`` timed by itself on the last batch (a
dictionary lookup and insert of the batch's digests, whatever the batch's size), free of
the hashing's noise.

The random-stream detector's one-off cost: its first-call work in a worker process
(fingerprint NumPy's global state before and after, write the record, read the others),
timed in a forked child.

Run: ``python benchmarks/detectors.py`` (about a minute). Writes ``detectors.json`` and
``detectors.md`` into ``benchmarks/results/``.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import RESULTS, environment, load_average, spread, write_results  # noqa: E402

import safegen  # noqa: E402
from safegen._detectors.repeated_batches import RepeatedBatches  # noqa: E402
from safegen._handle import handle_of  # noqa: E402
from safegen._sources import datasets as _datasets  # noqa: E402

ROUNDS = 40


class Pool(keras.utils.PyDataset):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def _seed_pool(count=256):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        x = rng.integers(0, 100, (64, 2)).astype(np.float64)
        out.append((x, np.expand_dims(x.mean(axis=1), -1)))
    return out


def _image_pool(count=16):
    rng = np.random.default_rng(1)
    return [(rng.random((32, 224, 224, 3), dtype=np.float32),) for _ in range(count)]


def _time(batches, detectors):
    saved = _datasets.dataset_detectors
    if not detectors:
        _datasets.dataset_detectors = lambda *args: ()
    try:
        dataset = safegen.guard(Pool(batches), mode="check")
        dataset[0]  # the guard is made on first use: not timed
        start = time.perf_counter()
        for index in range(1, len(batches)):
            dataset[index]
        elapsed = time.perf_counter() - start
    finally:
        _datasets.dataset_detectors = saved
    return elapsed / (len(batches) - 1)


def section(batches):
    per = {"check": [], "check + detectors": []}
    for _ in range(ROUNDS):
        order = list(per)
        random.shuffle(order)
        for name in order:
            per[name].append(_time(batches, name != "check"))
    added = [(d - c) * 1e6 for c, d in zip(per["check"], per["check + detectors"], strict=True)]
    return {
        "check_us": spread([t * 1e6 for t in per["check"]]),
        "detectors_us": spread([t * 1e6 for t in per["check + detectors"]]),
        "added_us": spread(added),
    }


def detector_alone(batches, calls=20000, rounds=15):
    """Time the detectors' call after a batch by itself (what check mode's guard adds once
    the batch is hashed), in µs: ``guard.after`` on the last batch's records, the
    repeated-batch dictionary emptied before each call (so each call is a new batch),
    minus the same loop without the call."""
    dataset = safegen.guard(Pool(batches), mode="check")
    dataset[0]
    guard = handle_of(dataset)
    [repeats] = [d for d in guard.detectors if isinstance(d, RepeatedBatches)]
    seen = repeats.seen
    after = guard.after
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _index in range(calls):
            seen.clear()
        empty = time.perf_counter() - start
        start = time.perf_counter()
        for index in range(calls):
            seen.clear()
            after(dataset, index)
        out.append((time.perf_counter() - start - empty) / calls * 1e6)
    return spread(out)


def first_calls_in_worker():
    """Time the random-stream detector's first two calls in a forked child, in µs."""
    read, write = os.pipe()
    dataset = safegen.guard(Pool(_seed_pool(8)), mode="check")
    pid = os.fork()
    if pid == 0:  # the child: a worker process
        os.close(read)
        times = []
        for index in range(4):
            start = time.perf_counter()
            dataset[index]
            times.append((time.perf_counter() - start) * 1e6)
        os.write(write, repr(times).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        return eval(pipe.read())  # noqa: S307 - our own child's list of floats


def main():
    load_start = load_average()
    result = {
        "seed batch (1.5 KiB)": section(_seed_pool()),
        "19.3 MB batch": section(_image_pool()),
    }
    for name, pool in (("seed batch (1.5 KiB)", _seed_pool(4)), ("19.3 MB batch", _image_pool(2))):
        result[name]["alone_us"] = detector_alone(pool)
    workers = [first_calls_in_worker() for _ in range(5)]
    result["worker first calls (us)"] = [statistics.median(w[i] for w in workers) for i in range(4)]
    result["load"] = {"start": load_start, "end": load_average()}
    result["environment"] = environment()
    lines = [
        "# What the detectors add to check mode, per batch (guarded PyDataset, one process)",
        "",
        f"{ROUNDS} interleaved rounds; median [min, max]. Load average (1, 5, 15 min) at the "
        f"start {load_start}, at the end {result['load']['end']}.",
        "",
        "| batch | check (µs/batch) | check + detectors (µs/batch) | added (µs/batch) "
        "| detectors' call alone (µs/batch) |",
        "|---|---|---|---|---|",
    ]
    for name in ("seed batch (1.5 KiB)", "19.3 MB batch"):
        row = result[name]

        def fmt(s):
            return f"{s['median']:.2f} [{s['min']:.2f}, {s['max']:.2f}]"

        lines.append(
            f"| {name} | {fmt(row['check_us'])} | {fmt(row['detectors_us'])} | "
            f"{fmt(row['added_us'])} | {fmt(row['alone_us'])} |"
        )
    first = result["worker first calls (us)"]
    lines += [
        "",
        "In a forked worker process, calls 1 to 4 of the seed batch took "
        + ", ".join(f"{t:.0f}" for t in first)
        + " µs (median of 5 children): the random-stream detector runs in calls 1 and 2 "
        "only (it fingerprints the random states, writes its record, reads the others').",
        "",
        ", ".join(f"{k} {v}" for k, v in result["environment"].items()),
        "",
    ]
    write_results(RESULTS, "detectors", result, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
