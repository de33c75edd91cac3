"""What the detectors found for one data source, for the session summary.

Reads what a source's :class:`~safegen._detectors._sink.Channel` holds (reports kept in
this process, and the files worker processes wrote), compares the workers' random-state
records anew, and lists the findings once each.
"""

from __future__ import annotations

import functools
from typing import Any

from safegen import _session
from safegen._detectors._sink import Channel, read_files
from safegen._detectors.random_streams import shared_streams

__all__ = ["RESEEDED", "findings", "note_reseeded", "record"]


def findings(channel: Channel) -> list[dict[str, Any]]:
    """Every report kept, in this process or written by workers, without repeats; random
    streams are compared anew over every worker's record, so that each shared state is
    one finding naming every worker that drew from it."""
    streams = [
        {"kind": "random_stream", "message": report.message}
        for report, _ in shared_streams(read_files(channel.folder, "streams-"), channel)
    ]
    seen: set[tuple[str, str]] = set()
    out = []
    for entry in [*channel.reports, *read_files(channel.folder, "report-"), *streams]:
        key = (entry["kind"], entry["message"].split("\n", 1)[0])
        if key not in seen:
            seen.add(key)
            out.append(entry)
    # What copy mode did comes after what the detectors found.
    return sorted(out, key=lambda entry: entry["kind"] == "copy_mode")


# What copy mode did in worker processes, said once in the summary (not a finding of a
# bug: it counts as no violation).
RESEEDED = (
    "reseeded NumPy's global random state and `random` in each worker process before its "
    "first batch, so that the workers draw different numbers (each starts from a copy of "
    "its parent's state, which Keras does not reseed)"
)


def note_reseeded(channel: Channel, mode: str) -> None:
    """In a worker process in copy mode, say in the summary that the worker's global
    random states are reseeded (by ``random_streams.Reseed``, before the first call)."""
    if mode == "copy" and channel.in_worker:
        channel.report("copy_mode", RESEEDED)


def record(channel: Channel, mode: str) -> None:
    """List ``channel``'s findings in the session summary (read when it is made)."""
    _session.record_findings(
        channel.name, channel.location, mode, functools.partial(findings, channel)
    )
