"""Datasets that write at the epoch boundary: on_epoch_end / on_epoch_begin are guarded."""

from __future__ import annotations

import traceback

import numpy as np
import pytest

import safegen
from safegen.testing import assert_no_aliasing

pytestmark = [
    pytest.mark.keras,
    pytest.mark.filterwarnings("ignore:The model does not have any trainable weights"),
]
keras = pytest.importorskip("keras")
from tests.datasets import mean_model  # noqa: E402
from tests.epoch_datasets import (  # noqa: E402
    ChessPairs,
    CopiedRows,
    PositionAutoencoder,
    Rebound,
    RefilledAtBegin,
    ShuffledIndex,
    ShuffledInPlace,
)

END_LINE = ShuffledInPlace.on_epoch_end.__code__.co_firstlineno


def _fit(dataset, epochs=3):
    """Train the mean model for ``epochs`` epochs of the dataset's 100 batches."""
    keras.utils.set_random_seed(0)
    return mean_model().fit(dataset, epochs=epochs, verbose=0).history


class TestCheckMode:
    """Check mode pins an in-place rewrite between epochs on the epoch method."""

    def test_fit_raises_naming_on_epoch_end(self):
        """fit over 3 epochs of 100 batches raises, naming on_epoch_end, file:line, the fix."""
        with pytest.raises(safegen.AliasingError) as info:
            _fit(safegen.guard(ShuffledInPlace)())
        message = str(info.value)
        assert message.startswith(
            f"ShuffledInPlace.on_epoch_end() at tests/epoch_datasets.py:{END_LINE}: batch #"
        )
        assert "changed while on_epoch_end ran" in message
        assert "returned by ShuffledInPlace.__getitem__() at tests/epoch_datasets.py:" in message
        assert "self.x = self.x[order]" in message and "copies from __getitem__" in message
        assert info.value.report.writer.startswith("ShuffledInPlace.on_epoch_end()")

    def test_guarded_instance_raises_too(self):
        """Guarding an instance (not the class) guards its on_epoch_end as well."""
        with pytest.raises(safegen.AliasingError, match=r"ShuffledInPlace\.on_epoch_end\(\)"):
            _fit(safegen.guard(ShuffledInPlace()))

    def test_on_epoch_begin_is_guarded(self):
        """A refill in on_epoch_begin is pinned on on_epoch_begin."""
        with pytest.raises(safegen.AliasingError, match=r"RefilledAtBegin\.on_epoch_begin\(\)"):
            _fit(safegen.guard(RefilledAtBegin)())

    def test_long_epoch_with_small_window(self):
        """An epoch much longer than the window still raises at its end (not a warning)."""
        dataset = safegen.guard(ShuffledInPlace, window=2)(batches=100)
        for index in range(len(dataset)):
            dataset[index]
        with pytest.raises(safegen.AliasingError, match=r"batch #99 leaf \[0\]"):
            dataset.on_epoch_end()


class TestCopyMode:
    """Copy mode hands out copies: the in-place shuffle harms nothing."""

    def test_trains_like_the_dataset_without_the_bug(self):
        """Losses and mismatch metric over 3 epochs equal those of the copying dataset."""
        guarded = _fit(safegen.guard(ShuffledInPlace, mode="copy")())
        fixed = _fit(CopiedRows())
        assert guarded == fixed
        assert guarded["mismatched"] == [0.0, 0.0, 0.0]

    def test_finding_keras_discards_its_peeked_batches(self):
        """The README's finding: unguarded, Keras 3 trains on it as on the copying dataset."""
        assert _fit(ShuffledInPlace()) == _fit(CopiedRows())


class TestFreezeMode:
    """Freeze mode makes the write at the epoch boundary fail at its own line."""

    def test_shuffle_fails_in_on_epoch_end(self):
        """The shuffle raises ValueError in on_epoch_end, with safegen's note naming it."""
        with pytest.raises(ValueError, match="read-only") as info:
            _fit(safegen.guard(ShuffledInPlace, mode="freeze")())
        ours = [
            f for f in traceback.extract_tb(info.value.__traceback__) if "epoch_d" in f.filename
        ]
        assert (ours[-1].name, ours[-1].lineno) == ("on_epoch_end", END_LINE + 1)
        note = "\n".join(info.value.__notes__)
        assert note.startswith(
            f"safegen: ShuffledInPlace.on_epoch_end() at tests/epoch_datasets.py:{END_LINE} "
            "wrote into 'self.x' (float32, shape (800, 2)) at tests/epoch_datasets.py:"
            f"{END_LINE + 1}"
        )

    def test_base_is_writable_again_after_the_method(self):
        """The array behind the batches is read-only only while the epoch method runs."""
        dataset = safegen.guard(Rebound, mode="freeze")(batches=4)
        batch = dataset[0][0]
        dataset.on_epoch_end()
        assert not batch.flags.writeable and batch.base.flags.writeable


