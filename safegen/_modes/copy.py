"""Copy mode: the consumer gets copies of every array, in memory of their own."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import numpy as np

from safegen._config import Settings
from safegen._copying import ALIGN_ABOVE, BufferPool, copy_array, copy_foreign
from safegen._modes._base import _State
from safegen._modes._flat import flat_arrays
from safegen._modes.source import Source
from safegen._structure import map_arrays

__all__ = ["Copy"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class Copy(_State):
    """Copy mode: the consumer gets copies of every array, in memory of their own."""

    def __init__(self, settings: Settings, source: Source) -> None:
        super().__init__(settings, source)
        self.pool = BufferPool()

    def finish(self) -> None:
        self.pool.close()

    def process(self, value: Any) -> Any:
        start = perf_counter()
        copied = arrays = 0
        # Fast path: the usual (x, y) batch of small plain arrays (safegen._modes._flat),
        # copied in one pass, without map_arrays' closure and walk.
        if flat_arrays(value):
            copies = []
            for array in value:
                nbytes = array.nbytes
                if nbytes >= ALIGN_ABOVE:
                    break
                copied += nbytes
                copies.append(array.copy("K"))
            else:
                arrays = len(copies)
                out: Any = tuple(copies) if type(value) is tuple else copies
            if not arrays:
                copied = 0
        if not arrays:
            pool = self.pool

            def copy_one(array: np.ndarray) -> np.ndarray:
                nonlocal copied, arrays
                arrays += 1
                copied += array.nbytes
                return copy_array(array, pool)

            def copy_other(leaf: Any) -> Any:
                nonlocal copied, arrays
                arrays += 1
                new, nbytes = copy_foreign(leaf)
                copied += nbytes
                return new

            out = map_arrays(value, copy_one, copy_other)
        stats = self.stats
        stats.yields += 1
        stats.arrays += arrays
        stats.bytes_copied += copied
        stats.seconds += perf_counter() - start
        return out
