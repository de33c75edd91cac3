"""The random-stream and repeated-batch detectors on Keras 3 PyDatasets, with real fit,
real worker threads and processes (tests/random_datasets.py holds the datasets)."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import safegen
from safegen._detectors._sink import Channel
from safegen._detectors.random_streams import (
    GLOBAL,
    RandomStreamReport,
    RandomStreams,
    shared_streams,
)

pytestmark = [pytest.mark.keras]
keras = pytest.importorskip("keras")
from tests import random_datasets as data  # noqa: E402

PROCESSES = {"workers": 2, "use_multiprocessing": True}


def _fit(dataset, epochs=2):
    data.tiny_model().fit(dataset, epochs=epochs, verbose=0)


@pytest.mark.slow
class TestWorkerProcesses:
    """PyDataset(workers=2, use_multiprocessing=True), 2 epochs of 4 batches."""

    def test_bug_is_real_without_safegen(self, tmp_path):
        """Unguarded, worker processes hand out the same noise for different batches."""
        _fit(data.GlobalNoise(folder=str(tmp_path), **PROCESSES))
        noise = [a.tobytes() for a in data.draws(str(tmp_path))]
        assert len(set(noise)) < len(noise)

    @pytest.mark.parametrize(
        ("kind", "state"),
        [
            ("GlobalNoise", "NumPy's global state"),
            ("GeneratorNoise", "`self.rng` (numpy.random.Generator)"),
            ("ModuleNoise", "`tests.random_datasets.MODULE_RNG` (numpy.random.Generator)"),
        ],
    )
    def test_check_mode_reports_the_state(self, kind, state):
        """Check mode raises RandomStreamError naming the dataset, the state and workers."""
        dataset = safegen.guard(getattr(data, kind)(**PROCESSES))
        with pytest.raises(Exception, match="RandomStreamError") as info:
            _fit(dataset)
        text = str(info.value)
        assert f"{kind}.__getitem__() at tests/random_datasets.py:" in text
        assert f"{state} started from the same state in " in text
        assert "Keras_worker_" in text and "SeedSequence" in text

    @pytest.mark.parametrize("kind", ["PerIndex", "ReseededPerIndex", "SeededPerWorker"])
    def test_no_report_for_states_made_on_purpose(self, kind, tmp_path):
        """A generator per call, the global state reseeded per index or per worker: no report."""
        dataset = safegen.guard(getattr(data, kind)(folder=str(tmp_path), **PROCESSES))
        _fit(dataset)
        assert len(data.draws(str(tmp_path))) >= 8

    def test_copy_mode_gives_distinct_draws(self, tmp_path):
        """Copy mode reseeds each worker: every batch of every epoch gets its own noise."""
        dataset = safegen.guard(data.GlobalNoise(folder=str(tmp_path), **PROCESSES), mode="copy")
        _fit(dataset)
        noise = [a.tobytes() for a in data.draws(str(tmp_path))]
        assert len(noise) >= 8 and len(set(noise)) == len(noise)

    @pytest.mark.filterwarnings("ignore::safegen.RandomStreamWarning")
    def test_summary_lists_what_workers_found(self):
        """Found in workers, warned there, and listed once in the parent's summary, naming
        the 4 workers of the 2 epochs."""
        with safegen.enabled(on_violation="warn") as session:
            _fit(data.GlobalNoise(**PROCESSES))
        row = next(r for r in session.as_dict()["sources"] if "GlobalNoise" in r["name"])
        assert row["random_streams"] == 1
        finding = row["findings"][0]
        assert finding["kind"] == "random_stream"
        assert "in 4 workers of different epochs" in finding["message"]
        assert "epoch 2)" in finding["message"] and "epoch 3" not in finding["message"]
        assert "repeated random stream" in session.summary()


class TestThreads:
    """Worker threads share one random state: nothing to report."""

    def test_threads_are_not_reported(self, tmp_path):
        """GlobalNoise with workers=2 threads, 2 epochs, check mode: no error, new draws."""
        dataset = safegen.guard(data.GlobalNoise(folder=str(tmp_path), workers=2))
        _fit(dataset)
        noise = [a.tobytes() for a in data.draws(str(tmp_path))]
        assert len(set(noise)) == len(noise)


class TestRepeatedBatches:
    """A batch equal to another index's batch in the same epoch."""

    def test_ignored_index_is_reported(self):
        """__getitem__ that ignores its index: RepeatedBatchError names both indices."""
        dataset = safegen.guard(data.IgnoresIndex())
        with pytest.raises(Exception, match=r"RepeatedBatchError|the batch at index 1 is"):
            _fit(dataset)

    def test_report_names_both_batches(self):
        """Outside fit, the error itself: index 1 repeats index 0, with the causes."""
        dataset = safegen.guard(data.IgnoresIndex())
        dataset[0]
        with pytest.raises(safegen.RepeatedBatchError, match="index 1 is the same") as info:
            dataset[1]
        report = info.value.report
        assert (report.index, report.earlier) == (1, 0)
        assert "ignores its index" in report.message

    def test_same_index_and_new_epoch_are_not_reported(self):
        """The same index again, and every index again after an epoch: no report."""
        dataset = safegen.guard(data.GlobalNoise())
        for _ in range(2):
            for index in (0, 0, 1, 2, 3):
                dataset[index]
            dataset.on_epoch_end()
        assert safegen.stats(dataset).violations == 0

    @pytest.mark.parametrize("kind", ["Padded", "PerIndex", "GlobalNoise"])
    def test_clean_datasets_are_not_reported(self, kind):
        """All-zero padding batches and clean data over 2 epochs of fit: no report."""
        _fit(safegen.guard(getattr(data, kind)(batches=6)))

    @pytest.mark.filterwarnings("ignore::safegen.RepeatedBatchWarning")
    def test_warn_and_summary(self):
        """on_violation="warn" warns once, and the summary lists it."""
        with safegen.enabled(on_violation="warn") as session:
            _fit(data.IgnoresIndex())
        row = next(r for r in session.as_dict()["sources"] if "IgnoresIndex" in r["name"])
        assert row["repeated_batches"] == 1
        assert "repeated batch" in session.summary()

    def test_warning_points_at_the_caller(self):
        """The warning's file and line are the caller's, not safegen's."""
        dataset = safegen.guard(data.IgnoresIndex(), on_violation="warn")
        dataset[0]
        with pytest.warns(safegen.RepeatedBatchWarning) as caught:
            dataset[1]
        assert caught[0].filename == __file__

    def test_warning_from_a_framework_points_at_getitem(self):
        """Called by a framework (as Keras's data adapter calls __getitem__ in a worker
        process), the warning points at the dataset's __getitem__ definition instead."""
        dataset = safegen.guard(data.IgnoresIndex(), on_violation="warn")
        adapter = os.path.join(os.sep + "venv", "site-packages", "keras_adapter.py")
        with pytest.warns(safegen.RepeatedBatchWarning) as caught:
            exec(compile("dataset[0]\ndataset[1]\n", adapter, "exec"), {"dataset": dataset})
        code = data.IgnoresIndex.__getitem__.__code__
        assert (caught[0].filename, caught[0].lineno) == (code.co_filename, code.co_firstlineno)


    def test_class_guarded_twice_points_at_its_own_getitem(self):
        """A class guarded twice is named at its own __getitem__, and a framework's call
        warns there, not at safegen's wrapper of it."""
        twice = safegen.guard(safegen.guard(data.IgnoresIndex))
        dataset = twice()
        dataset[0]
        with pytest.raises(safegen.RepeatedBatchError) as info:
            dataset[1]
        code = data.IgnoresIndex.__getitem__.__code__
        where = f"IgnoresIndex.__getitem__() at tests/random_datasets.py:{code.co_firstlineno}"
        assert str(info.value).startswith(where)
        warn = {"on_violation": "warn"}
        warned = safegen.guard(safegen.guard(data.IgnoresIndex, **warn), **warn)()
        adapter = os.path.join(os.sep + "venv", "site-packages", "keras_adapter.py")
        with pytest.warns(safegen.RepeatedBatchWarning) as caught:
            exec(compile("dataset[0]\ndataset[1]\n", adapter, "exec"), {"dataset": warned})
        assert (caught[0].filename, caught[0].lineno) == (code.co_filename, code.co_firstlineno)


