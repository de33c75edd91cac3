"""What ``python -m safegen run`` costs against plain ``python``: training speed and start-up.

1. **Training**: the seed model (``Input((2,))`` -> ``Dense(1)``, MSE, RMSprop) trained by
   ``model.fit`` on the seed's fixed generator (``benchmarks/_fit_worker.py``, which has no
   safegen in it), run as ``python _fit_worker.py`` and as ``python -m safegen run
   _fit_worker.py`` (check mode, the default), in random order each round. Each process
   reports the median steps per second of its epochs after the first; the ratio
   run / plain is taken per round.
2. **Start-up**: an empty script, and one that imports NumPy (as every training script
   does), run both ways; the difference run - plain is taken per round, in milliseconds.

Usage::

    python benchmarks/run_overhead.py           # about 4 minutes
    python benchmarks/run_overhead.py --quick   # 2 rounds, about 30 seconds

Writes ``run_overhead.json`` and ``.md`` into ``--out`` (default ``benchmarks/results/``;
quick runs write ``run_overhead_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, bootstrap, environment, load_average, spread, write_results
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_fit_worker.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _command(under_safegen: bool, *script: str) -> list[str]:
    prefix = [sys.executable, "-m", "safegen", "run"] if under_safegen else [sys.executable]
    return [*prefix, *script]


def _fit(under_safegen: bool, steps: int, epochs: int) -> float:
    out = subprocess.run(
        _command(under_safegen, str(WORKER), str(steps), str(epochs)),
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    return statistics.median(json.loads(line)["steps_per_second"])


def _start(under_safegen: bool, script: Path) -> float:
    start = time.perf_counter()
    subprocess.run(_command(under_safegen, str(script)), check=True, env=ENV, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of short runs")
    parser.add_argument("--rounds", type=int, default=20, help="training rounds (default 20)")
    parser.add_argument("--start-rounds", type=int, default=30, help="start-up rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    rounds, start_rounds = (2, 4) if args.quick else (args.rounds, args.start_rounds)
    steps, epochs = (50, 3) if args.quick else (300, 5)

    folder = Path(tempfile.mkdtemp())
    scripts = {"empty script": folder / "empty.py", "import numpy": folder / "numpy_only.py"}
    scripts["empty script"].write_text("")
    scripts["import numpy"].write_text("import numpy\n")

    fit: dict[str, list[float]] = {"python": [], "safegen run": []}
    starts: dict[str, dict[str, list[float]]] = {
        name: {"python": [], "safegen run": []} for name in scripts
    }
    total = rounds * 2 + start_rounds * 2 * len(scripts)
    with tqdm(total=total, desc="run_overhead", file=sys.stderr) as bar:
        for script in scripts.values():  # warm the file cache
            _start(False, script)
            _start(True, script)
        for _ in range(start_rounds):
            for name, script in scripts.items():
                order = [False, True]
                random.shuffle(order)
                for under in order:
                    starts[name]["safegen run" if under else "python"].append(
                        _start(under, script)
                    )
                    bar.update(1)
        for _ in range(rounds):
            order = [False, True]
            random.shuffle(order)
            for under in order:
                fit["safegen run" if under else "python"].append(_fit(under, steps, epochs))
                bar.update(1)

    ratios = [r / p for r, p in zip(fit["safegen run"], fit["python"], strict=True)]
    start_costs = {
        name: [
            (r - p) * 1e3
            for r, p in zip(runs["safegen run"], runs["python"], strict=True)
        ]
        for name, runs in starts.items()
    }
    result = {
        "environment": environment(),
        "note": "2 shared cores; other work may have run on the machine at the same time",
        "load_average": load_average(),
        "training": {
            "rounds": rounds,
            "steps_per_epoch": steps,
            "epochs": epochs,
            "steps_per_second": {name: spread(values) for name, values in fit.items()},
            "ratio run / python": bootstrap(ratios),
        },
        "start_up": {
            "rounds": start_rounds,
            "ms": {
                name: {way: spread([v * 1e3 for v in values]) for way, values in runs.items()}
                for name, runs in starts.items()
            },
            "extra ms (run - python)": {name: spread(v) for name, v in start_costs.items()},
        },
    }
    r = result["training"]["ratio run / python"]
    md = [
        "# `python -m safegen run` against plain `python`",
        "",
        f"Training: {rounds} rounds, {epochs} epochs of {steps} steps each (the first epoch",
        "of each process is left out); per-round ratio of steps per second.",
        "",
        "| what | python | safegen run | ratio / extra |",
        "|---|---|---|---|",
    ]
    sps = result["training"]["steps_per_second"]
    md.append(
        f"| seed model `fit`, steps/s | {sps['python']['median']:.0f} | "
        f"{sps['safegen run']['median']:.0f} | **{r['median']:.3f}** "
        f"[{r['min']:.3f}, {r['max']:.3f}], 95% bootstrap interval of the median "
        f"({r['ci_low']:.3f}, {r['ci_high']:.3f}) (target >= 0.97) |"
    )
    for name in scripts:
        ms = result["start_up"]["ms"][name]
        extra = result["start_up"]["extra ms (run - python)"][name]
        md.append(
            f"| start-up, {name}, ms | {ms['python']['median']:.0f} | "
            f"{ms['safegen run']['median']:.0f} | **+{extra['median']:.0f} ms** "
            f"[{extra['min']:.0f}, {extra['max']:.0f}] (target <= 50 ms) |"
        )
    md += ["", "2 shared cores; medians [min, max] over rounds.", ""]
    stem = "run_overhead_quick" if args.quick else "run_overhead"
    write_results(args.out, stem, result, md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
