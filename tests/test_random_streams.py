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
from safegen._detectors.random_streams import GLOBAL, RandomStreamReport, shared_streams
from safegen._detectors.random_workers import RandomStreams

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

    def _calls(self, pid, epoch, *calls, state=GLOBAL):
        """A worker's record of reseeding calls: ``(index, after, drew)`` each."""
        return {
            "pid": pid,
            "name": f"w{pid}",
            "epoch": epoch,
            "calls": [
                {"index": index, "states": {state: ["s", after, True, drew]}}
                for index, after, drew in calls
            ],
        }

    def test_reseeded_to_one_state_is_reported(self):
        """Calls that reseed to a seed moving per call, the same in two workers (a copied
        counter: ImageDataGenerator.flow(seed=...)), are reported as reseeded."""
        records = [
            self._calls(1, 0, (0, "a", True), (2, "b", True)),
            self._calls(2, 0, (1, "a", True), (3, "b", True)),
        ]
        [(report, pids)] = shared_streams(records, Channel("D.__getitem__()", "d.py:1"))
        assert pids == {1, 2} and report.reseeded
        assert "NumPy's global state was reseeded in the call to the same state in 2 " in (
            report.message
        )
        assert "cannot undo a reseed made inside the call" in report.message

    def test_reseeds_made_on_purpose_are_not_reported(self):
        """A seed from the index (one index in two epochs), per worker, a constant seed in
        every call, or a reseed not drawn from: not reported."""
        channel = Channel("D.__getitem__()", "")
        per_index = [self._calls(1, 0, (0, "a", True)), self._calls(3, 1, (0, "a", True))]
        per_worker = [self._calls(1, 0, (0, "a", True)), self._calls(2, 0, (1, "b", True))]
        constant = [
            self._calls(1, 0, (0, "a", True), (2, "a", True)),
            self._calls(2, 0, (1, "a", True), (3, "a", True)),
        ]
        not_drawn = [self._calls(1, 0, (0, "a", False)), self._calls(2, 0, (1, "a", False))]
        for records in (per_index, per_worker, constant, not_drawn):
            assert not shared_streams(records, channel)

    def test_generator_objects_on_the_dataset_are_watched(self):
        """A RandomState in the locals of a generator object held by the dataset (keras-
        retinanet's transform generator) is watched once the generator has started."""
        from tests import ported_random_datasets as ported

        label = "`prng` in the generator `self.transform_generator` (numpy.random.RandomState)"
        dataset = ported.retina()
        settings, channel = safegen.settings(), Channel("R", "")
        # objects_only: the global state (and the patch of np.random.seed) left out.
        before = RandomStreams(dataset, settings, channel, objects_only=True)
        assert [name for name, _ in before.watched] == []  # made on the first next()
        dataset[0]
        streams = RandomStreams(dataset, settings, channel, objects_only=True)
        assert [name for name, _ in streams.watched] == [label]
        [(_, resolve)] = streams.watched
        assert resolve(dataset) is dataset.transform_generator.gi_frame.f_locals["prng"]

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


@pytest.mark.slow
@pytest.mark.tf_keras
# tf_keras's image module imports affine_transform from scipy's deprecated namespace.
@pytest.mark.filterwarnings("ignore:Please import `affine_transform`:DeprecationWarning")
class TestTfKerasImageDataGenerator:
    """tf_keras's own ImageDataGenerator.flow with fit(workers=2, use_multiprocessing=True)."""

    def _fit(self, flow):
        import tf_keras

        model = tf_keras.Sequential(
            [tf_keras.layers.Flatten(input_shape=(8, 8, 1)), tf_keras.layers.Dense(1)]
        )
        model.compile(loss="mse", optimizer="sgd")
        model.fit(flow, epochs=2, verbose=0, **PROCESSES)

    def test_seeded_flow_is_reported(self, tmp_path):
        """flow(seed=1) repeats its augmentations across workers, and check mode reports
        the reseed to one state."""
        pytest.importorskip("tf_keras")
        from tests import ported_random_datasets as ported

        self._fit(ported.tf_keras_image_flow(seed=1, folder=str(tmp_path)))
        draws = ported.draws(str(tmp_path))
        assert len(draws) >= 32 and len(set(draws)) < len(draws) * 3 // 4
        with pytest.raises(Exception, match="RandomStreamError") as info:
            self._fit(safegen.guard(ported.tf_keras_image_flow(seed=1)))
        assert PORTED_BUGS["flow_seed"][1] in str(info.value)

    def test_unseeded_flow_in_copy_mode_is_silent(self, tmp_path):
        """flow() without a seed, copy mode: every augmentation distinct, nothing found."""
        pytest.importorskip("tf_keras")
        from tests import ported_random_datasets as ported

        flow = ported.tf_keras_image_flow(folder=str(tmp_path))
        with safegen.enabled(mode="copy") as session:
            self._fit(flow)
        assert all(row["violations"] == 0 for row in session.as_dict()["sources"])
        draws = ported.draws(str(tmp_path))
        assert len(draws) >= 32 and len(set(draws)) == len(draws)


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