class TestCleanPatterns:
    """Rebinding self.x, or shuffling an index array, is not reported in any mode."""

    @pytest.mark.parametrize("dataset", [Rebound, ShuffledIndex])
    def test_fit_is_silent(self, dataset, any_mode):
        """fit over 3 epochs of 100 batches trains without a report or an error."""
        history = _fit(safegen.guard(dataset, mode=any_mode)())
        assert history["mismatched"] == [0.0, 0.0, 0.0]


class TestProbe:
    """assert_no_aliasing reads datasets for 2 epochs, calling the epoch methods."""

    def test_finds_the_shuffle_in_place(self):
        """The default 2 epochs find the in-place shuffle, named in the message."""
        with pytest.raises(AssertionError, match=r"ShuffledInPlace\.on_epoch_end\(\) at "):
            assert_no_aliasing(ShuffledInPlace, kwargs={"batches": 10})

    def test_one_epoch_still_calls_on_epoch_end(self):
        """epochs=1 reads every index, then calls on_epoch_end once."""
        with pytest.raises(AssertionError, match="over 1 epoch"):
            assert_no_aliasing(ShuffledInPlace, epochs=1, kwargs={"batches": 10})

    @pytest.mark.parametrize("mode", ["check", "freeze"])
    def test_clean_datasets_pass(self, mode):
        """The clean patterns pass, over 2 epochs of every index."""
        for dataset in (Rebound, ShuffledIndex, CopiedRows):
            result = assert_no_aliasing(dataset, mode=mode, kwargs={"batches": 10})
            assert (result.items, result.epochs) == (20, 2)

    def test_freeze_mode_reports_the_write(self):
        """In freeze mode the probe reports the failed write with safegen's note."""
        with pytest.raises(AssertionError, match="read-only(.|\n)*on_epoch_end"):
            assert_no_aliasing(ShuffledInPlace, mode="freeze", kwargs={"batches": 10})

    def test_epochs_is_validated(self):
        """epochs=0 is refused with a clear message."""
        with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
            assert_no_aliasing(Rebound, epochs=0)

    def test_instance_is_given_back_unguarded(self):
        """A probed instance gets its class back, and its arrays stay writable."""
        dataset = ShuffledIndex(batches=4)
        assert_no_aliasing(dataset, mode="freeze")
        assert type(dataset) is ShuffledIndex and dataset.x.flags.writeable
        assert np.array_equal(np.sort(dataset.index), np.arange(32))


class TestPortedDatasets:
    """Two Keras Sequences of a public chess project, ported with synthetic data."""

    def test_refill_in_place_is_found_by_the_probe(self):
        """The pairs dataset refills its arrays in place: the probe names on_epoch_end."""
        with pytest.raises(AssertionError, match=r"ChessPairs\.on_epoch_end\(\) at "):
            assert_no_aliasing(ChessPairs)

    def test_autoencoder_fit_raises_in_check_mode(self):
        """fit on the shuffled-in-place autoencoder raises naming its on_epoch_end."""
        inputs = keras.Input((773,))
        model = keras.Model(inputs, keras.layers.Dense(773)(keras.layers.Dense(8)(inputs)))
        model.compile(loss="mse", optimizer="adam")
        with pytest.raises(
            safegen.AliasingError, match=r"PositionAutoencoder\.on_epoch_end\(\) at "
        ):
            model.fit(safegen.guard(PositionAutoencoder)(), epochs=3, verbose=0)

    def test_autoencoder_copy_mode_trains(self):
        """Copy mode trains the autoencoder for 3 epochs without a report."""
        inputs = keras.Input((773,))
        model = keras.Model(inputs, keras.layers.Dense(773)(keras.layers.Dense(8)(inputs)))
        model.compile(loss="mse", optimizer="adam")
        dataset = safegen.guard(PositionAutoencoder, mode="copy")()
        history = model.fit(dataset, epochs=3, verbose=0).history
        assert len(history["loss"]) == 3 and safegen.stats(dataset).yields >= 48