class TestReports:
    """The report types and errors, without workers."""

    def _record(self, pid, epoch, index, before, after, state=GLOBAL, replaced=False):
        return {
            "pid": pid,
            "name": f"w{pid}",
            "epoch": epoch,
            "calls": [{"index": index, "states": {state: [before, after, replaced]}}],
        }

    def test_shared_global_state_across_epochs(self):
        """Two epochs' workers starting from one state are named with their epochs."""
        records = [self._record(1, 0, 0, "s", "t"), self._record(2, 3, 0, "s", "t")]
        [(report, pids)] = shared_streams(records, Channel("D.__getitem__()", "d.py:1"))
        assert pids == {1, 2} and report.epochs == (1, 2)
        assert "workers of different epochs (w1 (pid 1, epoch 1), w2 (pid 2, epoch 2))" in (
            report.message
        )

    def test_reseeded_or_untouched_states_are_not_reported(self):
        """A state reseeded in the call, or not drawn from, is not a repeated stream."""
        channel = Channel("D.__getitem__()", "")
        assert not shared_streams(
            [self._record(1, 0, 0, "s", "t", replaced=True), self._record(2, 0, 1, "s", "u")],
            channel,
        )
        assert not shared_streams(
            [self._record(1, 0, 0, "s", "s"), self._record(2, 0, 1, "s", "s")], channel
        )

    def test_objects_need_the_same_draws_for_different_indices(self):
        """An object reseeded in place from the index (same start, other end) is not reported."""
        label = "`self.rs` (numpy.random.RandomState)"
        channel = Channel("D.__getitem__()", "")
        first = self._record(1, 0, 0, "s", "t", label)
        same_index = [first, self._record(2, 0, 0, "s", "t", label)]
        other_end = [first, self._record(2, 0, 1, "s", "u", label)]
        copied = [first, self._record(2, 0, 1, "s", "t", label)]
        assert not shared_streams(same_index, channel)
        assert not shared_streams(other_end, channel)
        assert len(shared_streams(copied, channel)) == 1

    def test_states_without_a_readable_state_are_skipped(self):
        """random.SystemRandom (no state) and a subclass that cannot tell its state are
        not watched; a Generator next to them is."""
        import random

        class Opaque(random.Random):
            def getstate(self):
                raise NotImplementedError

        class Holder:
            pass

        holder = Holder()
        holder.system, holder.opaque = random.SystemRandom(), Opaque()
        holder.rng = np.random.default_rng(0)
        # objects_only: the global state (and the patch of np.random.seed) left out.
        streams = RandomStreams(holder, safegen.settings(), Channel("H", ""), objects_only=True)
        assert [label for label, _ in streams.watched] == ["`self.rng` (numpy.random.Generator)"]

    def test_batches_are_listed_once(self):
        """Two workers that drew for the same index: the message lists that index once."""
        workers = ("a (pid 1)", "b (pid 2)", "c (pid 3)", "d (pid 4)")
        report = RandomStreamReport(
            "D.__getitem__()", "d.py:3", GLOBAL, workers, (1,), (1, 2, 3, 2)
        )
        assert 'batches #1, #2, #3 got the same "random" numbers' in report.message
        copies = RandomStreamReport("g()", "", GLOBAL, workers[:2], (1,), (1, 1), unit="yields")
        assert 'each drew from it: yield #1 got the same "random" numbers' in copies.message

    def test_errors_pickle_with_their_report(self):
        """Worker processes send the errors back: they pickle with their report."""
        report = RandomStreamReport("D.__getitem__()", "d.py:3", GLOBAL, ("a", "b"), (1,), (0, 1))
        error = pickle.loads(pickle.dumps(safegen.RandomStreamError(report.message, report)))
        assert error.report == report and str(error) == report.message
        assert safegen.RandomStreamReport is RandomStreamReport


