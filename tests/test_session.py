"""The run summary of safegen.enable(): what it counts, and what it says when checks are off."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import safegen
from safegen import _config


class TestSummaryWhenOff:
    """The summary says what is off and why, instead of blaming the program (issue 19,
    bug 4)."""

    def test_mode_off(self):
        """enable("off") (safegen run --mode off): the summary names the mode."""
        with safegen.enabled("off") as session:
            pass
        assert "  no data source guarded: mode 'off' was asked for" in session.summary()
        assert "reached Keras" not in session.summary()

    def test_environment_mode_off(self, monkeypatch):
        """SAFEGEN_MODE=off: the summary names the variable."""
        monkeypatch.setenv("SAFEGEN_MODE", "off")
        _config.reset()
        with safegen.enabled() as session:
            pass
        assert "  no data source guarded: SAFEGEN_MODE=off" in session.summary()

    def test_disable_switch(self, monkeypatch):
        """SAFEGEN_DISABLE=1: guards and layer checks are named as off, and why."""
        monkeypatch.setenv("SAFEGEN_DISABLE", "1")
        _config.reset()
        with safegen.enabled() as session:
            pass
        summary = session.summary()
        assert "  no data source guarded: SAFEGEN_DISABLE=1 turns check and freeze" in summary
        assert "  no layer checked: SAFEGEN_DISABLE=1 turns layer checks off" in summary

    def test_no_shapes(self):
        """shapes=False (--no-shapes): the layer line says the checks were switched off."""
        with safegen.enabled(shapes=False) as session:
            pass
        summary = session.summary()
        assert "  no layer checked: layer checks were switched off" in summary
        assert "  no data source guarded: no generator, PyDataset" in summary

    def test_nothing_off_nothing_seen(self):
        """Checks on and nothing reached them: the summary says so in one line."""
        with safegen.enabled() as session:
            pass
        assert session.summary().splitlines()[1].startswith("  nothing was guarded: no gen")


def _refilled():
    batch = {"x": None}
    for i in range(3):
        batch["x"] = np.full(2, i)
        yield batch


def _reused():
    x = np.zeros(2)
    for _ in range(3):
        x += 1
        yield x


def _random_stream():
    return [{"kind": "random_stream", "message": "Noisy.__getitem__(): same state. More."}]


class TestSummaryCounts:
    """The summary counts every kind of finding, each named, in its totals too."""

    def test_first_line_counts_every_kind(self):
        """Changed arrays, rebound containers and a detector's finding are all counted."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", safegen.AliasingWarning)
            with safegen.enabled() as session:
                list(safegen.guard(_refilled, on_violation="warn")())
                list(safegen.guard(_reused, on_violation="warn")())
                session.record_findings("Noisy.__getitem__()", "n.py:3", "check", _random_stream)
        lines = session.summary().splitlines()
        assert (
            ", 5 violation(s) (2 changed array(s), 2 reused container(s), 1 repeated random "
            "stream(s)); 0 layer(s)" in lines[0]
        )
        assert lines[1].endswith(
            "2 violation(s) (2 reused container(s); 1 repeated warning(s) not shown)"
        )
        assert lines[2].endswith(
            "2 violation(s) (2 changed array(s); 1 repeated warning(s) not shown)"
        )
        assert lines[3].endswith("1 violation(s) (1 repeated random stream(s))")
        totals = session.as_dict()["totals"]
        assert (totals["violations"], totals["changed_arrays"], totals["random_streams"]) == (
            5,
            2,
            1,
        )

    def test_a_detector_finding_alone_is_not_zero_violations(self):
        """A run whose only finding is a repeated random stream does not say 0 violations."""
        with safegen.enabled() as session:
            session.record_findings("Noisy.__getitem__()", "n.py:3", "check", _random_stream)
        assert "0 B copied, 1 violation(s) (1 repeated random stream(s));" in session.summary()

    def test_stats_count_rebound_containers(self):
        """Stats.containers counts the rebound containers among the violations."""
        gen = safegen.guard(_refilled, on_violation=lambda report: None)()
        list(gen)
        stats = safegen.stats(gen)
        assert (stats.violations, stats.containers) == (2, 2)

    def test_stats_fields_added_last(self):
        """Stats keeps its positional order: containers, added later, is the last field."""
        stats = safegen.Stats(1, 2, 3, 4, 5, 6, 7, 8.0)
        assert (stats.violations, stats.unattributed, stats.unwarned, stats.seconds) == (
            5,
            6,
            7,
            8.0,
        )
        assert stats.containers == 0 and (stats + stats).seconds == 16.0


class TestPublicSession:
    """safegen.session(): the session the command line and the pytest plugin read."""

    def test_none_unless_enabled(self):
        """It is None outside enable(), and the enabled session inside."""
        assert safegen.session() is None
        with safegen.enabled() as session:
            assert safegen.session() is session
        assert safegen.session() is None

    def test_counts_every_kind_by_its_kind(self):
        """A repeated batch is counted under repeated_batches, a changed array under
        changed_arrays; both fail by the one rule."""
        pytest.importorskip("keras")  # a PyDataset; this file also runs without Keras
        from tests.random_datasets import IgnoresIndex

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", safegen.SafegenWarning)
            with safegen.enabled() as session:
                dataset = safegen.guard(IgnoresIndex(), on_violation="warn")
                dataset[0]
                dataset[1]
                list(safegen.guard(_reused, on_violation="warn")())
        counts = session.counts()
        assert (counts["repeated_batches"], counts["changed_arrays"]) == (1, 2)
        assert session.failures() == {"changed_arrays": 2, "repeated_batches": 1}
        # Only warned about: nothing was raised, so the same for a test's verdict.
        assert session.failures(raised=False) == session.failures()
        totals = session.as_dict()["totals"]
        assert (totals["repeated_batches"], totals["violations"]) == (1, 3)

    def test_raised_findings_are_left_to_where_they_went(self):
        """A finding safegen raised its error for counts in failures(), not in
        failures(raised=False): the error decides where it went."""
        with safegen.enabled() as session:
            it = safegen.guard(_reused)()
            next(it)
            try:
                next(it)
            except safegen.AliasingError:
                pass
        assert session.failures() == {"changed_arrays": 1}
        assert session.failures(raised=False) == {}
