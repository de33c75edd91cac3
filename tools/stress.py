"""Run the test suite (or part of it) several times with CPU-bound processes beside it.

A test that passes only on an idle machine will one day fail a good change in CI, which
runs on 2 shared cores. This script loads the machine on purpose and repeats the run:

    python tools/stress.py                      # the whole suite, 3 times, 2 busy processes
    python tools/stress.py --runs 10 --busy 2 -- -m concurrency
    python tools/stress.py --runs 5 -- tests/test_threads.py tests/test_datasets.py

Everything after ``--`` goes to pytest (default: the whole suite, as the README runs it).
Each busy process spins in a pure-Python loop (one core each) until the runs are over.
The output of run N goes to ``--logs/run-N.log``; a line per run and a summary go to
stdout. The exit status is 0 only if every run passed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# pytest's closing line, e.g. "== 3 failed, 540 passed, 6 skipped in 312.5s (0:05:12) =="
_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def _spin(stop: Any) -> None:
    """Burn one core until told to stop."""
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n += 1


def _counts(log: str) -> dict[str, int]:
    """The counts of pytest's last summary line in ``log``."""
    for line in reversed(log.splitlines()):
        if " in " in line and ("passed" in line or "failed" in line or "error" in line):
            found: dict[str, int] = {}
            for number, word in _COUNTS.findall(line):
                found[word.rstrip("s") if word.startswith("error") else word] = int(number)
            return found
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/stress.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="how many runs (default 3)")
    parser.add_argument(
        "--busy", type=int, default=2, help="CPU-bound processes beside the runs (default 2)"
    )
    parser.add_argument(
        "--logs", type=Path, default=Path("stress-logs"), help="folder for each run's output"
    )
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.busy < 0:
        parser.error("--runs must be at least 1 and --busy at least 0")
    options.logs.mkdir(parents=True, exist_ok=True)

    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(options.busy)]
    for spinner in spinners:
        spinner.start()
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *options.pytest_args]
    print(f"{options.runs} run(s) of: {' '.join(command[1:])}, {options.busy} busy process(es)")
    failed_runs = 0
    try:
        for run in range(1, options.runs + 1):
            start = time.monotonic()
            result = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy()
            )
            seconds = time.monotonic() - start
            log = result.stdout + result.stderr
            (options.logs / f"run-{run}.log").write_text(log)
            counts = _counts(log)
            load = os.getloadavg()[0]
            failed = result.returncode != 0
            failed_runs += failed
            shown = ", ".join(f"{n} {word}" for word, n in counts.items()) or "no summary"
            print(
                f"run {run}: {'FAILED' if failed else 'passed'} (exit {result.returncode}): "
                f"{shown} in {seconds:.0f} s, load {load:.1f}",
                flush=True,
            )
            if failed:
                for line in log.splitlines():
                    if line.startswith(("FAILED", "ERROR")):
                        print(f"    {line}", flush=True)
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join(5)
            if spinner.is_alive():
                spinner.kill()
    print(f"{options.runs - failed_runs} of {options.runs} run(s) passed")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
