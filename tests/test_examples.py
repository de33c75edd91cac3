"""The examples run and tell their story (smoke tests, in subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.keras, pytest.mark.slow]


# The examples pin the modes they show: the environment must not change their story.
ENVIRONMENTS = [{}, *({"SAFEGEN_MODE": mode} for mode in ("check", "copy", "freeze", "off"))]


def _run(*command, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
    env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda env: str(env or "unset"))
def test_seed_pitfalls(env):
    """Pitfalls 1 and 2, under any SAFEGEN_MODE: copy trains to 0, check names the generator."""
    pytest.importorskip("keras")
    out = _run(sys.executable, "examples/seed_pitfalls.py", extra_env=env)
    assert out.index("Pitfall 1, model.fit") < out.index("Pitfall 2, print(next(it), next(it))")
    assert "guard(copy) loss per epoch:  [0.0, 0.0]" in out
    assert "guard(check): AliasingError: train_iterator() at examples/seed_pitfalls.py:" in out


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda env: str(env or "unset"))
def test_pydataset_workers(env):
    """PyDataset with workers, under any SAFEGEN_MODE: copy 0% mismatched, check reports."""
    pytest.importorskip("keras")
    out = _run(sys.executable, "examples/pydataset_workers.py", extra_env=env)
    assert "guard(copy), workers=4:  0% of batches mismatched" in out
    assert "guard(check), workers=4: MeanBatches.__getitem__()" in out


def test_shape_checked_lambda():
    """The Lambda example shows the (5, 5) output, then the ShapeError with its hint."""
    pytest.importorskip("keras")
    out = _run(sys.executable, "examples/shape_checked_lambda.py")
    assert "predict returns (5, 5)" in out
    assert "returned rank 1, shape (5,); declared rank 2, shape (5, 1)" in out
    assert "hint: the output is one rank short" in out


def test_ci_check():
    """The CI script: the fixed pipeline passes, the buggy one is caught."""
    out = _run("bash", "examples/ci_check.sh")
    assert "the buggy one was caught (exit 1)" in out


def _learned(out):
    """The test losses before and after training, and the target and prediction, that a
    mean example prints."""
    import re

    losses = re.search(r"test loss: untrained (\S+), trained (\S+)\n", out)
    shown = re.search(r"mean of \d+ and \d+: target (\S+), predicted (\S+)\n", out)
    assert losses and shown, out[-3000:]
    return (*map(float, losses.groups()), *map(float, shown.groups()))


class TestFixedExamplesLearn:
    """The programs that show a fix visibly learn the mean, not just run."""

    @pytest.mark.parametrize(
        "command",
        [
            ("run", "--mode", "copy", "examples/unmodified/mean_generator.py"),
            ("run", "examples/unmodified/mean_fixed.py"),
        ],
        ids=["mean_generator-copy", "mean_fixed"],
    )
    def test_prediction_near_target(self, command):
        """Under safegen, the test loss ends far below the untrained one, and the printed
        prediction is within 0.5 of its target (the mean of two numbers below 100)."""
        pytest.importorskip("keras")
        out = _run(sys.executable, "-m", "safegen", *command)
        untrained, trained, target, predicted = _learned(out)
        assert trained < untrained / 1000, out[-3000:]
        assert abs(predicted - target) < 0.5, out[-3000:]
