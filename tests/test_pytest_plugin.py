"""`pytest --safegen`: the plugin does nothing unless asked, then guards the whole session."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import safegen

# Imported here, before pytester snapshots sys.modules: TensorFlow aborts the process if a
# test's cleanup drops it from sys.modules and the next test imports it again.
keras = pytest.importorskip("keras")
# Likewise safegen's modules that the inner runs would import first: dropped afterwards,
# they would come back as new modules beside the old ones that safegen already holds
# (safegen.guard from the old safegen._guard, safegen.stats reading the new one).
import safegen._guard  # noqa: E402, F401

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.keras

# Load the plugin by module name in the inner runs, whether or not the package's entry
# point is installed (`-p no:safegen` keeps the entry point from loading it twice). The
# inner runs share this process (Keras stays imported); each ends with safegen disabled.
PLUGIN = ("-p", "no:safegen", "-p", "safegen.integrations.pytest_plugin")

PIPELINE_TESTS = """
import numpy as np
import keras


def reused(batch_size=8):
    x = np.zeros((batch_size, 2), np.float32)
    for step in range(1000):
        x[:] = step
        yield x, x[:, :1].copy()


def fresh(batch_size=8):
    for step in range(1000):
        x = np.full((batch_size, 2), step, np.float32)
        yield x, x[:, :1].copy()


def _model():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse")
    return model


def test_buggy_pipeline():
    _model().fit(reused(), steps_per_epoch=3, epochs=1, verbose=0)


def test_clean_pipeline():
    _model().fit(fresh(), steps_per_epoch=3, epochs=1, verbose=0)
