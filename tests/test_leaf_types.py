"""Leaves that are not NumPy arrays but hold mutable memory: pandas, buffers, DLPack."""

from __future__ import annotations

import array
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safegen
from safegen._structure import leaves

pd = pytest.importorskip("pandas")


class Tensor:
    """A minimal mutable DLPack producer (as a PyTorch CPU tensor is), backed by NumPy."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def __dlpack__(self, **kwargs):
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def clone(self):
        return Tensor(self.data.copy())

    def add_(self, value):
        self.data += value
        return self


class Bare(Tensor):
    """A DLPack producer with neither clone() nor copy()."""

    clone = None


def _reused(make, mutate):
    """A generator that yields the same object ``make()`` built, mutated in place."""

    def gen():
        obj = make()
        while True:
            yield obj, np.ones(1)
            mutate(obj)

    return gen


CASES = {
    "DataFrame": (
        lambda: pd.DataFrame({"a": np.arange(4.0), "b": np.arange(4), "s": list("wxyz")}),
        lambda df: df.iloc.__setitem__((0, 0), 99.0),
        "[0]['a']",
    ),
    "Series": (lambda: pd.Series(np.arange(5.0)), lambda s: s.iloc.__setitem__(0, 7.0), "[0]"),
    "bytearray": (lambda: bytearray(b"abcd"), lambda b: b.__setitem__(0, 0), "[0]"),
    "array.array": (lambda: array.array("d", [1.0, 2.0]), lambda a: a.__setitem__(1, 5.0), "[0]"),
    "memoryview": (
        lambda: memoryview(np.zeros((2, 3))),
        lambda m: m.obj.__setitem__((0, 0), 1.0),
        "[0]",
    ),
    "DLPack tensor": (lambda: Tensor(np.zeros(3, np.float32)), lambda t: t.add_(1), "[0]"),
}


@pytest.fixture(params=list(CASES))
def case(request):
    """One kind of leaf: how to make it, how to mutate it in place, its leaf path."""
    return CASES[request.param]


class TestCheckMode:
    """A reused object of each kind is found by the 2nd next(); a fresh one passes."""

    def test_in_place_change_is_found(self, case):
        """Mutating the yielded object in place raises AliasingError naming the leaf."""
        make, mutate, path = case
        it = safegen.guard(_reused(make, mutate))()
        next(it)
        with pytest.raises(safegen.AliasingError, match=rf"yield #1 leaf {re.escape(path)} "):
            next(it)

    def test_fresh_objects_pass(self, case):
        """A new object per yield (mutated after it was made) is not reported."""
        make, mutate, _ = case

        def fresh():
            for _ in range(5):
                obj = make()
                yield obj, np.ones(1)

        assert len(list(safegen.guard(fresh)())) == 5

    def test_check_mode_yields_the_same_object(self, case):
        """Check mode hands out the generator's own object."""
        make, _, _ = case
        obj = make()
        assert next(safegen.guard(iter([(obj,)])))[0] is obj


class TestCopyMode:
    """Copy mode copies each kind, keeping its type."""

    def test_copies_keep_type_and_values(self, case):
        """The copy has the same type and contents, in memory of its own."""
        make, mutate, _ = case
        it = safegen.guard(_reused(make, mutate), mode="copy")()
        first, _ = next(it)
        original = make()
        assert type(first) is type(original)
        before = _contents(first)
        assert before == _contents(original)
        next(it)  # the generator mutates its own object: our copy must not change
        assert _contents(first) == before

    def test_uncopyable_tensor_warning_points_at_the_caller(self):
        """A DLPack object without clone() or copy() is copied as a NumPy array, with a
        warning whose file and line are the caller's next(), not safegen/_copying.py."""
        it = safegen.guard(iter([(Bare(np.zeros(3)),)]), mode="copy")
        with pytest.warns(safegen.SafegenWarning, match="cannot copy a Bare keeping") as caught:
            out = next(it)  # NEXT
        assert isinstance(out[0], np.ndarray)
        assert (caught[0].filename, caught[0].lineno) == (__file__, _line("NEXT"))

    def test_stats_count_the_bytes(self):
        """Copied bytes include the bytearray's length."""
        guarded = safegen.guard(iter([(bytearray(10),)]), mode="copy")
        next(guarded)
        assert safegen.stats(guarded).bytes_copied == 10


def _line(marker):
    """The number of the line of this file that ends with ``# marker``."""
    with open(__file__) as source:
        for number, text in enumerate(source, start=1):
            if text.rstrip().endswith(f"# {marker}"):
                return number
    raise LookupError(marker)


def _contents(obj):
    if isinstance(obj, Tensor):
        return obj.data.tolist()
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        return obj.to_dict() if isinstance(obj, pd.DataFrame) else obj.tolist()
    if isinstance(obj, memoryview):
        return obj.tolist()
    return list(obj)


