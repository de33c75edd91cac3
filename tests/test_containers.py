"""A reused dict or list: reported by check mode, kept from the consumer by freeze mode."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import safegen
from safegen.testing import assert_no_aliasing


def refilled_dict(n=5):
    """Yields one dict, refilled with a fresh array each time (issue 19, bug 1)."""
    d = {}
    for i in range(n):
        d["x"] = np.full(3, float(i))
        yield d


def refilled_list(n=5):
    """Yields (list, y) where the list is one object, refilled each time."""
    batch = [None, None]
    for i in range(n):
        batch[0] = np.full(2, float(i))
        batch[1] = np.full(1, float(i))
        yield batch, np.zeros(1)


def fresh_dict(n=5):
    """Yields a new dict each time: correct."""
    for i in range(n):
        yield {"x": np.full(3, float(i))}


def same_dict_unchanged(n=5):
    """Yields one dict whose contents never change: nothing to report."""
    d = {"x": np.zeros(3)}
    for _ in range(n):
        yield d


class TestCheckReusedContainer:
    """Check mode reports a container yielded again after a key or index was rebound."""

    def test_dict_key_named(self):
        """The error names the dict, the rebound key and the yield that reused it."""
        it = safegen.guard(refilled_dict)()
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"yield #1 \(a dict\) was yielded") as info:
            next(it)
        assert "key 'x' in it was rebound" in str(info.value)
        assert info.value.report.container == "dict"
        assert info.value.report.rebound == "key 'x'"

    def test_nested_list_indices_named(self):
        """A list inside the yielded tuple is named by its path and indices."""
        it = safegen.guard(refilled_list)()
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"leaf \[0\] \(a list\)") as info:
            next(it)
        assert "indices 0, 1 in it were rebound" in str(info.value)

    def test_grown_list_says_it_grew(self):
        """A list that only grew is described as such, not as a rebound "index length"."""

        def appended(n=5):
            batch = []
            for i in range(n):
                batch.append(np.full(2, float(i)))
                yield batch

        it = safegen.guard(appended)()
        next(it)
        with pytest.raises(safegen.AliasingError, match=r"yield #1 \(a list\)") as info:
            next(it)
        assert "by yield #2 (at " in str(info.value)
        assert "), after the list grew from 1 to 2 items. The generator" in str(info.value)
        assert info.value.report.rebound == "" and info.value.report.lengths == (1, 2)

    def test_rebound_and_grown_list(self):
        """An index rebound and a length change are both named."""

        def refilled(n=5):
            batch = [np.zeros(2)]
            for i in range(n):
                yield batch
                batch[0] = np.full(2, float(i))
                batch.append(np.zeros(2))

        it = safegen.guard(refilled)()
        next(it)
        with pytest.raises(safegen.AliasingError) as info:
            next(it)
        assert "after index 0 in it was rebound and the list grew from 1 to 2 items" in str(
            info.value
        )

    @pytest.mark.parametrize("factory", [fresh_dict, same_dict_unchanged])
    def test_clean_generators_pass(self, factory):
        """New dicts, or one dict never changed, are not reported."""
        assert len(list(safegen.guard(factory)())) == 5

    def test_assert_no_aliasing_fails(self):
        """assert_no_aliasing sees the reused dict too."""
        with pytest.raises(AssertionError, match="a dict"):
            assert_no_aliasing(refilled_dict, steps=5)


class TestFreezeReusedContainer:
    """Freeze mode hands out shallow copies of dicts and lists, of their own type."""

    def test_consumer_keeps_its_values(self):
        """list(gen()) gives each batch's own values, not the last one five times."""
        out = list(safegen.guard(refilled_dict, mode="freeze")())
        assert [b["x"][0] for b in out] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert out[0]["x"].flags.writeable is False

    def test_types_kept(self):
        """An OrderedDict stays an OrderedDict, a tuple of lists stays one."""

        def gen():
            d = collections.OrderedDict()
            for i in range(2):
                d["x"] = np.full(1, i)
                yield (d, [np.zeros(1)])

        a, b = safegen.guard(gen, mode="freeze")()
        assert type(a[0]) is collections.OrderedDict and type(a[1]) is list
        assert (a[0]["x"][0], b[0]["x"][0]) == (0, 1)
