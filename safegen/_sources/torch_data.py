"""``safegen.guard`` on PyTorch's ``torch.utils.data``: map-style ``Dataset`` and
``IterableDataset`` classes and instances, and ``DataLoader`` instances (their datasets).

Map-style datasets are guarded as Keras datasets are (``safegen._sources.datasets``: a
guarded subclass, one handle per instance in its ``__dict__``, which travels to the
``DataLoader``'s worker processes by fork and by pickling alike), with their own flavor:
each ``__getitem__`` result is an *item* (one sample), checked, copied or frozen before
the loader gathers it with the rest of its batch. That is where a reused buffer does its
damage: ``default_collate`` stacks a batch's items only once all of them are gathered,
so an item that is the dataset's one buffer shows up as the last item in every row.

An ``IterableDataset``'s ``__iter__`` is guarded instead: every iterator it returns is a
guarded iterator (``safegen._sources.generators``), whose yields are the items. In a
``DataLoader`` worker process (of several), check mode also compares the worker's first
items with the other workers' (:class:`~safegen._detectors.repeated_batches.WorkerRepeats`):
a dataset that does not split itself with ``get_worker_info()`` yields every item in
every worker.

In worker processes, the findings go through the dataset's channel
(``safegen._detectors._sink``) to the parent's session, as the detectors' do.

``__getitems__`` (PyTorch's batched fetch, which the loader prefers when a dataset
defines it) is not wrapped: when it calls ``self[i]``, each item is guarded there.

torch is never imported here: the classes are told apart by name
(:func:`safegen._frameworks.torch_data_kind`), and ``get_worker_info`` is looked up in
``sys.modules`` (an object of torch's exists only once the program imported it).
"""

from __future__ import annotations

import inspect
import sys
import threading
from types import CodeType
from typing import Any

from safegen._config import Options, Settings
from safegen._detectors.repeated_batches import WorkerRepeats
from safegen._finding import Finding, Kind
from safegen._frameworks import torch_data_kind
from safegen._handle import ATTRIBUTE, Guarded, Handle, fork_generation, handle_of
from safegen._modes import Source
from safegen._modes.source import getitem_code
from safegen._sources._base import SourceKind
from safegen._sources.datasets import (
    FLAVORS,
    DatasetHandle,
    Flavor,
    _guarded_class,
    _guarded_getitem,
    _unguarded,
    _wrapper,
    guard_instance,
)
from safegen._sources.generators import guard_iterator
from safegen._stats import Stats, Totals

