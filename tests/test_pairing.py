"""Inputs shuffled apart from their targets (issue 27, item 4): the rule fed batch by
batch, then real fit under enable() with a PyDataset and a generator, the public
datasets of the suite silent, and `python -m safegen run`."""

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
from safegen._detectors.pairing import IDLE_WINDOWS, Pairing

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]


def _rows(count=200, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 6)).astype(np.float32)
    y = rng.integers(0, classes, size=count)
    return x, y


def _feed(pairing, x, y, *, epochs=3, batch_size=20, apart=False, noise=0.0, seed=0):
    """Feed `epochs` passes of (x, y), reshuffled each pass, to a dataset's detector."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        p = rng.permutation(len(x))
        q = rng.permutation(len(x)) if apart else p
        xs, ys = x[p], y[q]
        for start in range(0, len(x), batch_size):
            xb = xs[start : start + batch_size]
            if noise:
                xb = xb + rng.normal(scale=noise, size=xb.shape).astype(np.float32)
            if not pairing.seen((xb, ys[start : start + batch_size]), start // batch_size):
                return
        pairing.epoch_passed()


def _pairing():
    found = []
    return Pairing("Rows.__getitem__()", "data.py:9", found.append), found


class TestRule:
    def test_two_permutations(self):
        """Shuffled apart: most rows met again come with another target."""
        pairing, found = _pairing()
        _feed(pairing, *_rows(), apart=True)
        assert len(found) == 1
        details = found[0].details
        assert details.epoch == 2 and details.changed >= details.compared * 0.8
        assert found[0].message.startswith("Rows.__getitem__() at data.py:9: by epoch 2, ")

    def test_binary_labels(self):
        """With two classes a re-pairing keeps half the targets: still found."""
        pairing, found = _pairing()
        _feed(pairing, *_rows(classes=2), apart=True)
        assert len(found) == 1

    def test_one_permutation(self):
        """The correct twin: one permutation for both."""
        pairing, found = _pairing()
        _feed(pairing, *_rows(), epochs=6)
        assert found == [] and pairing.compared >= 32 and pairing.changed == 0

    def test_noise_added_to_inputs(self):
        """Augmented inputs are never met again: nothing compared, and it retires."""
        pairing, found = _pairing()
        _feed(pairing, *_rows(), epochs=IDLE_WINDOWS + 3, apart=True, noise=0.01)
        assert found == [] and pairing.compared == 0 and pairing.done

    def test_a_few_duplicates_with_other_labels(self):
        """Ten duplicated inputs of 200 with another label (real data has some): silent."""
        x, y = _rows()
        x[190:] = x[:10]
        y[190:] = (y[:10] + 1) % 10
        pairing, found = _pairing()
        _feed(pairing, x, y, epochs=6)
        assert found == []

    def test_low_cardinality_features(self):
        """Tabular rows of three binary features, labels of many values: one input comes
        with many targets in every epoch; not a re-pairing."""
        rng = np.random.default_rng(0)
        x = rng.integers(0, 2, size=(400, 3)).astype(np.float32)
        y = rng.integers(0, 10, size=400)
        pairing, found = _pairing()
        _feed(pairing, x, y, epochs=6)
        assert found == []

    def test_generator_windows(self):
        """A generator's windows are steps of yields: the same rule."""
        found = []
        pairing = Pairing("batches()", "", found.append, steps=10)
        x, y = _rows()
        rng = np.random.default_rng(0)
        step = 0
        for _ in range(3):
            xs, ys = x[rng.permutation(200)], y[rng.permutation(200)]
            for start in range(0, 200, 20):
                pairing.seen((xs[start : start + 20], ys[start : start + 20]), step)
                step += 1
        assert len(found) == 1 and found[0].details.epoch == 2


