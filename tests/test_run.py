"""`python -m safegen run`: a program runs as Python would run it, with safegen enabled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args, cwd=ROOT, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "safegen", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **(env or {}),
        },
    )


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


class TestAsPythonWould:
    """The program sees what `python script.py args` or `python -m module args` gives it."""

    def test_script_sees_main_argv_and_path(self, tmp_path):
        """__name__, sys.argv and sys.path[0] are Python's, and arguments pass through."""
        script = _write(
            tmp_path / "prog.py",
            """
            import sys
            print(__name__, sys.argv, sys.path[0])
            """,
        )
        result = _run(str(script), "--mode", "x", "-m", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[0] == (
            f"__main__ {[str(script), '--mode', 'x', '-m']} {tmp_path}"
        )

    def test_relative_and_linked_script(self, tmp_path):
        """sys.argv[0] stays as typed, __file__ is absolute, and sys.path[0] is the real
        folder of a script reached through a symbolic link, as Python sets them."""
        real = tmp_path / "real"
        real.mkdir()
        (real / "helper.py").write_text("VALUE = 'found next to the real script'\n")
        _write(
            real / "prog.py",
            """
            import sys, helper
            print(sys.argv[0], __file__, sys.path[0], helper.VALUE)
            """,
        )
        (tmp_path / "link").mkdir()
        (tmp_path / "link" / "prog.py").symlink_to(real / "prog.py")
        result = _run("link/prog.py", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[0] == (
            f"link/prog.py {tmp_path / 'link' / 'prog.py'} {real} found next to the real script"
        )

    def test_programs_own_excepthook_and_threads(self, tmp_path):
        """The program's sys.excepthook reports its uncaught error, and its non-daemon
        threads finish under safegen before the summary."""
        _write(
            tmp_path / "prog.py",
            """
            import sys, threading, time, safegen

            def late():
                time.sleep(0.3)
                print("thread sees safegen enabled:", safegen.is_enabled(), flush=True)

            sys.excepthook = lambda kind, error, tb: print("OWN HOOK", kind.__name__)
            threading.Thread(target=late).start()
            raise ValueError("boom")
            """,
        )
        result = _run(str(tmp_path / "prog.py"), cwd=tmp_path)
        assert result.returncode == 1
        assert result.stdout.splitlines() == [
            "OWN HOOK ValueError",
            "thread sees safegen enabled: True",
        ]
        assert "Traceback" not in result.stderr
        assert "(the program raised ValueError)" in result.stderr

    def test_module_sees_main_argv_and_path(self, tmp_path):
        """-m package.module runs it as __main__ with its arguments, cwd first on sys.path."""
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        _write(
            package / "tool.py",
            """
            import sys
            print(__name__, sys.argv[1:], sys.argv[0].endswith("tool.py"), sys.path[0])
            """,
        )
        result = _run("--mode", "copy", "-m", "pkg.tool", "a", "--window", "3", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[0] == (f"__main__ ['a', '--window', '3'] True {tmp_path}")

    @pytest.mark.parametrize(
        ("body", "status"), [("sys.exit(3)", 3), ("sys.exit()", 0), ("sys.exit('bye')", 1)]
    )
    def test_exit_status_is_the_programs(self, tmp_path, body, status):
        """sys.exit(n) gives status n, as Python would (a message gives 1)."""
        script = _write(tmp_path / "prog.py", f"import sys\n{body}\n")
        result = _run(str(script), cwd=tmp_path)
        assert result.returncode == status
        assert "safegen: 0 data source(s) guarded" in result.stderr

    def test_uncaught_exception_prints_traceback_and_exits_1(self, tmp_path):
        """An uncaught error prints its traceback (without runpy's frames) and gives 1."""
        script = _write(
            tmp_path / "prog.py",
            """
            def fail():
                raise KeyError("boom")
            fail()
            """,
        )
        result = _run(str(script), cwd=tmp_path)
        assert result.returncode == 1
        assert "Traceback (most recent call last):" in result.stderr
        assert "in fail\n    raise KeyError(\"boom\")\nKeyError: 'boom'" in result.stderr
        assert "runpy" not in result.stderr
        assert "(the program raised KeyError)" in result.stderr

    def test_plain_generator_bug_is_caught_without_a_framework(self, tmp_path):
        """Without Keras, nothing is guarded: the summary says so, and no framework loads."""
        script = _write(
            tmp_path / "prog.py",
            """
            import sys
            print(sorted(m for m in ("keras", "tensorflow") if m in sys.modules))
            """,
        )
        result = _run(str(script), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
        assert "nothing was guarded" in result.stderr


class TestUsageErrors:
    """Mistakes in the command line: one line on stderr, status 2."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["missing.py"], "safegen run: can't open file"),
            ([], "safegen run: no program given"),
            (["-m"], "safegen run: -m needs a module name"),
            (["-m", "no_such_module_here"], "safegen run: no module named 'no_such_module_here'"),
            (["--mode", "banana", "x.py"], "invalid choice: 'banana'"),
            (["--window", "0", "x.py"], "expected a whole number >= 1"),
            (["--report", "/no/such/dir/r.json", "x.py"], "does not exist"),
        ],
    )
    def test_usage_error(self, tmp_path, args, message):
        """Each bad command line exits 2 with a message saying what is wrong."""
        (tmp_path / "x.py").write_text("")
        result = _run(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        if "no module named" in message:  # nothing ran: no summary, the one line only
            assert result.stderr.splitlines() == [message]


@pytest.mark.slow
@pytest.mark.keras
class TestUnmodifiedPrograms:
    """The article's programs, with no `import safegen`, run under `safegen run`."""

    def test_importing_tf_keras_installs_quietly(self, tmp_path):
        """A program that imports tf_keras: no "could not install" warning (Keras 3 finishes
        importing inside tf_keras's import, before tf_keras is complete), and tf_keras's
        layer integration is loaded once it is."""
        pytest.importorskip("tf_keras")
        _write(
            tmp_path / "prog.py",
            """
            import sys
            import tf_keras

            print("integration loaded:", "safegen.integrations.tf_keras.layers" in sys.modules)
            """,
        )
        result = _run(str(tmp_path / "prog.py"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "could not install" not in result.stderr
        assert result.stdout.splitlines() == ["integration loaded: True"]

    def test_reused_buffer_program_stops_with_aliasing_error(self, tmp_path):
        """The reused-buffer program exits 1 with the AliasingError naming train_iterator."""
        pytest.importorskip("keras")
        report = tmp_path / "report.json"
        result = _run("--report", str(report), "examples/unmodified/mean_generator.py")
        assert result.returncode == 1, result.stderr[-3000:]
        assert (
            "safegen.AliasingError: train_iterator() at "
            "examples/unmodified/mean_generator.py:" in result.stderr
        )
        assert "safegen/_modes/" not in result.stderr  # safegen's own frames are hidden
        assert "1 violation(s)" in result.stderr
        data = json.loads(report.read_text())
        assert data["exit_status"] == 1
        assert data["totals"]["violations"] == 1
        assert data["sources"][0]["name"] == "train_iterator()"
        assert data["sources"][0]["location"].startswith("examples/unmodified/mean_generator.py:")

    def test_lambda_program_stops_with_shape_error(self):
        """The Lambda without expand_dims exits 1 with the ShapeError naming the Lambda."""
        pytest.importorskip("keras")
        result = _run("examples/unmodified/mean_lambda.py")
        assert result.returncode == 1, result.stderr[-3000:]
        assert (
            "safegen.ShapeError: layer 'lambda' (Lambda) returned rank 1, shape (None,); "
            "declared rank 2, shape (None, 1)." in result.stderr
        )
        assert "hint: the output is one rank short" in result.stderr
        assert "  layer 'lambda' (Lambda): output checked 1 time(s), 1 shape error(s)" in (
            result.stderr
        )

    def test_no_shapes_option(self):
        """--no-shapes leaves the Lambda alone: the program trains to the end."""
        pytest.importorskip("keras")
        result = _run("--no-shapes", "examples/unmodified/mean_lambda.py")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "0 layer(s) checked" in result.stderr

    def test_fixed_program_exits_0_with_no_violations(self):
        """The fixed program runs to the end: exit 0 and a summary with no violations."""
        pytest.importorskip("keras")
        result = _run("examples/unmodified/mean_fixed.py")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "0 violation(s);" in result.stderr and "0 shape error(s)" in result.stderr
        assert "source train_iterator() at examples/unmodified/mean_fixed.py:" in result.stderr
        assert "  layer 'mean' (Lambda): output checked" in result.stderr

    def test_copy_mode_from_the_environment(self):
        """SAFEGEN_MODE=copy applies: the buggy program runs through, its source in copy mode."""
        pytest.importorskip("keras")
        result = _run("examples/unmodified/mean_generator.py", env={"SAFEGEN_MODE": "copy"})
        assert result.returncode == 0, result.stderr[-3000:]
        assert "source train_iterator() at examples/unmodified/mean_generator.py:" in result.stderr
        assert "[copy]" in result.stderr


SNEAKY_PROGRAM = """
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


def shuffled(x, y, batch=16):
    while True:
        order = np.random.permutation(len(x))
        x[:] = x[order]  # in place: the batches handed out are views of x
        y[:] = y[order]
        for i in range(0, len(x), batch):
            yield x[i : i + batch], y[i : i + batch]


inputs = keras.Input((2,))
model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
model.compile(loss="mse")
x = np.random.rand(512, 2).astype("float32")
if __import__("sys").argv[1:] == ["shuffle"]:
    model.fit(shuffled(x, x[:, :1].copy()), steps_per_epoch=32, epochs=2, verbose=0)
else:
    model.fit(sneaky(), steps_per_epoch=20, epochs=1, verbose=0)
"""


@pytest.mark.slow
class TestViolationsFailTheRun:
    """A run in which safegen found a violation does not exit 0 (issue 19, bug 2)."""

    def test_warned_violation_exits_1_once_warned(self, tmp_path):
        """Changes safegen only warns about: one warning with a count, and exit status 1."""
        pytest.importorskip("keras")
        script = _write(tmp_path / "prog.py", SNEAKY_PROGRAM)
        result = _run(str(script), cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-3000:]
        assert result.stderr.count("AliasingWarning: sneaky() at prog.py:") == 1
        # Located at the generator, not at Keras's data adapter that called next().
        assert f"{script}:6: AliasingWarning: sneaky() at prog.py:6:" in result.stderr
        assert "repeated warning(s) not shown)" in result.stderr
        assert "violation(s), which --warn would not fail on)" in result.stderr

    def test_warn_option_keeps_the_exit_status(self, tmp_path):
        """--warn: the program's own exit status, 0 here."""
        pytest.importorskip("keras")
        script = _write(tmp_path / "prog.py", SNEAKY_PROGRAM)
        result = _run("--warn", str(script), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "AliasingWarning: sneaky() at prog.py:" in result.stderr

    def test_in_place_shuffle_pinned_on_the_generator(self, tmp_path):
        """An in-place shuffle of the array batches are cut from raises AliasingError
        naming the generator, though the shuffled rows were not handed out again."""
        pytest.importorskip("keras")
        script = _write(tmp_path / "prog.py", SNEAKY_PROGRAM)
        result = _run(str(script), "shuffle", cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "safegen.AliasingError: shuffled() at prog.py:16: yield #" in result.stderr
        assert "is cut from the same array: the generator writes into the array" in (
            result.stderr
        )
        assert "generator_data_adapter.py" not in result.stderr.split("AliasingError: ")[-1]

    def test_caught_shape_error_exits_1(self, tmp_path):
        """A ShapeError the program catches still fails the run (its finding counts, as
        every finding raised and caught does); --warn keeps the program's status."""
        pytest.importorskip("keras")
        script = _write(tmp_path / "prog.py", CAUGHT_SHAPE_PROGRAM)
        result = _run(str(script), cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-3000:]
        assert result.stdout.startswith("caught: layer 'lambda' (Lambda) returned rank 1")
        assert "1 violation(s) (1 layer shape error(s)); 1 layer(s) checked" in result.stderr
        assert _run("--warn", str(script), cwd=tmp_path).returncode == 0


CAUGHT_SHAPE_PROGRAM = """
import numpy as np
import keras
from keras import ops

mean = keras.layers.Lambda(lambda x: ops.mean(x, axis=1), output_shape=(1,))
try:
    mean(np.ones((4, 2), "float32"))
except ValueError as error:
    print("caught:", str(error).splitlines()[0])
"""


WORKER_PROGRAM = """
import multiprocessing

import numpy as np
import keras


class Batches(keras.utils.PyDataset):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.x = np.zeros((16, 2), np.float32)
        self.y = np.zeros((16, 1), np.float32)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        if multiprocessing.parent_process() is None:  # Keras's peek, in this process
            return np.full((16, 2), index, np.float32), np.full((16, 1), index, np.float32)
        self.x[:] = index  # in a worker: one buffer, refilled for every batch
        self.y[:] = index
        return self.x, self.y


if __name__ == "__main__":
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(Batches(workers=2, use_multiprocessing=True), epochs=2, verbose=0)
"""


@pytest.mark.slow
class TestWorkerProcessErrors:
    """An AliasingError raised in a PyDataset worker process (issue 19, bug 3)."""

    def test_shown_once_ending_with_safegen_text_and_counted(self, tmp_path):
        """The message appears once, safegen's text is followed only by a one-line note
        naming the carrier, and the summary counts the violation."""
        pytest.importorskip("keras")
        script = _write(tmp_path / "prog.py", WORKER_PROGRAM)
        result = _run(str(script), cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-3000:]
        assert result.stderr.count("changed after it was returned") == 1, result.stderr
        error = result.stderr.split("safegen.AliasingError: ")[-1].split("\nsafegen: ")[0]
        assert "(in worker process Keras_worker_" in error
        text, note = error.rstrip().rsplit("\n", 1)
        assert text.rstrip().endswith("copy the batch before changing it.")
        # The carrier (TensorFlow's error) in one line after safegen's text (issue 24, item 4).
        assert note.startswith("(re-raised by safegen from the tensorflow "), note
        assert "Traceback" not in error
        assert "1 violation(s) (1 changed array(s));" in result.stderr
        assert "1 AliasingError(s) raised in worker processes" in result.stderr
