"""What safegen costs per yield, from 1.5 KiB to 100 MB batches, against same-run baselines.

Batches, one section each: the seed's (x (64, 2) float64 and y = ``np.expand_dims`` of
its row means, (64, 1), 1.5 KiB), then single float32 image batches of 64 KiB, 1 MiB,
19.3 MB (32x224x224x3) and 96 MB (160x224x224x3). In each section every variant is timed
over the same number of ``next()`` calls, the variants interleaved in random order within
each round, for several rounds; each figure is the median over rounds, with min and max.

The generators yield batches taken in turn from a pool of distinct, pre-made batches, so
that a batch costs nothing to make, is new to the check when it comes, and the figures
are safegen's own cost: 256 seed batches (so each yield is memory not touched for 255
yields, as in a real pipeline), 16 image batches (more than check mode's default window
of 12; at 19.3 MB the pool is 309 MB, far more than the caches). Variants:

* ``bare``: the generator alone (the baseline of every "overhead").
* ``check``, ``copy``, ``freeze``: the same generator under ``safegen.guard``.
* ``hand copy``: a generator that yields ``x.copy()`` (``(x.copy(), y.copy())`` for the
  seed), what a careful user writes instead of safegen's copy mode.
* ``copy.deepcopy``: a generator that yields ``copy.deepcopy(batch)``.
* ``tf.nest.map_structure(np.copy)``: a generator that yields
  ``tf.nest.map_structure(np.copy, batch)`` (full runs only, if TensorFlow is installed;
  it is imported lazily so that quick runs stay light).
* ``np.copy (no generator)``: ``np.copy`` of the same bytes with no generator at all, the
  memory-bandwidth yardstick.
* ``check, no lock`` and ``copy, no lock`` (seed batch only): the guarded generator
  without the per-generator lock that lets threads share it, to price that lock.

"Overhead" is a variant's time per ``next()`` minus the bare generator's in the same
round; ratios (overhead / ``np.copy``, copy / hand copy) are taken per round, paired, and
summarized as median [min, max]. The 19.3 MB section also times one hot array re-yielded
(it stays in cache) next to the pool of 16 cold ones.

"Background hashing" decides the size from which check mode hashes on its hashing thread
(``safegen._modes.check.BACKGROUND_ABOVE``): for batches of 256 KiB to 19.3 MB it times check
mode as shipped and with the hash made in place (the state's ``background`` switched
off), each with an idle consumer (``next()`` in a loop: nothing to overlap with) and
with a busy one (after each ``next()``, NumPy work on data of its own, releasing the GIL,
for twice the time an ``np.copy`` of the batch takes), against the bare generator with
the same consumer. A last section sweeps check mode's ``window`` (1, 12, 48, 192) on the
1 MiB batch, over a pool of 208 distinct batches so that every batch is new to the check
whatever the window.

Run: ``python benchmarks/per_yield.py`` (about 1 minute on the 2-core machine, 2 when it is
busy; ``--quick`` for a smoke run of a few seconds). Writes
``per_yield.json``, ``per_yield.md`` and the plot ``per_yield.png`` (overhead per
``next()`` against batch size, log-log, one line per mode and baseline; right panel:
check-mode overhead against the window) into ``--out`` (default ``benchmarks/results/``;
quick runs write ``per_yield_quick.*``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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
SEED_POOL = 256  # seed batches: each yield is memory not touched for 255 yields
WINDOWS = (1, 12, 48, 192)
TF_VARIANT = "tf.nest.map_structure(np.copy)"
# Lines of the plot: (variant, label).
PLOTTED = (
    ("check", "safegen check"),
    ("copy", "safegen copy"),
    ("freeze", "safegen freeze"),
    ("hand copy", "hand copy (x.copy())"),
    ("copy.deepcopy", "copy.deepcopy"),
    (TF_VARIANT, TF_VARIANT),
    ("np.copy (no generator)", "np.copy, no generator"),
)

# name, shape: the batches of the background-hashing section
BACKGROUND_SIZES = (
    ("256 KiB", (4, 128, 128, 1)),
    ("1 MiB", (16, 128, 128, 1)),
    ("4 MiB", (16, 256, 256, 1)),
    ("19.3 MB", (32, 224, 224, 3)),
)
QUICK_BACKGROUND_SIZES = (("256 KiB", (4, 128, 128, 1)), ("1.6 MB", (8, 128, 128, 3)))

# name, shape, calls per round (full run), calls per round (quick run)
FULL_SIZES = (
    ("64 KiB", (4, 64, 64, 1), 5_000),
    ("1 MiB", (16, 128, 128, 1), 400),
    ("19.3 MB", (32, 224, 224, 3), 40),
    ("96 MB", (160, 224, 224, 3), 6),
)
QUICK_SIZES = (
    ("64 KiB", (4, 64, 64, 1), 200),
    ("1 MiB", (16, 128, 128, 1), 20),
    ("19.3 MB (quick: 1.6 MB)", (8, 128, 128, 3), 4),
    ("96 MB (quick: 3.1 MB)", (16, 128, 128, 3), 2),
)


def _pool(make, size=POOL):
    return [make(i) for i in range(size)]


def _distinct(shape, size):
    """``size`` distinct float32 arrays of ``shape``: one random array, then cheap copies."""
    first = np.random.default_rng(0).random(shape, dtype=np.float32)
    pool = [first]
    for i in range(1, size):
        other = first.copy()
        other.flat[::4099] += i  # distinct contents, not only distinct memory
        pool.append(other)
    return pool


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


def _deepcopy(pool):
    while True:
        for batch in pool:
            yield copy.deepcopy(batch)


def _map_structure(pool, tf):
    map_structure = tf.nest.map_structure
    while True:
        for batch in pool:
            yield map_structure(np.copy, batch)


def _time_next(it, count):
    advance = it.__next__
    start = time.perf_counter()
    for _ in range(count):
        advance()
    return (time.perf_counter() - start) / count


def _time_np_copy(pool, count):
    start = time.perf_counter()
    for i in range(count):
        batch = pool[i % len(pool)]
        if isinstance(batch, tuple):
            for array in batch:
                np.copy(array)
        else:
            np.copy(batch)
    return (time.perf_counter() - start) / count


def _variant(make):
    it = make()
    return lambda n: _time_next(it, n)


def _unlocked(make):
    """Time a guarded generator with its lock's calls replaced by a no-op (``int``, a
    C call of about the same cost as an empty function): the price of the lock."""
    from safegen._handle import handle_of

    guarded = make()
    handle = handle_of(guarded)
    handle.acquire = handle.unlock = int
    return lambda n: _time_next(guarded, n)


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


def _spread(values, scale=1.0):
    return {
        "median": statistics.median(values) * scale,
        "min": min(values) * scale,
        "max": max(values) * scale,
    }


def _ratio(numerators, denominators):
    return _spread([n / d for n, d in zip(numerators, denominators, strict=True)])


def _minus(values, base):
    return [v - b for v, b in zip(values, base, strict=True)]


def _target(value, limit):
    value = dict(value)
    value["target"] = limit
    value["met"] = value["median"] <= limit
    return value


def _copy_baselines(pool, tf, pair=False):
    variants = {
        "hand copy": _variant(lambda: (_hand_copy_pair if pair else _hand_copy)(pool)),
        "copy.deepcopy": _variant(lambda: _deepcopy(pool)),
        "np.copy (no generator)": lambda n: _time_np_copy(pool, n),
    }
    if tf is not None:
        variants[TF_VARIANT] = _variant(lambda: _map_structure(pool, tf))
    return variants


def _modes(pool):
    return {
        mode: _variant(lambda mode=mode: safegen.guard(_cycle(pool), mode=mode))
        for mode in ("check", "copy", "freeze")
    }


def _np_copy_ratios(samples):
    """Each variant's overhead as a multiple of ``np.copy`` of the same bytes, per round."""
    bare = samples["bare"]
    np_copy = samples["np.copy (no generator)"]
    return {
        name: _ratio(_minus(values, bare), np_copy)
        for name, values in samples.items()
        if name not in ("bare", "np.copy (no generator)")
    }


