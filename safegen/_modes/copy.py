"""Copy mode: the consumer gets copies of every array, in memory of their own."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import numpy as np

from safegen._config import Settings
from safegen._copying import ALIGN_ABOVE, BufferPool, copy_array, copy_foreign
from safegen._modes._base import _State
from safegen._modes.source import Source
from safegen._structure import map_arrays

__all__ = ["Copy"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_ndarray = np.ndarray


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
        # Fast path: the usual (x, y) batch of small plain arrays, copied in one pass (the
        # test of safegen._modes._flat.flat_arrays, made leaf by leaf as the loop copies),
        # without map_arrays' walk; its counters are plain locals, not a closure's cells.
        kind = type(value)
        if kind is tuple or kind is list:
            if len(value) == 2:  # (x, y): no list to build, no loop
                x, y = value
                if type(x) is _ndarray and type(y) is _ndarray:
                    x_bytes = x.nbytes
                    y_bytes = y.nbytes
                    if x_bytes < ALIGN_ABOVE and y_bytes < ALIGN_ABOVE:
                        arrays = 2
                        copied = x_bytes + y_bytes
                        out: Any = (x.copy("K"), y.copy("K"))
                        if kind is list:
                            out = list(out)
            else:
                copies = []
                for array in value:
                    if type(array) is not _ndarray:
                        break
                    nbytes = array.nbytes
                    if nbytes >= ALIGN_ABOVE:
                        break
                    copied += nbytes
                    copies.append(array.copy("K"))
                else:
                    arrays = len(copies)
                    out = tuple(copies) if kind is tuple else copies
                if not arrays:
                    copied = 0
        if not arrays:
            out, arrays, copied = self._copy_tree(value)
        stats = self.stats
        stats.yields += 1
        stats.arrays += arrays
        stats.bytes_copied += copied
        stats.seconds += perf_counter() - start
        return out

    def _copy_tree(self, value: Any) -> tuple[Any, int, int]:
        """Any other value: a copy of every array leaf (large ones aligned, from the
        pool) and of every framework tensor; returns it, the arrays and the bytes."""
        pool = self.pool
        copied = arrays = 0

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
        return out, arrays, copied
