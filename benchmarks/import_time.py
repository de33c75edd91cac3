"""How long ``import safegen`` takes in a fresh interpreter, against ``import numpy``.

safegen's core needs NumPy and xxhash, and never imports TensorFlow or Keras, so
importing it should cost little more than importing NumPy. Each round starts
``python -I -c "import numpy"`` and ``python -I -c "import safegen"`` (in random order)
and times each process from start to exit; figures are medians over rounds with min and
max, and the ratios are computed per round. ``import safegen, wrapt`` is timed too: wrapt
is imported by the first ``guard()``, not by ``import safegen``, and this is what
importing it up front (for wrapt's post-import hooks in ``enable()``, say) would add to
every ``import safegen`` and ``safegen run``.

The safegen imported is the one of ``--root`` (default: the checkout this script is in),
put first on ``sys.path``: ``-I`` ignores ``PYTHONPATH``, so without it the run would
time whichever safegen is installed.

Usage::

    python benchmarks/import_time.py           # 30 rounds, about 15 seconds
    python benchmarks/import_time.py --quick   # 3 rounds
    python benchmarks/import_time.py --root /path/to/other/checkout --out /tmp/before

Writes ``import_time.json`` and ``.md`` into ``--out`` (default ``benchmarks/results/``;
quick runs write ``import_time_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "python -I -c pass": "pass",
    "import numpy": "import numpy",
    "import wrapt": "import wrapt",
    "import safegen": "import safegen",
    "import safegen, wrapt": "import safegen, wrapt",
}


def _time(code: str, root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(root)!r}); {code}"],
        check=True,
    )
    return time.perf_counter() - start


def _where(root: Path) -> str:
    code = f"import sys; sys.path.insert(0, {str(root)!r}); import safegen; print(safegen.__file__)"
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to import safegen from")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for name in names:
        _time(VARIANTS[name], args.root)  # warm the file cache
    with tqdm(total=rounds * len(names), desc="import_time", file=sys.stderr) as bar:
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                samples[name].append(_time(VARIANTS[name], args.root))
                bar.update(1)
    ratios = [
        s / n for s, n in zip(samples["import safegen"], samples["import numpy"], strict=True)
    ]
    wrapt_ms = [
        (w - s) * 1e3
        for w, s in zip(samples["import safegen, wrapt"], samples["import safegen"], strict=True)
    ]
    report = {
        "machine": f"{platform.machine()}, {platform.python_version()}, {sys.executable}",
        "rounds": rounds,
        "safegen": _where(args.root),
        "ms": {
            name: {
                "median": statistics.median(values) * 1e3,
                "min": min(values) * 1e3,
                "max": max(values) * 1e3,
            }
            for name, values in samples.items()
        },
        "safegen / numpy": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        },
        "wrapt added to import safegen, ms": {
            "median": statistics.median(wrapt_ms),
            "min": min(wrapt_ms),
            "max": max(wrapt_ms),
        },
    }
    lines = [
        "# Import time (`python -I -c ...`, whole process)",
        "",
        f"{rounds} interleaved rounds; safegen from `{report['safegen']}`.",
        "",
        "| command | median ms | min ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for name, row in report["ms"].items():
        lines.append(f"| {name} | {row['median']:.1f} | {row['min']:.1f} | {row['max']:.1f} |")
    ratio = report["safegen / numpy"]
    lines += [
        "",
        f"`import safegen` / `import numpy`, per round: median {ratio['median']:.2f} "
        f"[{ratio['min']:.2f}, {ratio['max']:.2f}].",
        "",
    ]
    added = report["wrapt added to import safegen, ms"]
    lines[-1:-1] = [
        f"What importing wrapt with it would add, per round: median {added['median']:.1f} ms "
        f"[{added['min']:.1f}, {added['max']:.1f}].",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "import_time_quick" if args.quick else "import_time"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