__all__ = [
    "IterableFlavor",
    "MapFlavor",
    "TorchData",
    "datasets_of",
    "torch_flavor",
    "worker_info",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


def worker_info() -> Any:
    """``torch.utils.data.get_worker_info()``: the ``DataLoader`` worker this process is
    (``id``, ``num_workers``, ``seed``), or ``None`` (the main process, or no torch)."""
    data = sys.modules.get("torch.utils.data")
    get = getattr(data, "get_worker_info", None)
    return get() if callable(get) else None


class Relay:
    """Where a worker process counts its mode's findings: in the parent's session, through
    the dataset's channel, except those raised as safegen's error (the parent counts
    that error when it re-raises it: ``safegen.integrations.torch.data``)."""

    __slots__ = ("channel", "on_violation")

    def __init__(self, channel: Any, on_violation: Any) -> None:
        self.channel = channel
        self.on_violation = on_violation

    def __call__(self, finding: Finding) -> None:
        raised = self.on_violation == "raise" and finding.pinned
        if not raised or finding.kind is Kind.STOPPED_WRITE:  # NumPy's error: not ours
            self.channel.record(finding)


class MapDatasetHandle(DatasetHandle):
    """A guarded map-style PyTorch dataset's handle: its results are items, and in a
    worker process its mode's findings go to the parent through the channel."""

    __slots__ = ()

    @staticmethod
    def name_source(cls: Any) -> Source:
        return Source(f"{cls.__qualname__}.__getitem__()", getitem_code(cls), kind="item")

    def make_detectors(self, dataset: Any) -> tuple[Any, ...]:
        channel = self.channel
        if channel is not None and channel.in_worker:
            self.mode.record = Relay(channel, self.settings.on_violation)
        return ()


def _iter_code(cls: Any) -> CodeType | None:
    """The code of the dataset class ``cls``'s own ``__iter__`` (under safegen's wrapper)."""
    method = getattr(cls, "__iter__", None)
    try:
        method = inspect.unwrap(method) if method is not None else None
    except ValueError:  # a cycle of __wrapped__
        pass
    code = getattr(method, "__code__", None)
    return code if isinstance(code, CodeType) else None


class IterableDatasetHandle(DatasetHandle):
    """A guarded ``IterableDataset``'s handle: its settings and channel (which travel to
    worker processes with the dataset), and the totals of every iterator it returned;
    each iterator has a handle of its own (``safegen._sources.generators``)."""

    __slots__ = ("totals",)

    def __init__(self, settings: Settings, cls: Any) -> None:
        super().__init__(settings, cls)
        self.totals = Totals()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        super().__setstate__(state)
        self.totals = Totals()

    @staticmethod
    def name_source(cls: Any) -> Source:
        return Source(f"{cls.__qualname__}.__iter__()", _iter_code(cls))

    def live(self, dataset: Any) -> IterableDatasetHandle:
        """This process's part: the name (the lock, the mode and the detectors are each
        iterator's)."""
        if self.generation != fork_generation():
            self.source = self.name_source(type(dataset))
            self.lock = threading.RLock()
            self.generation = fork_generation()
        return self

    @property
    def stats(self) -> Stats:
        return self.totals.total()

    def iterator(self, dataset: Any, iterator: Any) -> Any:
        """``iterator`` (what ``dataset.__iter__`` returned), guarded; in a worker
        process of a ``DataLoader`` with several, watched for items every worker yields
        (check mode)."""
        guarded = guard_iterator(iterator, self.settings, self.source, self.totals)
        inner = handle_of(guarded)
        channel = self.channel
        if not isinstance(inner, Handle) or channel is None or not channel.in_worker:
            return guarded
        inner.mode.record = Relay(channel, self.settings.on_violation)
        info = worker_info()
        workers = int(getattr(info, "num_workers", 0) or 0)
        if self.settings.mode == "check" and workers > 1:
            group = f"{int(info.seed) - int(info.id)}-{workers}"
            detector = WorkerRepeats(self.settings, channel, group, int(info.id))
            inner.intercept(_FirstItems(inner, detector))
        return guarded


class _FirstItems:
    """A guarded iterator's steps in a worker process, while ``detector`` watches them
    (see :meth:`safegen._handle.Handle.intercept`)."""

    __slots__ = ("detector", "handle")

    def __init__(self, handle: Any, detector: WorkerRepeats) -> None:
        self.handle = handle
        self.detector = detector

    def __call__(self, proxy: Any, sent: Any, thrown: Any) -> Any:
        handle = self.handle
        handle.release()  # the step itself runs unwatched
        out = type(proxy).__next__(proxy, sent, thrown)
        if self.detector.after(handle.producer, handle.yields, handle):
            handle.intercept(self)
        return out


def _guarded_iter(original: Any) -> Any:
    def __iter__(self: Any) -> Any:
        handle = self.__dict__.get(ATTRIBUTE)
        if not isinstance(handle, IterableDatasetHandle) or handle.settings.mode == "off":
            return original(self)
        return handle.live(self).iterator(self, original(self))

    return _wrapper(__iter__, original)


class MapFlavor(Flavor):
    """Map-style PyTorch datasets: ``__getitem__``, one item per call."""

    handle = MapDatasetHandle

    @staticmethod
    def methods(cls: Any) -> dict[str, Any]:
        return {"__getitem__": _guarded_getitem(_unguarded(cls.__getitem__))}


class IterableFlavor(Flavor):
    """PyTorch ``IterableDataset``: every iterator ``__iter__`` returns."""

    handle = IterableDatasetHandle

    @staticmethod
    def methods(cls: Any) -> dict[str, Any]:
        return {"__iter__": _guarded_iter(_unguarded(cls.__iter__))}


def torch_flavor(cls: Any) -> type[Flavor] | None:
    """The flavor of a PyTorch dataset class, or ``None`` for another class."""
    kind = torch_data_kind(cls)
    if kind is None:
        return None
    return IterableFlavor if kind == "iterable" else MapFlavor


FLAVORS.append(torch_flavor)


def _defined_in_torch(obj: Any) -> bool:
    return (type(obj).__module__ or "").split(".", 1)[0] == "torch"


def datasets_of(dataset: Any, *, own_only: bool) -> list[Any]:
    """The datasets to guard behind ``dataset`` (a ``DataLoader``'s): torch's own wrappers
    (``Subset``, ``ConcatDataset``, ``ChainDataset``, ``StackDataset``) are looked into
    for the datasets they wrap; torch's own other datasets (``TensorDataset``) are
    returned only without ``own_only`` (what ``enable()`` guards: the user's code)."""
    out: list[Any] = []
    stack = [dataset]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen or torch_data_kind(node) not in ("map", "iterable"):
            continue
        seen.add(id(node))
        if not _defined_in_torch(node):
            out.append(node)
            continue
        inner = getattr(node, "datasets", None)
        if isinstance(inner, dict):
            inner = list(inner.values())
        if inner is None and hasattr(node, "dataset"):
            inner = [node.dataset]
        if inner is None:
            if not own_only:
                out.append(node)
            continue
        stack.extend(reversed(list(inner)))
    return out


class TorchData(SourceKind):
    """PyTorch datasets (classes: a guarded subclass; instances: guarded in place) and
    ``DataLoader`` instances (their datasets, guarded in place)."""

    name = "torch dataset"

    @staticmethod
    def accepts(obj: Any) -> bool:
        return torch_data_kind(obj) is not None

    @staticmethod
    def guard(obj: Any, options: Options, role: str) -> Any:
        kind = torch_data_kind(obj)
        if kind == "loader":
            if isinstance(obj, type):
                raise TypeError(
                    f"safegen.guard() got the class {obj.__qualname__}; give it a DataLoader "
                    "instance (its dataset is guarded), or the dataset or its class"
                )
            for dataset in datasets_of(obj.dataset, own_only=False):
                guard_instance(dataset, options)
            return obj
        if isinstance(obj, type):
            return _guarded_class(obj, Guarded(options))
        return guard_instance(obj, options)