def _seed(rng):
    """One seed batch: x, and y the row means as the seed's generator makes it (a view)."""
    x = rng.integers(0, 100, (64, 2)).astype(np.float64)
    return x, np.expand_dims((x[:, 0] + x[:, 1]) / 2, -1)


def seed_batch(count, rounds, progress, tf):
    rng = np.random.default_rng(0)
    pool = _pool(lambda i: _seed(rng), SEED_POOL)
    same = pool[0]
    variants = {
        "bare": _variant(lambda: _cycle(pool)),
        **_modes(pool),
        **_copy_baselines(pool, tf, pair=True),
        "check, same arrays": _variant(lambda: safegen.guard(_cycle([same]), mode="check")),
        # The guarded generator without the lock that makes it thread-safe: its handle's
        # step, called directly (not something a user can get).
        "check, no lock": _unlocked(lambda: safegen.guard(_cycle(pool))),
        "copy, no lock": _unlocked(lambda: safegen.guard(_cycle(pool), mode="copy")),
        "check, window 48": _variant(lambda: safegen.guard(_cycle(pool), window=48)),
    }
    samples = measure(variants, count, rounds, progress)
    table = summarize(samples, baseline="bare")
    bare = samples["bare"]
    hand = _minus(samples["hand copy"], bare)
    targets = {
        "check overhead per yield, us (target <= 3)": _target(
            _spread(_minus(samples["check"], bare), 1e6), 3.0
        ),
        "copy overhead / hand-copy overhead (target <= 2)": _target(
            _ratio(_minus(samples["copy"], bare), hand), 2.0
        ),
        "copy per yield / hand-copy per yield": _ratio(samples["copy"], samples["hand copy"]),
        "thread-safety lock per yield, check, us (check - check without the lock)": _spread(
            _minus(samples["check"], samples["check, no lock"]), 1e6
        ),
        "thread-safety lock per yield, copy, us (copy - copy without the lock)": _spread(
            _minus(samples["copy"], samples["copy, no lock"]), 1e6
        ),
    }
    return {
        "batch": f"x (64, 2) + y (64, 1) float64, 1.5 KiB, pool of {SEED_POOL} batches",
        "name": "seed",
        "nbytes": sum(a.nbytes for a in same),
        "variants": table,
        "overhead_vs_np_copy": _np_copy_ratios(samples),
        "targets": targets,
    }


