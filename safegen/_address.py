"""The byte range an array covers, fast enough to take for every yielded leaf.

Check mode files every watched array that views another one under the byte range it
covers (see ``_Owner`` in ``_modes/check.py``). NumPy's ``byte_bounds`` builds the array's
``__array_interface__`` dictionary to find its address, which costs about 1 µs; for a
batch of hundreds of row views of one array that was most of check mode's cost. The
address is the ``data`` field that follows the object header in NumPy's public
``PyArrayObject_fields`` struct (what the C API's ``PyArray_DATA`` reads): reading it
through ``ctypes`` costs about 0.1 µs. That layout is checked against
``__array_interface__`` once, at import, on CPython only; where it does not hold (another
interpreter, a future NumPy), every call falls back to ``byte_bounds``.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds

__all__ = ["ADDRESS_OFFSET", "extent", "read_address"]

ADDRESS_OFFSET = object.__basicsize__

# ``read_address(id(a) + ADDRESS_OFFSET).value`` is ``a``'s data address, where the struct
# layout checks out (``None`` elsewhere: use :func:`extent`). Check mode inlines it.
_from_address = ctypes.c_void_p.from_address


def _layout_holds() -> bool:
    """Whether the data pointer follows the object header, for a few kinds of arrays.

    Only on CPython, where ``id()`` is the object's address (elsewhere reading at it
    could touch any memory).
    """
    if sys.implementation.name != "cpython":  # pragma: no cover
        return False
    try:
        probes = [np.arange(12.0), np.arange(12.0)[3:], np.zeros((4, 4), np.uint8)[1]]
        return all(
            (_from_address(id(a) + ADDRESS_OFFSET).value or 0) == a.__array_interface__["data"][0]
            for a in probes
        )
    except Exception:  # pragma: no cover - any surprise means: do not read the struct
        return False


read_address: Callable[[int], Any] | None = _from_address if _layout_holds() else None


def extent(a: np.ndarray) -> tuple[int, int]:
    """The first and one-past-last byte addresses ``a`` can touch (as ``byte_bounds``).

    Example:
        >>> import numpy as np
        >>> x = np.zeros(8)
        >>> low, high = extent(x[2:4])
        >>> high - low, low - extent(x)[0]
        (16, 16)
    """
    if read_address is not None and a.flags.c_contiguous:
        low: int = read_address(id(a) + ADDRESS_OFFSET).value or 0
        return low, low + a.nbytes
    low_, high_ = byte_bounds(a)
    return int(low_), int(high_)
