"""Run Keras's own layer tests twice: plain, and with every constructed layer checked.

Fetches the source distribution of the installed Keras with pip (``pip download
keras==<installed> --no-binary :all: --no-deps``), extracts it, and runs its tests for
Lambda, Dense, Conv1D/2D/3D, Reshape, Flatten, GlobalAveragePooling, Embedding, LSTM,
MultiHeadAttention, BatchNormalization and Dropout with pytest, twice, in fresh
processes:

* ``plain``: as Keras ships them;
* ``checked``: a pytest plugin (written next to the extracted sources) wraps
  ``keras.layers.Layer.__new__`` so that every layer built during the tests, except
  models and input layers, goes through ``safegen.ShapeChecked`` (``check="rank"``, or
  ``--check shape``) before its ``__init__`` runs.

It prints both counts and every test whose outcome differs (``KNOWN_DIFFERENCES`` below
lists the ones understood, each with its reason), exits 1 when another one differs, and
writes
``keras_suite.json`` and ``keras_suite.md`` into ``--out`` (default
``benchmarks/results``; ``--quick`` runs one test file and writes ``keras_suite_quick.*``).

Usage::

    python tools/keras_suite.py [--workdir DIR] [--check rank|shape] [--quick] [-k EXPR]

Exit status: 0 when only ``KNOWN_DIFFERENCES`` differ, 1 when another test differs, 3
when the source distribution cannot be downloaded.

The Keras tests run against the *installed* Keras (pytest's ``importlib`` import mode,
from outside the extracted tree), with the TensorFlow backend unless ``KERAS_BACKEND``
says otherwise. Needs network access to PyPI the first time (the sdist is cached in
``--workdir``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

TEST_FILES = [
    "keras/src/layers/core/lambda_layer_test.py",
    "keras/src/layers/core/dense_test.py",
    "keras/src/layers/convolutional/conv_test.py",
    "keras/src/layers/reshaping/reshape_test.py",
    "keras/src/layers/reshaping/flatten_test.py",
    "keras/src/layers/pooling/global_average_pooling_test.py",
    "keras/src/layers/core/embedding_test.py",
    "keras/src/layers/rnn/lstm_test.py",
    "keras/src/layers/attention/multi_head_attention_test.py",
    "keras/src/layers/normalization/batch_normalization_test.py",
    "keras/src/layers/regularization/dropout_test.py",
]
QUICK_FILES = ["keras/src/layers/core/lambda_layer_test.py"]

# Tests whose outcome differs for a reason found and understood: not a fault of the check.
KNOWN_DIFFERENCES = {
    "keras.src.layers.attention.multi_head_attention_test.MultiHeadAttentionTest::"
    "test_attention_axes_negative_indexing": "Keras 3.15's MultiHeadAttention.compute_output_spec "
    "declares the attention scores as rank 4 (batch, heads, Tq, Tq) whatever attention_axes "
    "is; with rank-4 inputs and two attention axes it returns rank 5: safegen reports that.",
    "keras.src.layers.attention.multi_head_attention_test.MultiHeadAttentionTest::"
    "test_causal_only_masks_non_4d_inputs": "the same MultiHeadAttention declaration "
    "(rank 4 declared, rank 5 returned for rank-4 inputs).",
}

# The Keras repository's root conftest.py is not in the source distribution, but its tests
# import `skip_if_backend` from it: this stands in for it (same behaviour).
CONFTEST = textwrap.dedent(
    '''
    """Stand-in for the Keras repository's root conftest.py (not in the sdist)."""

    import pytest
    from keras.src.backend import backend


    def skip_if_backend(given_backend, reason):
        return pytest.mark.skipif(backend() == given_backend, reason=reason)
    '''
)

PLUGIN = textwrap.dedent(
    '''
    """pytest plugin: every Keras layer built during the tests is checked by safegen."""

    import os

    CHECKED = []


    def pytest_configure(config):
        config.addinivalue_line(
            "markers", "requires_trainable_backend: mark test for trainable backend only"
        )
        if os.environ.get("SAFEGEN_KERAS_SUITE") != "checked":
            return
        import keras
        from keras.layers import InputLayer
        from keras.src.layers.layer import Layer

        import safegen
        from safegen.integrations.keras import layers as checks

        original = Layer.__dict__["__new__"]
        original = getattr(original, "__func__", original)
        check = os.environ.get("SAFEGEN_KERAS_SUITE_CHECK", "rank")

        def __new__(cls, *args, **kwargs):
            obj = original(cls, *args, **kwargs)
            if not issubclass(cls, (keras.Model, InputLayer)) and not checks.is_checked(obj):
                safegen.ShapeChecked(obj, check=check)
                CHECKED.append(cls.__name__)
            return obj

        Layer.__new__ = staticmethod(__new__)


    def pytest_sessionfinish(session):
        path = os.environ.get("SAFEGEN_KERAS_SUITE_COUNT")
        if path:
            with open(path, "w") as f:
                f.write(str(len(CHECKED)))
    '''
)


def keras_version() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import keras; print(keras.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def fetch(version: str, workdir: Path) -> Path:
    """Downloads and extracts keras-<version>.tar.gz into ``workdir``; returns its root."""
    source = workdir / f"keras-{version}"
    if (source / "keras").is_dir():
        return source
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"keras=={version}",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--quiet",
        # Without network, give up in seconds rather than after pip's default
        # retries (5 of them, 15 s each).
        "--timeout",
        "10",
        "--retries",
        "1",
        "-d",
        str(workdir),
    ]
    try:
        download = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        print(f"could not download keras=={version}: pip timed out", file=sys.stderr)
        raise SystemExit(3) from None
    if download.returncode != 0:
        print(f"could not download keras=={version}:\n{download.stderr[-2000:]}", file=sys.stderr)
        raise SystemExit(3)
    with tarfile.open(workdir / f"keras-{version}.tar.gz") as archive:
        archive.extractall(workdir, filter="data")
    return source


def run(variant: str, source: Path, files: list[str], check: str, extra: list[str]) -> dict:
    """Runs the tests in a fresh process; returns {test id: outcome}, seconds, log tail."""
    workdir = source.parent
    (workdir / "safegen_keras_suite_plugin.py").write_text(PLUGIN)
    (workdir / "conftest.py").write_text(CONFTEST)
    junit = workdir / f"junit_{variant}.xml"
    junit.unlink(missing_ok=True)
    env = {
        **os.environ,
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "SAFEGEN_KERAS_SUITE": variant,
        "SAFEGEN_KERAS_SUITE_CHECK": check,
        "SAFEGEN_KERAS_SUITE_COUNT": str(workdir / f"count_{variant}.txt"),
        "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        *[str(source / f) for f in files],
        "-p",
        "safegen_keras_suite_plugin",
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        f"--rootdir={source}",
        "-c",
        str(source / "pyproject.toml"),
        "-o",
        "addopts=",
        "-q",
        f"--junitxml={junit}",
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not junit.exists():
        raise SystemExit(
            f"{variant} run produced no report:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    outcomes: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, detail = "failed", (child.get("message") or "")[:400]
            elif child.tag == "skipped":
                outcome, detail = "skipped", (child.get("message") or "")[:200]
        outcomes[name] = {"outcome": outcome, "detail": detail}
    count_file = workdir / f"count_{variant}.txt"
    checked_layers = int(count_file.read_text()) if count_file.exists() else 0
    count_file.unlink(missing_ok=True)
    return {"outcomes": outcomes, "seconds": seconds, "layers_checked": checked_layers}


def counts(outcomes: dict[str, dict[str, str]]) -> dict[str, int]:
    result = {"passed": 0, "failed": 0, "skipped": 0}
    for o in outcomes.values():
        result[o["outcome"]] += 1
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/safegen-keras-suite"))
    parser.add_argument("--check", choices=("rank", "shape"), default="rank")
    parser.add_argument("--quick", action="store_true", help="one test file only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    args = parser.parse_args(argv)

    version = keras_version()
    source = fetch(version, args.workdir)
    files = QUICK_FILES if args.quick else TEST_FILES
    extra = ["-k", args.keyword] if args.keyword else []
    results = {}
    for variant in ("plain", "checked"):
        results[variant] = run(variant, source, files, args.check, extra)
        print(f"{variant}: {counts(results[variant]['outcomes'])} "
              f"in {results[variant]['seconds']:.0f} s, "
              f"{results[variant]['layers_checked']} layers checked", flush=True)  # fmt: skip
    plain, checked = results["plain"]["outcomes"], results["checked"]["outcomes"]
    differ = {
        name: {"plain": plain.get(name), "checked": checked.get(name)}
        for name in sorted(set(plain) | set(checked))
        if (plain.get(name) or {}).get("outcome") != (checked.get(name) or {}).get("outcome")
    }
    unexpected = sorted(set(differ) - set(KNOWN_DIFFERENCES))
    for name, d in differ.items():
        known = KNOWN_DIFFERENCES.get(name)
        print(f"DIFFERS {name}: plain {d['plain']}, checked {d['checked']}"
              + (f"\n  known: {known}" if known else "\n  UNEXPECTED"))  # fmt: skip
    report: dict[str, Any] = {
        "benchmark": "keras_suite",
        "keras": version,
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "check": args.check,
        "quick": args.quick,
        "files": files,
        "counts": {v: counts(r["outcomes"]) for v, r in results.items()},
        "seconds": {v: round(r["seconds"], 1) for v, r in results.items()},
        "layers_checked": {v: r["layers_checked"] for v, r in results.items()},
        "differ": differ,
        "known_differences": {n: KNOWN_DIFFERENCES[n] for n in differ if n in KNOWN_DIFFERENCES},
        "unexpected_differences": unexpected,
        "failed_in_both": sorted(
            n
            for n in plain
            if plain[n]["outcome"] == "failed" and checked.get(n, {}).get("outcome") == "failed"
        ),
    }
    stem = "keras_suite_quick" if args.quick else "keras_suite"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Keras's own layer tests, plain and with every layer checked",
        "",
        f"Keras {version} ({report['backend']} backend), `check={args.check!r}`, "
        f"{len(files)} test files from the Keras source distribution.",
        "",
        "| variant | passed | failed | skipped | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for v in ("plain", "checked"):
        c = report["counts"][v]
        lines.append(
            f"| {v} | {c['passed']} | {c['failed']} | {c['skipped']} | {report['seconds'][v]} |"
        )
    lines += [
        "",
        f"Layers checked during the checked run: {report['layers_checked']['checked']}.",
        "",
        f"Tests whose outcome differs: {len(differ)}",
        "",
    ]
    for name, d in differ.items():
        why = KNOWN_DIFFERENCES.get(name, "UNEXPECTED")
        before = d["plain"]["outcome"] if d["plain"] else "-"
        after = d["checked"]["outcome"] if d["checked"] else "-"
        lines.append(f"- `{name}`: plain {before}, checked {after}. {why}")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
