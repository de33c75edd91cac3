"""What safegen costs per yield, against baselines measured in the same run.

Batches: the seed's (x (64, 2) and y (64, 1) float64, 1.5 KiB) and an image batch
(32x224x224x3 float32, 19.3 MB). For each, every variant is timed over the same number of
``next()`` calls, the variants interleaved in random order within each round, for several
rounds; each figure is the median over rounds, with min and max.

The generators yield arrays taken in turn from a pool of distinct, pre-made arrays (more
of them than check mode's window), so that a "fresh" batch costs nothing to make and the
figures are safegen's own cost. Baselines: the bare generator, a generator that yields
hand-written copies (``(x.copy(), y.copy())``), and, for bandwidth, ``np.copy`` of the
same bytes with no generator at all.

Run: ``python benchmarks/per_yield.py`` (``--quick`` for a smoke run). Writes
``benchmarks/results/per_yield.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import safegen

RESULTS = Path(__file__).resolve().parent / "results"
POOL = 16  # more distinct batches than check mode's default window of 12


def _pool(make, size=POOL):
    return [make(i) for i in range(size)]


def _cycle(pool):
    while True:
        yield from pool


def _hand_copy(pool):
    while True:
        for batch in pool:
            yield tuple(a.copy() for a in batch) if isinstance(batch, tuple) else batch.copy()


def _hand_copy_pair(pool):
    while True:
        for x, y in pool:
            yield x.copy(), y.copy()


def _time_next(it, count):
    advance = it.__next__
    start = time.perf_counter()
    for _ in range(count):
        advance()
    return (time.perf_counter() - start) / count


def _time_np_copy(pool, count):
    start = time.perf_counter()
    for i in range(count):
        np.copy(pool[i % len(pool)])
    return (time.perf_counter() - start) / count


def measure(variants, count, rounds, progress):
    """Per-call seconds of each variant: {name: [one figure per round]}."""
    results = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm up
        variants[name](max(1, count // 10))
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            results[name].append(variants[name](count))
            progress.update(1)
    return results


def summarize(samples, baseline=None):
    """Median, min and max in microseconds, and the overhead over ``baseline``."""
    out = {}
    for name, values in samples.items():
        out[name] = {
            "median_us": statistics.median(values) * 1e6,
            "min_us": min(values) * 1e6,
            "max_us": max(values) * 1e6,
        }
    if baseline is not None:
        base = samples[baseline]
        for name, values in samples.items():
            over = [v - b for v, b in zip(values, base, strict=True)]
            out[name]["overhead_median_us"] = statistics.median(over) * 1e6
            out[name]["overhead_min_us"] = min(over) * 1e6
            out[name]["overhead_max_us"] = max(over) * 1e6
    return out


def _ratio(numerators, denominators):
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def _minus(values, base):
    return [v - b for v, b in zip(values, base, strict=True)]


def seed_batch(count, rounds, progress):
    rng = np.random.default_rng(0)
    pool = _pool(lambda i: (rng.random((64, 2)), rng.random((64, 1))))
    same = pool[0]

    def variant(make):
        it = make()
        return lambda n: _time_next(it, n)

    variants = {
        "bare": variant(lambda: _cycle(pool)),
        "hand copy": variant(lambda: _hand_copy_pair(pool)),
        "check": variant(lambda: safegen.guard(_cycle(pool), mode="check")),
        "copy": variant(lambda: safegen.guard(_cycle(pool), mode="copy")),
        "freeze": variant(lambda: safegen.guard(_cycle(pool), mode="freeze")),
        "check, same arrays": variant(lambda: safegen.guard(_cycle([same]), mode="check")),
        "check, window 48": variant(
            lambda: safegen.guard(_cycle(_pool(lambda i: pool[i % POOL], 64)), window=48)
        ),
    }
    samples = measure(variants, count, rounds, progress)
    table = summarize(samples, baseline="bare")
    bare = samples["bare"]
    hand = _minus(samples["hand copy"], bare)
    targets = {
        "check overhead per yield, us (target <= 3)": table["check"]["overhead_median_us"],
        "copy overhead / hand-copy overhead (target <= 2)": _ratio(
            _minus(samples["copy"], bare), hand
        ),
        "copy per yield / hand-copy per yield": _ratio(samples["copy"], samples["hand copy"]),
    }
    return {
        "batch": "x (64, 2) + y (64, 1) float64, 1.5 KiB",
        "variants": table,
        "targets": targets,
    }


def large_batch(count, rounds, progress, shape):
    rng = np.random.default_rng(0)
    pool = _pool(lambda i: rng.random(shape, dtype=np.float32), size=POOL)
    nbytes = pool[0].nbytes

    def variant(make):
        it = make()
        return lambda n: _time_next(it, n)

    variants = {
        "bare": variant(lambda: _cycle(pool)),
        "np.copy (no generator)": lambda n: _time_np_copy(pool, n),
        "np.copy, one hot array": lambda n: _time_np_copy(pool[:1], n),
        "check, one hot array": variant(lambda: safegen.guard(_cycle(pool[:1]), mode="check")),
        "hand copy": variant(lambda: _hand_copy(pool)),
        "check": variant(lambda: safegen.guard(_cycle(pool), mode="check")),
        "copy": variant(lambda: safegen.guard(_cycle(pool), mode="copy")),
        "freeze": variant(lambda: safegen.guard(_cycle(pool), mode="freeze")),
    }
    samples = measure(variants, count, rounds, progress)
    table = summarize(samples, baseline="bare")
    bare = samples["bare"]
    np_copy = samples["np.copy (no generator)"]
    targets = {
        "check overhead / np.copy (target <= 0.6)": _ratio(_minus(samples["check"], bare), np_copy),
        "check / np.copy, one array hot in cache": _ratio(
            samples["check, one hot array"], samples["np.copy, one hot array"]
        ),
        "copy overhead / np.copy (target <= 1.10)": _ratio(_minus(samples["copy"], bare), np_copy),
        "np.copy bandwidth GB/s": nbytes / statistics.median(np_copy) / 1e9,
    }
    return {
        "batch": f"{shape} float32, {nbytes / 1e6:.1f} MB",
        "variants": table,
        "targets": targets,
    }


def _markdown(report):
    lines = [f"# Per-yield cost ({report['machine']})", ""]
    for section in report["sections"]:
        lines += [
            f"## {section['batch']}",
            "",
            "| variant | median µs | min µs | max µs | overhead vs bare, median µs |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in section["variants"].items():
            lines.append(
                f"| {name} | {row['median_us']:.3f} | {row['min_us']:.3f} | "
                f"{row['max_us']:.3f} | {row.get('overhead_median_us', 0):.3f} |"
            )
        lines += ["", "| target | median | min | max |", "|---|---:|---:|---:|"]
        for name, value in section["targets"].items():
            if isinstance(value, dict):
                lines.append(
                    f"| {name} | {value['median']:.2f} | {value['min']:.2f} | {value['max']:.2f} |"
                )
            else:
                lines.append(f"| {name} | {value:.2f} | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    rounds = 3 if args.quick else args.rounds
    small_count = 2_000 if args.quick else 50_000
    large_count = 2 if args.quick else 20
    shape = (4, 64, 64, 3) if args.quick else (32, 224, 224, 3)
    with tqdm(total=rounds * 15, desc="per_yield", file=sys.stderr) as progress:
        sections = [
            seed_batch(small_count, rounds, progress),
            large_batch(large_count, rounds, progress, shape),
        ]
    report = {
        "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}",
        "quick": args.quick,
        "rounds": rounds,
        "sections": sections,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"per_yield{suffix}.json").write_text(json.dumps(report, indent=2))
    markdown = _markdown(report)
    (args.out / f"per_yield{suffix}.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