def image_batch(name, shape, count, rounds, progress, tf, hot=False):
    pool = _distinct(shape, POOL)
    nbytes = pool[0].nbytes
    variants = {
        "bare": _variant(lambda: _cycle(pool)),
        **_modes(pool),
        **_copy_baselines(pool, tf),
    }
    if hot:
        variants["np.copy, one hot array"] = lambda n: _time_np_copy(pool[:1], n)
        variants["check, one hot array"] = _variant(
            lambda: safegen.guard(_cycle(pool[:1]), mode="check")
        )
    samples = measure(variants, count, rounds, progress)
    table = summarize(samples, baseline="bare")
    bare = samples["bare"]
    np_copy = samples["np.copy (no generator)"]
    targets = {"np.copy bandwidth GB/s": nbytes / statistics.median(np_copy) / 1e9}
    if hot:
        targets = {
            "check overhead / np.copy (target <= 0.6)": _target(
                _ratio(_minus(samples["check"], bare), np_copy), 0.6
            ),
            "check / np.copy, one array hot in cache": _ratio(
                samples["check, one hot array"], samples["np.copy, one hot array"]
            ),
            "copy overhead / np.copy (target <= 1.10)": _target(
                _ratio(_minus(samples["copy"], bare), np_copy), 1.10
            ),
            **targets,
        }
    return {
        "batch": f"{name}: {shape} float32, {nbytes / 1e6:.3g} MB",
        "name": name,
        "nbytes": nbytes,
        "variants": table,
        "overhead_vs_np_copy": _np_copy_ratios(samples),
        "targets": targets,
    }


class Busy:
    """A consumer's work after each ``next()``: NumPy calls on 1 MiB of data of its own, for
    about ``seconds`` in all, each of which releases the GIL for its whole duration (as a
    compiled training step does)."""

    def __init__(self, seconds):
        self.data = np.random.default_rng(1).random(1 << 18, dtype=np.float32)
        self.out = np.empty_like(self.data)
        unit = self._unit()
        if seconds < unit:  # one call on fewer elements
            size = max(1 << 10, int(self.data.size * seconds / unit))
            self.data = self.data[:size].copy()
            self.out = self.out[:size].copy()
            unit = self._unit()
        self.repeats = max(1, round(seconds / unit))
        self.seconds = self.repeats * unit

    def _unit(self):
        times = []
        for _ in range(7):
            start = time.perf_counter()
            np.sin(self.data, out=self.out)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def __call__(self):
        for _ in range(self.repeats):
            np.sin(self.data, out=self.out)


