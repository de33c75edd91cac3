"""Validation splits that lie (issue 27, items 1 and 2): validation rows that are training
rows, and a validation_split slice of one class; the rules on arrays, then real fit
under enable() (arrays, PyDataset, generator), then `python -m safegen run`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import safegen
from safegen._detectors.rows import FULL_ROW_BYTES, leaves, row_keys
from safegen._detectors.splits import (
    EXPECTED_ROWS,
    class_labels,
    one_class_split,
    overlap,
)

ROOT = Path(__file__).resolve().parent.parent


def _sorted_classes(classes=3, per_class=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(classes * per_class, 4)).astype(np.float32)
    y = np.repeat(np.arange(classes), per_class)
    return x, y


def _keys(array):
    positions, keys = row_keys(leaves(array))
    return keys


class TestRowKeys:
    def test_same_rows_same_keys_anywhere(self):
        """A row's key depends on its bytes only, not on its position or its array."""
        x = np.random.default_rng(0).normal(size=(50, 3))
        keys = _keys(x)
        assert len(set(keys.tolist())) == 50
        assert _keys(x[::-1].copy()).tolist() == keys[::-1].tolist()
        assert _keys(x[10:20]).tolist() == keys[10:20].tolist()

    def test_several_arrays_make_one_key(self):
        """The rows of a dict of inputs are keyed together: a change in either changes it."""
        rng = np.random.default_rng(1)
        a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 5))
        both = row_keys(leaves({"a": a, "b": b}))[1]
        b2 = b.copy()
        b2[3, 0] += 1.0
        changed = row_keys(leaves({"a": a, "b": b2}))[1]
        assert (both != changed).tolist() == [i == 3 for i in range(20)]

    def test_large_rows_are_sampled_alike_everywhere(self):
        """Rows larger than FULL_ROW_BYTES are sampled by their content: the same rows
        are taken from two arrays that hold them in another order."""
        rng = np.random.default_rng(2)
        images = rng.uniform(size=(400, 32, 32, 8)).astype(np.float32)
        assert images[0].nbytes > FULL_ROW_BYTES
        positions, keys = row_keys(leaves(images))
        assert positions is not None and 0 < len(positions) < 400
        order = rng.permutation(400)
        positions2, keys2 = row_keys(leaves(images[order]))
        assert sorted(keys2.tolist()) == sorted(keys.tolist())

    def test_unreadable_structures(self):
        """Objects, ragged rows and tensors are not keyed."""
        assert leaves(np.array([object()] * 3)) is None
        assert leaves((np.zeros((3, 2)), np.zeros((4, 2)))) is None
        assert leaves([1, 2, 3]) is None


class TestClassLabels:
    @pytest.mark.parametrize(
        "y",
        [
            np.array([0, 1, 2, 1]),
            np.array([[0], [1], [1], [0]], dtype=np.uint8),
            np.array([True, False, True, True]),
            np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32),
            np.eye(3)[[0, 2, 1, 1]],
        ],
        ids=["int", "int-column", "bool", "binary-float", "one-hot"],
    )
    def test_class_labels(self, y):
        """Integer, boolean, 0/1 float and one-hot labels are classes."""
        labels = class_labels(y)
        assert labels is not None and labels.shape == (4,)

    @pytest.mark.parametrize(
        "y",
        [
            np.array([0.5, 1.5, 2.0, 3.0]),
            np.random.default_rng(0).normal(size=(6, 3)),
            np.array([[0.9, 0.1], [0.1, 0.9]]),  # smoothed labels
            np.arange(5000),  # more values than classes
            np.zeros((0,), dtype=int),
        ],
        ids=["regression", "several-targets", "smoothed", "ids", "empty"],
    )
    def test_not_class_labels(self, y):
        """Regression targets, smoothed labels and identifiers are not classes."""
        assert class_labels(y) is None


