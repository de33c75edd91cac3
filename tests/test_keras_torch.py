"""Keras 3 on the torch backend (issue 28): guards of generators and PyDataset workers,
the random-stream detector, Lambda and loss checks, as on TensorFlow and JAX.

KERAS_BACKEND must be set before Keras is imported, and this process runs Keras on
TensorFlow, so the scenarios run once in a subprocess (tests/keras_torch_run.py) and
each test here checks one of its results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

pytestmark = [pytest.mark.torch, pytest.mark.keras, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
MISMATCH = (
    r"loss MeanSquares\.call\(\) at tests/loss_models\.py:\d+: y_true of shape \(16,\) and "
    r"y_pred of shape \(16, 1\) broadcast to \(16, 16\) in sub at tests/loss_models\.py:\d+; "
)


@pytest.fixture(scope="module")
def found():
    """The results of tests/keras_torch_run.py, run once with KERAS_BACKEND=torch."""
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.keras_torch_run"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runs_on_torch_without_tensorflow(found):
    """The scenarios ran on the torch backend, and TensorFlow was never imported."""
    assert found["backend"] == "torch"
    assert found["tensorflow_imported"] is False


class TestGuards:
    """Generators and PyDatasets (worker processes) given to fit."""

    def test_reused_generator_raises(self, found):
        """Check mode: fit raises AliasingError at the generator's second yield."""
        outcome = found["generator_check"]
        assert outcome["error"] == "AliasingError"
        assert re.match(
            r"reused\(\) at tests/keras_torch_run\.py:\d+: yield #1", outcome["message"]
        )

    def test_copy_mode_trains_to_zero_loss(self, found):
        """Copy mode: the mean model's losses are [0.0, 0.0]."""
        assert found["generator_copy"] == {"result": [0.0, 0.0]}

    def test_pydataset_workers(self, found):
        """A PyDataset sharing one buffer, in worker processes, is reported; a clean one
        trains to zero loss."""
        assert found["dataset_check"]["error"] == "AliasingError"
        assert "in worker process" in found["dataset_check"]["message"]
        assert found["clean_check"] == {"result": [0.0, 0.0]}


class TestRandomStreams:
    """Keras's worker processes on torch repeat random streams as on TensorFlow."""

    def test_generator_on_the_dataset(self, found):
        """A Generator kept on the dataset: RandomStreamError naming it."""
        outcome = found["generator_noise"]
        assert outcome["error"] == "RandomStreamError"
        assert (
            "`self.rng` (numpy.random.Generator) started from the same state"
            in (outcome["message"])
        )

    def test_per_index_silent(self, found):
        """Noise seeded from the index: silent."""
        assert "error" not in found["per_index"]

    def test_copy_mode_reseeds(self, found):
        """Copy mode: every batch of two epochs drew different global noise."""
        outcome = found["global_copy"]
        assert "error" not in outcome
        assert outcome["distinct"] == outcome["draws"] == 12


class TestLayersAndLosses:
    """The Lambda rank check and the loss check (traced with make_fx on torch)."""

    def test_lambda_rank(self, found):
        """enable(): the Lambda returning (batch,) for a declared (batch, 1) raises."""
        outcome = found["lambda"]
        assert outcome["error"] == "ShapeError"
        assert outcome["message"].startswith("layer 'mean' (Lambda) returned rank 1")

    def test_broadcasting_loss(self, found):
        """A Loss subclass broadcasting (B,) against (B, 1): ShapeError at its sub."""
        assert re.match(MISMATCH, found["loss_broadcast"])

    def test_public_focal_loss(self, found):
        """The public binary focal loss: reported at its where()."""
        assert re.match(
            r"loss BinaryFocal\.call\(\) at tests/loss_models\.py:\d+: .* in where at "
            r"tests/loss_models\.py:\d+; ",
            found["loss_focal"],
        )

    def test_silent(self, found):
        """Equal shapes, and the built-in mse: no error."""
        assert found["loss_same"] == "ok"
        assert found["loss_mse"] == "ok"

    def test_enable_checks_losses(self, found):
        """Under safegen.enable() the loss is checked once and reported."""
        message, checked = found["loss_enabled"]
        assert re.match(MISMATCH, message)
        assert checked == 1
