"""A dataset that returns the same batch for two different indices in one epoch.

Check mode has just fingerprinted every array of the batch (the aliasing check's
digests, which the source's handle gives: ``handle.last_batch()``): the batch's key is
those digests side by side (one int), looked up in a dictionary of this epoch's
batches. A key seen before under another index is a
repeated batch: an index that ``__getitem__`` ignores (``self.x[0:32]``), an offset
computed from something else, a generator copied into each worker.

What is not reported: the same index again (Keras peeks batches, then fetches them
again; ``evaluate`` after ``fit``); equal batches in different epochs (the dictionary is
emptied at each epoch method); batches of fewer than :data:`MIN_BYTES` bytes, and
batches whose every array holds one value throughout (all-zero padding), which repeat
in real data sets. Within one process, generators are not covered: a generator has no
index or epoch that safegen sees, and yielding one batch again and again is full-batch
training.

Across worker processes, they are (:class:`ProcessRepeats`, check mode): tf_keras runs a
copy of a generator in each worker process (``fit(generator, workers=2,
use_multiprocessing=True)``), and the copies replay the same yields. Each worker process
writes the keys of its first :data:`YIELDS` yields to the generator's channel and reads the
other processes' ones: two different batches that two processes both yielded are reported
(whichever writes second sees the first's, without relying on timing). One batch yielded
everywhere is not: a generator that yields one batch again and again (full-batch
training) does that in every copy. Small batches are left out; constant ones are not
(``np.full(shape, i)`` for a step counter ``i`` is constant, and two copies that both yield
the batches of steps 1 and 2 replay each other, whatever padding looks like).

With worker processes, each process compares the batches it made itself (Keras starts a
new pool of workers each epoch, so a process sees one epoch).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from typing import Any, ClassVar

import numpy as np

from safegen._config import Settings
from safegen._detectors._base import Detector, definition
from safegen._detectors._sink import Channel, read_files, write_file
from safegen._finding import Finding, Kind
from safegen._handling import report

__all__ = [
    "ITEMS",
    "MIN_BYTES",
    "YIELDS",
    "ProcessRepeats",
    "RepeatedBatchReport",
    "RepeatedBatches",
    "WorkerRepeats",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

MIN_BYTES = 256
# The yields of a generator watched in each worker process (its copies replay the same
# ones from the start).
YIELDS = 8
# The first items of a PyTorch IterableDataset compared between DataLoader workers.
ITEMS = 4
# Forget the epoch's batches beyond this many (an endless dataset without epochs).
MAX_BATCHES = 1 << 16


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
        earlier_process: for a generator, the other worker process that yielded the same
            batch first (``index`` and ``earlier`` then number yields), else ``""``.
        workers: for a PyTorch ``IterableDataset``, the ``DataLoader``'s number of worker
            processes (``index`` and ``earlier`` then number items, and the items before
            them repeat too), else 0.

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
    earlier_process: str = ""
    workers: int = 0

    finding_kind: ClassVar[Kind] = Kind.REPEATED_BATCH  # what safegen._handling.report counts it as

    @property
    def message(self) -> str:
        """The full message (first line: what, where, which batches)."""
        where = f"{self.source} at {self.location}" if self.location else self.source
        if self.workers:
            return (
                f"{where}: item #{self.index} in DataLoader worker process {self.process} is "
                f"the same, array for array ({self.nbytes} bytes), as item #{self.earlier} "
                f"in worker process {self.earlier_process}, and so are the "
                f"{self.index - 1} items before it. The DataLoader iterates the "
                f"IterableDataset anew in each of its {self.workers} worker processes, and "
                "this one does not split its items between them: every item comes "
                f"{self.workers} times per epoch. Fix: in __iter__, keep only this worker's "
                "share: info = torch.utils.data.get_worker_info(), then items "
                "info.id::info.num_workers (or a shard per worker) when info is not None. "
                "(Items drawn at random repeat the same way when every worker draws from "
                "one copied random state: seed a generator per worker from info.seed.)"
            )
        if self.earlier_process:
            return (
                f"{where}: yield #{self.index} in worker process {self.process} is the "
                f"same, array for array ({self.nbytes} bytes), as yield #{self.earlier} in "
                f"worker process {self.earlier_process}. tf_keras runs a copy of the "
                "generator in each worker process (use_multiprocessing=True), and every "
                "copy replays the same items: the network sees some batches several times "
                "and others never. Fix: give fit a keras.utils.Sequence (a PyDataset in "
                "Keras 3), whose batches are made by index, or use_multiprocessing=False "
                "(worker threads share one generator)."
            )
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

    def after(self, dataset: Any, index: Any, handle: Any) -> bool:
        batch = handle.last_batch()
        if not batch:
            return True
        arrays, digests = batch
        # The key is one int made of the 64-bit digests side by side: exact, and not
        # tracked by the garbage collector as a tuple would be.
        if len(digests) == 2:
            key = (digests[0] << 64) | digests[1]
        else:
            key = 0
            for value in digests:
                key = (key << 64) | value
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
        nbytes = sum(array.nbytes for array in arrays)
        if nbytes < MIN_BYTES or all(_constant(array) for array in arrays):
            return True
        self.reported = True  # once per dataset and process: one bug, one report
        found = RepeatedBatchReport(
            source=self.channel.name,
            location=self.channel.location,
            index=index,
            earlier=earlier,
            nbytes=nbytes,
            process=multiprocessing.current_process().name if self.channel.in_worker else "",
        )
        handling = self.channel.handling(self.settings.on_violation, definition(dataset))
        report(Finding.of(found), handling)
        return True

    def epoch_passed(self) -> None:
        self.seen.clear()


def _key(arrays: list[Any], digests: list[int]) -> int | None:
    """The batch's key (its digests side by side), or ``None`` for a batch too small to
    tell a repeat from real data."""
    if sum(array.nbytes for array in arrays) < MIN_BYTES:
        return None
    key = 0
    for value in digests:
        key = (key << 64) | value
    return key


class ProcessRepeats(Detector):
    """Check mode, a generator in a worker process: report batches another worker process
    of the same generator yielded too (see the module's docstring)."""

    def __init__(self, settings: Settings, channel: Channel) -> None:
        self.settings = settings
        self.channel = channel
        self.keys: dict[str, list[int]] = {}  # key: [yield number, bytes]
        process = multiprocessing.current_process()
        self.record = {"pid": os.getpid(), "name": process.name, "keys": self.keys}
        self.calls = 0

    def after(self, dataset: Any, index: Any, handle: Any) -> bool:
        self.calls += 1
        batch = handle.last_batch()
        if not batch:
            return self.calls < YIELDS
        arrays, digests = batch
        key = _key(arrays, digests)
        if key is not None and str(key) not in self.keys:
            nbytes = sum(array.nbytes for array in arrays)
            self.keys[str(key)] = [index, nbytes]
            folder = self.channel.folder
            write_file(folder, f"batches-{os.getpid()}", self.record)
            for other in read_files(folder, "batches-"):
                if other["pid"] == os.getpid():
                    continue
                # Two different batches yielded by both processes: one batch yielded
                # everywhere is a generator that yields it again and again (full-batch
                # training), which copies in each process do too.
                common = [k for k in self.keys if k in other["keys"]]
                if len(common) >= 2:
                    self._report(common[-1], other, dataset)
                    return False
        return self.calls < YIELDS

    def _report(self, key: str, other: Any, generator: Any) -> None:
        written = read_files(self.channel.folder, "report-")
        if any(Kind.named(entry["kind"]) is Kind.REPEATED_BATCH for entry in written):
            return  # another worker process reported it: one bug, one report
        index, nbytes = self.keys[key]
        found = RepeatedBatchReport(
            source=self.channel.name,
            location=self.channel.location,
            index=index,
            earlier=other["keys"][key][0],
            nbytes=nbytes,
            process=f"{self.record['name']} (pid {os.getpid()})",
            earlier_process=f"{other['name']} (pid {other['pid']})",
        )
        handling = self.channel.handling(self.settings.on_violation, definition(generator))
        report(Finding.of(found), handling)


class WorkerRepeats(Detector):
    """Check mode, the iterator of a PyTorch ``IterableDataset`` in a ``DataLoader``
    worker process: report a worker whose first :data:`ITEMS` items are, in order, the
    first items of another worker of the same iteration.

    A ``DataLoader`` calls ``iter(dataset)`` in each worker process; a dataset that does
    not split its items with ``torch.utils.data.get_worker_info()`` yields the same
    sequence in every worker. Each worker writes the keys of its first items to the
    dataset's channel, under ``group`` (the loader iteration: its base seed and number
    of workers, so that two epochs, or two loaders, are never compared), then reads the
    other workers' of the group: whichever writes second sees the first's, without
    relying on timing. Items without arrays are left out, and a sequence of one item
    repeated is never reported (a dataset that yields one item forever does that in any
    split). Items split between workers, in any way, make different sequences: nothing
    to report. Not covered: a dataset that shuffles each worker's copy differently (the
    items repeat, in another order).
    """

    def __init__(self, settings: Settings, channel: Channel, group: str, worker: int) -> None:
        self.settings = settings
        self.channel = channel
        self.group = group
        self.worker = worker
        self.keys: list[str] = []  # the keys of the first items, in order
        self.nbytes = 0
        self.calls = 0

    def after(self, dataset: Any, index: Any, handle: Any) -> bool:
        self.calls += 1
        batch = handle.last_batch()
        if not batch or self.calls > 4 * ITEMS:  # copy or freeze mode; items of no array
            return False
        arrays, digests = batch
        if not arrays:
            return True
        key = 0
        for value in digests:
            key = (key << 64) | value
        self.keys.append(str(key))
        self.nbytes = sum(array.nbytes for array in arrays)
        if len(self.keys) < ITEMS:
            return True
        if len(set(self.keys)) == 1:
            return False  # one item again and again
        process = multiprocessing.current_process()
        record = {"pid": os.getpid(), "name": process.name, "worker": self.worker}
        record["keys"] = self.keys
        folder = self.channel.folder
        write_file(folder, f"items-{self.group}-{self.worker}", record)
        for other in read_files(folder, f"items-{self.group}-"):
            if other["worker"] != self.worker and other["keys"] == self.keys:
                self._report(other, dataset, handle)
                break
        return False

    def _report(self, other: Any, dataset: Any, handle: Any) -> None:
        written = read_files(self.channel.folder, "report-")
        if any(Kind.named(entry["kind"]) is Kind.REPEATED_BATCH for entry in written):
            return  # another worker process reported it: one bug, one report
        workers = int(self.group.rsplit("-", 1)[-1])
        found = RepeatedBatchReport(
            source=self.channel.name,
            location=self.channel.location,
            index=ITEMS,
            earlier=ITEMS,
            nbytes=self.nbytes,
            process=f"{self.worker} (pid {os.getpid()})",
            earlier_process=f"{other['worker']} (pid {other['pid']})",
            workers=workers,
        )
        handling = self.channel.handling(self.settings.on_violation, handle.source.code)
        report(Finding.of(found), handling)
