"""How copy mode copies an array: new memory, 64-byte aligned when large, recycled.

Large copies go into 64-byte-aligned buffers, so that TensorFlow wraps them without
copying them again. Each guarded generator keeps a small pool of those buffers and
reuses one only when nothing else references it any more (its reference count says
so): the consumer, TensorFlow included, has let go of every array made from it. Fresh
memory from the operating system costs a page fault per 4 KiB on first touch, which made
copies of a 19 MB batch four times slower inside ``tf.data`` than in a loop; a recycled
buffer is already mapped, and often still in cache.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["ALIGN_ABOVE", "BufferPool", "aligned_copy", "copy_array"]

_ndarray = np.ndarray

# Copies of at least this many bytes are aligned (and pooled). Below it, aligning costs
# more than the copy TensorFlow makes of an unaligned array (see benchmarks/per_yield.py).
ALIGN_ABOVE = 256 * 1024


class BufferPool:
    """Aligned byte buffers, reused once nothing but the pool holds them.

    Args:
        per_size: how many buffers of one size the pool keeps (in use or free); more
            copies in flight than that get fresh memory that is not pooled.
        max_bytes: the most memory the pool keeps in all.

    Example:
        >>> pool = BufferPool()
        >>> first = pool.take(1 << 20)
        >>> first.ctypes.data % 64
        0
        >>> del first
        >>> second = pool.take(1 << 20)
        >>> pool.reused
        1
    """

    def __init__(self, per_size: int = 16, max_bytes: int = 1 << 30) -> None:
        self.per_size = per_size
        self.max_bytes = max_bytes
        self.held = 0
        self.reused = 0
        self.buffers: dict[int, list[np.ndarray]] = {}

    def take(self, nbytes: int) -> np.ndarray:
        """A C-contiguous uint8 array of ``nbytes`` that starts at a 64-byte boundary."""
        same_size = self.buffers.setdefault(nbytes, [])
        for buffer in same_size:
            # References: the list, this loop's variable and getrefcount's argument. Any
            # array made from this buffer (the copy handed out, views of it, TensorFlow's
            # hold on it) adds one.
            if sys.getrefcount(buffer) == 3:
                self.reused += 1
                return _aligned_view(buffer, nbytes)
        buffer = np.empty(nbytes + 64, np.uint8)
        if len(same_size) < self.per_size and self.held + buffer.nbytes <= self.max_bytes:
            same_size.append(buffer)
            self.held += buffer.nbytes
        return _aligned_view(buffer, nbytes)


def _aligned_view(buffer: np.ndarray, nbytes: int) -> np.ndarray:
    offset = -buffer.ctypes.data % 64
    return buffer[offset : offset + nbytes]


def aligned_copy(array: np.ndarray, pool: BufferPool | None = None) -> np.ndarray:
    """A copy of ``array`` in memory of its own that starts at a 64-byte boundary.

    Fortran-ordered arrays stay Fortran-ordered; everything else comes back
    C-contiguous. Object dtypes are copied by reference (a shallow copy), unaligned.

    Example:
        >>> import numpy as np
        >>> aligned_copy(np.arange(10.0)).ctypes.data % 64
        0
    """
    if array.dtype.hasobject or array.nbytes == 0:
        return np.array(array, copy=True, order="K", subok=False)
    order: Any = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    if pool is not None:
        raw = pool.take(array.nbytes)
    else:
        raw = _aligned_view(np.empty(array.nbytes + 64, np.uint8), array.nbytes)
    typed: Any = raw.view(array.dtype)
    out: np.ndarray = typed.reshape(array.shape, order=order)
    np.copyto(out, array, casting="no")
    return out


def copy_array(array: np.ndarray, pool: BufferPool | None = None) -> np.ndarray:
    """Copy mode's copy of one array: new memory, equal values, same dtype and shape.

    Plain arrays and memmaps become plain arrays (64-byte aligned from ``ALIGN_ABOVE``
    bytes on, in ``pool``'s buffers if given); other ndarray subclasses (masked arrays,
    ...) use their own ``copy()`` so that nothing they carry is lost.

    Example:
        >>> import numpy as np
        >>> x = np.arange(3.0)
        >>> copy_array(x) is x, np.shares_memory(copy_array(x), x)
        (False, False)
    """
    if type(array) is _ndarray:
        if array.nbytes < ALIGN_ABOVE:
            return array.copy(order="K")
        return aligned_copy(array, pool)
    if isinstance(array, np.memmap):
        return copy_array(np.asarray(array), pool)
    return array.copy()
