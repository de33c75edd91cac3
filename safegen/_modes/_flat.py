"""The usual batch, written once for every mode: a flat tuple or list of plain arrays.

Check, copy and freeze mode take such a batch as it is (no walk of the structure, no
paths made): :func:`flat_arrays` says whether a value is one, and :data:`INDEX_PATHS`
holds its leaves' paths, made once. Copy mode makes the same test leaf by leaf in the
loop that copies them (one pass, and no call: about 1,000 instructions less per yield,
measured with callgrind; see benchmarks/per_yield.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from safegen._structure import Path

__all__ = ["FLAT", "INDEX_PATHS", "flat_arrays"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_ndarray = np.ndarray

# The most leaves a batch taken as it is may have.
FLAT = 64
# The paths of the leaves of a flat tuple or list, made once.
INDEX_PATHS: tuple[Path, ...] = tuple((i,) for i in range(FLAT))


def flat_arrays(value: Any) -> bool:
    """Whether ``value`` is a tuple or list of at most :data:`FLAT` plain NumPy arrays
    (not subclasses): the usual ``(x, y)`` batch, which every mode takes on its fast path."""
    kind = type(value)
    if kind is tuple or kind is list:
        size = len(value)
        if size == 2:  # (x, y), without the loop
            return type(value[0]) is _ndarray and type(value[1]) is _ndarray
        if size <= FLAT:
            for array in value:
                if type(array) is not _ndarray:
                    return False
            return True
    return False
