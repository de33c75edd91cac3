"""Random streams in ``DataLoader`` worker processes.

PyTorch seeds Python's ``random``, torch and NumPy's global state in each worker from
``base_seed + worker_id`` (``base_seed`` drawn anew for each pool of workers), but not
the random states a dataset keeps: an ``np.random.Generator`` or ``RandomState``, a
``random.Random`` or a ``torch.Generator`` made in ``__init__`` (or at module level) is
copied into every worker in the state it had in the parent. Every worker then draws
the same "random" numbers, and without ``persistent_workers`` every epoch's new workers
start from that same copy again.

While safegen is enabled (or for a loader given to :func:`watch`), the iterator that
starts a loader's workers (``_MultiProcessingDataLoaderIter.__init__``) hands each
worker, as its ``worker_init_fn``, a :class:`WorkerStart` that calls the user's own
``worker_init_fn`` first (never replacing it: the loader's attribute is put back once
the workers are started), then watches the worker's first fetches with the
random-stream detector (``safegen._detectors``): the random states the dataset can
reach, fingerprinted before and after each fetch and compared across the loader's
workers, of every epoch, through the loader's channel. What PyTorch reseeds
per worker differs from worker to worker, and is never reported; NumPy's global
state reseeded to one value in every worker (``np.random.seed(0)`` in a
``worker_init_fn``) is.

Copy mode reseeds instead, in each worker after the user's ``worker_init_fn``: every
random state the dataset keeps gets a stream of its own, from a ``SeedSequence`` whose
entropy is the state it inherited and whose spawn key is PyTorch's seed for this
worker (``get_worker_info().seed``: distinct for each worker of each pool, and
reproducible under ``torch.manual_seed`` or the loader's ``generator``).

A ``RandomStreamError`` raised in a worker reaches the main process as PyTorch
re-raises it (the worker's traceback in its message); it is raised there with
safegen's message again, a note naming the worker.
"""

from __future__ import annotations

import functools
import random
import re
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from safegen import _session
from safegen._config import Settings
from safegen._detectors._sink import Channel
from safegen._detectors.findings import record as record_findings
from safegen._errors import SafegenError
from safegen._frames import hide_safegen_frames
from safegen._modes.source import Source, getitem_code
from safegen.integrations._patching import patch
from safegen.integrations.torch._watched import Watched

