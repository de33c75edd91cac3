"""safegen.testing in a user's own pytest run: short failures, no safegen source shown."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import numpy as np
from safegen.testing import assert_no_aliasing


def reused():
    x = np.zeros(2)
    while True:
        x += 1
        yield x


def broken():
    yield np.zeros(2)
    raise KeyError("the source fails")


def test_aliasing():
    assert_no_aliasing(reused, steps=3)


def test_freeze():
    assert_no_aliasing(reused, steps=3, mode="freeze")


def test_source_raises():
    assert_no_aliasing(broken, steps=3)
"""


def _failure_sections(output: str) -> dict[str, list[str]]:
    """The lines of each test's failure report, by test name."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("____") and line.endswith("____"):
            current = sections.setdefault(line.strip("_ "), [])
        elif line.startswith("====") and current is not None:
            current = None
        elif current is not None:
            current.append(line)
    return sections


class TestPytestOutput:
    """assert_no_aliasing failures as pytest shows them."""

    @pytest.fixture
    def report(self, pytester):
        pytester.makepyfile(test_user=USER_TESTS)
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=3)
        return result.stdout.str()

    def test_no_safegen_source_in_failures(self, report):
        """Failures show the user's code and safegen's message, never safegen's own source."""
        assert "safegen/" not in report.replace("safegen/testing", "")
        assert "def assert_no_aliasing" not in report and "__tracebackhide__" not in report
        assert "def _pull_iterator" not in report and "def _run(" not in report

    def test_failures_are_short(self, report):
        """Each failure fits in a screen: the call, the message, and the user's frames."""
        sections = _failure_sections(report)
        assert set(sections) == {"test_aliasing", "test_freeze", "test_source_raises"}
        aliasing = "\n".join(sections["test_aliasing"])
        assert "assert_no_aliasing(reused, steps=3)" in aliasing
        assert "E       AssertionError: test_user.reused: NOT clean" in aliasing
        assert len(sections["test_aliasing"]) <= 20, aliasing
        assert len(sections["test_freeze"]) <= 20, "\n".join(sections["test_freeze"])
        raised = "\n".join(sections["test_source_raises"])
        assert 'raise KeyError("the source fails")' in raised
        assert len(sections["test_source_raises"]) <= 30, raised
