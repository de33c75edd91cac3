"""What a guarded PyTorch dataset costs inside a DataLoader, as ratios against the bare
DataLoader over the same dataset.

A map-style ``Dataset`` whose ``__getitem__`` returns a pre-made item from a pool of
distinct ones (``(x, label)``: so an item costs nothing to make, and every item is new
to the check), read by a ``DataLoader`` in the main process (``num_workers=0``: safegen's
cost without the workers' noise). Two ways of reading it:

* per item: ``DataLoader(ds, batch_size=None)`` (no batching: the loader's per-item path);
* per batch: ``DataLoader(ds, batch_size=32)`` (32 items gathered, then
  ``default_collate`` stacks them).

Two items: a tabular row (x: 32 float32, 128 B) and an image (x: 3x224x224 float32,
588 KiB). Variants, interleaved in random order within each round: the bare loader, a
hand-written ``.copy()`` in ``__getitem__`` (what a user would do by hand), and the
dataset guarded with ``safegen.guard`` in check, copy and freeze mode. Each round reads
one epoch with each variant; the figure is each variant's time per item (or batch)
divided by the bare loader's in the same round, median [min, max] over rounds.

Run: ``python benchmarks/torch_loader.py`` (a few minutes on 2 cores);
``--quick`` for a smoke run. Writes ``torch_loader.json`` and ``torch_loader.md`` into
``benchmarks/results/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS, environment, load_average, spread, write_results  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

import safegen  # noqa: E402

# default_collate warns once that a read-only NumPy item becomes a writable tensor.
warnings.filterwarnings("ignore", "The given NumPy array is not writable")


class Pool(Dataset):
    """Pre-made distinct items; ``copy``: return copies, as a user fixing the bug would."""

    def __init__(self, items, copy=False):
        self.items = items
        self.copy = copy

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        x, y = self.items[index]
        return (x.copy(), y) if self.copy else (x, y)


def _items(count, shape, seed):
    rng = np.random.default_rng(seed)
    return [(rng.random(shape, dtype=np.float32), i % 10) for i in range(count)]


VARIANTS = ("bare", "hand copy", "check", "copy", "freeze")


def _dataset(items, variant):
    if variant == "bare":
        return Pool(items)
    if variant == "hand copy":
        return Pool(items, copy=True)
    # Freeze mode makes the pool's arrays read-only: give it arrays of its own.
    own = [(x.copy(), y) for x, y in items] if variant == "freeze" else items
    return safegen.guard(Pool(own), mode=variant)


def _epoch(items, variant, batch_size):
    """Seconds per item (batch_size None) or per batch of one epoch."""
    loader = DataLoader(_dataset(items, variant), batch_size=batch_size)
    count = 0
    start = time.perf_counter()
    for _ in loader:
        count += 1
    return (time.perf_counter() - start) / count


def section(items, batch_size, rounds):
    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        order = list(VARIANTS)
        random.shuffle(order)
        for name in order:
            times[name].append(_epoch(items, name, batch_size))
    ratios = {
        name: spread([t / b for t, b in zip(times[name], times["bare"], strict=True)])
        for name in VARIANTS[1:]
    }
    return {
        "bare_us": spread([t * 1e6 for t in times["bare"]]),
        "us": {name: spread([t * 1e6 for t in times[name]]) for name in VARIANTS},
        "ratio_to_bare": ratios,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (few rounds)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds = 2 if args.quick else 15
    small = _items(256 if args.quick else 4096, (32,), 0)
    image = _items(16 if args.quick else 128, (3, 224, 224), 1)
    load_start = load_average()
    result = {}
    for name, items in (("row (128 B)", small), ("image (588 KiB)", image)):
        for unit, batch_size in (("per item", None), ("per batch of 32", 32)):
            result[f"{name}, {unit}"] = section(items, batch_size, rounds)
    result["rounds"] = rounds
    result["load"] = {"start": load_start, "end": load_average()}
    result["environment"] = {**environment(), "torch": torch.__version__}
    lines = [
        "# A guarded PyTorch dataset in a DataLoader (num_workers=0), against the bare loader",
        "",
        f"{rounds} interleaved rounds of one epoch each; time per item (or batch) divided by "
        "the bare loader's in the same round, median [min, max]. Load average (1, 5, 15 "
        f"min) at the start {load_start}, at the end {result['load']['end']}.",
        "",
        "| item, read | bare (µs) | " + " | ".join(VARIANTS[1:]) + " |",
        "|---|---|" + "---|" * (len(VARIANTS) - 1),
    ]

    def fmt(s, digits=2):
        return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"

    for name, row in result.items():
        if not isinstance(row, dict) or "ratio_to_bare" not in row:
            continue
        cells = [fmt(row["ratio_to_bare"][v]) for v in VARIANTS[1:]]
        lines.append(f"| {name} | {fmt(row['bare_us'], 1)} | " + " | ".join(cells) + " |")
    lines += ["", ", ".join(f"{k} {v}" for k, v in result["environment"].items()), ""]
    stem = "torch_loader_quick" if args.quick else "torch_loader"
    write_results(args.out, stem, result, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
