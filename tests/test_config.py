"""Where options come from: the SAFEGEN_DISABLE switch and environment read on first use."""

from __future__ import annotations

import numpy as np
import pytest

import safegen
from safegen import _config
from safegen.testing import assert_no_aliasing
from tests import seed


@pytest.fixture
def disabled(monkeypatch):
    """SAFEGEN_DISABLE=1, as a production environment would set it."""
    monkeypatch.setenv("SAFEGEN_DISABLE", "1")
    _config.reset()


def _two(gen):
    return next(gen), next(gen)


class TestDisableSwitch:
    """SAFEGEN_DISABLE=1 turns every check off, whatever the code asks for."""

    @pytest.mark.parametrize("mode", [None, "check", "freeze"])
    def test_explicit_check_and_freeze_become_pass_throughs(self, disabled, mode):
        """Even guard(mode="check"/"freeze") yields the generator's own arrays, unchecked."""
        guarded = safegen.guard(seed.reused_buffer, mode=mode)
        first, second = _two(guarded())  # no AliasingError, no read-only write
        assert np.shares_memory(first[0][0], second[0][0])
        assert safegen.stats(guarded).yields == 0
        gen = safegen.guard(seed.reused_buffer(), mode=mode)
        _two(gen)

    def test_over_context_and_configure(self, disabled):
        """The switch wins over safegen.mode() and safegen.configure() too."""
        guarded = safegen.guard(seed.reused_buffer)
        safegen.configure(mode="freeze")
        with safegen.mode("check"):
            _two(guarded())

    def test_copy_mode_keeps_copying(self, disabled):
        """Copy mode is the fix, not a check: it keeps copying under the switch."""
        guarded = safegen.guard(seed.reused_buffer, mode="copy")
        first, second = _two(guarded())
        assert not np.shares_memory(first[0][0], second[0][0])
        assert seed.consistent(first)

    def test_explicit_test_assertion_still_checks(self, disabled):
        """assert_no_aliasing asked for a check: it checks under the switch."""
        with pytest.raises(AssertionError, match="NOT clean"):
            assert_no_aliasing(seed.reused_buffer, steps=3)
        gen = safegen.guard(seed.reused_buffer(), mode="check")
        _two(gen)  # and the switch is back on afterwards

    @pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
    def test_false_values_leave_checks_on(self, monkeypatch, value):
        """SAFEGEN_DISABLE=0 (or false, no, off, empty) changes nothing."""
        monkeypatch.setenv("SAFEGEN_DISABLE", value)
        _config.reset()
        with pytest.raises(safegen.AliasingError):
            _two(safegen.guard(seed.reused_buffer)())

    def test_bad_value_is_refused_where_used(self, monkeypatch):
        """SAFEGEN_DISABLE=maybe raises at the first guard, listing the valid values."""
        monkeypatch.setenv("SAFEGEN_DISABLE", "maybe")
        _config.reset()
        with pytest.raises(ValueError, match="SAFEGEN_DISABLE: invalid value 'maybe'; expected 1"):
            safegen.guard(seed.reused_buffer)

    def test_mode_off_in_environment_is_only_a_default(self, monkeypatch):
        """SAFEGEN_MODE=off turns off the guards without a mode; guard(mode=...) wins."""
        monkeypatch.setenv("SAFEGEN_MODE", "off")
        _config.reset()
        _two(safegen.guard(seed.reused_buffer)())
        with pytest.raises(safegen.AliasingError):
            _two(safegen.guard(seed.reused_buffer, mode="check")())
