"""Walking yielded structures, fingerprints and copies, for Hypothesis-made inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import safegen
from safegen._copying import copy_array
from safegen._fingerprint import fingerprint
from safegen._structure import format_path, leaves, map_arrays
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
