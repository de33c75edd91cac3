"""The benchmarks run to completion (smoke runs only: no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script, tmp_path, *extra):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / script),
            "--quick",
            "--out",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class TestBenchmarks:
    """Each benchmark's --quick run writes its JSON and Markdown."""

    def test_per_yield(self, tmp_path):
        """per_yield.py --quick reports every variant and target."""
        pytest.importorskip("tqdm")
        _run("per_yield.py", tmp_path)
        report = json.loads((tmp_path / "per_yield_quick.json").read_text())
        seed, large = report["sections"]
        assert set(seed["variants"]) >= {"bare", "hand copy", "check", "copy", "freeze"}
        assert "np.copy (no generator)" in large["variants"]
        assert (tmp_path / "per_yield_quick.md").read_text().startswith("# Per-yield cost")

    @pytest.mark.keras
    def test_shape_checked(self, tmp_path):
        """shape_checked.py --quick writes its results."""
        pytest.importorskip("keras")
        pytest.importorskip("tqdm")
        _run("shape_checked.py", tmp_path)
        assert list(tmp_path.glob("*.json")) and list(tmp_path.glob("*.md"))
