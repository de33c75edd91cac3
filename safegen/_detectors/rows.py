"""Row fingerprints: which rows of a batch (or of a whole array) are the same rows.

A row's fingerprint is XXH3-64 of its bytes (``safegen._fingerprint.hash_buffer``), one
call per row; the rows of several arrays (a model with several inputs, a dict of
targets) are combined into one 64-bit key per row. Two rows have the same key when
their bytes are the same: a validation row that is a training row, an input met again in
a later epoch.

Sampling, consistent everywhere: rows of more than :data:`FULL_ROW_BYTES` bytes (images)
are hashed in full only for a subset of them, chosen by a cheap key of a few of their
bytes (:func:`row_keys`). The same row is chosen (or not) in every batch, epoch and
array, whatever its position, so that two sets of sampled keys can be compared: a
sampled validation row that duplicates a training row finds it among the sampled
training rows.

:class:`Tap` feeds a guarded generator's yields, in the process that guarded it, to
objects that read batches (:class:`BatchFeed`: the row collectors of the validation
overlap check, the pairing detector); a guarded dataset gives them each batch through
its handle (``handle.batch``). Framework-free: NumPy arrays only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from safegen._detectors._base import Detector
from safegen._fingerprint import hash_buffer
from safegen._handle import Tap

__all__ = [
    "FULL_ROW_BYTES",
    "BatchFeed",
    "RowCollector",
    "Tap",
    "leaves",
    "row_digests",
    "row_keys",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# Rows up to this size are all hashed; larger ones are sampled (about one in
# size // FULL_ROW_BYTES, at most one in MAX_EVERY), so that a batch of images costs
# about as much as a batch of small rows.
FULL_ROW_BYTES = 8192
MAX_EVERY = 64
# The bytes of a row read for its sampling key.
_PROBE_ELEMENTS = 64
# Mixes the keys of several arrays' rows into one (odd: no information is lost).
_MIX = np.uint64(0x9E3779B97F4A7C15)


def leaves(obj: Any) -> list[np.ndarray] | None:
    """The arrays of ``obj`` (an array, or a list, tuple or dict of them, nested), in a
    fixed order, when all of them have the same number of rows (at least one each);
    ``None`` for anything else (a tensor, an object array, ragged rows)."""
    out: list[np.ndarray] = []
    if not _collect(obj, out) or not out:
        return None
    rows = out[0].shape[0]
    if any(a.shape[0] != rows for a in out):
        return None
    return out


def _collect(obj: Any, out: list[np.ndarray]) -> bool:
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0 or obj.dtype.hasobject or obj.dtype.kind in "T":
            return False
        out.append(obj)
        return True
    if isinstance(obj, dict):
        try:
            keys = sorted(obj)
        except TypeError:
            return False
        return all(_collect(obj[key], out) for key in keys)
    if isinstance(obj, (list, tuple)):
        return all(_collect(item, out) for item in obj)
    return False


def _flat(a: np.ndarray) -> np.ndarray:
    """``a`` as one row of elements per row, C-contiguous (a view when it is)."""
    return np.ascontiguousarray(a.reshape(a.shape[0], -1))


def _hash_rows(rows: np.ndarray) -> np.ndarray:
    return np.fromiter(map(hash_buffer, rows), np.uint64, len(rows))


def row_digests(arrays: list[np.ndarray], positions: np.ndarray | None = None) -> np.ndarray | None:
    """One 64-bit key per row (or per row at ``positions``) of ``arrays`` (from
    :func:`leaves`), or ``None`` when a dtype cannot be hashed."""
    out: np.ndarray | None = None
    try:
        for array in arrays:
            flat = _flat(array)
            if positions is not None:
                flat = flat[positions]
            keys = _hash_rows(flat)
            out = keys if out is None else (out * _MIX) ^ keys
    except (ValueError, TypeError, BufferError):
        return None
    return out


def sample_every(row_bytes: int) -> int:
    """About one row in how many is hashed, for rows of ``row_bytes`` bytes (a power of
    two: the rows taken one in 8 are among those taken one in 4)."""
    every = max(1, min(MAX_EVERY, row_bytes // FULL_ROW_BYTES))
    return 1 << (every.bit_length() - 1)


# Odd 64-bit multipliers of the probe's words (fixed: the same rows are sampled in every
# process and run).
_WEIGHTS = (np.arange(1, 17, dtype=np.uint64) * _MIX) | np.uint64(1)
_SHIFT = np.uint64(29)


def _probe_keys(array: np.ndarray) -> np.ndarray:
    """A cheap key per row, from up to 16 words of evenly spaced elements of it (a
    product with fixed odd weights, folded and multiplied once more: multiplicative
    hashing, whose top bits are taken). It only decides which rows are sampled; their
    identity is the full row's XXH3."""
    rows = array.shape[0]
    flat = array.reshape(rows, -1)
    step = max(1, flat.shape[1] // _PROBE_ELEMENTS)
    probe = np.ascontiguousarray(flat[:, ::step]).view(np.uint8).reshape(rows, -1)
    pad = -probe.shape[1] % 8
    if pad:
        probe = np.concatenate([probe, np.zeros((rows, pad), np.uint8)], axis=1)
    words = probe.view(np.uint64)
    words = words[:, :: max(1, -(-words.shape[1] // len(_WEIGHTS)))]
    keys: np.ndarray = words @ _WEIGHTS[: words.shape[1]]
    keys ^= keys >> _SHIFT
    keys *= _MIX  # the top bits now depend on every bit of the words
    return keys


def row_keys(arrays: list[np.ndarray]) -> tuple[np.ndarray | None, np.ndarray] | None:
    """The sampled rows of ``arrays`` and their keys: ``(positions, keys)``, positions
    ``None`` when every row was taken; ``None`` when a dtype cannot be hashed.

    Rows over :data:`FULL_ROW_BYTES` are sampled: a row is taken when the top bits of a
    cheap key of a few of its elements (of the first array) are zero, one row in
    :func:`sample_every`, so that the same rows are taken wherever they are met.
    """
    rows = arrays[0].shape[0]
    row_bytes = sum(a.nbytes // rows for a in arrays) if rows else 0
    every = sample_every(row_bytes)
    positions: np.ndarray | None = None
    if every > 1:
        try:
            probes = _probe_keys(arrays[0])
        except (ValueError, TypeError):
            return None
        # The top bits (the best mixed) are all zero: one row in `every`.
        positions = np.flatnonzero(probes < np.uint64(1 << (64 - every.bit_length() + 1)))
    keys = row_digests(arrays, positions)
    if keys is None:
        return None
    return positions, keys


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch as Keras reads it: ``(x, y)`` or ``(x, y,
    sample_weight)``; targets ``None`` when there are none."""
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1]
    if isinstance(batch, (tuple, list)) and len(batch) == 1:
        return batch[0], None
    return batch, None


class BatchFeed(Detector):
    """Reads whole batches: from a guarded dataset (as a detector on its handle, which
    gives the batch as ``handle.batch``) or from a :class:`Tap` on a generator."""

    def seen(self, batch: Any, index: Any) -> bool:
        """The batch ``index`` (a dataset's index, a generator's yield number); returns
        whether to go on feeding it batches."""
        return False

    def after(self, dataset: Any, index: Any, handle: Any) -> bool:
        return self.seen(getattr(handle, "batch", None), index)


class RowCollector(BatchFeed):
    """The sampled keys of the input rows of the first batches of a source (one epoch:
    a dataset's indices met once each, a generator's first ``steps`` yields), up to
    ``limit`` keys.

    Attributes:
        keys: the keys collected, as arrays.
        rows: how many rows the batches held (sampled or not).
        sampled: how many rows were hashed (the length of all ``keys``).
        complete: ``False`` when something could not be read (another structure, a
            dtype): its keys are then not used.
    """

    def __init__(self, steps: int | None = None, limit: int = 1_000_000) -> None:
        self.steps = steps
        self.limit = limit
        self.keys: list[np.ndarray] = []
        self.indices: set[Any] = set()
        self.rows = 0
        self.sampled = 0
        self.complete = True

    def seen(self, batch: Any, index: Any) -> bool:
        if self.steps is not None and index >= self.steps:
            return False
        try:
            if index in self.indices:
                return True  # a dataset's index again: its rows were taken
            self.indices.add(index)
        except TypeError:  # an unhashable index
            pass
        arrays = leaves(split_batch(batch)[0])
        found = row_keys(arrays) if arrays is not None else None
        if found is None:
            self.complete = False
            return False
        self.keys.append(found[1])
        self.rows += arrays[0].shape[0] if arrays else 0
        self.sampled += len(found[1])
        return self.sampled < self.limit

    def all_keys(self) -> np.ndarray:
        """Every key collected, in one array."""
        if not self.keys:
            return np.zeros(0, np.uint64)
        return np.concatenate(self.keys)
