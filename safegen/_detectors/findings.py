"""What the detectors found for one data source in worker processes, for the session.

Reads the files that worker processes wrote to a source's
:class:`~safegen._detectors._sink.Channel` (the findings made there), and compares the
workers' random-state records anew; the session lists each finding once (the findings
made in this process reach it through :func:`safegen._handling.report`).
"""

from __future__ import annotations

import functools
from typing import Any

from safegen import _session
from safegen._detectors._sink import Channel, read_files
from safegen._detectors.random_streams import shared_streams
from safegen._finding import Finding, Kind

__all__ = ["RESEEDED", "findings", "note_reseeded", "record"]


def findings(channel: Channel) -> list[Any]:
    """Every finding written by worker processes, and the random streams compared anew
    over every worker's record (so that each shared state is one finding naming every
    worker that drew from it), each listed once."""
    written = [
        Finding(Kind.named(entry["kind"]), channel.name, channel.location, entry["message"])
        for entry in read_files(channel.folder, "report-")
    ]
    streams = [
        Finding.of(report)
        for report, _ in shared_streams(read_files(channel.folder, "streams-"), channel)
    ]
    seen: set[tuple[Kind, str]] = set()
    out: list[Any] = []
    for finding in [*written, *streams]:
        key = (finding.kind, finding.message.split("\n", 1)[0])
        if key not in seen:
            seen.add(key)
            out.append(finding)
    # What workers noted that is no finding (Channel.note), once each, after them.
    notes = {(e["kind"], e["message"]): e for e in read_files(channel.folder, "note-")}
    return out + list(notes.values())


# What copy mode did in worker processes, said once in the summary (not a finding of a
# bug: it counts as no violation).
RESEEDED = (
    "reseeded NumPy's global random state and `random` in each worker process before its "
    "first batch, so that the workers draw different numbers (each starts from a copy of "
    "its parent's state, which Keras does not reseed)"
)


def note_reseeded(channel: Channel, mode: str) -> None:
    """In a worker process in copy mode, say in the summary that the worker's global
    random states are reseeded (by ``random_workers.Reseed``, before the first call)."""
    if mode == "copy" and channel.in_worker:
        channel.note("copy_mode", RESEEDED)


def record(channel: Channel, mode: str) -> None:
    """List ``channel``'s findings in the session summary (read when it is made)."""
    _session.record_findings(
        channel.name, channel.location, mode, functools.partial(findings, channel)
    )
