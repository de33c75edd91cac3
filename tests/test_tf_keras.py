"""safegen.guard with tf_keras (Keras 2): fit and fit_generator on guarded generators,
guarded Sequence classes and instances with worker threads and processes, and the
article's own Keras 2 program.

tf_keras is imported in this process next to Keras 3 (which `import tensorflow` loads
anyway): they are separate packages with separate state, and the whole suite passes
with tf_keras imported first. `TF_USE_LEGACY_KERAS` is *not* set here, as it would change
what `tf.keras` means for the Keras 3 tests; the article's program runs in a subprocess
where it is set and `keras` means tf_keras.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import safegen
from safegen.testing import assert_no_aliasing
from tests import seed

pytestmark = [
    pytest.mark.tf_keras,
    pytest.mark.filterwarnings("ignore:`Model.fit_generator` is deprecated"),
]
tf_keras = pytest.importorskip("tf_keras")
tf = pytest.importorskip("tensorflow")
from tests.tf_keras_datasets import Clean, SharedBuffer, mean_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BATCH = 16


def aligned_reused(steps=1000):
    """The seed's bug where it hurts: a reused buffer on a 64-byte boundary, which
    TensorFlow wraps without copying (see test_tf_data.py)."""
    raw = np.empty(BATCH * 2 * 8 + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    x = raw[offset : offset + BATCH * 2 * 8].view(np.float64).reshape(BATCH, 2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        for i in range(BATCH):
            x[i] = rng.integers(0, 100, size=2)
        yield x, (x[:, 0] + x[:, 1])[:, None] / 2


def _held(enqueuer, count, workers=1):
    """The first ``count`` batches a tf_keras enqueuer hands over, all kept (as its
    queue and any prefetching consumer keep them), read after the last one arrived."""
    enqueuer.start(workers=workers, max_queue_size=10)
    try:
        output = enqueuer.get()
        return [next(output) for _ in range(count)]
    finally:
        enqueuer.stop()


def _fit(method, data, **kwargs):
    """Train the mean model with ``fit`` or ``fit_generator``; the history dict."""
    model = mean_model()
    return getattr(model, method)(data, verbose=0, **kwargs).history


@pytest.fixture(params=["fit", "fit_generator"])
def method(request):
    """Keras 2's two ways to train on a generator."""
    return request.param


