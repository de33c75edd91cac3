"""safegen.guard on Keras PyDataset classes and instances, with real worker threads and
processes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import safegen

pytestmark = [
    pytest.mark.keras,
    pytest.mark.filterwarnings("ignore:The model does not have any trainable weights"),
]
keras = pytest.importorskip("keras")
from tests.datasets import Clean, SharedBuffer, mean_model  # noqa: E402


def _held_by_keras_workers(dataset):
    """Every batch Keras's own enqueuer hands over, kept (a consumer that keeps
    references, as a prefetch queue does), read only after the last one arrived."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    return list(PyDatasetAdapter(dataset, shuffle=False).get_numpy_iterator())


def _mismatched(dataset, epochs=1):
    """Fraction of the batches fit saw whose inputs and targets disagree."""
    history = mean_model().fit(dataset, epochs=epochs, verbose=0)
    return history.history["mismatched"]


class TestThreads:
    """workers=4 in threads, the default for PyDataset workers."""

    def test_bug_is_real_without_safegen(self):
        """The control, without a race: the 20 batches Keras's worker threads hand over,
        all kept, are one buffer holding one batch's values (20 distinct were made)."""
        kept = _held_by_keras_workers(SharedBuffer(batches=20, workers=4))
        assert len(kept) == 20
        assert all(x is kept[0][0] and y is kept[0][1] for x, y in kept)
        assert len({x.tobytes() for x, _ in kept}) == 1
        made = {SharedBuffer(batches=20)[i][0].tobytes() for i in range(20)}
        assert len(made) == 20

    def test_copy_mode_keeps_every_batch_held(self):
        """The same consumer with copy mode: 20 distinct batches, each consistent."""
        dataset = safegen.guard(SharedBuffer(batches=20, workers=4), mode="copy")
        kept = _held_by_keras_workers(dataset)
        assert len({x.tobytes() for x, _ in kept}) == 20
        assert all(np.array_equal(x.mean(axis=1, keepdims=True), y) for x, y in kept)

    def test_check_mode_reports_it(self):
        """Check mode raises AliasingError naming __getitem__ and batches."""
        dataset = safegen.guard(SharedBuffer(workers=4))
        with pytest.raises(Exception, match=r"SharedBuffer.__getitem__\(\) at .*datasets.py"):
            _mismatched(dataset)

    def test_check_mode_reports_the_buffer_inside_workers(self):
        """When the batches Keras peeks at are fresh, the shared buffer is found among the
        worker threads' batches (on whichever leaf and batch is checked first)."""
        dataset = safegen.guard(SharedBuffer(workers=4, fresh_first=2, pause=0.002))
        with pytest.raises(Exception, match=r"batch #\d+ leaf \[[01]\] .* changed after it was"):
            _mismatched(dataset)

    def test_copy_mode_gives_consistent_batches(self):
        """Copy mode serializes calls per instance: 0 mismatched batches."""
        dataset = safegen.guard(SharedBuffer(workers=4, pause=0.002), mode="copy")
        assert _mismatched(dataset) == [0.0]
        found = safegen.stats(dataset)
        assert found.yields >= 60 and found.bytes_copied > 0

    def test_freeze_mode_fails_at_the_write(self):
        """Freeze mode: the dataset's write into self.x fails, with safegen's note."""
        dataset = safegen.guard(SharedBuffer(workers=2), mode="freeze")
        with pytest.raises(ValueError, match="read-only") as info:
            _mismatched(dataset)
        assert any("SharedBuffer.__getitem__()" in n for n in getattr(info.value, "__notes__", []))

    def test_no_false_positive_clean_shuffled(self):
        """A clean, shuffled dataset with workers=4 over 3 epochs: nothing reported."""
        dataset = safegen.guard(Clean(workers=4))
        assert _mismatched(dataset, epochs=3) == [0.0, 0.0, 0.0]
        assert safegen.stats(dataset).violations == 0


@pytest.mark.slow
class TestProcesses:
    """use_multiprocessing=True: the check runs in each worker process."""

    def test_copy_mode(self):
        """Copy mode with worker processes: 0 mismatched batches."""
        dataset = safegen.guard(SharedBuffer(workers=2, use_multiprocessing=True), mode="copy")
        assert _mismatched(dataset) == [0.0]

    def test_check_mode_error_reaches_main_process(self):
        """A violation found in a worker process reaches the user with safegen's message."""
        dataset = safegen.guard(SharedBuffer(workers=2, use_multiprocessing=True, fresh_first=2))
        with pytest.raises(Exception, match=r"in worker process .*changed after it was returned"):
            _mismatched(dataset)


