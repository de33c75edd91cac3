"""The one path every finding goes through (safegen._handling): counted, then raised,
warned once, or passed to on_violation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import safegen


def _two_reused_buffers():
    x, y = np.zeros(3), np.zeros(3)
    while True:
        x += 1
        y += 1
        yield x, y


def _one_reused_buffer():
    x = np.zeros(3)
    for _ in range(4):
        x += 1
        yield x


class TestOnePath:
    """Raise, warn once, or call on_violation; every finding counted first."""

    def test_error_names_the_other_findings_of_its_step_and_all_are_counted(self):
        """Two arrays changed in one step: the error raised for the first names the other
        in a note, and the session counts both."""
        with safegen.enabled() as session:
            it = safegen.guard(_two_reused_buffers)()
            next(it)
            with pytest.raises(safegen.AliasingError) as info:
                next(it)
        notes = getattr(info.value, "__notes__", [])
        assert any(
            note.startswith("safegen found 1 more changed array(s) in this step: yield #1 leaf")
            for note in notes
        ), notes
        assert session.counts()["changed_arrays"] == 2
        assert info.value.report.changed_yield == 1

    def test_warned_once_per_kind_and_the_repeats_counted(self):
        """on_violation="warn": one warning for repeated changes of one kind, the others
        counted in Stats.unwarned and in the session."""
        with safegen.enabled() as session:
            it = safegen.guard(_one_reused_buffer, on_violation="warn")()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                list(it)
        shown = [w for w in caught if issubclass(w.category, safegen.AliasingWarning)]
        assert len(shown) == 1
        assert "safegen warns once per kind of change and data source" in str(shown[0].message)
        stats = safegen.stats(it)
        assert stats.violations == session.counts()["changed_arrays"] == 3
        assert stats.unwarned == 2

    def test_callable_gets_each_public_report(self):
        """A callable on_violation gets every finding's public report, nothing raised."""
        found = []
        list(safegen.guard(_one_reused_buffer, on_violation=found.append)())
        assert [type(report) for report in found] == [safegen.AliasingReport] * 3
        assert [report.changed_yield for report in found] == [1, 2, 3]
