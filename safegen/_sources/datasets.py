"""``safegen.guard`` on Keras ``PyDataset`` (and legacy ``Sequence``) classes and instances.

Every batch ``__getitem__`` returns is checked, copied or frozen as a generator's yields
are, the batches being numbered in the order they are returned (whatever order the
workers finish them in). Keras is never imported: a dataset class is recognised by a
base class named ``PyDataset`` or ``Sequence`` from a ``keras`` or ``tensorflow`` module.

Threads: check and freeze modes let worker threads call ``__getitem__`` concurrently and
only serialize safegen's own bookkeeping, so a dataset that shares one buffer between
calls races as it would without safegen, and check mode reports it. Copy mode holds a
per-instance lock around ``__getitem__`` *and* the copy: a batch cannot be overwritten by
another thread before it is copied, at the price of running one ``__getitem__`` at a time
per instance.

Epochs: ``on_epoch_end`` and ``on_epoch_begin``, where the dataset defines them, are
guarded too (Keras calls them on the main thread, after stopping its workers, and calls
``on_epoch_end`` right after peeking 2 batches to infer shapes): a dataset that shuffles
or refills in place the array its batches are views of rewrites batches that consumers
still hold. Check mode pins that on the method, freeze mode makes the write fail.

Guarded twice (a guarded class guarded again, or a subclass of a guarded class guarded
itself, as ``safegen check`` does with a class that guards itself): the outer guard takes
over. It unwraps the inner guard's methods, and the inner guard's ``__init__`` leaves the
outer one's settings in place, so each batch is processed once, by the outer guard.

Processes (``use_multiprocessing=True``): every worker process has its own copy of the
dataset and of safegen's state (reset after ``fork``), so the check runs in each worker;
an ``AliasingError`` pickles, and Keras re-raises it in the main process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from safegen._config import Options, Settings
from safegen._detectors import dataset_detectors, epoch_passed, open_dataset
from safegen._handle import _REGISTRY, ATTRIBUTE, Guarded, Handle, fork_generation
from safegen._modes import Copy, Source, make_state
from safegen._modes.source import getitem_code
from safegen._sources._base import SourceKind, guarded_subclass
from safegen._stats import Stats

__all__ = [
    "DatasetHandle",
    "Datasets",
    "Flavor",
    "is_dataset",
    "is_dataset_class",
    "lent",
    "own_mode",
    "unguard",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_lock = threading.Lock()  # makes a handle's per-process part (reset after fork)


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def is_dataset_class(cls: Any) -> bool:
    """Whether ``cls`` is a Keras ``PyDataset``/``Sequence`` subclass (without importing Keras)."""
    if not isinstance(cls, type):
        return False
    for base in cls.__mro__:
        module = getattr(base, "__module__", "") or ""
        if base.__name__ in ("PyDataset", "Sequence") and module.startswith(
            ("keras", "tensorflow", "tf_keras")
        ):
            return True
    return False


def is_dataset(obj: Any) -> bool:
    """Whether ``obj`` is an instance of a Keras ``PyDataset``/``Sequence`` subclass."""
    return not isinstance(obj, type) and is_dataset_class(type(obj))


def _source(cls: Any) -> Source:
    return Source(f"{cls.__qualname__}.__getitem__()", getitem_code(cls), kind="batch")


class DatasetHandle(Handle):
    """A guarded dataset instance's handle, kept in its ``__dict__``.

    Its settings and channel travel with the dataset to worker processes (by fork and by
    pickling alike); the rest (the mode's state, the lock, the detectors) is made on first
    use in each process (:meth:`live`), so that each worker checks what it makes.
    ``serialize``: copy mode runs ``__getitem__`` under the lock too. ``batch``: the
    batch the detectors are being run on (``None`` between batches).
    """

    __slots__ = ("batch", "serialize")

    def __init__(self, settings: Settings, cls: Any) -> None:
        self.settings = settings
        self.source = self.name_source(cls)
        self.producer = None
        self.channel = open_dataset(self.source.name, self.source.location, settings.mode)
        self.detectors = self.early = ()
        self.lock: Any = None
        self.mode: Any = None
        self.serialize = False
        self.watcher = None
        self.batch = None
        self.generation = -1  # not live in any process yet

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.settings, self.channel)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.settings, self.channel = state
        self.source = None  # type: ignore[assignment]  # made by live()
        self.producer = None
        self.detectors = self.early = ()
        self.lock = self.mode = None
        self.serialize = False
        self.watcher = None
        self.batch = None
        self.generation = -1

    def live(self, dataset: Any) -> DatasetHandle:
        """Make this process's part on first use here (after a fork too)."""
        with _lock:
            if self.generation != fork_generation():
                cls = type(dataset)
                self.source = self.name_source(cls)
                self.mode = make_state(self.settings, self.source)
                self.lock = threading.RLock()
                self.serialize = isinstance(self.mode, Copy)
                detectors = self.make_detectors(dataset)
                self.detectors = detectors
                self.early = tuple(d for d in detectors if _runs_before(d))
                record = _class_record(cls)
                if record is not None:
                    record.totals.track(self.mode, self.mode.stats)
                self.generation = fork_generation()  # last: the part is complete
        return self

    @staticmethod
    def name_source(cls: Any) -> Source:
        """The name and location of what ``cls`` guards, for messages."""
        return _source(cls)

    def make_detectors(self, dataset: Any) -> tuple[Any, ...]:
        """The detectors of ``dataset`` in this process (made on its first use here)."""
        return dataset_detectors(self, dataset)

    @property
    def stats(self) -> Stats:
        if self.generation != fork_generation() or self.mode is None:
            # Guarded, but no batch was returned in this process yet (with worker
            # processes, every batch may be made in a worker): nothing counted here.
            return Stats()
        stats: Stats = self.mode.stats
        return stats

    def after(self, dataset: Any, index: Any, batch: Any = None) -> None:
        """Run the detectors on the batch just processed (under the lock); retire those
        that are done."""
        # No objects made on the way (the garbage collector's full passes over a
        # framework's heap are what a per-batch allocation costs).
        self.batch = batch
        try:
            for detector in self.detectors:
                if not detector.after(dataset, index, self):
                    self.detectors = tuple(d for d in self.detectors if d is not detector)
                    self.early = tuple(d for d in self.early if d is not detector)
        finally:
            self.batch = None

    def attach(self, dataset: Any, detector: Any) -> None:
        """Run ``detector`` too on this process's next batches (a call check's)."""
        if self.generation != fork_generation():
            self.live(dataset)
        with self.lock:
            self.detectors = (*self.detectors, detector)
            if _runs_before(detector):
                self.early = (*self.early, detector)

    def detach(self, detector: Any) -> None:
        """Stop running ``detector``."""
        if self.lock is None:
            return
        with self.lock:
            self.detectors = tuple(d for d in self.detectors if d is not detector)
            self.early = tuple(d for d in self.early if d is not detector)


def _runs_before(detector: Any) -> bool:
    from safegen._detectors import Detector

    return type(detector).before is not Detector.before


def _class_record(cls: Any) -> Guarded | None:
    """The record of the guarded class ``cls`` derives from, if any."""
    for base in cls.__mro__:
        record = base.__dict__.get(ATTRIBUTE)
        if isinstance(record, Guarded):
            return record
    return None


def _handle(dataset: Any) -> DatasetHandle | None:
    """The live handle of ``dataset`` in this process, or ``None`` when it is unguarded."""
    handle: DatasetHandle | None = dataset.__dict__.get(ATTRIBUTE)
    if handle is None or handle.settings.mode == "off":
        return None
    if handle.generation != fork_generation():
        handle.live(dataset)
    return handle


def _guarded_getitem(original: Any) -> Any:
    def __getitem__(self: Any, index: Any) -> Any:
        handle = _handle(self)
        if handle is None:
            return original(self, index)
        mode = handle.mode
        if handle.early:
            with handle.lock:
                for detector in handle.early:
                    detector.before(self, index)
        if handle.serialize:
            with handle.lock:
                try:
                    batch = original(self, index)
                except BaseException as exc:
                    mode.annotate(exc)
                    raise
                batch = mode.process(batch)
                if handle.detectors:
                    handle.after(self, index, batch)
                return batch
        try:
            batch = original(self, index)
        except BaseException as exc:
            with handle.lock:
                mode.annotate(exc)
            raise
        with handle.lock:
            batch = mode.process(batch)
            if handle.detectors:
                handle.after(self, index, batch)
            return batch

    return _wrapper(__getitem__, original)


def _wrapper(method: Any, original: Any) -> Any:
    """Mark ``method`` as safegen's wrapper of ``original`` (see :func:`_unguarded`)."""
    method.__name__ = original.__name__
    method.__qualname__ = original.__qualname__
    method.__doc__ = original.__doc__
    method.__wrapped__ = original
    setattr(method, ATTRIBUTE, True)
    return method


def _unguarded(method: Any) -> Any:
    """``method`` without safegen's wrappers: a class guarded again (or a subclass of a
    guarded class, guarded itself) wraps the dataset's own methods once, not the inner
    guard's wrappers, which would process each batch a second time."""
    while getattr(method, ATTRIBUTE, None) is True:
        method = method.__wrapped__
    return method


# The methods Keras calls between epochs, guarded where the dataset defines them.
EPOCH_METHODS = ("on_epoch_begin", "on_epoch_end")


def _defined_by_user(method: Any) -> bool:
    """Whether ``method`` is the dataset's own (not Keras's no-op default)."""
    module = getattr(method, "__module__", "") or ""
    return callable(method) and not module.startswith(("keras", "tensorflow", "tf_keras"))


def _guarded_epoch_method(original: Any) -> Any:
    """``on_epoch_end`` (or ``on_epoch_begin``) run between two checks of the watched batches.

    Check mode re-verifies every batch it still watches right before and right after the
    method; a change found after it is pinned on the method and raised. Freeze mode makes
    the arrays behind the batches it froze read-only while the method runs, so that a
    write into them fails at its own line; they are writable again afterwards. Copy mode
    runs the method under the instance's lock, so no ``__getitem__`` runs meanwhile.
    """
    code = getattr(original, "__code__", None)
    source = Source(f"{original.__qualname__}()", code, kind="batch")

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        handle = _handle(self)
        if handle is None:
            return original(self, *args, **kwargs)
        mode = handle.mode
        with handle.lock:
            token = mode.before_epoch_method()
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                mode.annotate(exc, writer=source)
                raise
            finally:
                mode.undo_epoch_method(token)
            mode.after_epoch_method(source)
            epoch_passed(handle, original.__name__)
        return result

    return _wrapper(method, original)


def _counted_epoch_method(original: Any) -> Any:
    """Keras's own (no-op) epoch method, which tells the detectors an epoch passed."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        handle = _handle(self)
        if handle is not None:
            with handle.lock:
                epoch_passed(handle, original.__name__)
        return original(self, *args, **kwargs)

    return _wrapper(method, original)


def _epoch_methods(cls: Any) -> dict[str, Any]:
    """Guarded versions of the epoch methods ``cls`` defines itself (and Keras's own,
    counted)."""
    out = {}
    for name in EPOCH_METHODS:
        original = _unguarded(getattr(cls, name, None))
        if _defined_by_user(original):
            out[name] = _guarded_epoch_method(original)
        elif callable(original):
            out[name] = _counted_epoch_method(original)
    return out


class Flavor:
    """What differs between the kinds of dataset classes guarded here: the handle their
    instances get, and the methods of theirs that the guarded subclass wraps (Keras:
    ``__getitem__`` and the epoch methods; PyTorch: ``safegen._sources.torch_data``)."""

    handle: type[DatasetHandle] = DatasetHandle

    @staticmethod
    def methods(cls: Any) -> dict[str, Any]:
        """The guarded methods of the subclass of ``cls``, by name."""
        return {
            "__getitem__": _guarded_getitem(_unguarded(cls.__getitem__)),
            **_epoch_methods(cls),
        }


# The flavors of dataset classes beside Keras's: functions of a class that return its
# flavor, or None when it is not theirs. safegen._sources.torch_data adds PyTorch's when
# it is imported (safegen._sources imports it).
FLAVORS: list[Callable[[Any], type[Flavor] | None]] = []


def _flavor(cls: Any) -> type[Flavor]:
    """The flavor of the dataset class ``cls``: one of :data:`FLAVORS`', or Keras's."""
    for flavor_of in FLAVORS:
        found = flavor_of(cls)
        if found is not None:
            return found
    return Flavor


def _guarded_class(cls: Any, record: Guarded | None) -> Any:
    """The one way guarded dataset classes are built: a subclass of ``cls`` whose
    ``__getitem__`` and epoch methods go through the instance's handle.

    With ``record`` (``guard(cls)``), instances made from it get a handle with its
    options, resolved when each instance is created; when ``cls`` is itself guarded (or
    derives from a guarded class), this outer guard takes over: the inner guard's
    ``__init__``, run by ``cls.__init__``, keeps the handle the outer one made. Without
    (``guard(instance)``), the instance already has its handle, and pickles back into
    this subclass (its name stays bound to ``cls``).
    """
    flavor = _flavor(cls)
    namespace = flavor.methods(cls)
    handle_type = flavor.handle
    if record is not None:
        original_init = cls.__init__
        options = record.options

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if ATTRIBUTE not in self.__dict__:  # else an outer guard's, kept
                self.__dict__[ATTRIBUTE] = handle_type(options.resolve(), type(self))
            original_init(self, *args, **kwargs)

        namespace["__init__"] = __init__
        namespace[ATTRIBUTE] = record
    else:

        def __reduce_ex__(self: Any, protocol: Any) -> Any:
            return (_restore, (cls, dict(self.__dict__)))

        namespace["__reduce_ex__"] = __reduce_ex__
    return guarded_subclass(cls, namespace, "guard its instances instead")


def _restore(cls: Any, state: dict[str, Any]) -> Any:
    """Unpickle an instance guarded by ``guard(dataset)``."""
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    obj.__class__ = _instance_class(cls)
    return obj


def _instance_class(cls: Any) -> Any:
    """The (cached) guarded subclass that ``guard(dataset)`` gives instances of ``cls``."""
    guarded = _REGISTRY.get(cls)
    if guarded is None:
        guarded = _guarded_class(cls, None)
        _REGISTRY[cls] = guarded
    return guarded


def _is_instance_class(cls: Any) -> bool:
    return any(cls is _REGISTRY.get(base) for base in cls.__mro__[1:2])


def guard_instance(dataset: Any, options: Options) -> Any:
    """Guard one dataset instance in place (its class becomes a guarded subclass).

    Returns the same object, so ``model.fit(safegen.guard(ds))`` and
    ``safegen.guard(ds); model.fit(ds)`` are the same. Guarding it again replaces the
    options and starts a fresh state.
    """
    cls = type(dataset)
    if not isinstance(cls.__dict__.get(ATTRIBUTE), Guarded) and not _is_instance_class(cls):
        dataset.__class__ = _instance_class(cls)
    dataset.__dict__[ATTRIBUTE] = _flavor(cls).handle(options.resolve(), type(dataset))
    return dataset


def unguard(dataset: Any, saved_class: Any) -> None:
    """Give ``dataset`` back its class, without safegen's handle."""
    dataset.__class__ = saved_class
    dataset.__dict__.pop(ATTRIBUTE, None)


def own_mode(obj: Any) -> str | None:
    """The mode of a dataset's own guard: an instance's, or the ``mode=`` a guarded class
    pins (``None`` when it has no guard, or a class's takes the mode in force)."""
    if isinstance(obj, type):
        record = _class_record(obj)
        return None if record is None else record.options.mode
    handle = obj.__dict__.get(ATTRIBUTE)
    return None if handle is None else handle.settings.mode


@contextlib.contextmanager
def lent(dataset: Any) -> Iterator[None]:
    """Guard ``dataset`` differently for the block only (``safegen check`` reading it).

    Afterwards it has its class and its attributes back, its handle among them: its own
    guard, if it had one, goes on watching the batches it watched, with its own
    settings, and the block's guard is forgotten.
    """
    saved_class, saved = dataset.__class__, dict(dataset.__dict__)
    try:
        yield
    finally:
        dataset.__class__ = saved_class
        dataset.__dict__.clear()
        dataset.__dict__.update(saved)


class Datasets(SourceKind):
    """Keras ``PyDataset`` (and ``Sequence``) classes (a guarded subclass) and instances
    (guarded in place)."""

    name = "dataset"

    @staticmethod
    def accepts(obj: Any) -> bool:
        return is_dataset_class(obj) or is_dataset(obj)

    @staticmethod
    def guard(obj: Any, options: Options, role: str) -> Any:
        if isinstance(obj, type):
            return _guarded_class(obj, Guarded(options))
        return guard_instance(obj, options)