def _time_busy(it, count, busy):
    advance = it.__next__
    start = time.perf_counter()
    for _ in range(count):
        advance()
        busy()
    return (time.perf_counter() - start) / count


def _in_place(pool):
    """Check mode with the hash made in place, for comparison (not a public switch)."""
    from safegen._handle import handle_of

    guarded = safegen.guard(_cycle(pool), mode="check")
    handle_of(guarded).mode.background = False
    return guarded


def _always_background(pool):
    """Check mode handing every array above 128 KiB to the thread, whatever its size."""
    from safegen._handle import handle_of

    guarded = safegen.guard(_cycle(pool), mode="check")
    handle_of(guarded).mode.background_above = 0
    return guarded


def background(name, shape, rounds, progress, quick):
    """Check mode with and without the background hash, idle and busy consumers."""
    pool = _distinct(shape, POOL)
    nbytes = pool[0].nbytes
    copy_time = min(_time_np_copy(pool, 2 * POOL) for _ in range(3))
    busy = Busy(2 * copy_time)
    count = max(4, round((0.004 if quick else 0.03) / (3 * copy_time)))
    makers = {
        "bare": lambda: _cycle(pool),
        "check": lambda: safegen.guard(_cycle(pool), mode="check"),
        "check, hash in place": lambda: _in_place(pool),
        "check, hash in background": lambda: _always_background(pool),
    }
    variants = {}
    for label, make in makers.items():
        variants[f"{label}, idle consumer"] = _variant(make)
        it = make()
        variants[f"{label}, busy consumer"] = lambda n, it=it: _time_busy(it, n, busy)
    variants["np.copy (no generator)"] = lambda n: _time_np_copy(pool, n)
    samples = measure(variants, count, rounds, progress)
    out = {}
    for consumer in ("idle", "busy"):
        base = samples[f"bare, {consumer} consumer"]
        for label in ("check", "check, hash in place", "check, hash in background"):
            values = samples[f"{label}, {consumer} consumer"]
            out[f"{label}, {consumer} consumer"] = _spread(_minus(values, base), 1e6)
    table = summarize(samples)
    for key, value in out.items():
        row = table[key]
        row["overhead_median_us"] = value["median"]
        row["overhead_min_us"] = value["min"]
        row["overhead_max_us"] = value["max"]
    for consumer in ("idle", "busy"):
        row = table[f"bare, {consumer} consumer"]
        row["overhead_median_us"] = row["overhead_min_us"] = row["overhead_max_us"] = 0.0
    np_copy = samples["np.copy (no generator)"]
    table["np.copy (no generator)"].update(
        overhead_median_us=table["np.copy (no generator)"]["median_us"],
        overhead_min_us=table["np.copy (no generator)"]["min_us"],
        overhead_max_us=table["np.copy (no generator)"]["max_us"],
    )
    targets = {}
    for consumer in ("idle", "busy"):
        base = samples[f"bare, {consumer} consumer"]
        over = _minus(samples[f"check, {consumer} consumer"], base)
        in_place = _minus(samples[f"check, hash in place, {consumer} consumer"], base)
        thread = _minus(samples[f"check, hash in background, {consumer} consumer"], base)
        ratio = _ratio(over, np_copy)
        if name.startswith("19.3"):
            ratio = _target(ratio, 0.6)
        targets[f"check overhead / np.copy, {consumer} consumer"] = ratio
        targets[f"check overhead / in-place hash overhead, {consumer} consumer"] = _ratio(
            over, in_place
        )
        targets[f"background-hash overhead / in-place hash overhead, {consumer} consumer"] = _ratio(
            thread, in_place
        )
    return {
        "batch": f"background hashing, {name}: {shape} float32, {nbytes / 1e6:.3g} MB; "
        f"busy consumer: {busy.repeats} x np.sin on {busy.data.nbytes / 1024:.0f} KiB "
        f"(about {busy.seconds * 1e6:.0f} us)",
        "name": f"background {name}",
        "nbytes": nbytes,
        "variants": table,
        "overhead_vs_np_copy": {},
        "targets": targets,
    }


