"""Walking yielded structures, fingerprints and copies, for Hypothesis-made inputs."""

from __future__ import annotations

import collections
import types
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safegen
from safegen._copying import copy_array
from safegen._fingerprint import fingerprint
from safegen._structure import _items, format_path, leaves, map_arrays
from tests.strategies import STRUCTURES, arrays


def _same_elements(left, right):
    """Element-wise identical: same bytes, or the same objects for object arrays."""
    if left.dtype.hasobject:
        return all(a is b for a, b in zip(left.ravel(), right.ravel(), strict=True))
    return left.tobytes() == right.tobytes()


def _same(left, right):
    """Equal structure and values (NaN equal to NaN), same types and dtypes."""
    if isinstance(left, np.ndarray):
        return (
            type(left) is type(right)
            and left.dtype == right.dtype
            and left.shape == right.shape
            and _same_elements(left, right)
        )
    if isinstance(left, (list, tuple)):
        return (
            type(left) is type(right)
            and len(left) == len(right)
            and all(_same(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, dict):
        return (
            type(left) is type(right)
            and left.keys() == right.keys()
            and all(_same(left[k], right[k]) for k in left)
        )
    return left is right or left == right


class TestStructures:
    """leaves() and map_arrays() on arbitrary structures."""

    @given(STRUCTURES)
    def test_identity_map_returns_same_objects(self, value):
        """Mapping arrays to themselves gives back the very same structure."""
        assert map_arrays(value, lambda a: a) is value

    @given(STRUCTURES)
    def test_leaves_finds_every_array(self, value):
        """leaves() finds exactly the arrays map_arrays() visits, in the same order."""
        visited = []
        map_arrays(value, lambda a: visited.append(a) or a)
        assert [id(a) for _, a in leaves(value)] == [id(a) for a in visited]

    def test_paths_are_readable(self):
        """Paths format like Python indexing, with .field for namedtuples."""
        from tests.strategies import Pair

        value = {"image": [np.zeros(1)], "pair": Pair(np.zeros(1), None)}
        assert [format_path(p) for p, _ in leaves(value)] == ["['image'][0]", "['pair'].first"]

    def test_self_containing_list(self):
        """A list that contains itself is walked once, without hanging."""
        loop = [np.zeros(1)]
        loop.append(loop)
        assert len(leaves(loop)) == 1
        assert map_arrays(loop, np.copy)[1] is loop

    def test_deep_nesting(self):
        """Nesting far deeper than the recursion limit works."""
        value = np.zeros(1)
        for _ in range(5000):
            value = [value]
        assert len(leaves(value)) == 1
        copied = map_arrays(value, np.copy)
        for _ in range(5000):
            copied = copied[0]
        assert copied.shape == (1,)


class _ReadOnlyMapping(Mapping):
    """A user's read-only mapping (not walked: safegen cannot tell that reading it is
    cheap)."""

    def __init__(self, **items):
        self._items = items

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)


class _KeywordDict(collections.UserDict):
    """A UserDict whose constructor takes keywords only, not a dict."""

    def __init__(self, **items):
        super().__init__()
        self.data.update(items)


class _KeyErrorSequence(Sequence):
    """A Sequence whose __getitem__ raises KeyError past its end (not IndexError)."""

    def __init__(self, *items):
        self._items = dict(enumerate(items))

    def __getitem__(self, index):
        return self._items[index]

    def __len__(self):
        return len(self._items)


class _CyclicSequence(Sequence):
    """A Sequence indexed modulo its length: iterating it never ends."""

    def __init__(self, *items):
        self._items = items

    def __getitem__(self, index):
        return self._items[index % len(self._items)]

    def __len__(self):
        return len(self._items)


# Containers other than tuple, list and dict that are walked, each holding the array it
# is given.
OTHER_CONTAINERS = {
    "MappingProxyType": lambda a: types.MappingProxyType({"x": a}),
    "UserDict": lambda a: collections.UserDict(x=a),
    "deque": lambda a: collections.deque([a], maxlen=4),
    "UserList": lambda a: collections.UserList([a]),
}


def _the_array(value):
    return value["x"] if isinstance(value, Mapping) else value[0]


class TestOtherContainers:
    """Arrays inside a MappingProxyType, UserDict, UserList or deque are seen, copied and
    frozen like in a dict; other Mappings and Sequences are leaves."""

    @pytest.fixture(params=list(OTHER_CONTAINERS))
    def make(self, request):
        """A function that wraps an array in one kind of container."""
        return OTHER_CONTAINERS[request.param]

    def test_check_mode_finds_a_reused_buffer(self, make):
        """Check mode raises on a buffer rewritten inside the container, naming its path."""

        def batches():
            buffer = np.zeros(3)
            while True:
                buffer += 1
                yield make(buffer)

        it = safegen.guard(batches)()
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"yield #1 leaf \[('x'|0)\] "):
            next(it)

    def test_copy_mode_copies_the_array(self, make):
        """Copy mode hands out a copy, in a container of the same type where it can."""
        array = np.arange(3.0)
        value = make(array)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", safegen.SafegenWarning)
            out = next(safegen.guard(iter([value]), mode="copy"))
        copied = _the_array(out)
        assert not np.shares_memory(copied, array) and np.array_equal(copied, array)
        assert type(out) is type(value)
        assert getattr(out, "maxlen", None) == getattr(value, "maxlen", None)

    def test_copy_mode_warns_when_the_type_cannot_be_rebuilt(self):
        """A UserDict whose constructor takes no dict comes back as a dict, with a warning."""
        value = _KeywordDict(x=np.zeros(2))
        with pytest.warns(safegen.SafegenWarning, match="cannot rebuild a _KeywordDict"):
            out = next(safegen.guard(iter([value]), mode="copy"))
        assert type(out) is dict and not np.shares_memory(out["x"], value["x"])

    def test_freeze_mode_freezes_the_array(self, make):
        """Freeze mode makes the array inside the container read-only."""
        array = np.zeros(3)
        next(safegen.guard(iter([make(array)]), mode="freeze"))
        assert not array.flags.writeable

    def test_check_mode_leaves_the_container_alone(self, make):
        """Check mode yields the very container, and an untouched one is not reported."""
        values = [make(np.full(2, i)) for i in range(3)]
        assert [v is w for v, w in zip(safegen.guard(iter(values)), values, strict=True)] == [
            True
        ] * 3

    def test_a_dict_inside_is_watched_for_rebinding(self):
        """A dict refilled and yielded again inside a deque is a reused container."""

        def batches():
            batch = {"x": None}
            for i in range(3):
                batch["x"] = np.full(2, i)
                yield collections.deque([batch])

        with pytest.raises(safegen.AliasingError, match=r"yield #1 leaf \[0\] \(a dict\)"):
            list(safegen.guard(batches)())

    @pytest.mark.parametrize("value", ["ab", b"cd", range(3), {1, 2}, frozenset({3})])
    def test_strings_bytes_and_sets_are_not_walked(self, value):
        """str, bytes, range and sets are leaves: the walk does not go into them."""
        assert _items(value) is None
        assert leaves((value,)) == [] and map_arrays((value,), np.copy)[0] is value


