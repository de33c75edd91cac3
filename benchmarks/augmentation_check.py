"""The frozen-augmentation check's cost per fit, against a bare short fit; and which random
ops repeat every epoch on the TensorFlow installed.

**Cost.** The check (``safegen.integrations._augmentation.check``) reads the graph of the
tf.data pipeline given to ``fit``: once per dataset object (``first fit``: the pipeline
walked, each map's function graph read), then from a per-dataset memo (``fit again``).
Each is timed directly on a ``Call`` like the one ``fit`` makes, for three pipelines,
correct ones (nothing reported):

* ``small``: ``from_tensor_slices -> cache -> map(flip + noise) -> batch -> prefetch``;
* ``keras layers``: ``... -> batch -> map(RandomFlip, RandomRotation, RandomZoom,
  RandomContrast)``, Keras 3 preprocessing layers (larger graphs);
* ``tutorial``: the TensorFlow segmentation tutorial's pipeline, fixed
  (tensorflow/docs#1097): load and resize, cache, flip, shuffle, batch, repeat, prefetch.

The baseline is a bare short fit, measured in the same round: Keras 3 ``fit`` of
``Flatten -> Dense(1)`` on 16 images of 4x4 (4 steps, 1 epoch, graph mode, traced
before), without safegen. Each round times every variant once in a new random order;
each check's time is divided by the same round's bare fit: median, min and max.

**Repeats.** Two passes over each pipeline (two iterators, as two epochs of ``fit``
make), with and without ``keras.utils.set_random_seed(1)``: whether the second pass
repeats the first's values. What the check's rules rest on.

Usage::

    python benchmarks/augmentation_check.py            # 200 rounds, 5 to 20 minutes
    python benchmarks/augmentation_check.py --quick    # smoke run, about a minute

Writes ``augmentation_check.json`` and ``.md`` into ``--out`` (default
``benchmarks/results/``; quick runs write ``augmentation_check_quick.*``).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import RESULTS, environment, load_average, spread, write_results  # noqa: E402

from safegen.integrations import _augmentation  # noqa: E402
from safegen.integrations._calls import Call, handling_for  # noqa: E402

IMAGES = np.random.default_rng(0).random((16, 4, 4, 1)).astype(np.float32)
LABELS = np.zeros((16, 1), np.float32)


def augment(x: Any, y: Any) -> Any:
    x = tf.image.random_flip_left_right(x)
    return x + tf.random.uniform(tf.shape(x), maxval=0.1), y


def small() -> Any:
    base = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))
    return base.cache().map(augment).batch(4).prefetch(2)


def keras_layers() -> Any:
    layers = [
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.1),
        keras.layers.RandomZoom(0.1),
        keras.layers.RandomContrast(0.1),
    ]

    def apply(x: Any, y: Any) -> Any:
        for layer in layers:
            x = layer(x)
        return x, y

    base = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).cache()
    return base.batch(4).map(apply).prefetch(2)


def tutorial() -> Any:
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3)).astype(np.uint8)
    masks = np.random.default_rng(1).integers(1, 4, (8, 16, 16, 1)).astype(np.uint8)
    data = tf.data.Dataset.from_tensor_slices({"image": images, "segmentation_mask": masks})

    def load_resize(datapoint: Any) -> Any:
        image = tf.cast(tf.image.resize(datapoint["image"], (8, 8)), tf.float32) / 255.0
        return image, tf.image.resize(datapoint["segmentation_mask"], (8, 8)) - 1

    def random_flip(image: Any, mask: Any) -> Any:
        if tf.random.uniform(()) > 0.5:
            image = tf.image.flip_left_right(image)
            mask = tf.image.flip_left_right(mask)
        return image, mask

    train = data.map(load_resize, num_parallel_calls=tf.data.AUTOTUNE).cache()
    return train.map(random_flip).shuffle(8).batch(4).repeat().prefetch(tf.data.AUTOTUNE)


PIPELINES = {"small": small, "keras layers": keras_layers, "tutorial": tutorial}


def check_ms(model: Any, dataset: Any) -> float:
    """Milliseconds of one run of the check on a fit of ``dataset``."""
    found: list[Any] = []
    call = Call(
        "keras", "fit", model, {"x": dataset, "epochs": 2}, handling_for(model, found.append)
    )
    start = time.perf_counter()
    _augmentation.check(call)
    elapsed = (time.perf_counter() - start) * 1000
    if found:
        raise AssertionError(f"the check reported a correct pipeline: {found[0].message}")
    return elapsed


def _stateless(element: Any, seed: Any) -> Any:
    x, y = element
    return x + tf.random.stateless_uniform(tf.shape(x), seed=seed), y


def _counter(i: Any, element: Any) -> Any:
    x, y = element
    seed = tf.stack([i, tf.constant(0, tf.int64)])
    return x + tf.random.stateless_uniform(tf.shape(x), seed=seed), y


def _repeat_pipelines() -> dict[str, Any]:
    """The pipelines of the repeats table, traced under the global seed of the moment."""
    base = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))
    generator = tf.random.Generator.from_seed(1)
    translate = keras.layers.RandomTranslation(0.3, 0.3)
    fresh = tf.data.Dataset.random(seed=1, rerandomize_each_iteration=True).batch(2)
    return {
        "map(tf.random.uniform + tf.image.random_flip_left_right)": base.map(augment),
        "map(...) -> cache()": base.map(augment).cache(),
        "cache() -> map(...)": base.cache().map(augment),
        "map(tf.random.uniform(seed=3))": base.map(
            lambda x, y: (x + tf.random.uniform(tf.shape(x), seed=3), y)
        ),
        "map(tf.random.Generator.from_seed(1).uniform)": base.map(
            lambda x, y: (x + generator.uniform(tf.shape(x)), y)
        ),
        "batch -> map(keras.layers.RandomTranslation)": base.batch(4).map(
            lambda x, y: (translate(x), y)
        ),
        "zip(Dataset.random()) -> map(stateless)": tf.data.Dataset.zip(
            (base, tf.data.Dataset.random().batch(2))
        ).map(_stateless),
        "zip(Dataset.random(seed=1, rerandomize_each_iteration=True)) -> map(stateless)": (
            tf.data.Dataset.zip((base, fresh)).map(_stateless)
        ),
        "enumerate() -> map(stateless seeded by the counter)": base.enumerate().map(_counter),
    }


def repeats() -> dict[str, dict[str, bool]]:
    """Whether a second pass over each pipeline repeats the first, per global seed."""
    table: dict[str, dict[str, bool]] = {}
    for seeded in (False, True):
        if seeded:
            keras.utils.set_random_seed(1)
        try:
            pipelines = _repeat_pipelines()
        finally:
            tf.random.set_seed(None)
        for name, dataset in pipelines.items():
            first, second = (
                np.concatenate([np.ravel(x.numpy()) for x, _ in dataset]) for _ in range(2)
            )
            column = "global seed" if seeded else "no seed"
            table.setdefault(name, {})[column] = bool(np.array_equal(first, second))
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--note", default="", help="a sentence on the conditions")
    args = parser.parse_args(argv)
    load_start = load_average()
    rounds = args.rounds or (3 if args.quick else 200)

    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    fit_data = small()
    model.fit(fit_data, epochs=1, verbose=0, shuffle=False)  # trace the train step
    times: dict[str, list[float]] = {"bare fit": []}
    datasets = {name: make() for name, make in PIPELINES.items()}
    for name in PIPELINES:
        check_ms(model, datasets[name])  # warm the memo for "fit again"
        times[f"{name}, first fit"] = []
        times[f"{name}, fit again"] = []
    variants = list(times)
    for _ in range(rounds):
        random.shuffle(variants)
        fresh = {name: make() for name, make in PIPELINES.items()}  # built outside the timing
        for variant in variants:
            if variant == "bare fit":
                start = time.perf_counter()
                model.fit(fit_data, epochs=1, verbose=0, shuffle=False)
                times[variant].append((time.perf_counter() - start) * 1000)
                continue
            name, _, when = variant.partition(", ")
            dataset = fresh[name] if when == "first fit" else datasets[name]
            times[variant].append(check_ms(model, dataset))
    bare = times["bare fit"]
    ratios = {
        v: spread([t / b for t, b in zip(times[v], bare, strict=True)])
        for v in times
        if v != "bare fit"
    }
    result: dict[str, Any] = {
        "benchmark": "augmentation_check",
        "baseline": "Keras 3 fit, Flatten -> Dense(1), 16 images 4x4, 4 steps, 1 epoch, graph mode",
        "quick": args.quick,
        "rounds": rounds,
        "note": args.note,
        "load_average": {"start": load_start, "end": load_average()},
        "ms": {v: spread(t) for v, t in times.items()},
        "ratio_vs_bare_fit": ratios,
        "repeats": repeats(),
        "environment": environment(),
    }
    write(result, args.out)
    return result


def write(result: dict[str, Any], out: Path) -> None:
    """Writes augmentation_check(_quick).json and .md into ``out``."""
    stem = "augmentation_check_quick" if result["quick"] else "augmentation_check"
    load = result["load_average"]
    lines = [
        "# The frozen-augmentation check's cost per fit",
        "",
        f"Baseline: {result['baseline']}; {result['rounds']} interleaved rounds"
        f"{' (quick run)' if result['quick'] else ''}. "
        f"{result['note'] + ' ' if result['note'] else ''}Load average (1, 5, 15 min) at the "
        f"start {tuple(round(x, 2) for x in load['start'])}, at the end "
        f"{tuple(round(x, 2) for x in load['end'])}.",
        "",
        "| variant | ms median [min, max] | ratio to the bare fit: median [min, max] |",
        "|---|---|---|",
    ]
    for v, t in result["ms"].items():
        r = result["ratio_vs_bare_fit"].get(v)
        ratio = f"{r['median']:.4f} [{r['min']:.4f}, {r['max']:.4f}]" if r else "-"
        lines.append(f"| {v} | {t['median']:.3f} [{t['min']:.3f}, {t['max']:.3f}] | {ratio} |")
    lines += [
        "",
        "Does a second pass (a second epoch's iterator) repeat the first pass's values?",
        "",
        "| pipeline | no seed | global seed |",
        "|---|---|---|",
    ]
    for name, row in result["repeats"].items():
        cells = ["**repeats**" if row[k] else "differs" for k in ("no seed", "global seed")]
        lines.append(f"| `{name}` | {cells[0]} | {cells[1]} |")
    env = result["environment"]
    lines += [
        "",
        f"Keras {env['keras']}, TensorFlow {env['tensorflow']}, NumPy {env['numpy']}, "
        f"Python {env['python']}, {env['cpus']} CPUs ({env['machine']}).",
        "",
    ]
    write_results(out, stem, result, lines)


if __name__ == "__main__":
    main()