class TestOneClassRule:
    def test_sorted_binary(self):
        """Sorted binary labels: the last 20% hold one class."""
        y = np.repeat([0, 1], 500)
        found = one_class_split(y, 0.2)
        assert found is not None
        assert found.validation == {1: 200} and found.missing == (0,)

    def test_sorted_many_classes(self):
        """Ten classes sorted: the slice holds two, and misses eight certain ones."""
        y = np.repeat(np.arange(10), 100)
        found = one_class_split(y, 0.2)
        assert found is not None and sorted(found.validation) == [8, 9]
        assert len(found.missing) == 8

    @pytest.mark.parametrize("seed", range(20))
    def test_shuffled_rows(self, seed):
        """Shuffled labels, balanced or not, many classes or few, are never a finding."""
        rng = np.random.default_rng(seed)
        classes = int(rng.integers(2, 300))
        weights = rng.dirichlet(np.full(classes, 0.5))
        y = rng.choice(classes, size=int(rng.integers(50, 5000)), p=weights)
        assert one_class_split(y, float(rng.uniform(0.05, 0.5))) is None

    def test_rare_class_absent_is_fine(self):
        """A class too rare for a random slice to hold for sure may be missing."""
        y = np.array([0] * 990 + [1] * 10)
        rng = np.random.default_rng(0)
        y = y[rng.permutation(1000)]
        y[-100:] = 0  # the 10 class-1 rows all landed in training
        assert 100 * 10 / 1000 < EXPECTED_ROWS
        assert one_class_split(y, 0.1) is None

    def test_grouped_by_time_keeps_classes(self):
        """Rows grouped (by time, say) whose every group holds every class: no finding."""
        y = np.tile(np.arange(4), 250)
        assert one_class_split(y, 0.3) is None


class TestOverlapRule:
    def test_a_few_duplicates_are_real_data(self):
        """A handful of duplicate rows is not a finding."""
        rng = np.random.default_rng(0)
        train = rng.normal(size=(1000, 4))
        val = rng.normal(size=(200, 4))
        val[:5] = train[:5]
        found = overlap(
            _keys(train), _keys(val), validation_rows=200, training_rows=1000, sampled=False
        )
        assert found.shared == 5 and not found.found

    def test_random_split_of_categorical_rows(self):
        """Rows of a few categorical features repeat everywhere: a random split puts
        copies on both sides, which is not a finding."""
        rng = np.random.default_rng(0)
        x = rng.integers(0, 3, size=(2000, 4)).astype(np.float32)  # 81 distinct rows
        train, val = x[:1600], x[1600:]
        found = overlap(
            _keys(train), _keys(val), validation_rows=400, training_rows=1600, sampled=False
        )
        assert found.share > 0.9 and found.duplicated > 0.9 and not found.found

    def test_cut_from_partly_duplicated_rows(self):
        """Validation rows cut from training rows of which 20% have twins: found."""
        rng = np.random.default_rng(0)
        train = rng.normal(size=(1000, 4))
        train[800:] = train[:200]
        found = overlap(
            _keys(train),
            _keys(train[500:700]),
            validation_rows=200,
            training_rows=1000,
            sampled=False,
        )
        assert round(found.duplicated, 2) == 0.4 and found.share == 1.0 and found.found

    def test_many_duplicates(self):
        """Half of the validation rows in training is a finding, counted exactly."""
        rng = np.random.default_rng(0)
        train = rng.normal(size=(1000, 4))
        val = np.concatenate([train[:100], rng.normal(size=(100, 4))])
        found = overlap(
            _keys(train), _keys(val), validation_rows=200, training_rows=1000, sampled=False
        )
        assert (found.shared, found.compared, found.found) == (100, 200, True)
        assert "100 of the 200 validation rows (50%)" in found.message("fit()", "a", "b")