class TestForms:
    """Class decorator, instance form, pickling."""

    def test_class_decorator(self):
        """@safegen.guard on a PyDataset class guards every instance."""
        Guarded = safegen.guard(SharedBuffer)
        dataset = Guarded(batches=4)
        assert isinstance(dataset, SharedBuffer) and isinstance(dataset, keras.utils.PyDataset)
        dataset[0]
        with pytest.raises(safegen.AliasingError, match="batch #1 leaf \\[0\\]"):
            dataset[1]

    def test_class_decorator_with_options(self):
        """@safegen.guard(mode="copy") on a class gives copies."""
        dataset = safegen.guard(mode="copy")(SharedBuffer)(batches=4)
        first, second = dataset[0], dataset[1]
        assert not np.shares_memory(first[0], second[0])

    def test_instance_is_guarded_in_place(self):
        """guard(dataset) returns the same object; guarding again changes its mode."""
        dataset = SharedBuffer(batches=4)
        assert safegen.guard(dataset) is dataset
        safegen.guard(dataset, mode="copy")
        first, second = dataset[0], dataset[1]
        assert not np.shares_memory(first[0], second[0])

    def test_guarded_instance_pickles(self):
        """A guarded instance pickles and keeps guarding after unpickling."""
        dataset = safegen.guard(SharedBuffer(batches=4))
        clone = pickle.loads(pickle.dumps(dataset))
        clone[0]
        with pytest.raises(safegen.AliasingError):
            clone[1]

    def test_mode_off_context_at_creation(self):
        """Options are resolved when a guarded class is instantiated."""
        Guarded = safegen.guard(SharedBuffer)
        with safegen.mode("off"):
            dataset = Guarded(batches=4)
        dataset[0], dataset[1]  # no error: created with mode off

    @pytest.mark.parametrize("mode", ["check", "copy", "freeze"])
    def test_stats_before_any_batch(self, mode):
        """stats() of a fresh guarded instance, before any ds[i], is all zeros."""
        Guarded = safegen.guard(mode=mode)(SharedBuffer)
        with safegen.mode("off"):
            made_off = safegen.guard(SharedBuffer)(batches=4)
        for dataset in (Guarded(batches=4), safegen.guard(SharedBuffer(batches=4), mode=mode)):
            assert safegen.stats(dataset) == safegen.Stats()
        assert safegen.stats(made_off) == safegen.Stats()
        dataset = Guarded(batches=4)
        dataset[0]
        assert safegen.stats(dataset).yields == 1

    def test_disable_switch_wins_over_an_explicit_mode(self, monkeypatch):
        """SAFEGEN_DISABLE=1: a class guarded in check mode gives unguarded instances."""
        from safegen import _config

        monkeypatch.setenv("SAFEGEN_DISABLE", "1")
        _config.reset()
        dataset = safegen.guard(mode="check")(SharedBuffer)(batches=4)
        dataset[0], dataset[1]  # no error: the switch turned the check off
        copied = safegen.guard(mode="copy")(SharedBuffer)(batches=4)
        first, second = copied[0], copied[1]
        assert not np.shares_memory(first[0], second[0])  # copy mode still copies

    def test_legacy_sequence_alias(self):
        """keras.utils.Sequence (Keras 3's alias of PyDataset) subclasses are guarded."""

        class Legacy(keras.utils.Sequence):
            def __init__(self):
                super().__init__()
                self.x = np.zeros(3)

            def __len__(self):
                return 3

            def __getitem__(self, index):
                self.x[:] = index
                return self.x

        dataset = safegen.guard(Legacy())
        dataset[0]
        with pytest.raises(safegen.AliasingError):
            dataset[1]


class RefillsBuf(keras.utils.PyDataset):
    """Refills one buffer named `buf` (not `x`) and returns it."""

    def __init__(self):
        super().__init__()
        self.buf = np.zeros((4, 2))

    def __len__(self):
        return 4

    def __getitem__(self, index):
        self.buf[:] = index
        return self.buf


class TestFixHint:
    """The advice of a dataset's report names no attribute the dataset does not have."""

    @pytest.mark.parametrize("mode", ["check", "freeze"])
    def test_hint_does_not_name_self_x(self, mode):
        """A buffer held in `self.buf`: the hint says np.copy(...), never np.copy(self.x)."""
        dataset = safegen.guard(RefillsBuf(), mode=mode)
        first = dataset[0]
        with pytest.raises((safegen.AliasingError, ValueError)) as caught:
            dataset[1]
        text = "\n".join([str(caught.value), *getattr(caught.value, "__notes__", [])])
        assert "return copies of the arrays it fills (np.copy(...))" in text, text
        assert "self.x" not in text, text
        assert first is not None
