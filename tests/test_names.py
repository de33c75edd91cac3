"""Messages name the code that yields, the line of the yield and the line of the write."""

from __future__ import annotations

import numpy as np
import pytest

import safegen

FILE = "tests/test_names.py"


def make(n=4):
    """A factory: the generator that yields is defined (and returned) inside it."""

    def batch_generator():  # DEF
        x = np.zeros((n, 2))
        while True:
            x += 1  # WRITE
            yield x, x.sum(axis=1)  # YIELD

    return batch_generator()


def _line(marker):
    """The number of the line of this file that ends with ``# marker``."""
    with open(__file__) as source:
        for number, text in enumerate(source, start=1):
            if text.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(marker)  # pragma: no cover


DEF_LINE = _line("DEF")


class TestFactory:
    """A guarded factory returning a generator: the generator is named, the factory is context."""

    def test_check_names_the_generator_and_the_factory(self):
        """The report names batch_generator() at its def line, returned by make()."""
        it = safegen.guard(make)()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        first = str(info.value).splitlines()[0]
        factory_line = make.__code__.co_firstlineno
        assert first.startswith(
            f"make.<locals>.batch_generator() at {FILE}:{DEF_LINE} "
            f"(returned by make() at {FILE}:{factory_line}): yield #1 leaf [0] "
        )
        report = info.value.report
        assert report.source == "make.<locals>.batch_generator()"
        assert report.made_by == f"make() at {FILE}:{factory_line}"

    def test_check_gives_the_line_of_the_yield(self):
        """The report gives the yield that handed the memory out again."""
        it = safegen.guard(make)()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        where = f"{FILE}:{_line('YIELD')}"
        assert info.value.report.yield_location == where
        assert f"(the yield at {where} handed that memory out again)" in str(info.value)

    def test_freeze_gives_the_line_of_the_write(self):
        """Freeze mode's note names the generator and the line of the failed write."""
        it = safegen.guard(make, mode="freeze")()
        next(it)
        with pytest.raises(ValueError, match="read-only") as info:
            next(it)
        note = "\n".join(info.value.__notes__)
        assert note.startswith(f"safegen: make.<locals>.batch_generator() at {FILE}:{DEF_LINE}")
        assert f"wrote into 'x' (float64, shape (4, 2)) at {FILE}:{_line('WRITE')}" in note

    def test_generator_function_has_no_factory_context(self):
        """A guarded generator function is named as before, with no 'returned by'."""

        @safegen.guard
        def direct():
            x = np.zeros(2)
            while True:
                x += 1
                yield x

        it = direct()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        assert "returned by" not in str(info.value)
        assert info.value.report.made_by == ""

    def test_iterator_returned_by_a_function_keeps_the_functions_name(self):
        """A function returning an iterator object (no code that yields) is named itself."""

        class Refill:
            def __init__(self):
                self.x = np.zeros(2)

            def __next__(self):
                self.x += 1
                return self.x

            def __iter__(self):
                return self

        def batches():
            return Refill()

        it = safegen.guard(batches)()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        assert info.value.report.source.endswith(".<locals>.batches()")
        assert info.value.report.made_by == info.value.report.yield_location == ""


@safegen.guard(
    mode="check",
)
def decorated():  # DECORATED DEF
    x = np.zeros(2)
    while True:
        x += 1
        yield x


class TestDecoratedLocation:
    """A decorated generator is located at its def line, not at its decorator's."""

    def test_def_line(self):
        """The report's location is the def line, below a decorator on three lines."""
        it = decorated()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        assert info.value.report.location == f"{FILE}:{_line('DECORATED DEF')}"


class TestPlainScriptTraceback:
    """`python script.py`: an uncaught AliasingError is printed without safegen's frames."""

    def test_no_safegen_frames(self, tmp_path):
        """The traceback goes from the user's next() straight to the error."""
        import os
        import subprocess
        import sys

        script = tmp_path / "plain.py"
        script.write_text(
            "import numpy as np, safegen\n"
            "@safegen.guard\n"
            "def batches():\n"
            "    x = np.zeros(3)\n"
            "    while True:\n"
            "        x += 1\n"
            "        yield x\n"
            "it = batches()\n"
            "next(it)\n"
            "next(it)\n"
        )
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": root},
        )
        assert result.returncode == 1
        assert "safegen.AliasingError: batches() at " in result.stderr
        assert f'File "{script}", line 10, in <module>' in result.stderr
        assert "safegen/_guard.py" not in result.stderr
        assert "safegen/_modes/" not in result.stderr  # no module of the modes package