class TestGenerators:
    """Guarded generators given to tf_keras fit and fit_generator."""

    def test_check_mode_raises_at_the_second_batch(self, method):
        """The seed's reused buffer stops training with safegen's message at yield #2."""
        guarded = safegen.guard(seed.reused_buffer_keras)
        with pytest.raises(
            tf.errors.UnknownError,
            match=r"AliasingError: reused_buffer_keras\(\) at .*seed.py:\d+: yield #1 leaf "
            r"\[0\]\[0\] .* while yield #2 was being produced",
        ):
            _fit(method, guarded(batch_size=64), steps_per_epoch=20, epochs=1)

    def test_one_thread_hides_the_bug_check_mode_does_not(self, method):
        """Unguarded with workers=1, tf_keras copies each float batch as it standardizes
        it (``np.array(t, dtype=floatx)``) before the next ``next()``: the bug stays latent."""
        history = _fit(method, seed.reused_buffer_keras(64), steps_per_epoch=20, epochs=1)
        assert history["mismatched"] == [0.0]

    def test_worker_thread_queue_holds_the_buffer(self):
        """The control, without a race: tf_keras's enqueuer thread queues batches by
        reference, so a consumer that keeps 10 of them holds one buffer 10 times."""
        kept = _held(tf_keras.utils.GeneratorEnqueuer(seed.reused_buffer_keras(64)), 10)
        assert all(batch[0][0] is kept[0][0][0] for batch in kept)
        assert sum(seed.consistent(batch) for batch in kept) <= 1

    def test_copy_mode_with_worker_threads(self, method):
        """Copy mode: the same generator with workers=4 trains to a loss of exactly 0; the
        threads share it without "Your generator is NOT thread-safe"."""
        guarded = safegen.guard(seed.reused_buffer_keras, mode="copy")
        history = _fit(method, guarded(64), steps_per_epoch=20, epochs=2, workers=4)
        assert history["loss"] == [0.0, 0.0] and history["mismatched"] == [0.0, 0.0]
        assert safegen.stats(guarded).yields >= 40
        assert safegen.stats(guarded).bytes_copied > 0

    @pytest.mark.parametrize("mode", ["check", "copy", "freeze"])
    def test_worker_threads_share_a_guarded_generator(self, method, mode):
        """4 enqueuer threads share one guarded, correct generator in every mode: no "NOT
        thread-safe" error, a loss of exactly 0, every batch counted once."""
        guarded = safegen.guard(seed.fresh_buffer_keras, mode=mode)
        history = _fit(method, guarded(32), steps_per_epoch=15, epochs=2, workers=4)
        assert history["loss"] == [0.0, 0.0] and history["mismatched"] == [0.0, 0.0]
        found = safegen.stats(guarded)
        assert found.violations == 0 and found.yields >= 30

    def test_check_mode_with_worker_threads(self, method):
        """Check mode reports the reused buffer with workers=2 too."""
        guarded = safegen.guard(seed.reused_buffer_keras)
        with pytest.raises(tf.errors.UnknownError, match=r"reused_buffer_keras\(\) at .*yield #1"):
            _fit(method, guarded(64), steps_per_epoch=20, epochs=1, workers=2)

    def test_freeze_mode_fails_at_the_generators_write(self, method):
        """Freeze mode: the generator's next write into its buffer fails as read-only."""
        guarded = safegen.guard(seed.reused_buffer_keras, mode="freeze")
        with pytest.raises(tf.errors.InvalidArgumentError, match="read-only"):
            _fit(method, guarded(batch_size=64), steps_per_epoch=20, epochs=1)

    def test_fresh_generator_in_check_mode_trains(self, method):
        """A correct generator trains in check mode, nothing reported, every yield checked."""
        guarded = safegen.guard(seed.fresh_buffer_keras)
        history = _fit(method, guarded(batch_size=32), steps_per_epoch=10, epochs=2)
        assert history["loss"] == [0.0, 0.0]
        found = safegen.stats(guarded)
        assert found.violations == 0 and found.yields >= 20 and found.bytes_fingerprinted > 0

    @pytest.mark.parametrize("mode", [None, "copy"])
    def test_from_generator_dataset(self, mode):
        """from_generator over an aligned reused buffer: TensorFlow wraps it without
        copying, so the 20 tensors a consumer keeps are one buffer (the control, without a
        race); in copy mode they are 20 batches and tf_keras fit trains on them."""
        source = aligned_reused if mode is None else safegen.guard(aligned_reused, mode=mode)
        signature = (
            tf.TensorSpec((BATCH, 2), tf.float64),
            tf.TensorSpec((BATCH, 1), tf.float64),
        )
        dataset = tf.data.Dataset.from_generator(source, output_signature=signature)
        kept = list(dataset.prefetch(8).take(20))
        distinct = len({x.numpy().tobytes() for x, _ in kept})
        if mode is None:
            assert distinct == 1
        else:
            assert distinct == 20
            history = _fit("fit", dataset.prefetch(8), steps_per_epoch=20, epochs=1)
            assert history["mismatched"] == [0.0]


def _fit_sequence(dataset, epochs=1, **kwargs):
    return mean_model().fit(dataset, epochs=epochs, verbose=0, **kwargs).history["mismatched"]


THREADS = {"workers": 4, "use_multiprocessing": False}
PROCESSES = {"workers": 2, "use_multiprocessing": True}


@pytest.mark.slow
class TestSequenceThreads:
    """tf_keras.utils.Sequence with fit(workers=4): Keras 2's OrderedEnqueuer threads."""

    def test_bug_is_real_without_safegen(self):
        """The control, without a race: the 20 batches Keras 2's enqueuer threads hand
        over, all kept, are one buffer holding one batch's values."""
        enqueuer = tf_keras.utils.OrderedEnqueuer(SharedBuffer(batches=20), shuffle=False)
        kept = _held(enqueuer, 20, workers=4)
        assert len(kept) == 20 and all(x is kept[0][0] for x, _ in kept)

    def test_check_mode_reports_the_shared_buffer(self):
        """Check mode stops fit with safegen's message naming __getitem__."""
        dataset = safegen.guard(SharedBuffer(pause=0.002))
        with pytest.raises(
            tf.errors.UnknownError,
            match=r"AliasingError: SharedBuffer.__getitem__\(\) at .*tf_keras_datasets.py:\d+: "
            r"batch #\d+ leaf \[\d\] .* changed after it was returned",
        ):
            _fit_sequence(dataset, **THREADS)

    def test_copy_mode_gives_consistent_batches(self):
        """Copy mode serializes __getitem__ per instance: 0 mismatched batches."""
        dataset = safegen.guard(SharedBuffer(pause=0.002), mode="copy")
        assert _fit_sequence(dataset, **THREADS) == [0.0]
        found = safegen.stats(dataset)
        assert found.yields >= 60 and found.bytes_copied > 0

    def test_guarded_class(self):
        """A Sequence class decorated with @safegen.guard guards its instances."""

        @safegen.guard
        class Guarded(SharedBuffer):
            pass

        with pytest.raises(tf.errors.UnknownError, match=r"Guarded.__getitem__\(\) at "):
            _fit_sequence(Guarded(pause=0.002), **THREADS)
        assert safegen.stats(Guarded).violations >= 1

    def test_freeze_mode_fails_at_the_write(self):
        """Freeze mode: the Sequence's write into self.x fails as read-only."""
        dataset = safegen.guard(SharedBuffer(), mode="freeze")
        with pytest.raises(tf.errors.InvalidArgumentError, match="read-only"):
            _fit_sequence(dataset, **THREADS)

    def test_no_false_positive_clean_shuffled(self):
        """A clean Sequence, shuffled by fit, 4 threads: nothing reported."""
        dataset = safegen.guard(Clean())
        assert _fit_sequence(dataset, shuffle=True, **THREADS) == [0.0]
        assert safegen.stats(dataset).violations == 0


