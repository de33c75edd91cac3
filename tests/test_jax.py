"""safegen.guard with Keras 3 on JAX: generators and PyDatasets (threads and processes)
given to model.fit, in every mode.

KERAS_BACKEND must be set before Keras is imported, and this process runs Keras on
TensorFlow, so the scenarios run once in a subprocess (tests/jax_run.py, a few seconds)
and each test here checks one of its results. ShapeChecked under JAX is tested in
test_shape.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.jax,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras is not installed"),
]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def found():
    """The results of tests/jax_run.py, run once with KERAS_BACKEND=jax."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.jax_run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runs_on_jax_without_tensorflow(found):
    """The scenarios ran on the JAX backend, and TensorFlow was never imported."""
    assert found["backend"] == "jax"
    assert found["tensorflow_imported"] is False


class TestGenerators:
    """The seed's reused-buffer generator given to fit (Keras peeks 2 batches ahead)."""

    def test_bug_is_real_without_safegen(self, found):
        """Unguarded, the two peeked batches are overwritten: the first epoch's loss is not 0."""
        loss = found["generator"]["unguarded"]["loss"]
        assert loss[0] > 1.0 and loss[1] == 0.0

    def test_check_mode_raises_at_the_second_yield(self, found):
        """Check mode: fit raises AliasingError itself (no TensorFlow error around it)."""
        outcome = found["generator"]["check"]
        assert outcome["error"] == "AliasingError"
        assert re.match(
            r"reused\(\) at tests/jax_run.py:\d+: yield #1 leaf \[0\] \(float64, shape "
            r"\(64, 2\)\) changed after it was yielded, while yield #2 was being produced "
            r"\(the yield at tests/jax_run.py:\d+ handed that memory out again\)\.",
            outcome["message"],
        )
        assert outcome["stats"] == {"yields": 2, "violations": 1}

    def test_copy_mode_trains_to_zero_loss(self, found):
        """Copy mode: losses [0.0, 0.0], as with a fresh buffer per batch."""
        outcome = found["generator"]["copy"]
        assert outcome["loss"] == [0.0, 0.0]
        assert outcome["stats"] == {"yields": 40, "violations": 0}

    def test_freeze_mode_fails_at_the_generators_write(self, found):
        """Freeze mode: the generator's write into the yielded buffer fails, noted by safegen."""
        outcome = found["generator"]["freeze"]
        assert outcome["error"] == "ValueError" and "read-only" in outcome["message"]
        assert any("reused()" in note for note in outcome["notes"])

    def test_fresh_generator_checked_without_report(self, found):
        """A correct generator in check mode: losses [0.0, 0.0], nothing reported."""
        outcome = found["generator"]["fresh_check"]
        assert outcome["loss"] == [0.0, 0.0]
        assert outcome["stats"] == {"yields": 40, "violations": 0}


@pytest.mark.parametrize("workers", ["threads", "processes"])
class TestPyDataset:
    """A PyDataset whose __getitem__ fills one shared buffer, with workers."""

    def test_check_mode_reports_the_shared_buffer(self, found, workers):
        """Check mode: fit raises AliasingError naming __getitem__ (in the worker process
        that found it, with processes)."""
        outcome = found[workers]["check"]
        assert outcome["error"] == "AliasingError"
        assert outcome["message"].startswith("SharedBuffer.__getitem__() at tests/datasets.py:")
        assert "changed after it was returned" in outcome["message"]
        if workers == "processes":
            assert "(in worker process " in outcome["message"]

    def test_copy_mode_gives_consistent_batches(self, found, workers):
        """Copy mode: no mismatched batch, a loss of exactly 0."""
        outcome = found[workers]["copy"]
        assert outcome["loss"] == [0.0] and outcome["mismatched"] == [0.0]
        assert outcome["stats"]["violations"] == 0

    def test_freeze_mode_fails_at_the_write(self, found, workers):
        """Freeze mode: the dataset's write into self.x fails as read-only."""
        outcome = found[workers]["freeze"]
        assert outcome["error"] == "ValueError" and "read-only" in outcome["message"]

    def test_clean_dataset_checked_without_report(self, found, workers):
        """A clean, shuffled dataset over 2 epochs in check mode: nothing reported."""
        outcome = found[workers]["clean_check"]
        assert outcome["loss"] == [0.0, 0.0] and outcome["stats"]["violations"] == 0


def test_threads_bug_is_real_without_safegen(found):
    """The control, without a race: the 20 batches Keras's worker threads hand over,
    all kept, hold one batch's values."""
    assert found["threads"]["unguarded_held"] == {"batches": 20, "distinct": 1}


def test_stats_of_a_guarded_dataset_whose_batches_were_made_in_workers(found):
    """stats() of a guarded instance that made no batch in this process is zeros, not an
    error (with worker processes every batch is made in a worker)."""
    assert found["processes"]["copy"]["stats"] == {"yields": 0, "violations": 0}


# safegen.enable() under KERAS_BACKEND=jax is tested in tests/test_enable.py
# (TestJaxBackend), next to the other enable() tests.