__all__ = ["WorkerStart", "install", "watch"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# Each watched loader's channel (one per loader and mode: its workers of every epoch
# compare their records in it).
_CHANNELS: weakref.WeakKeyDictionary[Any, tuple[str, Channel]] = weakref.WeakKeyDictionary()
_undo: list[Callable[[], None]] = []


class TorchChannel(Channel):
    """A map-style dataset's channel: its batches have an index (the sampler's)."""

    __slots__ = ()

    unit = "items"  # a batch is named by its first index
    cause = (
        "PyTorch seeds NumPy's global state, `random` and torch's default generator in "
        "each DataLoader worker (unless a worker_init_fn seeds them to one value), but "
        "not the random states a dataset keeps: every worker starts from the copy made "
        "in the main process, and without persistent_workers so does every epoch's new "
        "pool of workers"
    )
    fix = (
        "Fix: make the state in each worker from torch.utils.data.get_worker_info().seed "
        "(in a worker_init_fn: info = get_worker_info(); info.dataset.rng = "
        "np.random.default_rng(info.seed)), and seed from torch.initial_seed() (distinct "
        'for each worker and epoch), never a constant; safegen.guard(mode="copy") '
        "(safegen run --mode copy) reseeds the dataset's random states in each worker."
    )


class IterableChannel(TorchChannel):
    """An ``IterableDataset``'s channel: no index; each worker runs its own iterator."""

    __slots__ = ()

    indexed = False
    unit = "batches"  # numbered in each worker


def install() -> Callable[[], None]:
    """Wrap the iterator that starts a ``DataLoader``'s worker processes; returns the
    function that undoes it."""
    return _watched.install()


def watch(loader: Any, settings: Settings) -> None:
    """Watch ``loader``'s worker processes with ``settings``, enabled or not."""
    _watched.watch(loader, settings)


def _install() -> None:
    from torch.utils.data import dataloader

    iterator = dataloader._MultiProcessingDataLoaderIter
    _undo.append(patch(iterator, "__init__", _start_workers))
    _undo.append(patch(iterator, "_process_data", _process_data))


def _uninstall() -> None:
    while _undo:
        _undo.pop()()


_watched = Watched(_install, _uninstall)
_lock = _watched.lock


def _channel(loader: Any, settings: Settings) -> Channel:
    """``loader``'s channel (made on its first pool of workers), its epoch advanced: one
    per pool of workers."""
    from torch.utils.data import IterableDataset

    with _lock:
        known = _CHANNELS.get(loader)
        if known is None or known[0] != settings.mode:
            dataset = loader.dataset
            cls = type(dataset)
            iterable = isinstance(dataset, IterableDataset)
            if iterable:
                method = getattr(cls, "__iter__", None)
                source = Source(f"{cls.__qualname__}.__iter__()", getattr(method, "__code__", None))
            else:
                source = Source(f"{cls.__qualname__}.__getitem__()", getitem_code(cls))
            channel = (IterableChannel if iterable else TorchChannel)(source.name, source.location)
            record_findings(channel, settings.mode)
            _CHANNELS[loader] = known = (settings.mode, channel)
        else:
            known[1].epoch += 1
        return known[1]


def _start_workers(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``_MultiProcessingDataLoaderIter.__init__(loader)``: its workers get a
    :class:`WorkerStart` around the loader's ``worker_init_fn`` while they are started."""
    loader = args[0] if args else kwargs.get("loader")
    settings = None if loader is None else _watched.settings(loader)
    if settings is None:
        return wrapped(*args, **kwargs)
    channel = _channel(loader, settings)
    given = loader.worker_init_fn
    user = given.user if isinstance(given, WorkerStart) else given
    start = WorkerStart(user, settings, channel)
    loader.worker_init_fn = start
    try:
        return wrapped(*args, **kwargs)
    finally:
        if loader.worker_init_fn is start:
            loader.worker_init_fn = user


class WorkerStart:
    """A worker's ``worker_init_fn``: the user's own (if any), then safegen's watch of
    the worker's first fetches (copy mode: the reseeding of the dataset's random states).

    Pickles with the user's function (as PyTorch pickles that one for spawned workers).
    """

    __slots__ = ("channel", "settings", "user")

    def __init__(self, user: Callable[[int], Any] | None, settings: Settings, channel: Channel):
        self.user = user
        self.settings = settings
        self.channel = channel

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.user, self.settings, self.channel)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.user, self.settings, self.channel = state

    def __call__(self, worker_id: int) -> None:
        if self.user is not None:
            self.user(worker_id)
        _in_worker(self.settings, self.channel)

    def __repr__(self) -> str:
        return f"<safegen's watch of worker processes around {self.user!r}>"


# A safegen error raised in a worker process, as PyTorch re-raises it in the main one:
# "Caught RandomStreamError in DataLoader worker process 1.\nOriginal Traceback ...
# safegen.RandomStreamError: <message>".
_WORKER = re.compile(r"\ACaught (?P<name>\w+) (?P<where>in DataLoader worker process \d+)\.")


def _process_data(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return wrapped(*args, **kwargs)
    except SafegenError as error:
        rebuilt = _rebuilt(error)
        if rebuilt is None:
            raise
    # Raised outside the handler: no chain to PyTorch's copy, whose traceback's frames
    # (and the garbage cycles through them) a worker forked next would inherit.
    try:
        raise rebuilt
    finally:
        del rebuilt


def _rebuilt(error: SafegenError) -> SafegenError | None:
    """``error`` as PyTorch rebuilt it from a worker's, with safegen's message again."""
    text = str(error)
    head = _WORKER.match(text)
    marker = f"{type(error).__name__}: "
    if head is None or marker not in text:
        return None
    rebuilt = type(error)(text.rsplit(marker, 1)[1].strip())
    rebuilt.add_note(
        f"(raised {head['where']}, and re-raised by PyTorch in the main process; "
        "safegen shows its own message instead of PyTorch's copy of the worker's traceback)"
    )
    _session.record_remote(rebuilt)
    hide_safegen_frames()
    return rebuilt


# -- In a worker process --------------------------------------------------------------


def _in_worker(settings: Settings, channel: Channel) -> None:
    """Right after the user's ``worker_init_fn``, in a worker process: watch (or, in copy
    mode, reseed) the random states the worker's dataset can reach."""
    from torch.utils.data import _DatasetKind, get_worker_info

    info = get_worker_info()
    if info is None:  # called by hand, outside a worker
        return
    dataset = info.dataset
    detectors = worker_detectors(dataset, settings, channel, info.seed)
    if not detectors:
        return
    original = _DatasetKind.__dict__["create_fetcher"].__func__

    def create_fetcher(*args: Any, **kwargs: Any) -> Any:
        fetcher = original(*args, **kwargs)
        _watch_fetches(fetcher, dataset, detectors)
        return fetcher

    # This worker's own class (a process of its own): its fetchers are watched.
    _DatasetKind.create_fetcher = staticmethod(create_fetcher)  # type: ignore[method-assign]


def _watch_fetches(fetcher: Any, dataset: Any, detectors: list[Any]) -> None:
    """Run ``detectors`` around the fetcher's first fetches (they retire themselves);
    a batch is named by its first index (a map-style dataset's), or by its number in
    this worker (an iterable dataset's)."""
    fetch = fetcher.fetch
    fetched = [0]

    def watched(index: Any) -> Any:
        if not detectors:
            return fetch(index)
        first = index[0] if isinstance(index, list) and index else index
        key = first if isinstance(first, int) else fetched[0]
        fetched[0] += 1
        for detector in detectors:
            detector.before(dataset, key)
        data = fetch(index)
        detectors[:] = [d for d in detectors if d.after(dataset, key, None)]
        return data

    fetcher.fetch = watched


def worker_detectors(dataset: Any, settings: Settings, channel: Channel, seed: int) -> list[Any]:
    """The random-stream detectors of one ``DataLoader`` worker (copy mode: after
    reseeding the dataset's random states from ``seed``, PyTorch's seed for the worker)."""
    from safegen._detectors.random_workers import RandomStreams

    if settings.mode == "copy":
        reseeded = reseed_states(dataset, seed)
        if reseeded:
            channel.note("copy_mode", _reseeded_note(reseeded))
        found = RandomStreams(dataset, settings, channel, True, _candidates, reseeds=True)
    else:
        found = RandomStreams(dataset, settings, channel, candidates=_candidates)
    info = _worker_info()
    if info is not None:
        found.record["name"] = f"DataLoader worker {info.id}"
    return [found]


def _worker_info() -> Any:
    from torch.utils.data import get_worker_info

    return get_worker_info()


def _reseeded_note(labels: list[str]) -> str:
    return (
        f"reseeded {', '.join(labels)} in each DataLoader worker process before its first "
        "batch, from PyTorch's seed for the worker, so that the workers (and each epoch's "
        "new workers) draw different numbers (PyTorch reseeds only the global states)"
    )


# -- The random states a torch dataset can reach ----------------------------------------

DEPTH = 3  # attribute / item steps below the dataset
WIDTH = 64  # items of a list or dict looked at
_SKIPPED = (
    str, bytes, int, float, complex, bool, type, types.ModuleType, types.FunctionType,
    types.MethodType, types.BuiltinFunctionType, functools.partial, np.ndarray,
)  # fmt: skip


class TorchState:
    """A ``torch.Generator`` as the random-stream detector reads a state:
    ``getstate()`` (one per generator, so that "the same object" holds)."""

    __slots__ = ("generator",)

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def getstate(self) -> Any:
        return self.generator.get_state().numpy()


_STATES: dict[int, TorchState] = {}


def _torch_state(generator: Any) -> TorchState:
    found = _STATES.get(id(generator))
    if found is None or found.generator is not generator:
        found = _STATES[id(generator)] = TorchState(generator)
    return found


def _is_torch_generator(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Generator) and value is not torch.default_generator


Step = tuple[str, Any]  # ("attr", name), ("item", index or key)


def _follow(root: Any, steps: tuple[Step, ...]) -> Any:
    value = root
    for how, key in steps:
        try:
            value = getattr(value, "__dict__", {}).get(key) if how == "attr" else value[key]
        except Exception:  # noqa: BLE001 - the worker's copy changed shape: not found
            return None
        if value is None:
            return None
    return _torch_state(value) if _is_torch_generator(value) else value


def _label(steps: tuple[Step, ...]) -> str:
    text = "self"
    for how, key in steps:
        text += f".{key}" if how == "attr" else f"[{key!r}]"
    return text


def _children(value: Any) -> list[Step]:
    if isinstance(value, (list, tuple)):
        return [("item", i) for i in range(min(len(value), WIDTH))]
    if isinstance(value, dict):
        return [("item", k) for k in list(value)[:WIDTH] if isinstance(k, (str, int))]
    inner = getattr(value, "__dict__", None)
    if isinstance(inner, dict):
        return [("attr", k) for k in list(inner)[: WIDTH * 2] if isinstance(k, str)]
    return []


def _walk(dataset: Any) -> Iterator[tuple[str, Callable[[Any], Any], Any]]:
    """Random states up to :data:`DEPTH` attribute or item steps below ``dataset``
    (``self.transforms[0].rng``), NumPy's, ``random``'s and torch's generators alike."""
    import torch

    from safegen._detectors.random_states import is_state, state_kind

    seen = {id(dataset)}
    level: list[tuple[tuple[Step, ...], Any]] = [((), dataset)]
    for _ in range(DEPTH):
        below: list[tuple[tuple[Step, ...], Any]] = []
        for steps, value in level:
            for step in _children(value):
                child = _follow(value, (step,))
                if child is None or id(child) in seen:
                    continue
                seen.add(id(child))
                path = (*steps, step)
                if isinstance(child, TorchState):
                    label = f"`{_label(path)}` (torch.Generator)"
                    yield label, functools.partial(_follow, steps=path), child
                elif is_state(child):
                    label = f"`{_label(path)}` ({state_kind(child)})"
                    yield label, functools.partial(_follow, steps=path), child
                elif not isinstance(child, (*_SKIPPED, torch.Tensor)):
                    below.append((path, child))
        level = below


def _candidates(dataset: Any) -> Iterator[tuple[str, Callable[[Any], Any], Any]]:
    """The random states a torch dataset can reach: below it (:func:`_walk`), and the
    module globals of its class's code."""
    from safegen._detectors.random_states import dataset_candidates

    yield from _walk(dataset)
    for label, resolve, value in dataset_candidates(dataset):
        if label.startswith("`self."):
            continue  # found by the walk
        yield label, resolve, value


def reseed_states(dataset: Any, seed: int) -> list[str]:
    """Give each random state ``dataset`` can reach a stream of its own for this worker:
    reseeded in place from a ``SeedSequence`` of the state it inherited and ``seed``;
    returns the labels of those reseeded."""
    from safegen._detectors.random_states import state_digest

    done: list[str] = []
    seen: set[int] = set()
    for label, _, value in _candidates(dataset):
        rng = value.generator if isinstance(value, TorchState) else value
        if id(rng) in seen:
            continue
        seen.add(id(rng))
        try:
            sequence = np.random.SeedSequence(state_digest(value), spawn_key=(seed,))
            _reseed(rng, sequence)
        except Exception:  # noqa: BLE001 - a subclass that cannot be reseeded: left as is
            continue
        done.append(label.split(" (", 1)[0])
    return done


def _reseed(rng: Any, sequence: np.random.SeedSequence) -> None:
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = type(rng.bit_generator)(sequence).state
    elif isinstance(rng, np.random.RandomState):
        rng.seed(sequence.generate_state(4))
    elif isinstance(rng, random.Random):
        rng.seed(int(sequence.generate_state(1, np.uint64)[0]))
    else:  # a torch.Generator
        rng.manual_seed(int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1)))