"""


@pytest.fixture
def pipelines(pytester):
    """A test module with one buggy and one clean Keras pipeline."""
    pytester.makepyfile(test_pipelines=PIPELINE_TESTS)
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    ignore::UserWarning\n    ignore::DeprecationWarning\n"
    )
    pytester.syspathinsert(str(ROOT))  # the safegen under test, in the subprocess too
    return pytester


class TestPlugin:
    """The plugin's switch, its failures and its summary."""

    def test_entry_point_is_registered(self):
        """The package registers the plugin under pytest11, as pytest-cov does."""
        points = importlib.metadata.entry_points(group="pytest11", name="safegen")
        assert [point.value for point in points] == ["safegen.integrations.pytest_plugin"]

    def test_does_nothing_unless_asked(self, pipelines):
        """Without --safegen, the buggy pipeline passes unnoticed and no section is added."""
        result = pipelines.runpytest(*PLUGIN)
        result.assert_outcomes(passed=2)
        assert "= safegen =" not in result.stdout.str()

    def test_safegen_fails_the_aliasing_test_without_safegen_frames(self, pipelines):
        """--safegen fails the buggy test with AliasingError; safegen's frames are hidden."""
        result = pipelines.runpytest(*PLUGIN, "--safegen")
        result.assert_outcomes(passed=1, failed=1)
        output = result.stdout.str()
        result.stdout.fnmatch_lines(["E * safegen.AliasingError: reused() at test_pipelines.py:*"])
        assert "safegen/_modes/" not in output and "safegen/_guard.py" not in output
        result.stdout.fnmatch_lines(
            [
                "*= safegen =*",
                "safegen: 2 data source(s) guarded*1 violation(s)*",
                "  source reused() at test_pipelines.py:* [[]check[]]*1 violation(s) (1 changed*",
                "  source fresh() at test_pipelines.py:* [[]check[]]*0 violation(s)",
            ]
        )
        assert not safegen.is_enabled()  # the inner session switched it off again

    def test_bare_option_before_a_path(self, pipelines):
        """`pytest --safegen test_file.py` takes the file as a path, not as the mode."""
        result = pipelines.runpytest(*PLUGIN, "--safegen", "test_pipelines.py")
        result.assert_outcomes(passed=1, failed=1)

    def test_mode_option(self, pipelines):
        """--safegen=copy guards in copy mode (over the ini file's mode): both pipelines pass."""
        pipelines.makeini(
            "[pytest]\nsafegen = check\nfilterwarnings =\n    ignore::UserWarning\n"
            "    ignore::DeprecationWarning\n"
        )
        result = pipelines.runpytest(*PLUGIN, "--safegen=copy")
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["  source reused() at test_pipelines.py:* [[]copy[]]*"])

    def test_ini_option(self, pipelines):
        """`safegen = true` in the ini file switches it on, in the default mode."""
        pipelines.makeini(
            "[pytest]\nsafegen = true\nfilterwarnings =\n    ignore::UserWarning\n"
            "    ignore::DeprecationWarning\n"
        )
        pipelines.runpytest(*PLUGIN).assert_outcomes(passed=1, failed=1)

    def test_bad_mode_is_a_usage_error(self, pipelines):
        """--safegen=banana stops pytest with a usage error listing the modes."""
        result = pipelines.runpytest(*PLUGIN, "--safegen=banana")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "--safegen: invalid mode 'banana'; expected one of 'check'" in result.stderr.str()

    @pytest.mark.parametrize("option", ["--safegen", "--safegen=copy"])
    def test_bad_environment_is_one_usage_error(self, pipelines, monkeypatch, option):
        """SAFEGEN_MODE=garbage stops pytest --safegen at start-up with one usage error
        listing the modes, instead of a ValueError in every test that reaches Keras."""
        monkeypatch.setenv("SAFEGEN_MODE", "garbage")
        result = pipelines.runpytest(*PLUGIN, option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert (
            "--safegen: environment variable SAFEGEN_MODE: invalid mode 'garbage'; expected "
            "one of 'check'" in result.stderr.str()
        )
        assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()

    def test_bad_disable_variable_is_one_usage_error(self, pipelines, monkeypatch):
        """An invalid SAFEGEN_DISABLE stops pytest --safegen at start-up as well."""
        monkeypatch.setenv("SAFEGEN_DISABLE", "maybe")
        result = pipelines.runpytest(*PLUGIN, "--safegen")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "--safegen: environment variable SAFEGEN_DISABLE: invalid value 'maybe'" in (
            result.stderr.str()
        )


REPEATED_TESTS = """
import numpy as np
import keras
import safegen


class IgnoresIndex(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.x = np.random.rand(256, 2).astype("float32")

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.x[:64], self.x[:64, :1]


def test_repeated():
    dataset = safegen.guard(IgnoresIndex())
    dataset[0]
    dataset[1]


def test_grow():
    @safegen.guard
    def grow():
        buffer = bytearray(b"abcd")
        while True:
            yield buffer
            buffer.extend(b"efgh")

    it = grow()
    next(it)
    next(it)
"""


class TestDetectorFailures:
    """Failures raised by the detectors, or carrying safegen's note, show no safegen frame."""

    def test_repeated_batch_and_buffer_errors_without_safegen_frames(self, pipelines):
        """RepeatedBatchError and BufferError (with safegen's note) fail their tests, and
        pytest hides safegen/_dataset.py, safegen/_detectors/ and safegen/_guard.py."""
        pipelines.makepyfile(test_repeated=REPEATED_TESTS)
        result = pipelines.runpytest(*PLUGIN, "--safegen", "test_repeated.py")
        result.assert_outcomes(failed=2)
        output = result.stdout.str()
        result.stdout.fnmatch_lines(["E * safegen.RepeatedBatchError: IgnoresIndex.__getitem__()*"])
        assert "safegen: test_grow.<locals>.grow() at test_repeated.py:" in output
        assert "safegen/_dataset.py" not in output and "safegen/_detectors/" not in output
        assert "safegen/_guard.py" not in output and "safegen/_modes/" not in output


WARNED_TESTS = """
import numpy as np
import keras


def sneaky():
    kept = []
    for step in range(1000):
        x = np.full((8, 2), step, np.float32)
        kept.append(x)
        if len(kept) > 2:
            kept[-3][:] = -1  # a batch already handed out, never handed out again
        yield x, x[:, :1].copy()


def test_sneaky_pipeline():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse")
    model.fit(sneaky(), steps_per_epoch=20, epochs=1, verbose=0)
"""


WARNED_REPEATS_TESTS = """
import numpy as np
import keras

import safegen


class FirstRowsOnly(keras.utils.PyDataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        rows = np.arange(64.0).reshape(32, 2)  # the bug: the index is ignored
        return rows, rows.mean(axis=1, keepdims=True)


def test_repeated_batches():
    dataset = safegen.guard(FirstRowsOnly(), on_violation="warn")
    dataset[0]
    dataset[1]
"""


class TestWarnedViolations:
    """A violation safegen only warns about still fails the test, unless asked not to."""

    def test_warned_violation_fails_the_test(self, pipelines):
        """An unattributed change (warned, not raised) fails the test that caused it."""
        pipelines.makepyfile(test_sneaky=WARNED_TESTS)
        result = pipelines.runpytest(*PLUGIN, "--safegen", "test_sneaky.py")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["E * safegen found * changed array(s) during this test (see the AliasingWarning *"]
        )

    def test_each_kind_is_named_with_its_count(self, pipelines):
        """A warned repeated batch is named as one, with its own warning, not as arrays."""
        pipelines.makepyfile(test_repeats=WARNED_REPEATS_TESTS)
        result = pipelines.runpytest(*PLUGIN, "--safegen", "test_repeats.py")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "E * safegen.RepeatedBatchError: safegen found 1 repeated batch(es) during this "
                "test (see the RepeatedBatchWarning above *"
            ]
        )
        result.stdout.no_fnmatch_line("*array(s)*during this test*")

    def test_safegen_warn_keeps_it_passing(self, pipelines):
        """--safegen-warn reports the change without failing the test."""
        pipelines.makepyfile(test_sneaky=WARNED_TESTS)
        result = pipelines.runpytest(*PLUGIN, "--safegen", "--safegen-warn", "test_sneaky.py")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["  source sneaky() *violation(s) (*unattributed*"])


