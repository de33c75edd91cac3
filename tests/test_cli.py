"""`python -m safegen check` and `safegen.testing.assert_no_aliasing`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import safegen
from safegen._probe import probe
from safegen.testing import assert_no_aliasing
from tests import cli_data, seed

ROOT = Path(__file__).resolve().parent.parent


def _safegen(*args, env=None, command=(sys.executable, "-m", "safegen"), stdout=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
    return subprocess.run(
        [*command, *args],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**environment, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _check(*args, env=None):
    return _safegen("check", *args, env=env)


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

    @pytest.mark.parametrize("env", [{}, {"SAFEGEN_MODE": "copy"}])
    def test_source_guarding_itself_is_a_finding(self, env):
        """A @safegen.guard source's own AliasingError is reported: exit 1, not 3, even
        when SAFEGEN_MODE=copy would have made that guard copy."""
        result = _check("tests.cli_data:guarded_refilled", env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == (
            "tests.cli_data:guarded_refilled: NOT clean, 1 item(s) pulled in mode 'check' "
            "(stopped by the AliasingError it raised)."
        )
        assert "guarded_refilled() at tests/cli_data.py:" in lines[1]
        assert "yield #1 (a dict) was yielded again by yield #2" in lines[1]
        assert "Traceback" not in result.stderr

    def test_source_guarding_itself_in_copy_mode_says_so(self):
        """A source pinned to mode="copy" is clean as copied, and check says so."""
        result = _check("tests.cli_data:guarded_batches", "--steps", "3")
        assert result.returncode == 0, result.stdout + result.stderr
        first, note = result.stdout.splitlines()
        assert first == (
            "tests.cli_data:guarded_batches: clean as copied, 3 item(s) pulled in mode 'check'."
        )
        assert note.startswith('- note: the source guards itself with safegen.guard(mode="copy")')

    @pytest.mark.slow
    @pytest.mark.keras
    def test_epochs_option(self):
        """--epochs N reads a dataset N times, calling on_epoch_end after each epoch."""
        pytest.importorskip("keras")
        buggy = _check("tests.epoch_datasets:ShuffledInPlace", "--epochs", "1", "--steps", "5")
        assert buggy.returncode == 1, buggy.stdout + buggy.stderr
        assert "NOT clean, 5 item(s) pulled in mode 'check' over 1 epoch(s)" in buggy.stdout
        assert "ShuffledInPlace.on_epoch_end() at tests/epoch_datasets.py:" in buggy.stdout
        clean = _check("tests.epoch_datasets:Rebound", "--epochs", "3", "--steps", "5")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "clean, 15 item(s) pulled in mode 'check' over 3 epoch(s)" in clean.stdout

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

    @pytest.mark.slow
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
        assert "safegen/_guard.py" not in result.stderr  # safegen's own frames are hidden
        assert "safegen/_probe.py" not in result.stderr

    def test_ctrl_c_is_one_line(self):
        """Ctrl-C while pulling: one line on stderr, no traceback, ended by SIGINT."""
        import signal

        result = _check("tests.cli_data:interrupted")
        assert result.stderr == "safegen check: tests.cli_data:interrupted: interrupted (Ctrl-C)\n"
        assert result.returncode == (-signal.SIGINT if os.name == "posix" else 130)


class TestCommandLine:
    """The rough edges a new user met: program name, version, arguments, paths, pipes."""

    def test_console_script_names_itself(self, tmp_path):
        """The console script says `usage: safegen`; `python -m safegen` says so instead."""
        script = tmp_path / "safegen"
        script.write_text(  # what pip writes for [project.scripts] safegen = "safegen.cli:main"
            "import sys\nfrom safegen.cli import main\nsys.exit(main())\n"
        )
        result = _safegen("--help", command=(sys.executable, str(script)))
        assert result.returncode == 0 and result.stdout.startswith("usage: safegen [-h]")
        result = _safegen("check", "--help")
        assert result.stdout.startswith("usage: python -m safegen check [-h]")

    def test_version(self):
        """--version prints the version and where safegen was imported from."""
        import safegen

        result = _safegen("--version")
        assert result.returncode == 0
        assert result.stdout.startswith(f"safegen {safegen.__version__} from ")

    def test_keyword_arguments(self):
        """KEY=VALUE words (anywhere) and --kwargs reach the factory; JSON values are typed."""
        result = _check("tests.cli_data:reused", "--steps", "2", "batch_size=3")
        assert result.returncode == 1 and "shape (3, 2)" in result.stdout, result.stderr
        result = _check("tests.cli_data:reused", "--kwargs", '{"batch_size": 5}', "--steps", "2")
        assert result.returncode == 1 and "shape (5, 2)" in result.stdout, result.stderr
        result = _check("tests.cli_data:reused", "--kwargs", '{"batch_size": 5}', "batch_size=6")
        assert "shape (6, 2)" in result.stdout, result.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["batch_size"], "unexpected argument 'batch_size'"),
            (["--stepz", "3"], "unexpected argument '--stepz'"),
            (["--kwargs", "{batch_size: 8}"], "--kwargs is not valid JSON"),
            (["--kwargs", "[8]"], "--kwargs must be a JSON object"),
        ],
    )
    def test_bad_keyword_arguments(self, args, message):
        """Arguments that are not KEY=VALUE, or bad JSON: exit 2 and one line saying why."""
        result = _check("tests.cli_data:fresh", *args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith(f"safegen check: {message}"), result.stderr
        assert len(result.stderr.splitlines()) == 1

    def test_file_path_target(self):
        """path/to/file.py:factory works as the dotted module path does."""
        result = _check("examples/pipeline.py:train_batches", "--steps", "3")
        assert result.returncode == 1
        assert result.stdout.startswith("examples/pipeline.py:train_batches: NOT clean")
        assert "train_batches() at examples/pipeline.py:" in result.stdout
        assert _check("tests/cli_data.py:fresh", "--steps", "3").returncode == 0

    def test_missing_file_hints_at_the_module_path(self):
        """A path that is no file: exit 2, with the dotted module path to use instead."""
        result = _check("examples/pipelin.py:train_batches")
        assert result.returncode == 2
        assert "no such Python file 'examples/pipelin.py'" in result.stderr
        assert "dotted module path such as examples.pipelin:factory" in result.stderr

    def test_not_a_generator_does_not_blame_guard(self):
        """A factory returning no iterable: the message names check, not safegen.guard."""
        result = _check("tests.cli_data:returns_number")
        assert result.returncode == 2
        assert "was given to safegen check as the data source" in result.stderr
        assert "guarded by safegen.guard" not in result.stderr

    def test_closed_stdout_is_not_a_traceback(self):
        """stdout closed by the reader (`| head -1`): no traceback, status 141 as SIGPIPE."""
        read, write = os.pipe()
        os.close(read)
        try:
            result = _safegen("check", "tests.cli_data:reused", stdout=write)
        finally:
            os.close(write)
        assert result.returncode == 141
        assert result.stderr == ""

    @pytest.mark.parametrize(
        ("value", "mode"), [("check", "check"), ("freeze", "freeze"), ("FREEZE", "freeze")]
    )
    def test_safegen_mode_chooses_the_mode(self, value, mode):
        """SAFEGEN_MODE=check or freeze is the default mode of check; --mode wins over it."""
        result = _check("tests.cli_data:reused", "--steps", "3", env={"SAFEGEN_MODE": value})
        assert f"pulled in mode {mode!r}" in result.stdout and result.stderr == ""
        result = _check("tests.cli_data:reused", "--mode", "check", env={"SAFEGEN_MODE": value})
        assert "pulled in mode 'check'" in result.stdout

    @pytest.mark.parametrize("value", ["copy", "off"])
    def test_safegen_mode_that_cannot_check(self, value):
        """SAFEGEN_MODE=copy or off: check says why it is not used and checks."""
        result = _check("tests.cli_data:reused", "--steps", "3", env={"SAFEGEN_MODE": value})
        assert result.returncode == 1 and "pulled in mode 'check'" in result.stdout
        assert f"SAFEGEN_MODE={value} is not used here" in result.stderr

    def test_disable_does_not_stop_an_explicit_check(self):
        """SAFEGEN_DISABLE=1 turns guards off in programs, not the check you asked for."""
        result = _check("tests.cli_data:reused", "--steps", "3", env={"SAFEGEN_DISABLE": "1"})
        assert result.returncode == 1, result.stdout + result.stderr

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"SAFEGEN_MODE": "banana"}, "SAFEGEN_MODE: invalid mode 'banana'"),
            ({"SAFEGEN_MODE": "0"}, "SAFEGEN_MODE: invalid mode '0'"),
            ({"SAFEGEN_DISABLE": "maybe"}, "SAFEGEN_DISABLE: invalid value 'maybe'"),
        ],
    )
    def test_bad_environment_is_a_usage_error(self, env, message):
        """A bad SAFEGEN_MODE/SAFEGEN_DISABLE: one line on stderr and status 2 where it is
        read (not for --help, see TestEnvironmentDoesNotLockOut)."""
        result = _safegen("check", "tests.cli_data:fresh", env=env)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines() == [
            result.stderr.strip()
        ] and result.stderr.startswith(f"python -m safegen: environment variable {message}")

    @pytest.mark.slow
    @pytest.mark.keras
    def test_freeze_stop_is_not_the_source_ending(self):
        """A dataset shorter than --steps stopped by freeze says so, not 'the source ended'."""
        pytest.importorskip("keras")
        result = _check("tests.datasets:SharedBuffer", "batches=5", "--mode", "freeze")
        assert result.returncode == 1
        assert "1 item(s) pulled in mode 'freeze' (stopped by a write into a frozen array)" in (
            result.stdout
        )
        assert "(the source ended)" not in result.stdout


class TestEnvironmentDoesNotLockOut:
    """SAFEGEN_MODE=garbage leaves --help, --version and an explicit --mode working (issue
    19, bug 6), and modes are case-insensitive everywhere."""

    @pytest.mark.parametrize("args", [["--help"], ["--version"], ["check", "--help"]])
    def test_help_and_version_answer(self, args):
        """--help and --version exit 0 whatever SAFEGEN_MODE says."""
        result = _safegen(*args, env={"SAFEGEN_MODE": "garbage"})
        assert result.returncode == 0, result.stderr
        assert result.stdout

    def test_explicit_mode_wins_over_the_environment(self):
        """check --mode freeze runs under SAFEGEN_MODE=garbage (the option wins)."""
        result = _check("tests.cli_data:fresh", "--mode", "FREEZE", env={"SAFEGEN_MODE": "garbage"})
        assert result.returncode == 0, result.stderr
        assert "in mode 'freeze'" in result.stdout

    def test_one_case_rule_for_environment_and_arguments(self, monkeypatch):
        """SAFEGEN_MODE=COPY and guard(mode="COPY") both mean copy mode."""
        import safegen
        from safegen import _config

        assert safegen.guard(iter([np.zeros(1)]), mode="COPY") is not None
        assert _config.validate_mode("COPY", "test") == "copy"
        monkeypatch.setenv("SAFEGEN_MODE", "COPY")
        _config.reset()
        assert safegen.settings().mode == "copy"


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

    def test_source_guarding_itself(self):
        """A source with its own @safegen.guard fails with its finding, in check mode even
        when configure() asks for copy mode."""
        import safegen

        safegen.configure(mode="copy")
        with pytest.raises(AssertionError, match=r"NOT clean(.|\n)*guarded_refilled\(\) at "):
            assert_no_aliasing(cli_data.guarded_refilled)

    def test_source_guarding_itself_in_copy_mode(self):
        """A source pinned to mode="copy" passes, and the result says its copies were read."""
        result = assert_no_aliasing(cli_data.guarded_batches, steps=3)
        assert result.source_copies and "clean as copied" in result.summary()
        assert not assert_no_aliasing(cli_data.fresh, steps=3).source_copies

    @pytest.mark.keras
    def test_pydataset_instance_is_restored(self):
        """A PyDataset instance is checked and given back unguarded."""
        pytest.importorskip("keras")
        from tests.datasets import SharedBuffer

        dataset = SharedBuffer(batches=5)
        with pytest.raises(AssertionError, match="SharedBuffer.__getitem__"):
            assert_no_aliasing(dataset, steps=3)
        assert type(dataset) is SharedBuffer
        with pytest.raises(TypeError, match="needs a generator"):
            safegen.stats(dataset)  # no longer guarded

    def test_helper_guarded_in_copy_mode_is_not_the_source(self):
        """A copy-mode guard on a helper the source reads does not make it 'clean as copied'."""
        result = assert_no_aliasing(cli_data.uses_a_copying_helper, steps=5)
        assert not result.source_copies
        assert result.summary().startswith("tests.cli_data.uses_a_copying_helper: clean, ")

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


class TestDatasetsGuardingThemselves:
    """Checking a dataset class or instance that has a safegen guard of its own."""

    def test_class_guarded_in_copy_mode_is_checked(self):
        """The check's guard takes over from a class's own copy-mode guard: the shared
        buffer is found, each batch is processed once, and nothing says 'as copied'."""
        source = safegen.guard(cli_data.SharedBatches, mode="copy")
        result = probe(source, epochs=1)
        assert not result.clean and not result.source_copies and not result.stopped_by
        assert len(result.reports) == 3 and result.items == 4
        assert "as copied" not in result.summary()
        assert "SharedBatches.__getitem__() at tests/cli_data.py:" in result.reports[0].message
        assert result.own_copies_set_aside
        assert "which the check set aside to read the source's own arrays" in result.summary()

    def test_instance_guarded_in_copy_mode_is_checked(self):
        """An instance guarded in copy mode is checked, and the summary says its own
        copies were set aside; it copies again afterwards."""
        dataset = safegen.guard(cli_data.SharedBatches(), mode="copy")
        result = probe(dataset, epochs=1)
        assert not result.clean and result.own_copies_set_aside
        assert not np.shares_memory(dataset[0], dataset[1])
        plain = probe(safegen.guard(cli_data.SharedBatches), epochs=1)
        assert not plain.own_copies_set_aside and "set aside" not in plain.summary()

    def test_class_guarded_in_the_default_mode_reports_every_change(self):
        """A class's own (raising) guard does not stop the check at the first change."""
        result = probe(safegen.guard(cli_data.SharedBatches), epochs=2)
        assert not result.stopped_by and result.items == 8 and len(result.reports) == 7

    def test_class_guarded_twice_processes_each_batch_once(self):
        """guard(guard(Cls, mode="copy")) is guarded by the outer guard alone."""
        outer = safegen.guard(safegen.guard(cli_data.SharedBatches, mode="copy"), mode="copy")
        dataset = outer()
        first, second = dataset[0], dataset[1]
        assert first[0] == 0 and not np.shares_memory(first, second)
        assert safegen.stats(dataset).yields == 2

    def test_instance_keeps_its_own_guard(self):
        """After a check, an instance the user guarded is guarded as before, not by the
        check's leftover guard: an in-place shuffle raises again."""
        dataset = safegen.guard(cli_data.Shuffles())
        assert not probe(dataset).clean
        dataset[0], dataset[1]
        with pytest.raises(safegen.AliasingError, match=r"Shuffles\.on_epoch_end\(\)"):
            dataset.on_epoch_end()

    def test_unguarded_instance_is_left_unguarded(self):
        """After a check, an unguarded instance has no safegen state (stats refuses it)."""
        dataset = cli_data.Shuffles()
        assert not probe(dataset).clean
        with pytest.raises(TypeError):
            safegen.stats(dataset)
