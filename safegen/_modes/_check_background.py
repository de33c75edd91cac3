"""Check mode's hashing thread: large arrays hashed off the consumer's critical path.

The constants say when check mode hashes large arrays on safegen's hashing thread
(``safegen._hasher``) and when it hashes them in place.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from safegen._fingerprint import digest
from safegen._hasher import Job, submit
from safegen._modes._check_index import ARRAY, DIGEST, PATH
from safegen._structure import format_path

__all__ = [
    "BACKGROUND_ABOVE",
    "HANDOFF_SECONDS",
    "IN_PLACE_AFTER_WAITS",
    "WAITS_BEFORE_IN_PLACE",
    "BackgroundHashing",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

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


class BackgroundHashing:
    """The scheduling of background hashes, for :class:`safegen._modes.check.Watch`.

    With ``background`` set (by the generator and iterator drivers), arrays of at least
    ``background_above`` bytes that overlap nothing watched are hashed on the hashing
    thread while the consumer works; ``settle()`` collects the digests before the
    generator resumes.
    """

    inflight: Job | None
    count: int
    source: Any
    stats: Any

    def _init_background(self) -> None:
        # Hash large arrays on the hashing thread: set by the generator and iterator
        # drivers, which call settle() before resuming (datasets hash in place).
        self.background = False
        self.background_above = BACKGROUND_ABOVE
        self.handoff = HANDOFF_SECONDS
        self.deferred: list[list[Any]] = []
        self.waits = 0  # hand-overs in a row the thread did not take off the path
        self.in_place = 0  # large arrays left to hash in place before trying again

    def _hand_over(self, deferred: list[list[Any]]) -> None:
        """Hash the arrays of ``deferred`` on the hashing thread."""
        job = Job(digest, [record[ARRAY] for record in deferred])
        submit(job)
        self.inflight = job
        self.deferred = deferred
        if self.handoff and not job.handed(self.handoff):
            self._missed()  # no core came free for the thread in time

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
            paths = [format_path(record[PATH]) for record in records]
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
            record[DIGEST] = value

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
