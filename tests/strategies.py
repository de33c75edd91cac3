"""Hypothesis strategies for what generators yield: nested structures of odd arrays."""

from __future__ import annotations

import collections

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

Pair = collections.namedtuple("Pair", "first second")

DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="=", sizes=(16, 32, 64)),
    hnp.complex_number_dtypes(endianness="="),
    hnp.datetime64_dtypes(endianness="="),
    st.just(np.dtype([("a", "i4"), ("b", "f8")])),
)


@st.composite
def arrays(draw):
    """Arrays of any dtype, in C or Fortran order, sliced, transposed or broadcast."""
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    base = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["c", "f", "step", "reverse", "transpose", "broadcast", "ro"]))
    if layout == "f":
        return np.asfortranarray(base)
    if layout == "step" and base.ndim:
        return base[::2]
    if layout == "reverse" and base.ndim:
        return base[::-1]
    if layout == "transpose":
        return base.T
    if layout == "broadcast":
        return np.broadcast_to(base, (2, *base.shape))
    if layout == "ro":
        base.flags.writeable = False
    return base


def _object_array(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


LEAVES = st.one_of(
    arrays(),
    st.integers(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.none(),
    st.lists(st.integers(), max_size=3).map(_object_array),
)

STRUCTURES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=2), children, max_size=3),
        st.tuples(children, children).map(lambda pair: Pair(*pair)),
    ),
    max_leaves=8,
)
