"""Check mode: fingerprint each yielded array and report any that changes later.

:class:`Watch` is the mode; :class:`_Owner` indexes the watched arrays of one memory
owner by address. The constants below say when check mode hashes large arrays on
safegen's hashing thread (``safegen._hasher``) and when it hashes them in place.
"""

from __future__ import annotations

import collections
from time import perf_counter
from typing import Any

import numpy as np

from safegen._address import ADDRESS_OFFSET as _ADDRESS_OFFSET
from safegen._address import extent
from safegen._address import read_address as _read_address
from safegen._config import Settings
from safegen._containers import ContainerWatch, Rebound
from safegen._finding import Finding
from safegen._fingerprint import (
    SAMPLE_ABOVE,
    SAMPLE_BLOCK_BYTES,
    digest,
    fingerprint,
    hash_buffer,
    memory_key,
    sample,
    verify_sample,
)
from safegen._frames import hide_safegen_frames
from safegen._handling import Handling, report_all
from safegen._hasher import Job, submit
from safegen._modes._base import _State
from safegen._modes.source import (
    Source,
    _worker_process_name,
    current_line,
)
from safegen._report import AliasingReport
from safegen._structure import Path, format_path, leaves

__all__ = [
    "BACKGROUND_ABOVE",
    "HANDOFF_SECONDS",
    "IN_PLACE_AFTER_WAITS",
    "WAITS_BEFORE_IN_PLACE",
    "Watch",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_ndarray = np.ndarray

# Check mode hashes arrays of at least this many bytes on safegen's hashing thread, off
# the consumer's critical path, when it guards a generator or iterator (whose next step
# cannot start before the hash is done). Below it, handing the hash over costs more than
# it saves (see benchmarks/per_yield.py, "background hashing").
BACKGROUND_ABOVE = 4 << 20
# After handing hashes over, wait at most this long for the thread to start on them (it
# needs the GIL to start, and what the consumer does next may hold it for long).
HANDOFF_SECONDS = 0.0005
# When, WAITS_BEFORE_IN_PLACE times in a row, the thread did not start within
# HANDOFF_SECONDS or the consumer waited for more than half of the hashing (it does
# nothing between next() calls, or no core was free), the next IN_PLACE_AFTER_WAITS large
# arrays are hashed in place, then the thread is tried again.
WAITS_BEFORE_IN_PLACE = 3
IN_PLACE_AFTER_WAITS = 16

# The paths of the leaves of a flat tuple or list, made once.
_FLAT = 64
_INDEX_PATHS: tuple[Path, ...] = tuple((i,) for i in range(_FLAT))


# Fields of a watched array's record (a list, for speed on the per-yield path).
_ARRAY, _KEY, _PATH, _DIGEST, _YIELD, _SEEN, _SAMPLE, _BOUNDS, _DEAD = range(9)
# The record's _SAMPLE says how to re-verify it when its yield leaves the window: None,
# hashed in place (hash_buffer); _FULL, through fingerprint(); a list, by sampled blocks.
_FULL: Any = ()

# Up to this many watched records of one memory owner are kept in a list and scanned for
# overlaps; beyond it, in an _Owner index (many row views of one array, see
# benchmarks/many_leaves.py).
_SCAN_UP_TO = 16
_NONE: list[list[Any]] = []  # an empty cell (never modified)
# A lookup that would visit more cells of an owner's index than this visits every record
# instead.
_MAX_CELLS = 64


class _Owner:
    """The watched records of one memory owner, indexed by address.

    The owner's address space is cut into cells of ``2 ** shift`` bytes, at least the
    widest record when the index is made. A record is filed under the cell of its first
    byte, or among the ``wide`` ones if it is wider than a cell (the whole array next to
    its row views). A record that overlaps a byte range ``[low, high)`` then starts in
    one of the cells from ``low - cell + 1`` to ``high - 1``: finding them, filing a
    record and removing one cost a few dictionary operations, whatever the number of
    records, so a yield of N row views of one array costs O(N), where scanning every
    record cost O(N * window).
    """

    __slots__ = ("cells", "shift", "size", "wide")

    def __init__(self, records: list[list[Any]]) -> None:
        self.cells: dict[int, list[list[Any]]] = {}
        self.wide: list[list[Any]] = []
        self.size = 0
        widest = 64
        for record in records:
            if record[_BOUNDS] is None:
                record[_BOUNDS] = extent(record[_ARRAY])
            low, high = record[_BOUNDS]
            widest = max(widest, high - low)
        self.shift = (widest - 1).bit_length()
        for record in records:
            self._file(record)

    def _file(self, record: list[Any]) -> None:
        low, high = record[_BOUNDS]
        self.size += 1
        if high - low > 1 << self.shift:
            self.wide.append(record)
        else:
            self.cells.setdefault(low >> self.shift, []).append(record)

    def __len__(self) -> int:
        return self.size

    def check_in(self, record: list[Any]) -> list[list[Any]]:
        """File ``record``; return the records filed before it that may overlap it (a
        superset of those that do)."""
        array = record[_ARRAY]
        if _read_address is not None and array.flags.c_contiguous:
            low = _read_address(id(array) + _ADDRESS_OFFSET).value or 0
            high = low + array.nbytes
            record[_BOUNDS] = low, high
        else:
            low, high = record[_BOUNDS] = extent(array)
        shift = self.shift
        cells = self.cells
        first = (low - (1 << shift) + 1) >> shift
        last = max(low, high - 1) >> shift
        if last - first > _MAX_CELLS:
            before = [other for filed in cells.values() for other in filed]
        elif last == first + 1:  # the usual case: the cell before the record's, and its own
            get = cells.get
            before = get(first, _NONE) + get(last, _NONE)
        else:
            before = []
            for cell in range(first, last + 1):
                before += cells.get(cell, _NONE)
        if self.wide:
            before += self.wide
        self.size += 1
        if high - low > 1 << shift:
            self.wide.append(record)
        else:
            cells.setdefault(low >> shift, []).append(record)
        return before

    def remove(self, record: list[Any]) -> None:
        low, high = record[_BOUNDS]
        self.size -= 1
        if high - low > 1 << self.shift:
            _remove_identical(self.wide, record)
            return
        cell = low >> self.shift
        filed = self.cells[cell]
        if len(filed) == 1:
            del self.cells[cell]
        else:
            _remove_identical(filed, record)


def _remove_identical(records: list[list[Any]], record: list[Any]) -> None:
    """Remove ``record`` itself (not an equal one) from ``records``."""
    for i, other in enumerate(records):
        if other is record:
            del records[i]
            return


class Watch(_State):
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
        self.by_root: dict[Any, list[list[Any]] | _Owner] = {}
        self.size = settings.window
        self.verify_all = settings.verify_all
        self.pending: list[AliasingReport] = []
        # Hash large arrays on the hashing thread: set by the generator and iterator
        # drivers, which call settle() before resuming (datasets hash in place).
        self.background = False
        self.background_above = BACKGROUND_ABOVE
        self.handoff = HANDOFF_SECONDS
        self.deferred: list[list[Any]] = []
        self.waits = 0  # hand-overs in a row the thread did not take off the path
        self.in_place = 0  # large arrays left to hash in place before trying again
        self.containers = ContainerWatch(settings.window)
        self.warned: set[str] = set()  # the kinds of change already warned about

    def process(self, value: Any) -> Any:
        start = perf_counter()
        if self.inflight is not None:
            self.settle()
        count = self.count = self.count + 1
        # The usual batch, a flat tuple or list of plain arrays, is taken as it is: no
        # walk, and its leaves' paths come from a table instead of new tuples.
        kind = type(value)
        arrays: Any = None
        if (kind is tuple or kind is list) and len(value) <= _FLAT:
            for array in value:
                if type(array) is not _ndarray:
                    break
            else:
                arrays = value
                paths: Any = _INDEX_PATHS
        if arrays is None:
            found = leaves(value)
            paths = [path for path, _ in found]
            arrays = [array for _, array in found]
        if kind is not tuple or arrays is not value:  # may hold a dict or list
            for rebound in self.containers.check(value, count):
                self._rebound(rebound, count)
        by_root = self.by_root
        records = []
        deferred: list[list[Any]] | None = None
        hashed = 0
        index = 0
        for array in arrays:
            nbytes = array.nbytes
            hashed += nbytes
            base = array.base
            if base is None:
                key = id(array)
            elif type(base) is _ndarray and base.base is None:
                key = id(base)
            else:
                key = memory_key(array)
            same_root = by_root.get(key)
            blocks: Any = None  # None: hashed in place (C-contiguous), re-hashed so
            if nbytes <= SAMPLE_ABOVE:
                if array.dtype.kind != "T":
                    try:
                        fp = hash_buffer(array)
                    except (ValueError, TypeError, BufferError):
                        blocks = _FULL
                else:
                    blocks = _FULL
                if blocks is not None:
                    fp, size = fingerprint(array)
                    hashed += size - nbytes
            else:
                # The sampled blocks are the yield-time reference for the re-check when
                # the yield leaves the window (see settle() on consumers' writes).
                blocks = sample(array) or _FULL
                if (
                    nbytes >= self.background_above
                    and same_root is None
                    and blocks is not _FULL
                    and self.background
                    and self._defer()
                ):
                    record = [array, key, paths[index], None, count, count, blocks, None, False]
                    index += 1
                    if deferred is None:
                        deferred = []
                    deferred.append(record)
                    records.append(record)
                    by_root[key] = [record]
                    continue
                fp, size = fingerprint(array)
                hashed += size - nbytes
            record = [array, key, paths[index], fp, count, count, blocks, None, False]
            index += 1
            if same_root is None:
                by_root[key] = [record]
            else:
                hashed += self._recheck(key, same_root, record, count)
            records.append(record)
        if deferred is not None:
            job = Job(digest, [record[_ARRAY] for record in deferred])
            submit(job)
            self.inflight = job
            self.deferred = deferred
            if self.handoff and not job.handed(self.handoff):
                self._missed()  # no core came free for the thread in time
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

    def settle(self) -> None:
        """Wait for the background hashes of the last yield: called before the generator
        resumes, so that they are of the bytes as the generator left them.

        A consumer that writes into a batch in place while its hash runs may see its
        write taken into the digest; the blocks sampled at yield time (arrays hashed in
        the background are all sampled) still show it when the yield leaves the window.
        When the thread keeps failing to take the hash off the consumer's path (see
        WAITS_BEFORE_IN_PLACE), the next large arrays are hashed in place, then the thread
        is tried again.
        """
        job, records = self.inflight, self.deferred
        self.inflight = None
        self.deferred = []
        if job is None:
            return
        start = perf_counter()
        try:
            digests = job.wait()
        except BaseException as error:
            paths = [format_path(record[_PATH]) for record in records]
            if any(paths):
                where = ("leaf " if len(paths) == 1 else "leaves ") + ", ".join(paths)
            else:
                where = "the array"
            error.add_note(
                f"safegen: hashing yield #{self.count} of {self.source.where()} ({where}) "
                "on safegen's hashing thread failed"
            )
            raise
        finally:
            waited = perf_counter() - start
            self.stats.seconds += waited
        if waited > job.seconds / 2:
            self._missed()
        else:
            self.waits = 0
        for record, value in zip(records, digests, strict=True):
            record[_DIGEST] = value

    def _missed(self) -> None:
        """The thread did not take the hash off the consumer's path this time."""
        self.waits += 1
        if self.waits >= WAITS_BEFORE_IN_PLACE:
            self.waits = 0
            self.in_place = IN_PLACE_AFTER_WAITS

    def _defer(self) -> bool:
        """Whether to hash the next large array in the background (see settle())."""
        if self.in_place:
            self.in_place -= 1
            return False
        return True

    def _recheck(self, key: Any, same_root: Any, new: list[Any], count: int) -> int:
        """Re-hash the watched arrays that may share memory with ``new``, then watch it.

        ``same_root`` holds the watched records of ``new``'s memory owner: a list while
        there are few (scanned in full), an :class:`_Owner` index by address beyond
        ``_SCAN_UP_TO`` (which finds the overlapping ones without a scan).
        """
        if type(same_root) is not list:
            # Usually the only candidates are neighbours from this very yield.
            candidates = same_root.check_in(new)
            for old in candidates:
                if old[_YIELD] != count:
                    return self._rehash(candidates, new, count)
            return 0
        hashed = self._rehash(same_root, new, count)
        if len(same_root) < _SCAN_UP_TO:
            same_root.append(new)
        else:
            self.by_root[key] = _Owner([*same_root, new])
        return hashed

    def _rehash(self, candidates: list[list[Any]], new: list[Any], count: int) -> int:
        """Re-hash those of ``candidates`` that overlap ``new``; returns the bytes hashed."""
        hashed = 0
        array = new[_ARRAY]
        for old in candidates:
            # Skip records of this yield, and those already re-checked during it (the
            # generator is suspended: nothing of its own can have changed them since).
            if old[_DEAD] or old[_YIELD] == count or old[_SEEN] == count:
                continue
            if old[_ARRAY] is array:
                current = new[_DIGEST]
            else:
                if old[_BOUNDS] is None:
                    old[_BOUNDS] = extent(old[_ARRAY])
                if new[_BOUNDS] is None:
                    new[_BOUNDS] = extent(array)
                if old[_BOUNDS][1] <= new[_BOUNDS][0] or new[_BOUNDS][1] <= old[_BOUNDS][0]:
                    continue
                current, size = fingerprint(old[_ARRAY])
                hashed += size
            if current != old[_DIGEST]:
                self._violation(old, count, attributed=True)
            else:
                old[_SEEN] = count
        return hashed

    def _verify(self, record: list[Any], count: int, sampled: bool) -> int:
        """Re-verify one record; returns the bytes hashed."""
        if record[_DEAD]:
            return 0
        array = record[_ARRAY]
        if sampled and record[_SAMPLE]:
            ok = verify_sample(array, record[_SAMPLE])
            size = len(record[_SAMPLE]) * SAMPLE_BLOCK_BYTES
        else:
            digest, size = fingerprint(array)
            ok = digest == record[_DIGEST]
        if ok:
            record[_SEEN] = count
        else:
            self._violation(record, count, attributed=False)
        return size

    def _forget(self, record: list[Any]) -> None:
        same_root = self.by_root[record[_KEY]]
        if type(same_root) is list:
            for i, other in enumerate(same_root):
                if other is record:
                    del same_root[i]
                    break
        else:
            same_root.remove(record)
        if not same_root:
            del self.by_root[record[_KEY]]

    def _evict(self, records: list[list[Any]], count: int) -> int:
        """Re-verify, then forget, the records of the yield that leaves the window."""
        hashed = 0
        forget = self._forget
        for record in records:
            if not record[_DEAD]:
                # No need to note the record seen: it is forgotten next.
                array = record[_ARRAY]
                blocks = record[_SAMPLE]
                if blocks is None:  # hashed in place: the common, small case
                    try:
                        current = hash_buffer(array)
                    except (ValueError, TypeError, BufferError):
                        blocks = _FULL
                    else:
                        if current != record[_DIGEST]:
                            self._violation(record, count, attributed=False)
                        hashed += array.nbytes
                        forget(record)
                        continue
                if blocks is _FULL:
                    current, size = fingerprint(array)
                    ok = current == record[_DIGEST]
                    hashed += size
                else:
                    ok = verify_sample(array, blocks)
                    hashed += len(blocks) * SAMPLE_BLOCK_BYTES
                if not ok:
                    self._violation(record, count, attributed=False)
            forget(record)
        return hashed

    def _verify_all(self, count: int) -> int:
        hashed = 0
        for records in self.window:
            for record in records:
                if record[_YIELD] != count:
                    hashed += self._verify(record, count, sampled=False)
        return hashed

    def finish(self) -> None:
        if self.inflight is not None:
            self.settle()
        start = perf_counter()
        self.stats.bytes_fingerprinted += self._verify_all(self.count + 1)
        self.stats.seconds += perf_counter() - start
        if self.pending:
            self._dispatch()

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

    def before_epoch_method(self) -> Any:
        # A change found now happened before the method ran: its writer is unknown.
        self._verify_epoch(None)
        return None

    def after_epoch_method(self, writer: Source) -> None:
        self._verify_epoch(writer)

    def _verify_epoch(self, writer: Source | None) -> None:
        """Re-hash every watched array at an epoch boundary; a change is pinned on
        ``writer`` (the epoch method that just ran) if given."""
        start = perf_counter()
        hashed = 0
        for records in self.window:
            for record in records:
                if record[_DEAD]:
                    continue
                digest, size = fingerprint(record[_ARRAY])
                hashed += size
                if digest == record[_DIGEST]:
                    record[_SEEN] = self.count
                else:
                    self._violation(
                        record, self.count + 1, attributed=writer is not None, writer=writer
                    )
        self.stats.bytes_fingerprinted += hashed
        self.stats.seconds += perf_counter() - start
        if self.pending:
            self._dispatch()

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
        record[_DEAD] = True
        self.stats.violations += 1
        later = 0
        if not attributed and writer is None:
            later = self._same_owner_since(record)
            attributed = bool(later)
        if not attributed:
            self.stats.unattributed += 1
        array = record[_ARRAY]
        self.pending.append(
            AliasingReport(
                source=self.source.name,
                location=self.source.location,
                path=format_path(record[_PATH]),
                dtype=str(array.dtype),
                shape=tuple(array.shape),
                changed_yield=record[_YIELD],
                last_seen_unchanged=record[_SEEN],
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

    def _same_owner_since(self, record: list[Any]) -> int:
        """The latest yield after ``record``'s last check that handed out another view of
        its memory owner, or 0."""
        same_root = self.by_root.get(record[_KEY])
        if same_root is None:
            return 0
        if isinstance(same_root, _Owner):
            others: Any = [r for filed in same_root.cells.values() for r in filed]
            others += same_root.wide
        else:
            others = same_root
        seen = record[_SEEN]
        return max((r[_YIELD] for r in others if r[_YIELD] > seen), default=0)

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