def _ported(name, folder=None, **workers):
    """A dataset of tests/ported_random_datasets.py by the name ported_streams_run.py gives
    it, and its model."""
    from tests import ported_random_datasets as ported

    made = {
        "flow_seed": lambda: (ported.image_flow(seed=1, folder=folder, **workers), 1),
        "flow": lambda: (ported.image_flow(folder=folder, **workers), 1),
        "flow_per_worker": lambda: (
            ported.image_flow_per_worker(seed=1, folder=folder, **workers),
            1,
        ),
        "retina": lambda: (ported.retina(folder=folder, **workers), 4),
        "retina_per_worker": lambda: (ported.retina_per_worker(folder=folder, **workers), 4),
    }
    dataset, outputs = made[name]()
    return dataset, ported.image_model(outputs)


# The two ported datasets that repeat, with the start of what check mode says about them.
PORTED_BUGS = {
    "flow_seed": (
        "NumpyArrayIterator.__getitem__() at ",
        "NumPy's global state was reseeded in the call to the same state in 2 worker processes",
    ),
    "retina": (
        "RetinaGenerator.__getitem__() at tests/ported_random_datasets.py:",
        "`prng` in the generator `self.transform_generator` (numpy.random.RandomState) "
        "started from the same state in 2 worker processes",
    ),
}


@pytest.mark.slow
class TestPortedRepeatingDatasets:
    """Keras's ImageDataGenerator.flow(seed=1) and keras-retinanet's Generator (ported in
    tests/ported_random_datasets.py) with 2 worker processes, 2 epochs, and their twins."""

    @pytest.mark.parametrize("name", sorted(PORTED_BUGS))
    def test_bug_is_real_without_safegen(self, name, tmp_path):
        """Unguarded, the two workers' augmentations repeat (identical images: equal
        augmented images are equal draws)."""
        dataset, model = _ported(name, str(tmp_path), **PROCESSES)
        model.fit(dataset, epochs=2, verbose=0)
        draws = ported_draws(tmp_path)
        assert len(draws) >= 32 and len(set(draws)) < len(draws) * 3 // 4

    @pytest.mark.parametrize("name", sorted(PORTED_BUGS))
    def test_check_mode_reports_it(self, name):
        """RandomStreamError reaches fit's caller, naming the dataset and the state."""
        dataset, model = _ported(name, **PROCESSES)
        with pytest.raises(Exception, match="RandomStreamError") as info:
            model.fit(safegen.guard(dataset), epochs=2, verbose=0)
        where, what = PORTED_BUGS[name]
        assert where in str(info.value) and what in str(info.value)

    @pytest.mark.parametrize("name", ["flow_per_worker", "retina_per_worker"])
    def test_twins_seeded_per_worker_are_silent(self, name, tmp_path):
        """flow(seed=1) with a seed made per worker, and the retinanet Generator given a
        RandomState per worker: nothing reported, and every augmentation is distinct."""
        dataset, model = _ported(name, str(tmp_path), **PROCESSES)
        with safegen.enabled() as session:
            model.fit(dataset, epochs=2, verbose=0)
        assert all(row["violations"] == 0 for row in session.as_dict()["sources"])
        draws = ported_draws(tmp_path)
        assert len(draws) >= 32 and len(set(draws)) == len(draws)

    def test_unseeded_flow_in_copy_mode_is_silent(self, tmp_path):
        """flow() without a seed in copy mode: each worker reseeded, nothing reported, every
        augmentation distinct."""
        dataset, model = _ported("flow", str(tmp_path), **PROCESSES)
        with safegen.enabled(mode="copy") as session:
            model.fit(dataset, epochs=2, verbose=0)
        assert all(row["violations"] == 0 for row in session.as_dict()["sources"])
        draws = ported_draws(tmp_path)
        assert len(draws) >= 32 and len(set(draws)) == len(draws)

    @pytest.mark.filterwarnings("ignore::safegen.RandomStreamWarning")
    def test_copy_mode_says_it_cannot_undo_the_reseed(self):
        """flow(seed=1) in copy mode: the reseed in each call is Keras's, so copy mode
        warns and the summary lists it, saying copy mode cannot undo it."""
        dataset, model = _ported("flow_seed", **PROCESSES)
        with safegen.enabled(mode="copy") as session:
            model.fit(dataset, epochs=2, verbose=0)
        [row] = session.as_dict()["sources"]
        assert row["random_streams"] == 1
        assert "cannot undo a reseed made inside the call" in row["findings"][0]["message"]