CAUGHT_TESTS = """
import numpy as np
import pytest
import keras

import safegen


def reused(batch_size=8):
    x = np.zeros((batch_size, 2), np.float32)
    for step in range(1000):
        x[:] = step
        yield x, x[:, :1].copy()


class FirstRowsOnly(keras.utils.PyDataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        rows = np.arange(64.0).reshape(32, 2)  # the bug: the index is ignored
        return rows, rows.mean(axis=1, keepdims=True)


def test_expects_the_aliasing_error():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse")
    with pytest.raises(safegen.AliasingError):
        model.fit(reused(), steps_per_epoch=3, epochs=1, verbose=0)


def test_expects_the_repeated_batch_error():
    dataset = safegen.guard(FirstRowsOnly())
    dataset[0]
    with pytest.raises(safegen.RepeatedBatchError):
        dataset[1]


def test_caught_error_and_a_warned_finding():
    dataset = safegen.guard(FirstRowsOnly())
    dataset[0]
    with pytest.raises(safegen.RepeatedBatchError):
        dataset[1]
    warned = safegen.guard(FirstRowsOnly(), on_violation="warn")
    warned[0]
    warned[1]
"""


class TestCaughtErrors:
    """An error safegen raised is the test's to fail on, or to expect."""

    def test_expected_and_caught_errors_pass(self, pipelines):
        """Tests that expect safegen's AliasingError or RepeatedBatchError and catch it
        (pytest.raises) pass under --safegen; a warned finding beside one still fails."""
        pipelines.makepyfile(test_caught=CAUGHT_TESTS)
        result = pipelines.runpytest(*PLUGIN, "--safegen", "test_caught.py")
        result.assert_outcomes(passed=2, failed=1)
        result.stdout.fnmatch_lines(
            [
                "*test_caught_error_and_a_warned_finding*",
                "E * safegen found 1 repeated batch(es) during this test (see the "
                "RepeatedBatchWarning above *",
            ]
        )
        result.stdout.no_fnmatch_line("*AliasingWarning above*")


class TestKinds:
    """The plugin names each kind of finding from the one enumeration of kinds."""

    def test_every_kind_names_safegen_error_and_warning(self):
        """Each kind's error is a safegen error, its warning (where one) a safegen warning,
        and the session counts every kind the summary totals (none is left out)."""
        from safegen._finding import KINDS

        for kind in KINDS:
            assert issubclass(kind.error, safegen.SafegenError), kind
            assert getattr(safegen, kind.error.__name__) is kind.error, kind
            if kind.shown.endswith("Warning"):
                assert issubclass(getattr(safegen, kind.shown), safegen.SafegenWarning), kind
        with safegen.enabled() as session:
            assert set(safegen.session().counts()) == {kind.key for kind in KINDS}
            assert set(session.warned()) == {kind.key for kind in KINDS}
        assert {kind.key for kind in KINDS} <= set(session.as_dict()["totals"])
