"""A dataset that returns the same batch for two different indices in one epoch.

Check mode has just fingerprinted every array of the batch (the aliasing check's
digests, in ``state.window[-1]``): the batch's key is those digests side by side (one
int), looked up in a dictionary of this epoch's batches. A key seen before under another index is a
repeated batch: an index that ``__getitem__`` ignores (``self.x[0:32]``), an offset
computed from something else, a generator copied into each worker.

What is not reported: the same index again (Keras peeks batches, then fetches them
again; ``evaluate`` after ``fit``); equal batches in different epochs (the dictionary is
emptied at each epoch method); batches of fewer than :data:`MIN_BYTES` bytes, and
batches whose every array holds one value throughout (all-zero padding), which repeat
in real data sets. Generators are not covered: a generator has no index or epoch that
safegen sees, and yielding one batch again and again is full-batch training.

With worker processes, each process compares the batches it made itself (Keras starts a
new pool of workers each epoch, so a process sees one epoch).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from typing import Any

import numpy as np

from safegen._config import Settings
from safegen._detectors._base import Detector, dispatch
from safegen._detectors._sink import Channel
from safegen._errors import RepeatedBatchError, RepeatedBatchWarning

__all__ = ["MIN_BYTES", "RepeatedBatchReport", "RepeatedBatches"]

MIN_BYTES = 256
# Forget the epoch's batches beyond this many (an endless dataset without epochs).
MAX_BATCHES = 1 << 16
_ARRAY, _DIGEST = 0, 3  # fields of check mode's records (safegen._modes)


@dataclasses.dataclass(frozen=True)
class RepeatedBatchReport:
    """A batch equal, array for array, to an earlier batch of the same epoch.

    Attributes:
        source: the dataset's ``__getitem__`` (``"Batches.__getitem__()"``).
        location: ``"file.py:12"`` where it is defined, or ``""``.
        index: the index of the batch that repeats an earlier one.
        earlier: the index of that earlier batch.
        nbytes: the batch's size in bytes.
        process: the worker process's name, or ``""`` in the main process.

    Example:
        >>> r = RepeatedBatchReport("B.__getitem__()", "b.py:9", 3, 0, 1024)
        >>> r.message.split(":")[0]
        'B.__getitem__() at b.py'
    """

    source: str
    location: str
    index: Any
    earlier: Any
    nbytes: int
    process: str = ""

    @property
    def message(self) -> str:
        """The full message (first line: what, where, which batches)."""
        where = f"{self.source} at {self.location}" if self.location else self.source
        if self.process:
            where += f" (in worker process {self.process})"
        return (
            f"{where}: the batch at index {self.index!r} is the same, array for array "
            f"({self.nbytes} bytes), as the batch at index {self.earlier!r} of the same "
            "epoch. The network sees one batch twice and another not at all. Likely "
            "causes: __getitem__ ignores its index (or computes the offset from something "
            "else), __len__ is larger than the data, or a generator or iterator copied "
            "into each worker process replays the same items. Check how __getitem__ "
            "turns the index into rows."
        )

    def __str__(self) -> str:
        return self.message


RepeatedBatchReport.__module__ = "safegen"


def _constant(array: np.ndarray) -> bool:
    if array.size <= 1:
        return True
    try:
        first = array.reshape(-1)[0]
        return bool((array == first).all())
    except (TypeError, ValueError):
        return False


class RepeatedBatches(Detector):
    """Check mode: report a batch whose content repeats another index's in this epoch."""

    def __init__(self, settings: Settings, channel: Channel) -> None:
        self.settings = settings
        self.channel = channel
        self.seen: dict[int, Any] = {}
        self.reported = False

    def after(self, dataset: Any, index: Any, state: Any) -> bool:
        window = getattr(state, "window", None)
        if not window:
            return True
        records = window[-1]
        # The key is one int made of the 64-bit digests side by side: exact, and not
        # tracked by the garbage collector as a tuple would be.
        try:
            if len(records) == 2:
                key = (records[0][_DIGEST] << 64) | records[1][_DIGEST]
            else:
                key = 0
                for record in records:
                    key = (key << 64) | record[_DIGEST]
        except TypeError:  # a digest still being computed (generators only)
            return True
        seen = self.seen
        earlier = seen.get(key)
        if earlier is None:
            if len(seen) >= MAX_BATCHES:
                seen.clear()
            try:
                seen[key] = index
            except TypeError:  # an unhashable index
                pass
            return True
        if earlier == index or self.reported:
            return True
        arrays = [record[_ARRAY] for record in records]
        nbytes = sum(array.nbytes for array in arrays)
        if nbytes < MIN_BYTES or all(_constant(array) for array in arrays):
            return True
        self.reported = True  # once per dataset and process: one bug, one report
        report = RepeatedBatchReport(
            source=self.channel.name,
            location=self.channel.location,
            index=index,
            earlier=earlier,
            nbytes=nbytes,
            process=multiprocessing.current_process().name if self.channel.in_worker else "",
        )
        self.channel.report("repeated_batch", report.message)
        dispatch(report, self.settings.on_violation, RepeatedBatchError, RepeatedBatchWarning)
        return True

    def epoch_passed(self) -> None:
        self.seen.clear()