class TestPortedDatasetsWithThreads:
    """ImageDataGenerator.flow with worker threads (one shared state): nothing reported.
    (keras-retinanet's Generator is not thread-safe: two threads calling next() on its
    transform generator at once raise "generator already executing".)"""

    @pytest.mark.parametrize("name", ["flow_seed", "flow"])
    def test_threads(self, name):
        """Check mode, workers=2 threads, 2 epochs: no report."""
        dataset, model = _ported(name, workers=2)
        guarded = safegen.guard(dataset)
        model.fit(guarded, epochs=2, verbose=0)
        assert safegen.stats(guarded).violations == 0


def ported_draws(folder):
    """The augmented images (or transforms) a ported dataset saved in ``folder``."""
    from tests import ported_random_datasets as ported

    return ported.draws(str(folder))


@pytest.mark.slow
class TestPortedUnderSafegenRun:
    """tests/ported_streams_run.py, no safegen in it, under `python -m safegen run`."""

    def _run(self, *names, options=(), noise_dir=None):
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
        if noise_dir is not None:
            env["NOISE_DIR"] = str(noise_dir)
        program = ["tests/ported_streams_run.py", *names]
        return subprocess.run(
            [sys.executable, "-m", "safegen", "run", *options, *program],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=root,
            env=env,
        )

    @pytest.mark.parametrize("name", sorted(PORTED_BUGS))
    def test_check_mode_fails_with_the_report(self, name):
        """Exit status 1, RandomStreamError naming the dataset and the state, summary."""
        result = self._run(name)
        assert result.returncode == 1, result.stderr[-3000:]
        where, what = PORTED_BUGS[name]
        assert f"safegen.RandomStreamError: {where}" in result.stderr
        assert what in result.stderr
        assert "1 repeated random stream(s)" in result.stderr

    def test_twins_exit_0_with_distinct_draws(self, tmp_path):
        """Both twins seeded per worker, one after the other: exit status 0, every
        augmentation distinct."""
        result = self._run("flow_per_worker", "retina_per_worker", noise_dir=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "0 violation(s)" in result.stderr
        draws = ported_draws(tmp_path)
        assert len(draws) >= 64 and len(set(draws)) == len(draws)

    def test_copy_mode(self, tmp_path):
        """Copy mode: flow() without a seed gets distinct augmentations, exit status 0;
        flow(seed=1) is warned about (copy mode cannot undo Keras's reseed), exit status 1
        as for any finding copy mode did not fix."""
        result = self._run("flow", options=("--mode", "copy"), noise_dir=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        draws = ported_draws(tmp_path)
        assert len(draws) >= 32 and len(set(draws)) == len(draws)
        seeded = self._run("flow_seed", options=("--mode", "copy"))
        assert seeded.returncode == 1, seeded.stderr[-3000:]
        assert "RandomStreamWarning: NumpyArrayIterator.__getitem__()" in seeded.stderr
        assert "cannot undo a reseed made inside the call" in seeded.stderr
        assert "1 repeated random stream(s)" in seeded.stderr
