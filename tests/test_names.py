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


def _run_script(path, text, timeout=120):
    """Run ``text`` as the script ``path`` with the safegen under test."""
    import os
    import subprocess
    import sys

    path.write_text(text)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


class TestPlainScriptTraceback:
    """`python script.py`: an uncaught safegen error (or an error with safegen's note) is
    printed without safegen's frames."""

    def test_no_safegen_frames(self, tmp_path):
        """The traceback goes from the user's next() straight to the error."""
        script = tmp_path / "plain.py"
        result = _run_script(
            script,
            "import numpy as np, safegen\n"
            "@safegen.guard\n"
            "def batches():\n"
            "    x = np.zeros(3)\n"
            "    while True:\n"
            "        x += 1\n"
            "        yield x\n"
            "it = batches()\n"
            "next(it)\n"
            "next(it)\n",
        )
        assert result.returncode == 1
        assert "safegen.AliasingError: batches() at " in result.stderr
        assert f'File "{script}", line 10, in <module>' in result.stderr
        assert "safegen/_guard.py" not in result.stderr
        assert "safegen/_modes/" not in result.stderr  # no module of the modes package

    def test_buffer_error_with_note_has_no_safegen_frames(self, tmp_path):
        """A BufferError carrying safegen's note goes from next() to the generator's line."""
        script = tmp_path / "grow.py"
        result = _run_script(
            script,
            "import safegen\n"
            "@safegen.guard\n"
            "def grow():\n"
            "    buffer = bytearray(b'abcd')\n"
            "    while True:\n"
            "        yield buffer\n"
            "        buffer.extend(b'efgh')\n"
            "it = grow()\n"
            "next(it)\n"
            "next(it)\n",
        )
        assert result.returncode == 1
        assert "safegen: grow() at " in result.stderr and "BufferError" in result.stderr
        assert f'File "{script}", line 10, in <module>' in result.stderr
        assert f'File "{script}", line 7, in grow' in result.stderr
        assert "safegen/" not in result.stderr  # no frame of safegen's

    @pytest.mark.keras
    def test_repeated_batch_error_has_no_safegen_frames(self, tmp_path):
        """RepeatedBatchError goes from the user's dataset[i] straight to the error, without
        safegen/_dataset.py or safegen/_detectors/."""
        pytest.importorskip("keras")
        script = tmp_path / "repeated.py"
        result = _run_script(
            script,
            "import numpy as np, keras, safegen\n"
            "class IgnoresIndex(keras.utils.PyDataset):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.x = np.random.rand(256, 2).astype('float32')\n"
            "    def __len__(self):\n"
            "        return 4\n"
            "    def __getitem__(self, index):\n"
            "        return self.x[:64], self.x[:64, :1]\n"
            "dataset = safegen.guard(IgnoresIndex())\n"
            "dataset[0]\n"
            "dataset[1]\n",
        )
        assert result.returncode == 1
        assert "safegen.RepeatedBatchError: IgnoresIndex.__getitem__() at " in result.stderr
        assert f'File "{script}", line 12, in <module>' in result.stderr
        assert "safegen/" not in result.stderr  # no frame of safegen's

    @pytest.mark.keras
    @pytest.mark.slow
    def test_random_stream_error_under_enable_has_no_safegen_frames(self, tmp_path):
        """Under enable(), the RandomStreamError re-raised from fit (by
        integrations/_patching.py) is printed without safegen's frames."""
        pytest.importorskip("keras")
        script = tmp_path / "noisy.py"
        result = _run_script(
            script,
            "import multiprocessing, os, numpy as np, keras, safegen\n"
            "class Noisy(keras.utils.PyDataset):\n"
            "    def __init__(self, **kwargs):\n"
            "        super().__init__(**kwargs)\n"
            "        self.x = np.random.rand(64, 2).astype('float32')\n"
            "        self.home = self.started_in = os.getpid()\n"
            "        self.barrier = multiprocessing.Barrier(2)\n"
            "    def __len__(self):\n"
            "        return 4\n"
            "    def __getitem__(self, index):\n"
            "        if os.getpid() not in (self.home, self.started_in):\n"
            "            self.started_in = os.getpid()\n"
            "            self.barrier.wait(timeout=600)\n"
            "        rows = self.x[index * 16:(index + 1) * 16]\n"
            "        noise = np.random.normal(size=rows.shape).astype('float32')\n"
            "        return rows + noise, rows[:, :1]\n"
            "model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
            "model.compile(loss='mse')\n"
            "with safegen.enabled():\n"
            "    model.fit(Noisy(workers=2, use_multiprocessing=True), epochs=2, verbose=0)\n",
            timeout=300,
        )
        assert result.returncode == 1, result.stderr[-3000:]
        tail = result.stderr.split("The above exception was the direct cause")[-1]
        assert "safegen.RandomStreamError: Noisy.__getitem__() at " in tail
        assert f'File "{script}", line 20, in <module>' in tail
        assert "safegen/" not in result.stderr  # no frame of safegen's
