"""Check mode's re-verifications: a yield leaving the window, every watched array at an
epoch boundary or at the end, and ``verify_all``."""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from safegen._fingerprint import SAMPLE_BLOCK_BYTES, fingerprint, hash_buffer, verify_sample
from safegen._modes._check_index import ARRAY, DEAD, DIGEST, FULL, KEY, SAMPLE, SEEN, YIELD
from safegen._modes.source import Source

__all__ = ["Verification"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class Verification:
    """Re-verifying watched arrays, for :class:`safegen._modes.check.Watch`."""

    by_root: Any
    window: Any
    count: int
    stats: Any
    pending: list[Any]
    inflight: Any

    if TYPE_CHECKING:  # provided by Watch and BackgroundHashing

        def _changed(self, record: list[Any], count: int, attributed: bool) -> None: ...

        def _violation(
            self, record: list[Any], count: int, attributed: bool, writer: Source | None = None
        ) -> None: ...

        def _dispatch(self) -> None: ...

        def settle(self) -> None: ...

    def _verify(self, record: list[Any], count: int, sampled: bool) -> int:
        """Re-verify one record; returns the bytes hashed."""
        if record[DEAD]:
            return 0
        array = record[ARRAY]
        if sampled and record[SAMPLE]:
            ok = verify_sample(array, record[SAMPLE])
            size = len(record[SAMPLE]) * SAMPLE_BLOCK_BYTES
        else:
            digest, size = fingerprint(array)
            ok = digest == record[DIGEST]
        if ok:
            record[SEEN] = count
        else:
            self._changed(record, count, False)
        return size

    def _evict(self, records: list[list[Any]], count: int) -> int:
        """Re-verify, then forget, the records of the yield that leaves the window."""
        hashed = 0
        by_root = self.by_root
        forget = by_root.forget
        for record in records:
            if not record[DEAD]:
                # No need to note the record seen: it is forgotten next.
                array = record[ARRAY]
                blocks = record[SAMPLE]
                if blocks is None:  # hashed in place: the common, small case
                    try:
                        current = hash_buffer(array)
                    except (ValueError, TypeError, BufferError):
                        blocks = FULL
                    else:
                        if current != record[DIGEST]:
                            self._changed(record, count, False)
                        hashed += array.nbytes
                        # The usual owner watches this record alone: drop it here, not
                        # in a call (a Python call costs as much as the lines it saves).
                        same_root = by_root[record[KEY]]
                        if type(same_root) is list and len(same_root) == 1:
                            del by_root[record[KEY]]
                        else:
                            forget(record)
                        continue
                if blocks is FULL:
                    current, size = fingerprint(array)
                    ok = current == record[DIGEST]
                    hashed += size
                else:
                    ok = verify_sample(array, blocks)
                    hashed += len(blocks) * SAMPLE_BLOCK_BYTES
                if not ok:
                    self._changed(record, count, False)
            forget(record)
        return hashed

    def _verify_all(self, count: int) -> int:
        hashed = 0
        for records in self.window:
            for record in records:
                if record[YIELD] != count:
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
                if record[DEAD]:
                    continue
                digest, size = fingerprint(record[ARRAY])
                hashed += size
                if digest == record[DIGEST]:
                    record[SEEN] = self.count
                else:
                    self._violation(
                        record, self.count + 1, attributed=writer is not None, writer=writer
                    )
        self.stats.bytes_fingerprinted += hashed
        self.stats.seconds += perf_counter() - start
        if self.pending:
            self._dispatch()