class TestCopies:
    """Copy mode on arbitrary structures."""

    @given(STRUCTURES)
    @settings(max_examples=150)
    def test_copy_mode_equal_values_no_shared_memory(self, value):
        """Copy mode returns equal values, sharing no memory with the input or each other."""
        out = next(safegen.guard(iter([value]), mode="copy"))
        assert _same(value, out)
        originals = [a for _, a in leaves(value)]
        copies = [a for _, a in leaves(out)]
        for i, copy in enumerate(copies):
            if copy.nbytes == 0:
                continue
            assert not any(np.shares_memory(copy, o) for o in originals)
            assert not any(np.shares_memory(copy, c) for c in copies[i + 1 :] if c.nbytes)

    @given(arrays())
    def test_copy_array_keeps_dtype_shape(self, array):
        """copy_array keeps dtype, shape and values."""
        copy = copy_array(array)
        assert copy.dtype == array.dtype and copy.shape == array.shape
        assert _same_elements(copy, array)


class TestFingerprints:
    """Fingerprints see every change and only changes."""

    @given(arrays())
    def test_equal_content_equal_fingerprint(self, array):
        """A fingerprint is stable, and a copy in the same memory order has the same one."""
        assert fingerprint(array) == fingerprint(array)
        if 0 not in array.strides:
            same_layout = np.array(array, copy=True, order="K")
            assert fingerprint(array)[0] == fingerprint(same_layout)[0]

    @given(arrays(), st.data())
    def test_any_changed_element_changes_fingerprint(self, array, data):
        """Changing one element's bytes changes the fingerprint."""
        if array.size == 0 or array.dtype.kind == "b" or 0 in array.strides:
            return
        target = np.array(array, copy=True, order="C")
        views = [target, target.T, target[::-1] if target.ndim else target]
        before = [fingerprint(view)[0] for view in views]
        flat = target.reshape(-1).view(np.uint8)
        index = data.draw(st.integers(0, flat.size - 1))
        flat[index] ^= 0xFF
        assert all(fingerprint(v)[0] != b for v, b in zip(views, before, strict=True))

    @given(STRUCTURES)
    @settings(max_examples=80)
    def test_no_false_positive_on_fresh_structures(self, value):
        """Check mode with verify_all never reports structures nobody writes."""
        import copy

        values = [copy.deepcopy(value) for _ in range(4)] * 3
        it = safegen.guard(iter(values), verify_all=True, window=5)
        assert len(list(it)) == 12