def _model(classes=3):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(classes, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*PyDataset.*super.*", category=UserWarning)
        return _model().fit(*args, epochs=kwargs.pop("epochs", 1), verbose=0, **kwargs)


@pytest.mark.keras
class TestFitOneClass:
    def test_sorted_rows_raise_before_training(self):
        """fit(validation_split=0.2) on rows sorted by class raises a SplitError naming
        the classes, before any training."""
        x, y = _sorted_classes()
        with safegen.enabled() as session:
            with pytest.raises(
                safegen.SplitError, match=r"validation slice holds 1 class\(es\) \(2: 60 rows\)"
            ) as caught:
                _fit(x, y, validation_split=0.2)
        assert "stratify=y" in str(caught.value)
        assert session.counts()["one_class_splits"] == 1
        assert session.failures() == {"one_class_splits": 1}

    def test_one_hot_labels(self):
        """One-hot labels sorted by class are found too."""
        import keras

        x, y = _sorted_classes()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile("sgd", "categorical_crossentropy")
        with safegen.enabled():
            with pytest.raises(safegen.SplitError, match="the validation slice holds 1"):
                model.fit(x, np.eye(3)[y], validation_split=0.25, epochs=1, verbose=0)

    def test_shuffled_rows_are_silent(self):
        """The correct twin: the same rows shuffled before fit."""
        x, y = _sorted_classes()
        p = np.random.default_rng(0).permutation(len(x))
        with safegen.enabled() as session:
            history = _fit(x[p], y[p], validation_split=0.2)
        assert "val_loss" in history.history
        assert session.counts()["one_class_splits"] == 0
        assert "check fit(validation_split=0.2)" in session.summary()

    def test_sorted_regression_targets_are_silent(self):
        """Regression targets sorted by value are not class labels: no finding."""
        import keras

        x, _ = _sorted_classes()
        y = np.sort(np.random.default_rng(0).normal(size=len(x))).astype(np.float32)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        with safegen.enabled() as session:
            model.fit(x, y, validation_split=0.2, epochs=1, verbose=0)
        assert session.counts()["one_class_splits"] == 0

    def test_warn_and_callback(self):
        """With on_violation="warn" the finding is a SplitWarning at the fit line; a
        callable gets the finding."""
        x, y = _sorted_classes()
        with safegen.enabled(on_violation="warn"):
            with pytest.warns(safegen.SplitWarning) as record:
                _fit(x, y, validation_split=0.2)
        assert [Path(w.filename).name for w in record] == ["test_splits.py"]
        seen = []
        with safegen.enabled(on_violation=seen.append):
            _fit(x, y, validation_split=0.2)
        assert [f.kind.key for f in seen] == ["one_class_splits"]


class Rows:
    """Module-level PyDataset factory (batches of rows of arrays given)."""

    @staticmethod
    def make(x, y, batch_size=20):
        import keras

        class RowBatches(keras.utils.PyDataset):
            def __init__(self):
                super().__init__()
                self.x, self.y = x, y

            def __len__(self):
                return len(self.x) // batch_size

            def __getitem__(self, index):
                rows = slice(index * batch_size, (index + 1) * batch_size)
                return self.x[rows], self.y[rows]

        return RowBatches()


def _batches(x, y, batch_size=20):
    while True:
        for start in range(0, len(x) - batch_size + 1, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=400)
    return x, y


@pytest.mark.keras
class TestFitOverlap:
    def test_arrays_overlap_raises_before_training(self):
        """Validation arrays cut from the training rows raise a SplitError with both
        counts and the fix, before training."""
        x, y = _data()
        with safegen.enabled() as session:
            with pytest.raises(
                safegen.SplitError,
                match=r"60 of the 100 validation rows \(60%\) are also training rows",
            ) as caught:
                _fit(x[:340], y[:340], validation_data=(x[280:380], y[280:380]))
        assert "split first" in str(caught.value)
        assert session.counts()["validation_overlaps"] == 1

    def test_disjoint_arrays_are_silent(self):
        """The correct twin: disjoint validation rows."""
        x, y = _data()
        with safegen.enabled() as session:
            _fit(x[:300], y[:300], validation_data=(x[300:], y[300:]))
        assert session.counts()["validation_overlaps"] == 0
        assert "check fit(validation_data=...)" in session.summary()

    def test_a_few_duplicates_are_silent(self):
        """Five duplicate rows of 100 (real data has some): no finding."""
        x, y = _data()
        xv = x[300:].copy()
        xv[:5] = x[:5]
        with safegen.enabled() as session:
            _fit(x[:300], y[:300], validation_data=(xv, y[300:]))
        assert session.counts()["validation_overlaps"] == 0

    def test_pydatasets_overlap_found_when_fit_returns(self):
        """A PyDataset whose validation twin repeats training rows: found from the
        batches Keras read, when fit returns."""
        x, y = _data()
        with safegen.enabled() as session:
            with pytest.raises(safegen.SplitError, match=r"40 of the 100 validation rows"):
                _fit(
                    Rows.make(x[:300], y[:300]),
                    validation_data=Rows.make(x[260:360], y[260:360]),
                    epochs=2,
                )
        assert session.counts()["validation_overlaps"] == 1

    def test_disjoint_pydatasets_are_silent(self):
        """The correct twin with PyDatasets."""
        x, y = _data()
        with safegen.enabled() as session:
            _fit(Rows.make(x[:300], y[:300]), validation_data=Rows.make(x[300:], y[300:]), epochs=2)
        assert session.counts()["validation_overlaps"] == 0

    def test_generator_against_arrays(self):
        """A training generator (its first epoch's yields) against validation arrays."""
        x, y = _data()
        with safegen.enabled() as session:
            with pytest.raises(safegen.SplitError, match=r"20 of the 100 validation rows \(20%\)"):
                _fit(
                    _batches(x[:300], y[:300]),
                    steps_per_epoch=15,
                    validation_data=(x[280:380], y[280:380]),
                )
        with safegen.enabled() as session:
            _fit(_batches(x[:300], y[:300]), steps_per_epoch=15, validation_data=(x[300:], y[300:]))
        assert session.counts()["validation_overlaps"] == 0

    def test_augmented_training_rows_are_not_overlap(self):
        """Training inputs with noise added are not validation rows, even if made from
        them: no finding (the check compares exact rows)."""
        x, y = _data()
        noisy = x + np.random.default_rng(1).normal(scale=0.01, size=x.shape).astype(np.float32)
        with safegen.enabled() as session:
            _fit(noisy, y, validation_data=(x[300:], y[300:]))
        assert session.counts()["validation_overlaps"] == 0


@pytest.mark.tf_keras
class TestTfKeras:
    def test_tf_keras_sorted_split(self):
        """tf_keras's fit runs the same check."""
        import tf_keras

        x, y = _sorted_classes()
        model = tf_keras.Sequential(
            [tf_keras.Input((4,)), tf_keras.layers.Dense(3, activation="softmax")]
        )
        model.compile("sgd", "sparse_categorical_crossentropy")
        with safegen.enabled():
            with pytest.raises(safegen.SplitError, match="validation slice holds 1"):
                model.fit(x, y, validation_split=0.2, epochs=1, verbose=0)


SCRIPT = """
import numpy as np
import keras

rng = np.random.default_rng(0)
x = rng.normal(size=(300, 4)).astype("float32")
y = np.repeat(np.arange(3), 100)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
model.compile("sgd", "sparse_categorical_crossentropy")
{fit}
print("trained")
"""

RUNS = {
    "one-class-buggy": ("model.fit(x, y, validation_split=0.2, verbose=0)", 1),
    "one-class-correct": (
        "p = rng.permutation(300)\nmodel.fit(x[p], y[p], validation_split=0.2, verbose=0)",
        0,
    ),
    "overlap-buggy": ("model.fit(x, y, validation_data=(x[200:], y[200:]), verbose=0)", 1),
    "overlap-correct": (
        "p = rng.permutation(300)\nx, y = x[p], y[p]\n"
        "model.fit(x[:240], y[:240], validation_data=(x[240:], y[240:]), verbose=0)",
        0,
    ),
}


@pytest.mark.slow
@pytest.mark.keras
class TestRun:
    @pytest.mark.parametrize("name", sorted(RUNS))
    def test_safegen_run(self, tmp_path, name):
        """`python -m safegen run` exits 1 on the buggy script and 0 on its twin."""
        fit, code = RUNS[name]
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(SCRIPT).format(fit=fit))
        result = subprocess.run(
            [sys.executable, "-m", "safegen", "run", str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        assert result.returncode == code, result.stderr[-3000:]
        if code:
            assert "SplitError" in result.stderr and "train.py:" in result.stderr
        else:
            assert "trained" in result.stdout