@pytest.mark.slow
@pytest.mark.tf_keras
class TestTfKerasSequence:
    """tf_keras.utils.Sequence with fit(workers=2, use_multiprocessing=True)."""

    def test_check_mode_reports_it(self):
        """Keras 2 does not reseed its workers either: RandomStreamError reaches fit's caller."""
        pytest.importorskip("tf_keras")
        from tests import tf_keras_random_datasets as k2

        dataset = safegen.guard(k2.GlobalNoise())
        with pytest.raises(Exception, match="NumPy's global state started from the same state"):
            k2.tiny_model().fit(dataset, epochs=2, verbose=0, **PROCESSES)

    def test_copy_mode_gives_distinct_draws(self, tmp_path):
        """Copy mode: every batch of both epochs made in a worker has its own draws."""
        pytest.importorskip("tf_keras")
        from tests import tf_keras_random_datasets as k2

        dataset = safegen.guard(k2.GlobalNoise(folder=str(tmp_path)), mode="copy")
        k2.tiny_model().fit(dataset, epochs=2, verbose=0, **PROCESSES)
        noise = [a.tobytes() for a in data.draws(str(tmp_path))]
        assert len(noise) >= 8 and len(set(noise)) == len(noise)


@pytest.fixture(scope="module")
def jax_found():
    """The results of tests/jax_streams_run.py."""
    pytest.importorskip("jax")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.jax_streams_run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.jax