class TestMappingsAndSequencesNotWalked:
    """Other Mapping and Sequence implementations are leaves: reading them may raise,
    never end, or load data."""

    @pytest.mark.parametrize("kind", [_ReadOnlyMapping, _KeyErrorSequence, _CyclicSequence])
    def test_user_containers_are_leaves(self, kind):
        """A user's Mapping or Sequence is not walked, and check mode yields it as is."""
        value = kind(x=np.zeros(2)) if kind is _ReadOnlyMapping else kind(np.zeros(2))
        assert _items(value) is None and leaves(value) == []
        assert next(safegen.guard(iter([value]))) is value

    def test_sequence_raising_key_error_past_its_end(self):
        """A Sequence whose __getitem__ raises KeyError past its end does not make check
        mode raise KeyError."""

        def batches():
            for i in range(3):
                yield (np.full(2, i), _KeyErrorSequence(np.full(2, i)))

        assert len(list(safegen.guard(batches)())) == 3

    def test_endless_sequence(self):
        """A Sequence indexed modulo its length does not hang check or copy mode."""
        value = (np.zeros(2), _CyclicSequence(np.zeros(2), np.ones(2)))
        assert next(safegen.guard(iter([value]))) is value
        assert next(safegen.guard(iter([value]), mode="copy"))[1] is value[1]

    def test_npz_file_is_not_read(self, tmp_path, monkeypatch):
        """np.load's NpzFile is a leaf: no entry is read from the file on each yield."""
        np.savez(tmp_path / "data.npz", x=np.zeros(3), y=np.ones(3))
        with np.load(tmp_path / "data.npz") as npz:
            reads = []
            original = type(npz).__getitem__
            monkeypatch.setattr(
                type(npz), "__getitem__", lambda self, key: reads.append(key) or original(self, key)
            )
            assert _items(npz) is None
            for mode in ("check", "copy", "freeze"):
                out = list(safegen.guard(iter([npz, npz]), mode=mode))
                assert out == [npz, npz]
            assert reads == []

    def test_subclasses_of_the_walked_types_are_walked(self):
        """A UserList subclass is walked by index up to len(), and a failure makes it a leaf."""

        class Broken(collections.UserList):
            def __getitem__(self, index):
                raise KeyError(index)

        array = np.zeros(2)
        assert [a for _, a in leaves(collections.UserList([array]))] == [array]
        assert _items(Broken([array])) is None
