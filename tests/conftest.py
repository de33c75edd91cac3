"""Shared fixtures: every test starts from safegen's default configuration."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hypothesis import HealthCheck, settings  # noqa: E402

from safegen import _config  # noqa: E402

# No test may depend on timing: Hypothesis's per-example deadline (200 ms) and its
# "too slow" health check fail on a busy machine, not on a bug.
settings.register_profile("safegen", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("safegen")


@pytest.fixture(autouse=True)
def _reset_configuration():
    """Undo safegen.configure() and SAFEGEN_MODE changes made by a test, and fail a test
    that leaves safegen.enable() on, or a session open (it would take in the next tests'
    sources)."""
    from safegen import _enable, _session

    was_enabled, had_session = _enable.is_enabled(), _session.current() is not None
    _config.reset()
    yield
    _config.reset()
    if _enable.is_enabled() and not was_enabled:
        _enable.disable()
        pytest.fail("the test left safegen.enable() on; use `with safegen.enabled():`")
    if _session.current() is not None and not had_session:
        _session.stop()
        pytest.fail("the test left a safegen session open")


@pytest.fixture(params=["check", "copy", "freeze"])
def any_mode(request):
    """Each mode that guards something."""
    return request.param
