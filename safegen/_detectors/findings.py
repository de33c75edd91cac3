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

__all__ = ["findings", "record"]


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


def record(channel: Channel, mode: str) -> None:
    """List ``channel``'s findings in the session summary (read when it is made)."""
    _session.record_findings(
        channel.name, channel.location, mode, functools.partial(findings, channel)
    )