def _model():
    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(10, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _fit(data, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*PyDataset.*super.*", category=UserWarning)
        return _model().fit(data, epochs=kwargs.pop("epochs", 3), verbose=0, **kwargs)


def _dataset(x, y, *, apart=False, noise=0.0, batch_size=20, workers=1):
    import keras

    class Shuffled(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers)
            self.x, self.y = x, y
            self.rng = np.random.default_rng(1)

        def __len__(self):
            return len(self.x) // batch_size

        def __getitem__(self, index):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            xb = self.x[rows]
            if noise:
                xb = xb + np.random.normal(scale=noise, size=xb.shape).astype(np.float32)
            return xb, self.y[rows]

        def on_epoch_end(self):
            p = self.rng.permutation(len(self.x))
            q = self.rng.permutation(len(self.x)) if apart else p
            self.x, self.y = self.x[p], self.y[q]

    return Shuffled()


def _generator(x, y, *, apart=False, batch_size=20):
    """The pattern of many Q&A threads: np.random.shuffle on each array every pass."""
    x, y = x.copy(), y.copy()
    rng = np.random.default_rng(2)
    while True:
        if apart:
            np.random.shuffle(x)
            np.random.shuffle(y)
        else:
            p = rng.permutation(len(x))
            x, y = x[p], y[p]
        for start in range(0, len(x) - batch_size + 1, batch_size):
            rows = np.arange(start, start + batch_size)
            yield x[rows], y[rows]


@pytest.mark.keras
class TestFitDataset:
    def test_two_permutations_raise(self):
        """A PyDataset shuffling x and y with two permutations in on_epoch_end raises a
        PairingError naming it and the epoch."""
        with safegen.enabled() as session:
            with pytest.raises(
                safegen.PairingError,
                match=r"Shuffled.__getitem__\(\) at .*test_pairing.py:\d+: by epoch 2, ",
            ) as caught:
                _fit(_dataset(*_rows(), apart=True))
        assert "p = np.random.permutation(len(x))" in str(caught.value)
        assert session.counts()["shuffled_apart"] == 1

    def test_one_permutation_is_silent(self):
        """The correct twin."""
        with safegen.enabled() as session:
            _fit(_dataset(*_rows()), epochs=4)
        assert session.counts()["shuffled_apart"] == 0

    def test_noise_is_silent(self):
        """Two permutations, but noise added to inputs: never met again, nothing said
        (the re-pairing cannot be seen; it is not a false alarm either)."""
        with safegen.enabled() as session:
            _fit(_dataset(*_rows(), noise=0.01), epochs=4)
        assert session.counts()["shuffled_apart"] == 0

    def test_duplicates_with_other_labels_are_silent(self):
        """A few duplicate inputs with other labels: silent."""
        x, y = _rows()
        x[190:] = x[:10]
        y[190:] = (y[:10] + 1) % 10
        with safegen.enabled() as session:
            _fit(_dataset(x, y), epochs=4)
        assert session.counts()["shuffled_apart"] == 0

    def test_worker_threads(self):
        """With worker threads the batches reach one detector: still found."""
        with safegen.enabled(on_violation="warn") as session:
            with pytest.warns(safegen.PairingWarning, match="by epoch"):
                _fit(_dataset(*_rows(), apart=True, workers=2))
        assert session.counts()["shuffled_apart"] == 1


@pytest.mark.keras
class TestFitGenerator:
    def test_np_random_shuffle_each_array(self):
        """np.random.shuffle(x); np.random.shuffle(y) each pass: a PairingError naming
        the generator."""
        with safegen.enabled() as session:
            with pytest.raises(
                safegen.PairingError, match=r"_generator\(\) at .*test_pairing.py:\d+: by epoch 2"
            ):
                _fit(_generator(*_rows(), apart=True), steps_per_epoch=10)
        assert session.counts()["shuffled_apart"] == 1

    def test_one_permutation_is_silent(self):
        """The correct twin."""
        with safegen.enabled() as session:
            _fit(_generator(*_rows()), steps_per_epoch=10, epochs=4)
        assert session.counts()["shuffled_apart"] == 0

    def test_tap_removed_when_fit_returns(self):
        """The tap watches the generator during fit only: afterwards it steps on its own
        (no cost), and a guarded generator keeps its guard."""
        from safegen._handle import handle_of

        generator = safegen.guard(_generator(*_rows()))
        with safegen.enabled() as session:
            _fit(generator, steps_per_epoch=10, epochs=2)
        assert handle_of(generator).watcher is None
        assert session.counts()["shuffled_apart"] == 0
        next(generator)


def _public_datasets():
    from tests import datasets, epoch_datasets, ported_datasets, random_datasets

    return [
        datasets.Clean(),
        ported_datasets.ShuffledIndexes(),
        ported_datasets.FlipSome(),
        ported_datasets.SeededAugmenter(),
        random_datasets.PerIndex(),
        random_datasets.ReseededPerIndex(),
        random_datasets.GlobalNoise(),
        epoch_datasets.CopiedRows(),
        epoch_datasets.Rebound(),
        epoch_datasets.ShuffledIndex(),
        epoch_datasets.ChessPairs(),
        epoch_datasets.PositionAutoencoder(),
    ]


@pytest.mark.keras
class TestPublicSourcesSilent:
    def test_suite_datasets(self):
        """The suite's datasets (ported from public projects, and its own) read for 3
        epochs by the pairing detector: no finding (other kinds are theirs)."""
        for dataset in _public_datasets():
            found = []
            rule = Pairing(type(dataset).__qualname__, "", found.append)
            for _ in range(3):
                for index in range(len(dataset)):
                    rule.seen(dataset[index], index)
                dataset.on_epoch_end()
                rule.epoch_passed()
            assert found == [], type(dataset).__qualname__


SCRIPT = """
import numpy as np
import keras

rng = np.random.default_rng(0)
x = rng.normal(size=(200, 6)).astype("float32")
y = rng.integers(0, 10, size=200)

def batches(x, y):
    while True:
        {shuffle}
        for start in range(0, 200, 20):
            yield x[start:start + 20].copy(), y[start:start + 20].copy()

model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(10, activation="softmax")])
model.compile("sgd", "sparse_categorical_crossentropy")
model.fit(batches(x, y), steps_per_epoch=10, epochs=3, verbose=0)
print("trained")
"""

RUNS = {
    "buggy": ("np.random.shuffle(x); np.random.shuffle(y)", 1),
    "correct": ("p = np.random.permutation(200); x, y = x[p], y[p]", 0),
}


@pytest.mark.slow
@pytest.mark.keras
class TestRun:
    @pytest.mark.parametrize("name", sorted(RUNS))
    def test_safegen_run(self, tmp_path, name):
        """`python -m safegen run` exits 1 on the generator shuffling apart, 0 on its twin."""
        shuffle, code = RUNS[name]
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(SCRIPT).replace("{shuffle}", shuffle))
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
            assert "PairingError" in result.stderr and "batches() at train.py:" in result.stderr
        else:
            assert "trained" in result.stdout


PLUGIN_TESTS = """
import numpy as np
import keras


def batches(x, y, apart):
    while True:
        if apart:
            np.random.shuffle(x)
            np.random.shuffle(y)
        else:
            p = np.random.permutation(len(x))
            x, y = x[p], y[p]
        for start in range(0, len(x), 20):
            yield x[start:start + 20].copy(), y[start:start + 20].copy()


def _fit(apart):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype("float32")
    y = rng.integers(0, 10, size=200)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(10, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(batches(x, y, apart), steps_per_epoch=10, epochs=3, verbose=0)


def test_shuffled_apart():
    _fit(True)


def test_shuffled_together():
    _fit(False)
"""


@pytest.mark.keras
class TestPytestPlugin:
    def test_pytest_safegen_fails_the_buggy_test_only(self, pytester):
        """`pytest --safegen` fails the test whose generator shuffles apart, with its
        PairingError, and passes its twin."""
        pytester.makepyfile(test_pairs=PLUGIN_TESTS)
        pytester.makeini(
            "[pytest]\nfilterwarnings =\n    ignore::UserWarning\n    ignore::DeprecationWarning\n"
        )
        pytester.syspathinsert(str(ROOT))
        result = pytester.runpytest(
            "-p", "no:safegen", "-p", "safegen.integrations.pytest_plugin", "--safegen"
        )
        result.assert_outcomes(failed=1, passed=1)
        result.stdout.fnmatch_lines(["*safegen.PairingError: batches() at test_pairs.py:*"])
        assert "test_shuffled_apart" in result.stdout.str()