class TestEvaluatePredict:
    """Guarded sources given to evaluate, predict and validation_data."""

    def test_evaluate_and_predict_on_a_guarded_sequence(self):
        """evaluate and predict read every batch of a guarded Sequence in copy mode."""
        dataset = safegen.guard(SharedBuffer(batches=6), mode="copy")
        model = mean_model()
        loss, mismatched = model.evaluate(dataset, verbose=0)
        assert loss == 0.0 and mismatched == 0.0
        assert model.predict(dataset, verbose=0).shape == (6 * 32, 1)
        assert safegen.stats(dataset).yields >= 12

    def test_check_mode_in_validation_data(self):
        """A reused-buffer generator as validation_data stops fit with safegen's message."""
        guarded = safegen.guard(seed.reused_buffer_keras)
        with pytest.raises(tf.errors.UnknownError, match=r"reused_buffer_keras\(\) at "):
            _fit(
                "fit",
                seed.fresh_buffer_keras(64),
                steps_per_epoch=2,
                epochs=1,
                validation_data=guarded(64),
                validation_steps=5,
            )


def test_stats_before_the_first_batch():
    """stats() of a guarded Sequence that has returned no batch in this process is zeros
    (with worker processes, every batch may be made in a worker)."""
    dataset = safegen.guard(SharedBuffer(batches=5))
    assert safegen.stats(dataset) == safegen.Stats()


@pytest.mark.slow
class TestSequenceProcesses:
    """tf_keras.utils.Sequence with fit(workers=2, use_multiprocessing=True)."""

    def test_copy_mode(self):
        """Copy mode with worker processes: consistent batches; stats() works in the parent."""
        dataset = safegen.guard(SharedBuffer(batches=20), mode="copy")
        assert _fit_sequence(dataset, **PROCESSES) == [0.0]
        # The batches are made (and counted) in the workers; the parent counts only its
        # own peek at batch 0.
        assert safegen.stats(dataset).violations == 0

    def test_check_mode_error_reaches_main_process(self):
        """A violation in a worker process reaches fit's caller with safegen's message."""
        dataset = safegen.guard(SharedBuffer(batches=20))
        with pytest.raises(
            tf.errors.UnknownError, match=r"in worker process .*changed after it was returned"
        ):
            _fit_sequence(dataset, **PROCESSES)


class TestTesting:
    """safegen.testing reads tf_keras Sequences as it reads Keras 3 PyDatasets."""

    def test_shared_buffer_fails(self):
        """assert_no_aliasing on a shared-buffer Sequence raises with safegen's report."""
        with pytest.raises(AssertionError, match=r"SharedBuffer.__getitem__\(\)"):
            assert_no_aliasing(SharedBuffer(batches=5), steps=5)

    def test_clean_sequence_passes(self):
        """assert_no_aliasing on a clean Sequence passes, every batch read in each of 2 epochs."""
        result = assert_no_aliasing(Clean(batches=5), steps=5)
        assert (result.items, result.epochs) == (10, 2)


@pytest.mark.slow
def test_article_program_as_written():
    """The article's Keras 2 program, plus @safegen.guard, stops at its 2nd batch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SAFEGEN_MODE": "check"}
    result = subprocess.run(
        [sys.executable, "tests/tf_keras_article_run.py", "tests/article_keras2.py"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert (
        "AliasingError: train_iterator() at tests/article_keras2.py:14: yield #1 leaf [0][0] "
        "(float64, shape (64, 2)) changed after it was yielded, while yield #2 was being "
        "produced" in result.stderr
    ), result.stderr[-3000:]
    # Stopped in the first epoch, before the program's last line.
    assert "Epoch 1/100" in result.stdout and "Epoch 2/100" not in result.stdout


def test_installed_at_tensorflows_version():
    """tf-keras has TensorFlow's major.minor version, and installing it (--no-deps) left
    one TensorFlow distribution: not `tensorflow` over `tensorflow-cpu`."""
    assert tf_keras.__version__.split(".")[:2] == tf.__version__.split(".")[:2]
    installed = set()
    for name in ("tensorflow", "tensorflow-cpu", "tensorflow-macos"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        installed.add(name)
    assert len(installed) == 1, installed
