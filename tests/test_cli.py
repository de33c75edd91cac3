"""`python -m safegen check` and `safegen.testing.assert_no_aliasing`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from safegen.testing import assert_no_aliasing
from tests import cli_data, seed

ROOT = Path(__file__).resolve().parent.parent


def _check(*args):
    return subprocess.run(
        [sys.executable, "-m", "safegen", "check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


class TestCheckCommand:
    """Exit status 0 clean, 1 violation, 2 usage error, with clear messages."""

    def test_clean_generator(self):
        """A clean generator: exit 0 and 'clean'."""
        result = _check("tests.cli_data:fresh", "--steps", "30")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("tests.cli_data:fresh: clean, 30 item(s) pulled")

    def test_buggy_generator(self):
        """A reused buffer: exit 1 and safegen's report."""
        result = _check("tests.cli_data:reused", "--steps", "5")
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert lines[0] == "tests.cli_data:reused: NOT clean, 5 item(s) pulled in mode 'check'."
        assert "reused() at tests/cli_data.py:" in lines[1]
        assert "yield #1 leaf [0] (float64, shape (4, 2)) changed" in lines[1]

    def test_freeze_mode(self):
        """--mode freeze reports the failing write with safegen's note."""
        result = _check("tests.cli_data:reused", "--mode", "freeze")
        assert result.returncode == 1
        assert "ValueError: assignment destination is read-only" in result.stdout
        assert "wrote into 'x'" in result.stdout

    def test_finite_source(self):
        """A source shorter than --steps is clean and says it ended."""
        result = _check("tests.cli_data:short", "--steps", "10")
        assert result.returncode == 0
        assert "3 item(s) pulled in mode 'check' (the source ended)" in result.stdout

    @pytest.mark.keras
    def test_pydataset_class(self):
        """A PyDataset class is instantiated and read batch by batch."""
        pytest.importorskip("keras")
        buggy = _check("tests.datasets:SharedBuffer", "--steps", "4")
        assert buggy.returncode == 1 and "SharedBuffer.__getitem__()" in buggy.stdout
        assert "batch #1 leaf [0]" in buggy.stdout
        clean = _check("tests.datasets:Clean", "--steps", "4", "--window", "2")
        assert clean.returncode == 0, clean.stdout + clean.stderr

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("tests.cli_data", "is not of the form package.module:factory"),
            ("tests.no_such_module:x", "cannot import module 'tests.no_such_module'"),
            ("tests.cli_data:missing", "has no attribute 'missing'"),
            ("tests.cli_data:NOT_ITERABLE", "expected a generator function"),
            ("tests.cli_data:returns_number", "it returned int 3"),
        ],
    )
    def test_usage_errors(self, target, message):
        """Each kind of bad target: exit 2 and a message on stderr."""
        result = _check(target)
        assert result.returncode == 2
        assert message in result.stderr
        assert result.stdout == ""

    @pytest.mark.parametrize("option", [["--steps", "0"], ["--window", "x"], ["--mode", "copy"]])
    def test_bad_options(self, option):
        """Bad options: exit 2 from argparse."""
        result = _check("tests.cli_data:fresh", *option)
        assert result.returncode == 2 and "error:" in result.stderr

    def test_source_that_fails(self):
        """An exception from the data source itself: exit 3 and its traceback."""
        result = _check("tests.cli_data:broken")
        assert result.returncode == 3
        assert "KeyError: 'the data source itself fails'" in result.stderr
        assert "tests/cli_data.py" in result.stderr


class TestAssertNoAliasing:
    """safegen.testing.assert_no_aliasing for users' own test suites."""

    def test_passes_on_clean(self):
        """A clean generator passes and the result says how many items were pulled."""
        result = assert_no_aliasing(seed.fresh_buffer, steps=50)
        assert result.items == 50 and result.clean

    def test_fails_on_reused_buffer(self):
        """The seed's reused-buffer generator fails with safegen's report."""
        with pytest.raises(AssertionError, match=r"yield #1 leaf \[0\] .* changed"):
            assert_no_aliasing(seed.reused_buffer, steps=5)

    def test_arguments_and_objects(self):
        """args/kwargs are passed; generator objects and iterables work too."""
        assert_no_aliasing(cli_data.fresh, kwargs={"batch_size": 8}, steps=3)
        assert_no_aliasing(cli_data.fresh(), steps=3)
        assert_no_aliasing([np.zeros(2), np.ones(2)], steps=3)
        with pytest.raises(AssertionError):
            assert_no_aliasing(seed.reused_buffer(), steps=3)

    def test_freeze_mode(self):
        """mode='freeze' fails at the write, with the note in the message."""
        with pytest.raises(AssertionError, match="read-only(.|\n)*wrote into 'x'"):
            assert_no_aliasing(seed.reused_buffer, steps=5, mode="freeze")

    @pytest.mark.keras
    def test_pydataset_instance_is_restored(self):
        """A PyDataset instance is checked and given back unguarded."""
        pytest.importorskip("keras")
        from tests.datasets import SharedBuffer

        dataset = SharedBuffer(batches=5)
        with pytest.raises(AssertionError, match="SharedBuffer.__getitem__"):
            assert_no_aliasing(dataset, steps=3)
        assert type(dataset) is SharedBuffer
        assert "_safegen_settings" not in vars(dataset)

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [({"steps": 0}, ValueError), ({"mode": "copy"}, ValueError), ({"window": 0}, ValueError)],
    )
    def test_bad_arguments(self, kwargs, error):
        """Invalid steps, mode or window are refused."""
        with pytest.raises(error):
            assert_no_aliasing(seed.fresh_buffer, **kwargs)

    def test_async_generator_is_refused(self):
        """An async generator function is refused with a message saying why."""

        async def batches():
            yield np.zeros(2)

        with pytest.raises(TypeError, match="async generator"):
            assert_no_aliasing(batches)

    def test_not_iterable(self):
        """Something that cannot be iterated raises TypeError naming it."""
        with pytest.raises(TypeError, match="got int"):
            assert_no_aliasing(42)