def window_sweep(shape, count, rounds, progress):
    pool = _distinct(shape, max(WINDOWS) + POOL)
    nbytes = pool[0].nbytes
    variants = {"bare": _variant(lambda: _cycle(pool))}
    for window in WINDOWS:
        variants[f"check, window {window}"] = _variant(
            lambda window=window: safegen.guard(_cycle(pool), mode="check", window=window)
        )
    variants["np.copy (no generator)"] = lambda n: _time_np_copy(pool, n)
    samples = measure(variants, count, rounds, progress)
    table = summarize(samples, baseline="bare")
    base = samples["check, window 12"]
    targets = {
        f"check, window {w} / window 12": _ratio(samples[f"check, window {w}"], base)
        for w in WINDOWS
        if w != 12
    }
    return {
        "batch": f"window sweep: {shape} float32, {nbytes / 1e6:.3g} MB, "
        f"pool of {len(pool)} distinct batches",
        "name": "window sweep",
        "nbytes": nbytes,
        "windows": list(WINDOWS),
        "variants": table,
        "overhead_vs_np_copy": _np_copy_ratios(samples),
        "targets": targets,
    }


def _fmt(value):
    if isinstance(value, dict):
        met = "" if "met" not in value else (" yes" if value["met"] else " **no**")
        return f"{value['median']:.2f} | {value['min']:.2f} | {value['max']:.2f} |{met}"
    return f"{value:.2f} | | |"


def _load(values):
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def _by_size(report):
    """The sections of the batch-size ladder (not the background and window sections)."""
    return [
        s
        for s in report["sections"]
        if s["name"] != "window sweep" and not s["name"].startswith("background")
    ]


