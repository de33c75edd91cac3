"""How copy mode copies an array: new memory, 64-byte aligned when large, recycled.

Large copies go into 64-byte-aligned buffers, so that TensorFlow wraps them without
copying them again. Each guarded generator keeps a small pool of those buffers and
reuses one only after every array made from it is gone: a copy is built on a per-copy
"lease" (a view of the buffer, wrapped in a memoryview) that every array derived from the
copy keeps alive, TensorFlow's tensors included, and a ``weakref.finalize`` on the lease
gives the buffer back when the last of them dies. Nothing depends on reference counts.
Fresh memory from the operating system costs a page fault per 4 KiB on first touch,
which made copies of a 19 MB batch several times slower inside ``tf.data``; a recycled
buffer is already mapped, and often still in cache.
"""

from __future__ import annotations

import array as _array_module
import collections
import copy
import threading
import warnings
import weakref
from typing import Any, cast

import numpy as np

from safegen._errors import SafegenWarning
from safegen._frames import user_stacklevel

__all__ = ["ALIGN_ABOVE", "BufferPool", "aligned_copy", "copy_array", "copy_foreign"]

_ndarray = np.ndarray

# Copies of at least this many bytes are aligned (and pooled). Below it, aligning costs
# more than the copy TensorFlow makes of an unaligned array (see benchmarks/per_yield.py).
ALIGN_ABOVE = 256 * 1024


class BufferPool:
    """Aligned byte buffers, reused once no array made from them is alive.

    Args:
        per_size: free buffers kept per size.
        sizes: how many distinct sizes keep free buffers (the most recently used ones).
        max_bytes: the most memory kept in free buffers in all.

    Example:
        >>> pool = BufferPool()
        >>> first = pool.take(1 << 20)
        >>> first.ctypes.data % 64
        0
        >>> view = first[::2]
        >>> del first
        >>> pool.take(1 << 20) is not None, pool.reused  # the view still holds the buffer
        (True, 0)
        >>> del view
        >>> _ = pool.take(1 << 20)
        >>> pool.reused
        1
    """

    def __init__(self, per_size: int = 16, sizes: int = 4, max_bytes: int = 512 << 20) -> None:
        self.per_size = per_size
        self.sizes = sizes
        self.max_bytes = max_bytes
        self.free: collections.OrderedDict[int, list[np.ndarray]] = collections.OrderedDict()
        self.free_bytes = 0
        self.reused = 0
        self.closed = False
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        """A writable, C-contiguous uint8 array of ``nbytes`` at a 64-byte boundary."""
        buffer = None
        with self._lock:
            same_size = self.free.get(nbytes)
            if same_size:
                buffer = same_size.pop()
                self.free_bytes -= buffer.nbytes
                self.free.move_to_end(nbytes)
                self.reused += 1
        if buffer is None:
            buffer = np.empty(nbytes + 64, np.uint8)
        offset = -buffer.ctypes.data % 64
        lease = buffer[offset : offset + nbytes]
        weakref.finalize(lease, self._give_back, buffer)
        return np.frombuffer(memoryview(cast(Any, lease)), np.uint8)

    def _give_back(self, buffer: np.ndarray) -> None:
        """Called when the last array made from ``buffer`` is gone."""
        nbytes = buffer.nbytes - 64
        with self._lock:
            if self.closed or self.free_bytes + buffer.nbytes > self.max_bytes:
                return
            same_size = self.free.setdefault(nbytes, [])
            self.free.move_to_end(nbytes)
            if len(same_size) >= self.per_size:
                return
            same_size.append(buffer)
            self.free_bytes += buffer.nbytes
            while len(self.free) > self.sizes:
                _, dropped = self.free.popitem(last=False)
                self.free_bytes -= sum(b.nbytes for b in dropped)

    def close(self) -> None:
        """Drop the free buffers, and do not keep any given back later."""
        with self._lock:
            self.closed = True
            self.free.clear()
            self.free_bytes = 0


def _aligned_empty(nbytes: int) -> np.ndarray:
    buffer = np.empty(nbytes + 64, np.uint8)
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
    raw = pool.take(array.nbytes) if pool is not None else _aligned_empty(array.nbytes)
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


def _dlpack_nbytes(obj: Any) -> int:
    """The size of a DLPack tensor: read through NumPy, or, for one NumPy cannot view (a
    torch ``bfloat16`` tensor, one that requires grad), its own ``nbytes``."""
    try:
        return int(np.from_dlpack(obj).nbytes)
    except Exception:
        return int(getattr(obj, "nbytes", 0) or 0)


def copy_foreign(obj: Any) -> tuple[Any, int]:
    """Copy mode's copy of a leaf that is not an ndarray, of the same type, and its size.

    ``bytearray`` and ``array.array`` are copied by their own constructors, a
    ``memoryview`` becomes a view of a NumPy copy (same format and shape), pandas objects
    use ``copy(deep=True)``, DLPack tensors their own ``clone()`` (PyTorch) or ``copy()``.
    A DLPack tensor with neither comes back as a NumPy copy, with a
    :class:`safegen.SafegenWarning` naming its type.

    Example:
        >>> buffer = bytearray(b"abc")
        >>> copied, nbytes = copy_foreign(buffer)
        >>> copied == buffer, copied is buffer, nbytes
        (True, False, 3)
    """
    if isinstance(obj, bytearray):
        return bytearray(obj), len(obj)
    if isinstance(obj, _array_module.array):
        return copy.copy(obj), len(obj) * obj.itemsize
    if isinstance(obj, memoryview):
        try:
            return memoryview(cast(Any, np.array(obj))), obj.nbytes
        except (ValueError, TypeError, NotImplementedError):
            return memoryview(bytearray(obj.tobytes())), obj.nbytes
    module = (getattr(type(obj), "__module__", "") or "").split(".")[0]
    if module == "pandas":
        if hasattr(obj, "columns"):
            nbytes = int(obj.memory_usage(index=False, deep=False).sum())
        else:
            nbytes = int(obj.nbytes)
        return obj.copy(deep=True), nbytes
    nbytes = _dlpack_nbytes(obj)
    for method in ("clone", "copy"):
        make = getattr(obj, method, None)
        if callable(make):
            return make(), nbytes
    warnings.warn(
        f"safegen: cannot copy a {type(obj).__qualname__} keeping its type (it has no "
        "clone() or copy()); copy mode yields a NumPy copy of it in its place",
        SafegenWarning,
        stacklevel=user_stacklevel(),
    )
    return np.from_dlpack(obj).copy(), nbytes