class TestWhatIsLeftAlone:
    """Immutable and unknown objects are passed through; pandas is never imported."""

    def test_pandas_extension_columns_are_skipped(self):
        """Only columns of a NumPy dtype are views; the string column is not checked."""
        df = pd.DataFrame({"a": np.arange(3.0), "s": pd.array(["x", "y", "z"], dtype="string")})
        assert [path for path, _ in leaves(df)] == [("a",)]

    def test_bytes_and_readonly_scalars_are_left_alone(self):
        """bytes, str and NumPy scalars yield no leaf."""
        assert leaves((b"ab", "s", np.float64(1.0), 3)) == []

    def test_immutable_tensors_are_left_alone(self):
        """JAX arrays export DLPack but are immutable: no leaf, and copy mode keeps them.

        In a subprocess: JAX, once imported, warns at every fork (worker processes of
        other tests), which the suite's filterwarnings=error turns into failures."""
        if importlib.util.find_spec("jax") is None:
            pytest.skip("jax is not installed")
        code = (
            "import jax.numpy as jnp, safegen\n"
            "from safegen._structure import leaves\n"
            "tensor = jnp.zeros(3)\n"
            "assert leaves((tensor,)) == []\n"
            "assert next(safegen.guard(iter([(tensor,)]), mode='copy'))[0] is tensor\n"
            "print('ok')\n"
        )
        root = str(Path(__file__).resolve().parent.parent)
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu"},
        )
        assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]

    def test_freeze_mode_leaves_them_writable(self):
        """Freeze mode cannot make a bytearray read-only; it passes it through, and warns
        (once per source) naming the modes that cover it."""
        buffer = bytearray(b"ab")
        with pytest.warns(safegen.SafegenWarning, match=r'bytearray, which freeze mode cannot'):
            out = next(safegen.guard(iter([(buffer,)]), mode="freeze"))
        out[0][0] = 1
        assert buffer[0] == 1

    def test_freeze_warning_about_the_whole_yield(self):
        """A yielded DataFrame (not a leaf of a tuple) is named as the yield itself."""
        frame = pd.DataFrame({"a": np.arange(3.0)})
        with pytest.warns(safegen.SafegenWarning) as caught:
            next(safegen.guard(iter([frame]), mode="freeze"))
        message = str(caught[0].message)
        assert ": yield #1 is a DataFrame, which freeze mode cannot make read-only" in message

    def test_resizing_a_watched_bytearray_gets_a_note(self):
        """Check mode holds a view: resizing a yielded bytearray fails with safegen's note."""

        def stream():
            buffer = bytearray(b"abc")
            while True:
                yield buffer
                buffer.extend(b"d")

        it = safegen.guard(stream)()
        next(it)
        with pytest.raises(BufferError) as info:
            next(it)
        assert "resized an object" in "\n".join(info.value.__notes__)

    def test_safegen_never_imports_pandas(self):
        """Checking a bytearray does not import pandas."""
        code = (
            "import sys, safegen; g = safegen.guard(iter([bytearray(2)])); next(g); "
            "print('pandas' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "False", out.stderr


_FOREIGN = st.one_of(
    st.binary(max_size=16).map(bytearray),
    st.lists(st.floats(allow_nan=False), max_size=6).map(lambda v: array.array("d", v)),
    st.lists(st.integers(-5, 5), min_size=1, max_size=6).map(
        lambda v: pd.DataFrame({"a": v, "b": [float(x) for x in v]})
    ),
    st.lists(st.integers(0, 9), max_size=6).map(lambda v: pd.Series(v, dtype="int64")),
    st.lists(st.integers(0, 9), min_size=1, max_size=6).map(
        lambda v: Tensor(np.array(v, np.int32))
    ),
)
_NESTED = st.recursive(
    _FOREIGN | st.integers(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("xyz"), children, max_size=3)
    ),
    max_leaves=6,
)


class TestProperties:
    """Nested structures of such leaves, made by Hypothesis."""

    @settings(max_examples=50, deadline=None)
    @given(_NESTED)
    def test_copy_keeps_structure_types_and_values(self, value):
        """Copy mode returns the same structure, types and contents, sharing no leaf."""
        out = next(safegen.guard(iter([value]), mode="copy"))
        _assert_copied(value, out)

    @settings(max_examples=50, deadline=None)
    @given(_NESTED)
    def test_check_mode_passes_untouched_values(self, value):
        """Check mode reports nothing for values nobody changes, yielded again and again."""
        found = []
        guarded = safegen.guard(iter([value] * 15), on_violation=found.append)
        assert len(list(guarded)) == 15 and found == []


def _assert_copied(left, right):
    assert type(left) is type(right)
    if isinstance(left, list):
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            _assert_copied(a, b)
    elif isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            _assert_copied(left[key], right[key])
    elif isinstance(left, int):
        assert left == right
    else:
        assert left is not right and _contents(left) == _contents(right)
