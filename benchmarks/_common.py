"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# The scripts import the working tree's safegen, even without an install.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bootstrap(
    values: list[float], confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Median of ``values`` with a percentile-bootstrap confidence interval for it.

    The rounds are resampled with replacement ``resamples`` times; the interval is the
    central ``confidence`` share of the resampled medians.

    Example:
        >>> ci = bootstrap([1.0, 1.01, 0.99, 1.02, 0.98])
        >>> ci["ci_low"] <= ci["median"] <= ci["ci_high"]
        True
    """
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(data[rng.integers(0, len(data), (resamples, len(data)))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return {
        **spread(values),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
    }


def load_average() -> tuple[float, ...]:
    """The machine's 1, 5 and 15 minute load averages (how shared it was)."""
    return tuple(os.getloadavg())


def environment() -> dict[str, Any]:
    """Versions and machine facts to store with the results."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    for name in ("keras", "tensorflow"):
        module = sys.modules.get(name)
        if module is not None:
            env[name] = getattr(module, "__version__", "?")
    if "keras" in sys.modules:
        env["backend"] = sys.modules["keras"].backend.backend()
    return env


def write_results(out: Path, stem: str, result: dict[str, Any], markdown: list[str]) -> None:
    """Write ``stem.json`` and ``stem.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(markdown))


def epoch_timer() -> Any:
    """A Keras callback that records the wall time of each epoch in ``.times``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()
