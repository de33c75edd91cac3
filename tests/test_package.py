"""The package itself: light import, public names, the command line, the demo."""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

import safegen

HEAVY = ("tensorflow", "keras", "jax", "torch")


def _python(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class TestImport:
    """import safegen stays light."""

    def test_import_does_not_load_frameworks(self):
        """import safegen (and guarding a generator) loads no ML framework."""
        code = (
            "import sys, numpy as np, safegen\n"
            "it = safegen.guard(iter([np.zeros(2)]))\n"
            "list(it)\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        )
        result = _python("-c", code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == ""

    def test_wrapt_is_imported_by_the_first_guard_not_by_import(self):
        """import safegen (and enable()) leave wrapt unloaded; the first guard() loads it."""
        code = (
            "import sys, safegen\n"
            "safegen.enable(); safegen.disable()\n"
            "print('wrapt' in sys.modules)\n"
            "safegen.guard(lambda: iter(()))\n"
            "print('wrapt' in sys.modules)\n"
        )
        result = _python("-c", code)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["False", "True"]

    @pytest.mark.parametrize("value", ["banana", "0"])
    def test_bad_environment_variable_is_refused_where_used(self, value):
        """A bad SAFEGEN_MODE lets `import safegen` pass, then the first guard refuses it."""
        code = (
            "import safegen\n"
            "print('imported')\n"
            "try:\n"
            "    safegen.guard(lambda: iter(()))\n"
            "except ValueError as error:\n"
            "    print(error)\n"
        )
        result = _python("-c", code, env={"SAFEGEN_MODE": value})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "imported"
        assert lines[1] == (
            f"environment variable SAFEGEN_MODE: invalid mode {value!r}; "
            "expected one of 'check', 'copy', 'freeze', 'off'"
        )

    def test_environment_variable_sets_the_mode(self):
        """SAFEGEN_MODE=copy makes copy the default mode."""
        result = _python(
            "-c", "import safegen; print(safegen.settings().mode)", env={"SAFEGEN_MODE": "copy"}
        )
        assert result.stdout.strip() == "copy"


class TestPublicNames:
    """What `safegen` exports."""

    def test_all_names_resolve(self):
        """Every name in __all__ exists (Keras-facing ones are loaded on demand)."""
        pytest.importorskip("keras")
        for name in safegen.__all__:
            assert getattr(safegen, name) is not None

    def test_unknown_attribute(self):
        """A missing name raises AttributeError naming it."""
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            safegen.nope  # noqa: B018

    @pytest.mark.parametrize(
        "name",
        [
            "AliasingError",
            "AliasingWarning",
            "SafegenError",
            "ShapeError",
            "Stats",
            "AliasingReport",
            "Settings",
        ],
    )
    def test_classes_read_as_safegen(self, name):
        """Public classes say `safegen.X` in tracebacks."""
        assert getattr(safegen, name).__module__ == "safegen"

    @pytest.mark.parametrize(
        "module",
        [
            "_config",
            "_copying",
            "_errors",
            "_finding",
            "_fingerprint",
            "_frameworks",
            "_guard",
            "_handle",
            "_layers",
            "_losses",
            "_modes",
            "_modes._base",
            "_modes.check",
            "_modes.copy",
            "_modes.freeze",
            "_modes.source",
            "_probe",
            "_report",
            "_sources",
            "_sources._base",
            "_sources.datasets",
            "_sources.functions",
            "_sources.generators",
            "_sources.iterables",
            "_session",
            "_shapes",
            "_stats",
            "_structure",
            "cli",
            "testing",
            "integrations.keras.layers",
            "integrations.keras.losses",
        ],
    )
    def test_doctests(self, module):
        """The examples in the docstrings run (also those of classes re-exported as safegen.X,
        which doctest's own finder skips because their __module__ is "safegen")."""
        if module in ("_layers", "_losses") or module.startswith("integrations.keras."):
            pytest.importorskip("keras")
        mod = importlib.import_module(f"safegen.{module}")
        finder = doctest.DocTestFinder(exclude_empty=True)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        globs = {**vars(mod), "np": __import__("numpy")}
        tests = finder.find(mod, globs=globs)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == "safegen":
                tests += finder.find(obj, globs=globs)
        for test in tests:
            runner.run(test)
        assert runner.failures == 0
        assert (
            runner.tries > 0
            or module in ("_handle", "_probe")
            or module.startswith(("_modes", "_sources"))
        )


class TestOwnFrames:
    """safegen's own frames stay out of the user's warnings and tracebacks."""

    def test_modes_frames_are_hidden(self):
        """Every module of the modes package hides its frames from pytest
        (__tracebackhide__); warnings and notes skip them by module name (test_frames)."""
        import pkgutil

        from safegen import _modes

        names = [name for _, name, _ in pkgutil.iter_modules(_modes.__path__, "safegen._modes.")]
        assert "safegen._modes.check" in names
        for name in ["safegen._modes", *names]:
            module = importlib.import_module(name)
            assert module.__tracebackhide__ is True, name

    def test_detector_frames_are_hidden_from_pytest(self):
        """Every module of the detectors package that raises or passes on a detector's
        error hides its frames from pytest (__tracebackhide__)."""
        import pkgutil

        from safegen import _detectors

        names = [n for _, n, _ in pkgutil.iter_modules(_detectors.__path__, "safegen._detectors.")]
        for name in ["safegen._detectors._base", "safegen._detectors.random_streams"]:
            assert name in names
        for name in names:
            if name.endswith(("._sink", ".findings")):
                continue  # files and summaries: they raise nothing of safegen's
            assert importlib.import_module(name).__tracebackhide__ is True, name


class TestCommandLine:
    """python -m safegen."""

    def test_no_command_is_a_usage_error(self):
        """Without a command, usage goes to stderr and the exit status is 2."""
        result = _python("-m", "safegen")
        assert result.returncode == 2 and "usage:" in result.stderr

    def test_demo_names_real_files_from_an_editable_install(self, tmp_path):
        """Run from outside the checkout through an editable install's link tree
        (setuptools' strict mode: a symbolic link per file under build/__editable__...),
        the demo names its real source file and finds the checkout's example programs."""
        from pathlib import Path

        source = Path(safegen.__file__).resolve().parent
        tree = tmp_path / "build" / "__editable__.safegen-0-py3-none-any"
        for path in source.rglob("*"):
            if "__pycache__" in path.parts or path.is_dir():
                continue
            link = tree / "safegen" / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        code = (
            "from safegen.cli import demo\n"
            "demo.pitfall_print()\n"
            "print('examples:', demo.UNMODIFIED)\n"
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=elsewhere,
            env={**clean, "PYTHONPATH": str(tree)},
        )
        assert result.returncode == 0, result.stderr
        assert f"AliasingError: reused_buffer() at {source / 'cli' / 'demo.py'}:" in (
            result.stdout
        )
        assert "__editable__" not in result.stdout, result.stdout
        assert f"examples: {source.parent / 'examples' / 'unmodified'}\n" in result.stdout

    @pytest.mark.keras
    @pytest.mark.parametrize(
        "env",
        [
            {},
            *({"SAFEGEN_MODE": mode} for mode in ("check", "copy", "freeze", "off")),
            {"SAFEGEN_DISABLE": "1"},
        ],
        ids=lambda env: str(env or "unset"),
    )
    @pytest.mark.slow
    def test_demo_runs(self, env):
        """The demo shows the three pitfalls, numbered as in the README, and finds them in the
        unmodified programs (section 4), under any setting."""
        pytest.importorskip("keras")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
        result = subprocess.run(
            [sys.executable, "-m", "safegen", "demo", "--steps", "10"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**clean, **env},
        )
        assert result.returncode == 0, result.stderr
        out = result.stdout
        headings = [out.index(f"\n{n}. ") for n in (1, 2, 3, 4)]
        assert headings == sorted(headings)
        assert "1. model.fit on a generator that refills one buffer" in out
        assert "2. print(next(it), next(it))" in out
        assert "seed" not in out
        assert out.count("guard(check):   AliasingError") == 2
        assert "guard(copy):    loss per epoch [0.0, 0.0]" in out
        assert "guard(freeze):  ValueError at the generator's own write" in out
        assert "ShapeError" in out
        assert "4. The same bugs found without changing the code" in out
        assert (
            "      AliasingError: train_iterator() at examples/unmodified/mean_generator.py:" in out
        )
        assert re.search(r"      ShapeError: layer 'lambda(_\d+)?' \(Lambda\) returned rank 1", out)
        fixed = out.split("examples/unmodified/mean_fixed.py (both fixed):\n")[1].splitlines()
        assert "ran to the end" in fixed[0] and " 0 violation(s)" in fixed[0]
        learned = re.fullmatch(
            r"      it printed: mean of \d+ and \d+: target (\S+), predicted (\S+)", fixed[1]
        )
        assert learned and abs(float(learned[1]) - float(learned[2])) < 0.5, fixed[1]
        plain = next(line for line in out.splitlines() if "plain:          loss per epoch" in line)
        losses = plain.split("[")[1].split("]")[0]
        assert ("not 0" in plain) == any(float(x) for x in losses.split(","))
        for line in out.splitlines():
            if "AliasingError:" in line or line.strip().startswith("safegen:"):
                assert line.endswith("."), line  # whole sentences, never cut mid-word
        assert ("SAFEGEN_DISABLE is set" in out) == ("SAFEGEN_DISABLE" in env)
