"""What safegen's watch of ``DataLoader`` workers (issue 28) costs, against the bare loader.

A map-style dataset of float32 items (16 floats each) that keeps a NumPy Generator,
reseeded per worker by its ``worker_init_fn`` (correct code: nothing is reported, but
every worker is watched), read by a ``DataLoader`` with ``num_workers=2``. Three variants,
interleaved in random order within each round: ``bare`` (safegen not enabled),
``check`` and ``copy`` (``safegen.enabled(mode=...)``: each worker's first 2 fetches are
watched, in copy mode after the dataset's states are reseeded; later fetches pass
through one list test).

* worker start: from ``iter(loader)`` to the first batch (8 items, batch 4): the workers'
  start, the user's ``worker_init_fn``, safegen's search of the dataset's random states,
  its first fetch's fingerprints and record;
* per item and per batch: one epoch of 4096 items in batches of 32, divided by the items
  (and by the batches).

Each figure is a ratio against ``bare`` in the same round; median [min, max] over rounds.
Run: ``python benchmarks/torch_workers.py`` (about a minute). Writes ``torch_workers.json``
and ``torch_workers.md`` into ``benchmarks/results/``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS, environment, load_average, spread, write_results  # noqa: E402
from torch.utils.data import DataLoader, Dataset, get_worker_info  # noqa: E402

import safegen  # noqa: E402

ROUNDS = 9
ITEMS = 4096
BATCH = 32
VARIANTS = ("bare", "check", "copy")


class Items(Dataset):
    def __init__(self, n):
        self.data = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return torch.from_numpy(self.data[index] + np.float32(self.rng.uniform()))


def seed_worker(worker_id):
    info = get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed)


def _loader(n, batch):
    return DataLoader(Items(n), batch_size=batch, num_workers=2, worker_init_fn=seed_worker)


def _time(variant, fn):
    if variant == "bare":
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    with safegen.enabled(mode=variant) as session:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
    assert session.failures() == {}, session.failures()
    return elapsed


def _first_batch(loader):
    next(iter(loader))


def main() -> None:
    load_before = load_average()
    start_times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    epoch_times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(ROUNDS):
        order = list(VARIANTS)
        random.shuffle(order)
        for variant in order:
            small = _loader(8, 4)
            start_times[variant].append(_time(variant, lambda: _first_batch(small)))  # noqa: B023
            big = _loader(ITEMS, BATCH)
            epoch_times[variant].append(_time(variant, lambda: list(big)))  # noqa: B023
    load_after = load_average()

    def ratios(times, variant):
        return spread([t / b for t, b in zip(times[variant], times["bare"], strict=True)])

    batches = ITEMS // BATCH
    result = {
        "rounds": ROUNDS,
        "items": ITEMS,
        "batch": BATCH,
        "worker_start_ms": {v: spread([t * 1e3 for t in start_times[v]]) for v in VARIANTS},
        "per_item_us": {v: spread([t / ITEMS * 1e6 for t in epoch_times[v]]) for v in VARIANTS},
        "per_batch_us": {v: spread([t / batches * 1e6 for t in epoch_times[v]]) for v in VARIANTS},
        "worker_start_ratio": {v: ratios(start_times, v) for v in VARIANTS[1:]},
        "epoch_ratio": {v: ratios(epoch_times, v) for v in VARIANTS[1:]},
        "load_before": load_before,
        "load_after": load_after,
        "environment": {**environment(), "torch": torch.__version__},
    }

    def cell(s, digits=2):
        return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"

    lines = [
        "# DataLoader workers watched by safegen: cost against the bare loader",
        "",
        f"{ROUNDS} interleaved rounds; median [min, max]. num_workers=2. Load average "
        f"(1, 5, 15 min) at the start {tuple(round(x, 2) for x in load_before)}, at the end "
        f"{tuple(round(x, 2) for x in load_after)}.",
        "",
        "| variant | worker start to first batch (ms) | ratio | per item (µs) "
        "| per batch of 32 (µs) | epoch ratio |",
        "|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        start_ratio = "1" if v == "bare" else cell(result["worker_start_ratio"][v])
        epoch_ratio = "1" if v == "bare" else cell(result["epoch_ratio"][v])
        lines.append(
            f"| {v} | {cell(result['worker_start_ms'][v], 1)} | {start_ratio} | "
            f"{cell(result['per_item_us'][v])} | {cell(result['per_batch_us'][v], 1)} | "
            f"{epoch_ratio} |"
        )
    env = result["environment"]
    lines += ["", ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    write_results(RESULTS, "torch_workers", result, lines)
    print("\n".join(lines))
    print(
        "median epoch ratio check:",
        statistics.median(
            t / b for t, b in zip(epoch_times["check"], epoch_times["bare"], strict=True)
        ),
    )


if __name__ == "__main__":
    main()
