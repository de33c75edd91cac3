"""The random-stream and repeated-batch detectors on guarded generators that tf_keras runs
in worker processes (fit(generator, workers=2, use_multiprocessing=True): a copy of the
generator in each process); tests/tf_keras_random_generators.py holds the generators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import safegen
from tests import tf_keras_random_generators as gens

pytestmark = [pytest.mark.slow, pytest.mark.tf_keras]
tf_keras = pytest.importorskip("tf_keras")
from tests import tf_keras_random_datasets as k2  # noqa: E402

PROCESSES = {"workers": 2, "use_multiprocessing": True}


def _fit(generator, **kwargs):
    k2.tiny_model().fit(generator, steps_per_epoch=4, epochs=2, verbose=0, **kwargs)


def _draws(folder):
    return [np.load(os.path.join(folder, name)).tobytes() for name in sorted(os.listdir(folder))]


def test_bug_is_real_without_safegen(tmp_path):
    """Unguarded, the two workers' copies of the generator draw the same noise."""
    _fit(gens.global_noise(gens.barrier(), str(tmp_path)), **PROCESSES)
    noise = _draws(str(tmp_path))
    assert len(set(noise)) < len(noise)


@pytest.mark.parametrize(
    ("function", "state"),
    [
        ("global_noise", "NumPy's global state"),
        ("local_generator_noise", "`rng` (numpy.random.Generator)"),
    ],
)
def test_check_mode_reports_the_state(function, state):
    """RandomStreamError reaches fit's caller, naming the generator, the state, the
    workers, and the generator's own advice."""
    guarded = safegen.guard(getattr(gens, function))
    with pytest.raises(Exception, match="RandomStreamError") as info:
        _fit(guarded(gens.barrier()), **PROCESSES)
    text = str(info.value)
    assert f"{function}() at tests/tf_keras_random_generators.py:" in text
    assert f"{state} started from the same state in 2 worker processes" in text
    assert text.count("Keras_worker_ForkPoolWorker") >= 2
    assert "tf_keras runs a copy of the generator" in text


@pytest.mark.filterwarnings("ignore:`Model.fit_generator` is deprecated")
def test_fit_generator_too():
    """The legacy fit_generator (tf_keras) runs the same enqueuer: reported."""
    guarded = safegen.guard(gens.global_noise)
    model = k2.tiny_model()
    with pytest.raises(Exception, match=r"RandomStreamError: global_noise\(\) at "):
        model.fit_generator(
            guarded(gens.barrier()), steps_per_epoch=4, epochs=1, verbose=0, **PROCESSES
        )


def test_seeded_per_process_is_not_reported(tmp_path):
    """A generator that makes its Generator anew in each process: nothing reported, and
    its batches are distinct."""
    guarded = safegen.guard(gens.seeded_per_process)
    _fit(guarded(gens.barrier(), str(tmp_path)), **PROCESSES)
    noise = _draws(str(tmp_path))
    assert len(noise) >= 8 and len(set(noise)) == len(noise)


def test_threads_are_not_reported():
    """Worker threads share one generator (and one state): nothing reported."""
    guarded = safegen.guard(gens.global_noise)
    _fit(guarded(), workers=2, use_multiprocessing=False)
    assert safegen.stats(guarded).violations == 0


def test_copy_mode_gives_distinct_draws(tmp_path):
    """Copy mode reseeds each worker's global state: every batch has its own noise."""
    guarded = safegen.guard(gens.global_noise, mode="copy")
    _fit(guarded(gens.barrier(), str(tmp_path)), **PROCESSES)
    noise = _draws(str(tmp_path))
    assert len(noise) >= 8 and len(set(noise)) == len(noise)


def test_repeated_batches_across_processes():
    """Check mode: a batch yielded by both workers' copies is a RepeatedBatchError naming
    both processes' yields and the cause."""
    guarded = safegen.guard(gens.cycled)
    with pytest.raises(Exception, match="RepeatedBatchError") as info:
        _fit(guarded(gens.barrier()), **PROCESSES)
    text = str(info.value)
    assert "cycled() at tests/tf_keras_random_generators.py:" in text
    assert text.count("Keras_worker_ForkPoolWorker") >= 2 and "as yield #" in text
    assert "tf_keras runs a copy of the generator in each worker process" in text


def test_full_batch_training_in_processes_is_not_reported():
    """Every worker's copy yields the one batch again and again: nothing reported."""
    _fit(safegen.guard(gens.full_batch)(gens.barrier()), **PROCESSES)


def test_repeats_within_one_process_are_not_reported():
    """Without worker processes, a generator cycling its batches is not reported."""
    guarded = safegen.guard(gens.cycled)
    _fit(guarded())
    assert safegen.stats(guarded).violations == 0


class TestSafegenRun:
    """tests/tf_keras_generator_run.py, no safegen in it, under `python -m safegen run`."""

    def _run(self, *args, noise_dir):
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": str(root), "NOISE_DIR": str(noise_dir)}
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", *args, "tests/tf_keras_generator_run.py"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=root,
            env=env,
        )

    def test_check_mode_fails_with_the_report(self, tmp_path):
        """Exit status 1, RandomStreamError, and the summary and JSON list it."""
        report = tmp_path / "report.json"
        (tmp_path / "noise").mkdir()
        result = self._run("--report", str(report), noise_dir=tmp_path / "noise")
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.RandomStreamError: global_noise() at " in result.stderr
        assert "1 repeated random stream(s)" in result.stderr
        [row] = [r for r in json.loads(report.read_text())["sources"] if "noise" in r["name"]]
        assert row["random_streams"] == 1

    def test_copy_mode_exits_0_with_distinct_draws(self, tmp_path):
        """Copy mode: exit status 0, and every batch has its own noise."""
        result = self._run("--mode", "copy", noise_dir=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        noise = _draws(str(tmp_path))
        assert len(noise) >= 8 and len(set(noise)) == len(noise)


class TestSafegenRunSteps:
    """tests/tf_keras_steps_run.py, unmodified, under `python -m safegen run`: ``fit(batches(),
    steps_per_epoch=20, workers=2, use_multiprocessing=True)``."""

    def _run(self, which):
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", "tests/tf_keras_steps_run.py", which],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )

    def test_counting_generator_exits_1_naming_the_repeated_batches(self):
        """A generator counting its steps (np.full(..., i)): its copies yield the same
        batches, named with both worker processes; exit status 1."""
        result = self._run("counting")
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.RepeatedBatchError: counting() at tests/" in result.stderr
        assert "is the same, array for array" in result.stderr
        assert result.stderr.count("Keras_worker_ForkPoolWorker") >= 2
        assert "1 repeated batch(es)" in result.stderr

    def test_noise_generator_exits_1_naming_the_random_stream(self):
        """The same fit on noise from NumPy's global state: the random stream is reported."""
        result = self._run("noise")
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.RandomStreamError: global_noise() at tests/" in result.stderr
        assert "1 repeated random stream(s)" in result.stderr