class TestJax:
    """Keras 3 on JAX (a subprocess: the backend is chosen before Keras is imported)."""

    def test_reported_on_jax(self, jax_found):
        """Global state and a Generator attribute are reported; a per-index one is not."""
        found = jax_found
        assert found["backend"] == "jax"
        assert found["global_check"]["error"] == "RandomStreamError"
        assert "NumPy's global state started" in found["global_check"]["message"]
        assert found["generator_check"]["error"] == "RandomStreamError"
        assert "`self.rng` (numpy.random.Generator)" in found["generator_check"]["message"]
        assert "error" not in found["per_index_check"]

    def test_copy_mode_on_jax(self, jax_found):
        """Copy mode: every batch of both epochs has its own draws."""
        copy = jax_found["global_copy"]
        assert "error" not in copy and copy["draws"] >= 8 and copy["distinct"] == copy["draws"]


@pytest.mark.slow
class TestSafegenRun:
    """examples/unmodified/noisy_workers.py, unmodified, under `python -m safegen run`."""

    def _run(self, *args, noise_dir):
        root = Path(__file__).resolve().parent.parent
        env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "NOISE_DIR": str(noise_dir),
        }
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", *args, "examples/unmodified/noisy_workers.py"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=root,
            env=env,
        )

    def test_check_mode_fails_with_the_report(self, tmp_path):
        """Check mode: exit status 1, RandomStreamError (printed alone: TensorFlow's error
        that carried it out of the worker only named in one line), and the summary and JSON
        list it."""
        report = tmp_path / "report.json"
        (tmp_path / "noise").mkdir()
        result = self._run("--report", str(report), noise_dir=tmp_path / "noise")
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.RandomStreamError: NoisyPoints.__getitem__() at " in result.stderr
        traceback = result.stderr.split("\nsafegen: ", 1)[0]
        assert traceback.count("Traceback (most recent call last)") == 1, traceback
        assert "The above exception was the direct cause" not in traceback, traceback
        assert "tensorflow/python" not in traceback, traceback
        assert traceback.count("UnknownError") == 1, traceback  # the note
        assert "NumPy's global state started from the same state" in result.stderr
        assert "1 repeated random stream(s)" in result.stderr
        [row] = [r for r in json.loads(report.read_text())["sources"] if "Noisy" in r["name"]]
        assert row["random_streams"] == 1 and row["findings"][0]["kind"] == "random_stream"

    def test_copy_mode_exits_0_with_distinct_draws(self, tmp_path):
        """Copy mode: exit status 0, every batch of every epoch has its own noise, and the
        summary says that copy mode reseeded the workers."""
        result = self._run("--mode", "copy", noise_dir=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert re.search(
            r"\n  source NoisyPoints\.__getitem__\(\) at .*\[copy\].*, 0 violation\(s\)\n"
            r"    copy mode: reseeded NumPy's global random state and `random` in each "
            r"worker process before its first batch",
            result.stderr,
        ), result.stderr[-3000:]
        noise = [a.tobytes() for a in data.draws(str(tmp_path))]
        assert len(noise) >= 8 and len(set(noise)) == len(noise)


class TestPortedCleanDatasets:
    """Clean augmentation datasets ported from public projects: no report, 2 epochs."""

    @pytest.mark.parametrize("kind", ["ShuffledIndexes", "FlipSome", "SeededAugmenter"])
    def test_threads(self, kind):
        """With worker threads, check mode reports nothing on any of them."""
        from tests import ported_datasets as ported

        dataset = safegen.guard(getattr(ported, kind)(workers=2))
        ported.image_model().fit(dataset, epochs=2, verbose=0)
        assert safegen.stats(dataset).violations == 0

    @pytest.mark.slow
    def test_processes_without_draws_in_workers(self):
        """Shuffling in on_epoch_end (parent) with worker processes: nothing reported."""
        from tests import ported_datasets as ported

        dataset = safegen.guard(ported.ShuffledIndexes(**PROCESSES))
        ported.image_model().fit(dataset, epochs=2, verbose=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::safegen.RandomStreamWarning")
def test_copy_mode_warns_about_generator_objects():
    """Copy mode leaves a Generator attribute alone: it warns, and the summary lists it."""
    with safegen.enabled(mode="copy") as session:
        _fit(data.GeneratorNoise(**PROCESSES))
    row = next(r for r in session.as_dict()["sources"] if "GeneratorNoise" in r["name"])
    assert row["random_streams"] == 1
    assert "`self.rng` (numpy.random.Generator)" in row["findings"][0]["message"]


@pytest.mark.slow
def test_spawned_workers():
    """With "spawn", the dataset is pickled into each worker with its channel: a Generator
    attribute is reported; NumPy's global state, fresh in a spawned worker, is not."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "tests.spawn_streams_run"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert "RandomStreamError: GeneratorNoise.__getitem__()" in found["GeneratorNoise"]["message"]
    assert "SpawnPoolWorker" in found["GeneratorNoise"]["message"]
    assert found["GlobalNoise"] == {}


RANDOM_STREAM_WARNING = """\
import multiprocessing
import os

import numpy as np
import keras
import safegen


class Noisy(keras.utils.PyDataset):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.x = np.random.rand(64, 2).astype("float32")
        self.rng = np.random.default_rng(0)
        # Both worker processes of every epoch draw: the first call in each waits for
        # the other's (a barrier shared by fork), as in tests/random_datasets.py.
        self.home = self.started_in = os.getpid()
        self.barrier = multiprocessing.Barrier(2)

    def __len__(self):
        return 4

    def __getitem__(self, index):  # GETITEM
        if os.getpid() not in (self.home, self.started_in):
            self.started_in = os.getpid()
            self.barrier.wait(timeout=600)
        rows = self.x[index * 16:(index + 1) * 16]
        noise = self.rng.normal(scale=0.01, size=rows.shape)
        return rows + noise.astype("float32"), rows.mean(axis=1, keepdims=True)


model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(loss="mse")
with safegen.enabled(mode="copy"):
    model.fit(Noisy(workers=2, use_multiprocessing=True), epochs=2, verbose=0)
"""


@pytest.mark.slow
class TestWarningInWorkers:
    """RandomStreamWarning, issued in Keras's worker processes."""

    def test_printed_once_at_getitem(self, tmp_path):
        """Copy mode warns about a Generator attribute once for the whole fit (not once per
        worker), at the dataset's __getitem__ definition, not at Keras's data adapter."""
        script = tmp_path / "noisy.py"
        script.write_text(RANDOM_STREAM_WARNING)
        line = RANDOM_STREAM_WARNING.splitlines().index(
            "    def __getitem__(self, index):  # GETITEM"
        )
        root = Path(__file__).resolve().parent.parent
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stderr.count("RandomStreamWarning") == 1, result.stderr[-3000:]
        assert f"{script}:{line + 1}: RandomStreamWarning: Noisy.__getitem__() at " in (
            result.stderr
        )
        assert "py_dataset_adapter.py" not in result.stderr
