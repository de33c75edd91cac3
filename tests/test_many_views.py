"""Check mode on batches made of many views of one array (the address index of `_Owner`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import safegen
from safegen._address import extent
from safegen._fingerprint import bounds
from safegen._modes import _check_index


def _reports(factory, steps, **options):
    found = []
    it = safegen.guard(factory, on_violation=found.append, **options)()
    for _ in range(steps):
        next(it)
    return [(r.changed_yield, r.path, r.detected_at, r.attributed) for r in found]


class TestAddress:
    """The fast byte range agrees with NumPy's byte_bounds."""

    @pytest.mark.parametrize(
        "view",
        [
            lambda a: a,
            lambda a: a[3],
            lambda a: a[2:5, 1:],
            lambda a: a[::-1],
            lambda a: a.T,
            lambda a: a[:, ::2],
            lambda a: a[0:0],
            lambda a: np.broadcast_to(a[0], (4, 6)),
        ],
    )
    def test_extent_matches_byte_bounds(self, view):
        """extent() gives byte_bounds' answer for contiguous, strided, empty and broadcast views."""
        base = np.arange(48.0).reshape(8, 6)
        assert extent(view(base)) == bounds(view(base))

    def test_fallback_without_reading_the_struct(self, monkeypatch):
        """Where the address cannot be read directly, byte_bounds gives the same answers."""
        from safegen import _address

        monkeypatch.setattr(_address, "read_address", None)
        monkeypatch.setattr(_check_index, "_read_address", None)
        base = np.arange(48.0).reshape(8, 6)
        assert extent(base[2:5]) == bounds(base[2:5])
        data = np.zeros((64, 4))

        def rows():
            yield [data[i] for i in range(32)]
            data[5] += 1
            yield [data[i] for i in range(32, 64)] + [data[5]]

        assert _reports(rows, 2) == [(1, "[5]", 2, True)]


class TestRowViews:
    """A list of hundreds of row views of one array, yielded batch after batch."""

    def test_rewritten_row_is_found_by_the_next_yield(self):
        """A row rewritten in place and handed out again is pinned on the generator."""
        data = np.zeros((4096, 8), np.float32)

        def rows():
            yield [data[i] for i in range(256)]
            data[7] += 1  # rewrites a row of the batch just yielded...
            yield [data[i] for i in range(256, 512)] + [data[7]]  # ...and hands it out again

        assert _reports(rows, 2) == [(1, "[7]", 2, True)]

    def test_clean_row_views_stay_silent(self, any_mode):
        """Batches of row views of one array that is never written pass in every mode."""
        data = np.random.default_rng(0).random((64 * 40, 4))

        def rows():
            for b in range(40):
                yield [data[b * 64 + i] for i in range(64)]

        out = list(safegen.guard(rows, mode=any_mode)())
        assert len(out) == 40

    def test_overlapping_windows_of_one_series_stay_silent(self):
        """Sliding windows (overlapping views) over a series that is never written pass."""
        series = np.arange(10_000.0)

        def windows():
            for b in range(30):
                yield [series[b * 50 + i : b * 50 + i + 100] for i in range(50)]

        assert _reports(windows, 30) == []

    def test_whole_array_next_to_its_rows(self):
        """The whole array (a wide record) is re-checked once per yield, and found changed."""
        data = np.zeros((512, 4))

        def both():
            i = 0
            while True:
                yield data, [data[j] for j in range(i, i + 32)]
                i += 32
                data[0, 0] += 1

        found = _reports(both, 3)
        assert found[0][:2] == (1, "[0]") and found[0][3]


@st.composite
def _plans(draw):
    """Yields of many (possibly overlapping) windows of one array, with writes between."""
    size = 600
    steps = []
    for _ in range(draw(st.integers(3, 6))):
        views = draw(
            st.lists(
                st.tuples(st.integers(0, size - 1), st.integers(0, 40)), min_size=1, max_size=24
            )
        )
        writes = draw(st.lists(st.integers(0, size - 1), max_size=3))
        steps.append(([(s, min(size, s + n)) for s, n in views], writes))
    return size, steps


class TestIndexAgreesWithScan:
    """The address index reports exactly what scanning every record reports."""

    @settings(max_examples=60, deadline=None)
    @given(_plans(), st.sampled_from([1, 3, 12]))
    def test_same_reports(self, plan, window):
        """Index and scan give the same reports for random windows and writes."""
        size, steps = plan

        def make():
            data = np.zeros(size)

            def gen():
                for views, writes in steps:
                    yield [data[s:e] for s, e in views]
                    for w in writes:
                        data[w] += 1

            return gen

        scan_limit = _check_index.SCAN_UP_TO
        try:
            indexed = _reports(make(), len(steps), window=window)
            _check_index.SCAN_UP_TO = 10**9
            scanned = _reports(make(), len(steps), window=window)
        finally:
            _check_index.SCAN_UP_TO = scan_limit
        # The same reports; within one step they may come in another order (by address).
        assert sorted(indexed) == sorted(scanned)
