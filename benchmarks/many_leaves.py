"""Check mode's cost per yield against the number of leaves: views of one array vs arrays.

A sequence or time-series pipeline yields a batch that is a list of row views of one big
array; another yields a list of arrays of its own. Both yield N leaves of the same size
(a (32, 8) float32 row, 1 KiB), for N from 32 to 1024. Check mode has to find, for each
new leaf, the watched arrays of earlier yields whose memory it overlaps; for views of one
array that lookup is where a scan of every watched record of the same owner made the cost
grow with N times the window (1.4 ms per yield with 32 rows, 96 ms with 256, before the
address index of ``_Owner`` in ``safegen/_modes/check.py``).

The generators cycle through a pool of 16 pre-made batches (more than the default window
of 12), so producing a batch costs nothing and every batch is new to the check. For the
views variant the 16 batches are consecutive blocks of rows of one array of 16 * N rows.
Variants, interleaved in random order within each round: ``bare views`` and ``bare
arrays`` (the generators alone), ``check views`` and ``check arrays`` (under
``safegen.guard``). "Overhead" is a check variant's time per ``next()`` minus its bare
generator's in the same round; the headline ratio is views' overhead over arrays', per
round, summarized as median [min, max] (target: at most 2). Times are CPU time of this
process (``time.process_time``), which the other processes of a shared machine inflate
less than wall time; the work measured is single-threaded. Linear growth shows as an
overhead per leaf that grows from 32 to 1024 leaves no faster than the independent
arrays' (target: at most 1.5 times as fast); both grow somewhat, since both variants
hash the same bytes and the pool outgrows the caches (0.5 MiB at 32 leaves, 16 MiB at
1024).

Run: ``python benchmarks/many_leaves.py`` (about a minute; ``--quick`` for a smoke run of
a few seconds). Writes ``many_leaves.json`` and ``many_leaves.md`` into ``--out`` (default
``benchmarks/results/``; quick runs write ``many_leaves_quick.*``).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working tree's safegen

import safegen  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
POOL = 16  # more distinct batches than check mode's default window of 12
ROW = (32, 8)  # one leaf: 32 time steps of 8 float32 features, 1 KiB
LEAVES = (32, 64, 128, 256, 512, 1024)
QUICK_LEAVES = (32, 128, 512)
RATIO_TARGET = 2.0
GROWTH_TARGET = 1.5


def _views_pool(leaves):
    """16 batches, each a list of ``leaves`` row views of one shared array."""
    rng = np.random.default_rng(0)
    data = rng.random((POOL * leaves, *ROW), dtype=np.float32)
    return [[data[b * leaves + i] for i in range(leaves)] for b in range(POOL)]


def _arrays_pool(leaves):
    """16 batches, each a list of ``leaves`` arrays that own their memory."""
    rng = np.random.default_rng(0)
    return [[rng.random(ROW, dtype=np.float32) for _ in range(leaves)] for _ in range(POOL)]


def _cycle(pool):
    while True:
        yield from pool


def _timer(it):
    advance = it.__next__

    def run(count):
        start = time.process_time()
        for _ in range(count):
            advance()
        return (time.process_time() - start) / count

    return run


def measure(leaves, count, rounds, progress):
    """Seconds per ``next()`` of each variant: {name: [one figure per round]}."""
    views, arrays = _views_pool(leaves), _arrays_pool(leaves)
    variants = {
        "bare views": _timer(_cycle(views)),
        "bare arrays": _timer(_cycle(arrays)),
        "check views": _timer(safegen.guard(_cycle(views))),
        "check arrays": _timer(safegen.guard(_cycle(arrays))),
    }
    names = list(variants)
    for name in names:  # warm up: fill the window
        variants[name](2 * POOL)
    results = {name: [] for name in names}
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            results[name].append(variants[name](count))
            progress.update(1)
    return results


def _spread(values, scale=1.0):
    return {
        "median": statistics.median(values) * scale,
        "min": min(values) * scale,
        "max": max(values) * scale,
    }


def section(leaves, count, rounds, progress):
    samples = measure(leaves, count, rounds, progress)
    over_views = [c - b for c, b in zip(samples["check views"], samples["bare views"], strict=True)]
    over_arrays = [
        c - b for c, b in zip(samples["check arrays"], samples["bare arrays"], strict=True)
    ]
    return {
        "leaves": leaves,
        "leaf_nbytes": int(np.prod(ROW)) * 4,
        "calls_per_round": count,
        "us_per_next": {name: _spread(values, 1e6) for name, values in samples.items()},
        "overhead_us": {"views": _spread(over_views, 1e6), "arrays": _spread(over_arrays, 1e6)},
        "overhead_per_leaf_us": {
            "views": _spread(over_views, 1e6 / leaves),
            "arrays": _spread(over_arrays, 1e6 / leaves),
        },
        "views_over_arrays": _spread([v / a for v, a in zip(over_views, over_arrays, strict=True)]),
    }


def _targets(sections):
    """Views at most 2x arrays at every leaf count; linear growth: views' per-leaf
    overhead grows from the fewest to the most leaves no faster than 1.5x what the
    arrays' does (both move the same bytes, so the arrays' growth is what memory alone
    costs as the pool outgrows the caches)."""
    first, last = sections[0], sections[-1]
    targets = {}
    for entry in sections:
        ratio = entry["views_over_arrays"]
        targets[f"views / arrays, {entry['leaves']} leaves"] = {
            **ratio,
            "target": RATIO_TARGET,
            "met": ratio["median"] <= RATIO_TARGET,
        }
    growth = {}
    for kind in ("views", "arrays"):
        growth[kind] = (
            last["overhead_per_leaf_us"][kind]["median"]
            / first["overhead_per_leaf_us"][kind]["median"]
        )
        targets[f"{kind}: per-leaf overhead, {last['leaves']} / {first['leaves']} leaves"] = {
            "median": growth[kind],
            "target": None,
            "met": None,
        }
    relative = growth["views"] / growth["arrays"]
    targets["views' per-leaf growth / arrays' per-leaf growth"] = {
        "median": relative,
        "target": GROWTH_TARGET,
        "met": relative <= GROWTH_TARGET,
    }
    return targets


def _fmt(spread, digits=1):
    return f"{spread['median']:.{digits}f} [{spread['min']:.{digits}f}, {spread['max']:.{digits}f}]"


def _markdown(report):
    lines = [
        "# Check mode against the number of leaves: views of one array vs arrays",
        "",
        f"{report['machine']}; {report['rounds']} rounds, variants interleaved; "
        "median [min, max] over rounds. Each leaf is a (32, 8) float32 row (1 KiB); a "
        "pool of 16 batches is cycled.",
        "",
        "| leaves | check overhead, views (µs) | check overhead, arrays (µs) | "
        "per leaf, views (µs) | per leaf, arrays (µs) | views / arrays |",
        "|---|---|---|---|---|---|",
    ]
    for entry in report["sections"]:
        over, per = entry["overhead_us"], entry["overhead_per_leaf_us"]
        lines.append(
            f"| {entry['leaves']} | {_fmt(over['views'])} | {_fmt(over['arrays'])} | "
            f"{_fmt(per['views'], 2)} | {_fmt(per['arrays'], 2)} | "
            f"{_fmt(entry['views_over_arrays'], 2)} |"
        )
    lines += ["", "## Targets", "", "| what | value | target | met? |", "|---|---|---|---|"]
    for name, target in report["targets"].items():
        if target["target"] is None:
            lines.append(f"| {name} | {target['median']:.2f} | | |")
            continue
        lines.append(
            f"| {name} | {target['median']:.2f} | ≤ {target['target']} | "
            f"{'yes' if target['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    rounds = args.rounds or (3 if args.quick else 15)
    sizes = QUICK_LEAVES if args.quick else LEAVES
    # About the same number of leaves per timing whatever the batch: 4096 (quick: 512).
    budget = 512 if args.quick else 8192
    with tqdm(total=rounds * 4 * len(sizes), desc="many_leaves", file=sys.stderr) as progress:
        sections = [
            section(leaves, max(POOL, budget // leaves), rounds, progress) for leaves in sizes
        ]
    report = {
        "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}",
        "quick": args.quick,
        "rounds": rounds,
        "sections": sections,
        "targets": _targets(sections),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"many_leaves{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (args.out / f"many_leaves{suffix}.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