def _markdown(report):
    lines = [f"# Per-yield cost ({report['machine']})", ""]
    lines += [
        f"{report['rounds']} interleaved rounds{' (quick run)' if report['quick'] else ''}. "
        "Overhead = the variant's time per `next()` minus the bare generator's, same round. "
        f"{report['note'] + ' ' if report['note'] else ''}Load average (1, 5, 15 min) at the start "
        f"{_load(report['load_average']['start'])}, at the end "
        f"{_load(report['load_average']['end'])}.",
        "",
        "## Overhead per `next()` by batch size (median µs)",
        "",
    ]
    sizes = _by_size(report)
    names = [name for name, _ in PLOTTED if name in sizes[0]["variants"]]
    lines += [
        "| batch | bytes | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for section in sizes:
        cells = [f"{section['variants'][n]['overhead_median_us']:.3g}" for n in names]
        lines.append(f"| {section['name']} | {section['nbytes']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Overhead as a multiple of `np.copy` of the same bytes (per-round median)",
        "",
        "| batch | " + " | ".join(n for n in names if n != "np.copy (no generator)") + " |",
        "|---|" + "---:|" * (len(names) - 1),
    ]
    for section in sizes:
        ratios = section["overhead_vs_np_copy"]
        cells = [f"{ratios[n]['median']:.3g}" for n in names if n != "np.copy (no generator)"]
        lines.append(f"| {section['name']} | " + " | ".join(cells) + " |")
    background = [s for s in report["sections"] if s["name"].startswith("background")]
    if background:
        lines += [
            "",
            "## Background hashing: check-mode overhead per `next()` (median µs)",
            "",
            "Check mode as shipped (in the background from `BACKGROUND_ABOVE`, in place "
            "for a while after the thread failed 3 times in a row to take the hash off "
            "the consumer's path), with every hash made in place, "
            "and with every hash handed to the thread whatever the size; the consumer idle "
            "(`next()` in a loop) or busy (NumPy work for twice an `np.copy` of the batch "
            "after each `next()`). Overhead against the bare generator with the same consumer.",
            "",
            "| batch | bytes | idle: as shipped | idle: in place | idle: in background "
            "| busy: as shipped | busy: in place | busy: in background "
            "| in background / in place, idle | same, busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for section in background:
            v = section["variants"]
            cells = [
                f"{v[f'{label}, {consumer} consumer']['overhead_median_us']:.3g}"
                for consumer in ("idle", "busy")
                for label in ("check", "check, hash in place", "check, hash in background")
            ]
            cells += [
                f"{section['targets'][key]['median']:.2f}"
                for key in (
                    "background-hash overhead / in-place hash overhead, idle consumer",
                    "background-hash overhead / in-place hash overhead, busy consumer",
                )
            ]
            lines.append(
                f"| {section['name'][len('background ') :]} | {section['nbytes']:,} | "
                + " | ".join(cells)
                + " |"
            )
    lines.append("")
    for section in report["sections"]:
        lines += [
            f"## {section['batch']}",
            "",
            "| variant | median µs | min µs | max µs | overhead vs bare, median µs [min, max] |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in section["variants"].items():
            lines.append(
                f"| {name} | {row['median_us']:.3f} | {row['min_us']:.3f} | "
                f"{row['max_us']:.3f} | {row['overhead_median_us']:.3f} "
                f"[{row['overhead_min_us']:.3f}, {row['overhead_max_us']:.3f}] |"
            )
        lines += ["", "| target | median | min | max | met? |", "|---|---:|---:|---:|---|"]
        for name, value in section["targets"].items():
            lines.append(f"| {name} | {_fmt(value)}")
        lines.append("")
    return "\n".join(lines)


def plot(report, path):
    """Overhead against batch size (log-log) and check overhead against the window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = _by_size(report)
    sweep = [s for s in report["sections"] if s["name"] == "window sweep"]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2, 1]}, constrained_layout=True
    )
    for name, label in PLOTTED:
        points = [
            (s["nbytes"], s["variants"][name]["overhead_median_us"])
            for s in sizes
            if name in s["variants"] and s["variants"][name]["overhead_median_us"] > 0
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            style = "-o" if name in ("check", "copy", "freeze") else "--s"
            left.plot(xs, ys, style, label=label, markersize=4)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("batch size, bytes")
    left.set_ylabel("overhead per next() over the bare generator, µs (median)")
    left.set_title("Cost per yield against batch size")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    if sweep:
        section = sweep[0]
        windows = section["windows"]
        rows = [section["variants"][f"check, window {w}"] for w in windows]
        med = [r["overhead_median_us"] for r in rows]
        lo = [m - r["overhead_min_us"] for m, r in zip(med, rows, strict=True)]
        hi = [r["overhead_max_us"] - m for m, r in zip(med, rows, strict=True)]
        right.errorbar(windows, med, yerr=[lo, hi], fmt="-o", capsize=3, label="check")
        copy_us = section["variants"]["np.copy (no generator)"]["median_us"]
        right.axhline(copy_us, color="grey", linestyle="--", label="np.copy, same bytes")
        right.set_xscale("log")
        right.set_xticks(windows, [str(w) for w in windows])
        right.set_ylim(bottom=0)
        right.set_xlabel("check window (yields)")
        right.set_ylabel("overhead per next(), µs (median, min-max bars)")
        right.set_title(f"Check mode vs window, {section['nbytes'] / 2**20:.3g} MiB batch")
        right.grid(True, alpha=0.3)
        right.legend(fontsize=8)
    fig.suptitle(f"safegen per-yield cost ({report['rounds']} rounds, {report['machine']})")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tensorflow(quick):
    """TensorFlow for the map_structure baseline: full runs only, if installed."""
    if quick:
        return None
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
    except ImportError:
        return None
    return tf


# The variants --root compares across checkouts: public API only, so that any commit runs.
COMPARED = ("bare", "check", "copy", "hand copy")


def seed_only(count, rounds):
    """The seed batch's compared variants in this process: {name: [per-call seconds]}."""
    rng = np.random.default_rng(0)
    pool = _pool(lambda i: _seed(rng), SEED_POOL)
    variants = {
        "bare": _variant(lambda: _cycle(pool)),
        "check": _variant(lambda: safegen.guard(_cycle(pool), mode="check")),
        "copy": _variant(lambda: safegen.guard(_cycle(pool), mode="copy")),
        "hand copy": _variant(lambda: _hand_copy_pair(pool)),
    }

    class _Quiet:
        def update(self, n):
            pass

    return measure(variants, count, rounds, _Quiet())


def compare_roots(roots, rounds, count, inner):
    """Run the seed section of each checkout in ``roots`` in its own process, the
    checkouts in random order in every round; returns {root: {variant: [overhead per
    round, us]}} (each figure is one process's median over ``inner`` rounds)."""
    import subprocess

    figures = {root: {name: [] for name in COMPARED if name != "bare"} for root in roots}
    raw = {root: {name: [] for name in COMPARED} for root in roots}
    order = list(roots)
    for number in range(rounds):
        random.shuffle(order)
        for root in order:
            env = {**os.environ, "PYTHONPATH": str(root)}
            output = subprocess.run(
                [sys.executable, __file__, "--seed-only", str(count), str(inner)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                cwd=root,
            ).stdout
            samples = json.loads(output)
            where = samples.pop("safegen")
            if not where.startswith(str(root)):
                raise RuntimeError(f"{root}: the process imported safegen from {where}")
            medians = {name: statistics.median(values) for name, values in samples.items()}
            for name in COMPARED:
                raw[root][name].append(medians[name] * 1e6)
                if name != "bare":
                    figures[root][name].append((medians[name] - medians["bare"]) * 1e6)
        print(f"round {number + 1}/{rounds} done", file=sys.stderr)
    return figures, raw


def _label(root, this):
    """``root``'s commit, for the table (``this checkout`` for the one running)."""
    import subprocess

    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{'this checkout' if root == this else Path(root).name} ({commit or '?'})"


def _compare_markdown(figures, raw, loads):
    lines = [
        "| checkout | check overhead, us | copy overhead, us | hand copy overhead, us "
        "| bare next(), us |",
        "|---|---|---|---|---|",
    ]

    def cell(values):
        return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"

    for root, per in figures.items():
        lines.append(
            f"| {root} | {cell(per['check'])} | {cell(per['copy'])} | "
            f"{cell(per['hand copy'])} | {cell(raw[root]['bare'])} |"
        )
    lines.append("")
    lines.append(
        "Seed batch (x (64, 2) + y (64, 1) float64), median [min, max] over processes; "
        f"load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end."
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--seed-only"]:  # one process of a --root comparison
        count, inner = int(argv[1]), int(argv[2])
        print(json.dumps({**seed_only(count, inner), "safegen": safegen.__file__}))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        action="append",
        type=Path,
        default=[],
        help="another checkout to compare with this one on the seed batch (repeatable): "
        "each round runs the seed batch's check, copy and hand copy in one process per "
        "checkout (its safegen on PYTHONPATH), the checkouts in random order",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--note", default="", help="a sentence on the conditions, stored with the results"
    )
    args = parser.parse_args(argv)
    if args.root:
        roots = [Path(__file__).resolve().parent.parent, *(r.resolve() for r in args.root)]
        load_start = os.getloadavg()[0]
        count, inner = (1_000, 1) if args.quick else (20_000, 5)
        figures, raw = compare_roots(roots, args.rounds or (2 if args.quick else 15), count, inner)
        labels = {root: _label(root, roots[0]) for root in roots}
        figures = {labels[root]: per for root, per in figures.items()}
        raw = {labels[root]: per for root, per in raw.items()}
        report = {
            "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, NumPy {np.__version__}",
            "note": args.note,
            "load_average": {"start": load_start, "end": os.getloadavg()[0]},
            "overhead_us": {str(root): per for root, per in figures.items()},
            "per_call_us": {str(root): per for root, per in raw.items()},
        }
        markdown = _compare_markdown(
            {str(k): v for k, v in figures.items()},
            {str(k): v for k, v in raw.items()},
            (load_start, os.getloadavg()[0]),
        )
        args.out.mkdir(parents=True, exist_ok=True)
        name = "per_yield_roots_quick" if args.quick else "per_yield_roots"
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(markdown)
        print(markdown)
        return 0
    from tqdm import tqdm

    load_start = os.getloadavg()
    rounds = args.rounds or (3 if args.quick else 21)
    tf = _tensorflow(args.quick)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    seed_count = 1_000 if args.quick else 20_000
    sweep_count = 20 if args.quick else 300
    background_sizes = QUICK_BACKGROUND_SIZES if args.quick else BACKGROUND_SIZES
    extra = 0 if tf is None else 1
    total = rounds * (
        (9 + extra)
        + sum(7 + extra + (2 if "19.3" in s[0] else 0) for s in sizes)
        + 9 * len(background_sizes)
        + 6
    )
    with tqdm(total=total, desc="per_yield", unit="timing", file=sys.stderr) as progress:
        sections = [seed_batch(seed_count, rounds, progress, tf)]
        for name, shape, count in sizes:
            hot = name.startswith("19.3")
            sections.append(image_batch(name, shape, count, rounds, progress, tf, hot=hot))
        for name, shape in background_sizes:
            sections.append(background(name, shape, rounds, progress, args.quick))
        sections.append(window_sweep(sizes[1][1], sweep_count, rounds, progress))
    report = {
        "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}",
        "quick": args.quick,
        "rounds": rounds,
        "note": args.note,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "tensorflow": None if tf is None else tf.__version__,
        "sections": sections,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"per_yield{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (args.out / f"per_yield{suffix}.md").write_text(markdown)
    plot(report, args.out / f"per_yield{suffix}.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
