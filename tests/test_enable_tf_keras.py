"""safegen.enable() with tf_keras (Keras 2): the article's own stack, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.keras, pytest.mark.slow]


def _run(*args):
    pytest.importorskip("tf_keras")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "tf_keras_enable_run.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(line.split(" ", 1) for line in result.stdout.splitlines()), result.stderr


def test_check_mode_catches_every_entry_point():
    """fit_generator, fit, evaluate and a Sequence raise AliasingError; a clean iterator runs."""
    outcomes, stderr = _run()
    location = "AliasingError train_iterator() at tests/tf_keras_enable_run.py"
    assert outcomes == {
        "fit_generator": location,
        "fit": location,
        "evaluate": location,
        "predict": "ran",
        "sequence": "AliasingError SharedBuffer.__getitem__() at tests/tf_keras_enable_run.py",
    }
    assert "source SharedBuffer.__getitem__() at tests/tf_keras_enable_run.py:" in stderr
    # fit_generator's deprecation warning still points at the caller, not at safegen.
    assert "safegen/integrations" not in stderr


def test_copy_mode_runs_everything():
    """enable(mode="copy"): every call runs, and the summary shows the sources in copy mode."""
    outcomes, stderr = _run("copy")
    assert set(outcomes.values()) == {"ran"}
    assert "[copy" in stderr and "0 violation(s)" in stderr
