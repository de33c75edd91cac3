"""Check mode's first job on every yield: fingerprint each array and watch it.

:meth:`Fingerprinting._watch_arrays` hashes each array of a yield (in place, by sampled
blocks above ``SAMPLE_ABOVE``, or on the hashing thread above ``BACKGROUND_ABOVE``), files
its record in the address index (``safegen._modes._check_index``), and re-hashes at once
the watched arrays the new one may share memory with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from safegen._fingerprint import SAMPLE_ABOVE, fingerprint, hash_buffer, memory_key, sample
from safegen._modes._check_index import FULL

__all__ = ["Fingerprinting"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_ndarray = np.ndarray


class Fingerprinting:
    """The fingerprinting of each yield, for :class:`safegen._modes.check.Watch`."""

    by_root: Any
    background: bool
    background_above: int

    if TYPE_CHECKING:  # provided by Watch and BackgroundHashing

        def _changed(self, record: list[Any], count: int, attributed: bool) -> None: ...

        def _defer(self) -> bool: ...

        def _hand_over(self, deferred: list[list[Any]]) -> None: ...

    def _watch_arrays(self, arrays: Any, paths: Any, count: int) -> tuple[list[Any], int]:
        """Fingerprint and watch ``arrays`` (at ``paths``) of yield ``count``; returns their
        records and the bytes hashed."""
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
                        blocks = FULL
                else:
                    blocks = FULL
                if blocks is not None:
                    fp, size = fingerprint(array)
                    hashed += size - nbytes
            else:
                # The sampled blocks are the yield-time reference for the re-check when
                # the yield leaves the window (see settle() on consumers' writes).
                blocks = sample(array) or FULL
                if (
                    nbytes >= self.background_above
                    and same_root is None
                    and blocks is not FULL
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
                hashed += by_root.recheck(key, same_root, record, count, self._changed)
            records.append(record)
        if deferred is not None:
            self._hand_over(deferred)
        return records, hashed
