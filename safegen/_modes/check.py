"""Check mode: fingerprint each yielded array and report any that changes later.

:class:`Watch` is the mode, one job per module beside it: fingerprinting each yield
(``_check_hashing``), the address index of the watched arrays (``_check_index``), the
hashing thread's scheduling (``_check_background``, with the constants that say when
large arrays are hashed off the consumer's path) and the re-verifications at the window's
end, at epoch boundaries and at the end (``_check_verify``). Here: the per-yield step and
the findings it makes.
"""

from __future__ import annotations

import collections
from time import perf_counter
from typing import Any

from safegen._config import Settings
from safegen._containers import ContainerWatch, Rebound
from safegen._finding import Finding
from safegen._frames import hide_safegen_frames
from safegen._handling import Handling, report_all
from safegen._modes._base import _State
from safegen._modes._check_background import (
    BACKGROUND_ABOVE,
    HANDOFF_SECONDS,
    IN_PLACE_AFTER_WAITS,
    WAITS_BEFORE_IN_PLACE,
    BackgroundHashing,
)
from safegen._modes._check_hashing import Fingerprinting
from safegen._modes._check_index import ARRAY, DEAD, DIGEST, PATH, SEEN, YIELD, AddressIndex
from safegen._modes._check_verify import Verification
from safegen._modes._flat import FLAT as _FLAT
from safegen._modes._flat import INDEX_PATHS, flat_arrays
from safegen._modes.source import (
    Source,
    _worker_process_name,
    current_line,
)
from safegen._report import AliasingReport
from safegen._structure import format_path, leaves

