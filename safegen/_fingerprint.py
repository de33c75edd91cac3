"""Content fingerprints of arrays, and which arrays may share memory.

A fingerprint is XXH3-64 of an array's bytes. XXH3 reads the bytes once (it ran at 23.7
GB/s on data in cache on the reference machine, twice the speed of a memcpy), so on large
batches check mode costs less than a copy; on small ones safegen's fixed per-yield work
dominates instead (see benchmarks/per_yield.py). What it covers:

* any dtype, order and strides: C-contiguous arrays are hashed in place, Fortran-ordered
  ones through their (C-contiguous) transpose, zero-stride axes (broadcast views) are
  reduced to one element first, and other strided views are made contiguous first (a
  copy of the view's bytes, not of the buffer behind it);
* object arrays (and structured dtypes holding objects) by the identity of their
  elements: replacing an element is a change, mutating the object it points to is not;
* dtypes NumPy cannot export through the buffer protocol (datetime64, timedelta64) by
  their raw bytes;
* ``StringDType`` arrays by their strings (their bytes are pointers into an arena).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import xxhash
from numpy.lib.array_utils import byte_bounds

# XXH3-64 of anything exporting the buffer protocol (ndarray included; typed loosely
# because NumPy's stubs do not declare the buffer protocol).
hash_buffer: Callable[[Any], int] = xxhash.xxh3_64_intdigest

__all__ = [
    "SAMPLE_ABOVE",
    "SAMPLE_BLOCK_BYTES",
    "bounds",
    "digest",
    "fingerprint",
    "hash_buffer",
    "memory_key",
    "root_of",
    "sample",
    "verify_sample",
]

_ndarray = np.ndarray

# Above this size, the re-check when a yield leaves the window hashes SAMPLE_BLOCKS
# evenly spaced blocks instead of the whole array (the full hash is taken at yield time).
SAMPLE_ABOVE = 128 * 1024
SAMPLE_BLOCKS = 16
SAMPLE_BLOCK_BYTES = 4096


def _contiguous(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array holding exactly the elements of ``a`` (a view if possible)."""
    if a.flags.c_contiguous:
        return a
    if a.flags.f_contiguous:
        return a.T
    if 0 in a.strides and a.size:
        # Broadcast view: the element repeated along a zero-stride axis is stored once.
        a = a[tuple(0 if s == 0 else slice(None) for s in a.strides)]
        if a.flags.c_contiguous:
            return a
    return np.ascontiguousarray(a)


def _hash_bytes(a: np.ndarray) -> int:
    """XXH3 of a C-contiguous array's memory, whatever its dtype."""
    try:
        return hash_buffer(a)
    except (ValueError, TypeError, BufferError):
        # NumPy refuses to export some dtypes (datetime64, ...) as buffers.
        return hash_buffer(a.reshape(-1).view(np.uint8))


def fingerprint(a: np.ndarray) -> tuple[int, int]:
    """The fingerprint of ``a`` and the number of bytes hashed.

    Example:
        >>> import numpy as np
        >>> x = np.arange(4.0)
        >>> fingerprint(x) == fingerprint(x.copy())
        True
    """
    if a.dtype.kind == "T":
        # StringDType: the array holds pointers into a string arena; hash the strings.
        text = "\0".join(map(str, a.ravel().tolist())).encode("utf-8", "surrogatepass")
        return hash_buffer(text), len(text)
    if a.flags.c_contiguous:
        try:
            return hash_buffer(a), a.nbytes
        except (ValueError, TypeError, BufferError):
            pass
    c = _contiguous(a)
    return _hash_bytes(c), c.nbytes


def digest(a: np.ndarray) -> int:
    """The fingerprint of ``a`` alone (what the hashing thread computes)."""
    return fingerprint(a)[0]


def _next_base(node: Any) -> Any:
    """What ``node`` gets its memory from: ``.base`` of arrays and of NumPy's helper
    objects (``as_strided`` and ``sliding_window_view`` leave a ``DummyArray``), ``.obj``
    of a memoryview, else ``None``."""
    if isinstance(node, memoryview):
        return node.obj
    return getattr(node, "base", None)


def root_of(a: np.ndarray) -> Any:
    """The object that owns the memory behind ``a`` (``a`` itself if it owns it)."""
    root: Any = a
    base = a.base
    for _ in range(256):  # a chain that long (or a cycle) is not a chain of views
        if base is None or base is root:
            break
        root = base
        base = _next_base(base)
    return root


def memory_key(a: np.ndarray) -> Any:
    """A key that two arrays share if they may view the same memory owner.

    The owner's identity when it is an array or any object exporting a buffer (bytes,
    bytearray, mmap, ctypes arrays); for an opaque owner (a DLPack capsule, an object
    with only ``__array_interface__``) the array's start address, which is what a
    reused buffer keeps from one yield to the next.
    """
    root = root_of(a)
    if isinstance(root, _ndarray):
        return id(root)
    try:
        memoryview(root).release()
    except TypeError:
        return ("@", bounds(a)[0])
    return id(root)


def bounds(a: np.ndarray) -> tuple[int, int]:
    """The first and one-past-last byte addresses ``a`` can touch."""
    low, high = byte_bounds(a)
    return int(low), int(high)


def sample(a: np.ndarray) -> list[tuple[int, int]] | None:
    """Hashes of evenly spaced blocks of a large C-contiguous array, else ``None``."""
    if a.nbytes <= SAMPLE_ABOVE or not a.flags.c_contiguous or a.dtype.hasobject:
        return None
    try:
        flat = memoryview(cast(Any, a.reshape(-1).view(np.uint8)))
    except (ValueError, TypeError, BufferError):
        return None
    step = (len(flat) - SAMPLE_BLOCK_BYTES) // (SAMPLE_BLOCKS - 1)
    return [
        (offset, hash_buffer(flat[offset : offset + SAMPLE_BLOCK_BYTES]))
        for offset in range(0, step * SAMPLE_BLOCKS, step)
    ]


def verify_sample(a: np.ndarray, blocks: list[tuple[int, int]]) -> bool:
    """Whether every sampled block of ``a`` still has the hash it had."""
    flat = memoryview(cast(Any, a.reshape(-1).view(np.uint8)))
    return all(
        hash_buffer(flat[offset : offset + SAMPLE_BLOCK_BYTES]) == digest
        for offset, digest in blocks
    )
