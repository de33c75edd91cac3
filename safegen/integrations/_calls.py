"""A model's ``fit``, ``evaluate`` or ``predict``, as the model-level checks see it.

The data sources of a training call are guarded one by one (``_sources``); what is wrong
only with the call as a whole (a loss given logits, inputs on another scale than at
``fit``, validation rows that are training rows, a random ``map`` upstream of ``cache()``)
is for a **call check**: a function ``check(call) -> finish | None``, named in an
integration's ``CHECKS`` (``"module:function"``, imported when the integration is
installed). It runs before the framework's method, after the sources were guarded, and
may change ``call.arguments`` (add a callback, say); the ``finish()`` it returns runs
after the method returned normally.

A check turns what it sees into :class:`~safegen._finding.Finding` s and hands each to
:meth:`Call.report`, the one path (``_handling.report``) with the handling
``enable()`` asked for: counted in the session under the check's name
(:meth:`Call.checked`), then raised, warned once per model, or passed to
``on_violation``. It does not raise, warn or count by itself. A check that fails on
something safegen did not foresee does not stop the user's training: it is switched off
for that call with a :class:`~safegen.SafegenWarning` naming it.

Framework-free: the checks themselves read the framework.
"""

from __future__ import annotations

import dataclasses
import importlib
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from safegen import _session
from safegen._errors import SafegenError, SafegenWarning
from safegen._finding import Finding
from safegen._frames import warn_at_user
from safegen._handling import Handling, report

__all__ = ["Call", "Check", "Finish", "load", "run_checks"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

Finish: TypeAlias = Callable[[], None]


@dataclasses.dataclass
class Call:
    """One call of a model's training method, after its data sources were guarded.

    Attributes:
        framework: ``"keras"`` or ``"tf_keras"``.
        method: ``"fit"``, ``"evaluate"`` or ``"predict"``.
        model: the model called.
        arguments: the call's arguments by parameter name, defaults left out (the guarded
            sources in place of the user's); a check may change them.
        handling: how the call's findings are handled (``on_violation``; warned once per
            model).
    """

    framework: str
    method: str
    model: Any
    arguments: dict[str, Any]
    handling: Handling

    def checked(self, name: str, location: str = "") -> None:
        """Count one run of a check under ``name`` and ``location``: its findings'
        ``source`` and ``location``, so that the session lists them together."""
        _session.record_check(name, location)

    def report(self, finding: Finding) -> None:
        """Count ``finding``, then raise, warn or pass it on: the one path."""
        report(finding, self.handling)


Check: TypeAlias = Callable[[Call], Finish | None]

# The groups already warned about, per model: a loop calling fit(epochs=1) warns once.
_WARNED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def handling_for(model: Any, on_violation: Any) -> Handling:
    """The handling of ``model``'s findings: ``on_violation``, warned once per model."""
    try:
        warned = _WARNED.setdefault(model, set())
    except TypeError:  # not weakly referable, or unhashable: warn once per call
        warned = set()
    return Handling(on_violation, warned=warned)


def load(names: Iterable[str]) -> tuple[Check, ...]:
    """The checks named ``"module:function"``."""
    checks = []
    for name in names:
        module, _, function = name.partition(":")
        checks.append(getattr(importlib.import_module(module), function))
    return tuple(checks)


def run_checks(checks: Iterable[Check], call: Call) -> list[Finish]:
    """Run each check before the call; returns what to run after it returned."""
    finishes = []
    for check in checks:
        try:
            finish = check(call)
        except SafegenError:
            raise
        except Exception as error:  # noqa: BLE001 - safegen's fault, not the user's
            _internal(check, error)
            continue
        if finish is not None:
            finishes.append((check, finish))
    return [_guarded_finish(check, finish) for check, finish in finishes]


def _guarded_finish(check: Check, finish: Finish) -> Finish:
    def run() -> None:
        try:
            finish()
        except SafegenError:
            raise
        except Exception as error:  # noqa: BLE001 - safegen's fault, not the user's
            _internal(check, error)

    return run


def _internal(check: Check, error: Exception) -> None:
    name = f"{check.__module__}.{getattr(check, '__qualname__', check)}"
    warn_at_user(
        f"safegen's check {name} failed on this call and was skipped for it "
        f"({type(error).__name__}: {error}); please report it",
        SafegenWarning,
    )