__all__ = [
    "BACKGROUND_ABOVE",
    "HANDOFF_SECONDS",
    "IN_PLACE_AFTER_WAITS",
    "WAITS_BEFORE_IN_PLACE",
    "Watch",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_ = _FLAT  # re-exported: the most leaves a batch taken as it is may have


class Watch(Fingerprinting, BackgroundHashing, Verification, _State):
    """Check mode: fingerprint each yielded array and report any that changes later.

    Every array of the last ``window`` yields is watched. After each new yield, an
    earlier array is re-hashed at once if the new yield's arrays may share its memory
    (same owner of the memory, overlapping byte ranges): that is how a reused buffer
    shows itself, by the 2nd yield. Every other array is re-verified once more when its
    yield leaves the window (in full, or by sampled blocks above 128 KiB), and all of them
    when the generator is exhausted; ``verify_all=True`` re-hashes every watched array on
    every yield instead. A change found by the immediate re-check is pinned on the
    generator (``attributed``); one found otherwise may have another writer, and is
    warned about rather than raised. For yields that do not overlap earlier ones, the cost
    per yield is one hash of the new bytes plus a bounded re-check, whatever the window;
    overlapping yields re-hash every watched array they overlap.

    With ``background`` set (by the generator and iterator drivers), arrays of at least
    ``BACKGROUND_ABOVE`` bytes that overlap nothing watched are hashed on safegen's hashing
    thread (``safegen._hasher``) while the consumer works; ``settle()`` collects the
    digests before the generator resumes.
    """

    def __init__(self, settings: Settings, source: Source) -> None:
        super().__init__(settings, source)
        self.window: collections.deque[list[list[Any]]] = collections.deque()
        self.by_root = AddressIndex()
        self.size = settings.window
        self.verify_all = settings.verify_all
        self.pending: list[AliasingReport] = []
        self._init_background()
        self.containers = ContainerWatch(settings.window)
        self.warned: set[str] = set()  # the kinds of change already warned about

    def process(self, value: Any) -> Any:
        start = perf_counter()
        if self.inflight is not None:
            self.settle()
        count = self.count = self.count + 1
        # The usual batch, a flat tuple or list of plain arrays, is taken as it is: no
        # walk, and its leaves' paths come from a table instead of new tuples.
        if flat_arrays(value):
            if type(value) is list:  # may be a list refilled and yielded again
                for rebound in self.containers.check(value, count):
                    self._rebound(rebound, count)
            records, hashed = self._watch_arrays(value, INDEX_PATHS, count)
        else:
            found = leaves(value)
            for rebound in self.containers.check(value, count):
                self._rebound(rebound, count)
            records, hashed = self._watch_arrays(
                [array for _, array in found], [path for path, _ in found], count
            )
        window = self.window
        window.append(records)
        if len(window) > self.size:
            hashed += self._evict(window.popleft(), count)
        if self.verify_all:
            hashed += self._verify_all(count)
        stats = self.stats
        stats.yields += 1
        stats.arrays += len(records)
        stats.bytes_fingerprinted += hashed
        stats.seconds += perf_counter() - start
        if self.pending:
            self._dispatch()
        return value

    def last_batch(self) -> tuple[list[Any], list[int]] | None:
        """The arrays of the last yield and their digests, once every hash of it is done."""
        if not self.window:
            return None
        if self.inflight is not None:
            self.settle()
        records = self.window[-1]
        return [record[ARRAY] for record in records], [record[DIGEST] for record in records]

    def annotate(self, exc: BaseException, writer: Source | None = None) -> None:
        if isinstance(exc, BufferError) and "re-sized" in str(exc) and self.count:
            hide_safegen_frames()
            exc.add_note(
                f"safegen: {(writer or self.source).where()} resized an object (a bytearray?) "
                "whose memory check mode still watches: it holds a view of every yielded "
                "buffer-protocol object, which Python forbids resizing. Resizing a "
                "yielded buffer changes the batch under its consumer; yield a copy "
                '(bytes(buffer)) or use @safegen.guard(mode="copy").'
            )

    def _changed(self, record: list[Any], count: int, attributed: bool) -> None:
        """A watched array changed (found by the address index or a re-verification)."""
        self._violation(record, count, attributed)

    def _violation(
        self, record: list[Any], count: int, attributed: bool, writer: Source | None = None
    ) -> None:
        """Record a changed array. ``attributed``: the generator handed out its memory
        again, or the change happened while ``writer`` (an epoch method) ran.

        A change found otherwise is still pinned on the generator when it has yielded
        another view of the same memory owner since the array was last seen unchanged
        (an in-place shuffle of the array its batches are cut from): it holds that
        array, and wrote into it.
        """
        record[DEAD] = True
        self.stats.violations += 1
        later = 0
        if not attributed and writer is None:
            later = self.by_root.same_owner_since(record)
            attributed = bool(later)
        if not attributed:
            self.stats.unattributed += 1
        array = record[ARRAY]
        self.pending.append(
            AliasingReport(
                source=self.source.name,
                location=self.source.location,
                path=format_path(record[PATH]),
                dtype=str(array.dtype),
                shape=tuple(array.shape),
                changed_yield=record[YIELD],
                last_seen_unchanged=record[SEEN],
                detected_at=count,
                kind=self.source.kind,
                process=_worker_process_name(),
                attributed=attributed,
                writer="" if writer is None else writer.where(),
                yield_location=current_line(self.producer) if attributed and not later else "",
                made_by=self.source.made_by,
                same_array_yield=later,
            )
        )

    def _rebound(self, rebound: Rebound, count: int) -> None:
        """Record a container yielded again after a key or index in it was rebound."""
        self.stats.violations += 1
        self.stats.containers += 1
        if isinstance(rebound.container, dict):
            keys = [repr(key) for key in rebound.keys]
            what = ("key " if len(keys) == 1 else "keys ") + ", ".join(keys[:8])
        else:
            keys = [str(key) for key in rebound.keys]
            what = ("index " if len(keys) == 1 else "indices ") + ", ".join(keys[:8])
        if not keys:
            what = ""  # a list that only grew or shrank (rebound.lengths)
        if len(keys) > 8:
            what += f" (and {len(keys) - 8} more)"
        self.pending.append(
            AliasingReport(
                source=self.source.name,
                location=self.source.location,
                path=format_path(rebound.path),
                dtype="",
                shape=(),
                changed_yield=rebound.changed_yield,
                last_seen_unchanged=rebound.changed_yield,
                detected_at=count,
                kind=self.source.kind,
                process=_worker_process_name(),
                yield_location=current_line(self.producer),
                made_by=self.source.made_by,
                container=type(rebound.container).__name__,
                rebound=what,
                lengths=rebound.lengths,
            )
        )

    def _dispatch(self) -> None:
        """Hand the findings of this step to the one path (safegen._handling.report)."""
        reports, self.pending = self.pending, []
        handling = Handling(
            self.settings.on_violation,
            self.source.code,
            warned=self.warned,
            stats=self.stats,
            note=WARNED_ONCE,
            record=self.record,
        )
        report_all([_finding(report) for report in reports], handling)


# What a warning about a change says of the changes of its kind that follow.
WARNED_ONCE = (
    "(safegen warns once per kind of change and data source; the repeats are counted in "
    "safegen.stats() and the run summary)"
)


def _finding(report: AliasingReport) -> Finding:
    """The finding a report describes; a change safegen cannot pin on the generator is
    warned about, not raised, and warnings come once per kind of change."""
    if report.container:
        group = "container"
    elif report.writer:
        group = "epoch method " + report.writer
    elif report.same_array_yield:
        group = "same array"
    else:
        group = "attributed" if report.attributed else "unattributed"
    return Finding.of(report, pinned=report.attributed, group=group)
