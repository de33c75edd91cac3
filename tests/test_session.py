"""The run summary of safegen.enable(): what it says when checks are off."""

from __future__ import annotations

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
