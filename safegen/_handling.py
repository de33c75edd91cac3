"""The one path every finding goes through: counted, then raised, warned once, or passed on.

A detector builds a :class:`~safegen._finding.Finding` and calls :func:`report` with the
:class:`Handling` of its source (``on_violation``, where to warn, what was warned
already). :func:`report`:

1. counts the finding: in the session (:func:`safegen._session.record_finding`), or,
   in a worker process, where the parent's session reads it (``Handling.record``);
2. with ``on_violation="raise"``, raises the kind's error (a finding that safegen cannot
   pin on the source is warned about instead);
3. with ``"warn"`` (or such an unpinned finding), warns at the user's line, once per
   ``group`` and handling: the repeats are counted in ``Stats.unwarned``;
4. with a callable, calls it with the public report (the finding, if it has none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from types import CodeType
from typing import Any

from safegen import _session
from safegen._finding import Finding
from safegen._frames import hide_safegen_frames, warn_at_user
from safegen._stats import Stats

__all__ = ["Handling", "report", "report_all"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


@dataclasses.dataclass
class Handling:
    """How one source's findings are handled.

    Attributes:
        on_violation: ``"raise"``, ``"warn"``, a callable given each report, or ``None``
            (count only: the error is raised by other means, as NumPy's read-only
            ``ValueError`` in freeze mode).
        code: the source's code (a generator's, a dataset's ``__getitem__``), where a
            warning points when the caller is a framework's; or ``None``.
        warned: the groups already warned about (kept by the caller across calls).
        stats: where to count the findings not warned about again, or ``None``.
        note: appended to a warning that stands for the later ones of its group.
        record: where the finding is counted instead of this process's session (a worker
            process's channel to its parent), or ``None``.
        claim: for a group's first warning, whether this process is the first to warn
            about it among the processes of one source, or ``None`` (it is).
    """

    on_violation: Any
    code: CodeType | None = None
    warned: set[str] = dataclasses.field(default_factory=set)
    stats: Stats | None = None
    note: str = ""
    record: Callable[[Finding], None] | None = None
    claim: Callable[[str], bool] | None = None


def report(finding: Finding, handling: Handling, others: Sequence[Finding] = ()) -> None:
    """Count ``finding``, then raise, warn or pass it on as ``handling`` says.

    ``others`` are the findings of the same step, named in a note on the error raised.
    """
    _count(finding, handling)
    _handle(finding, handling, others)


def report_all(findings: Sequence[Finding], handling: Handling) -> None:
    """:func:`report` each of ``findings`` (found in one step): all are counted first, then
    handled in turn; the first one raised names the others in a note."""
    for finding in findings:
        _count(finding, handling)
    for finding in findings:
        _handle(finding, handling, [other for other in findings if other is not finding])


def _count(finding: Finding, handling: Handling) -> None:
    if handling.record is not None:
        handling.record(finding)
    else:
        _session.record_finding(finding)


def _handle(finding: Finding, handling: Handling, others: Sequence[Finding]) -> None:
    handler = handling.on_violation
    if handler is None:
        return
    if handler == "raise" and finding.pinned:
        error = finding.error()
        if others:
            error.add_note(
                f"safegen found {len(others)} more {finding.kind.label} in this step: "
                + "; ".join(_short(other) for other in others)
            )
        _session.record_error(error)
        hide_safegen_frames()
        raise error
    if handler in ("warn", "raise"):
        group = finding.group
        if group:
            if group in handling.warned or (
                handling.claim is not None and not handling.claim(group)
            ):
                handling.warned.add(group)
                if handling.stats is not None:
                    handling.stats.unwarned += 1
                return
            handling.warned.add(group)
        text = f"{finding.message}\n{handling.note}" if group and handling.note else finding.message
        warn_at_user(text, finding.kind.warning, handling.code)
    elif callable(handler):
        # The public report; a finding with none (a call check's) is passed itself.
        handler(finding.details if finding.details is not None else finding)


def _short(finding: Finding) -> str:
    """``"yield #2 leaf [0]"``: a finding of the same step, in a few words."""
    details = finding.details
    if hasattr(details, "changed_yield"):
        return f"{details.kind} #{details.changed_yield} leaf {details.path or '(the array)'}"
    return finding.message.split(". ", 1)[0]
