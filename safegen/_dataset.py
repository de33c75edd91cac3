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
import weakref
from collections.abc import Iterator
from typing import Any

from safegen._config import Settings, resolve
from safegen._detectors import (
    CHANNEL_ATTRIBUTE,
    Detector,
    dataset_detectors,
    epoch_passed,
    open_dataset,
)
from safegen._modes import Copy, Source, _State, make_state
from safegen._modes.source import getitem_code
from safegen._stats import Stats, Totals

__all__ = [
    "forget_dataset",
    "guard_dataset",
    "guard_dataset_class",
    "is_dataset",
    "is_dataset_class",
    "lent",
    "own_mode",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_SETTINGS_ATTRIBUTE = "_safegen_settings"
# Set on safegen's own wrappers of a dataset's methods (see `_unguarded`).
_WRAPPER_ATTRIBUTE = "_safegen_dataset_method"


class _Guard:
    """One dataset instance's safegen state, in one process."""

    __slots__ = ("detectors", "early", "lock", "serialize", "state")

    def __init__(self, state: _State, detectors: tuple[Detector, ...] = ()) -> None:
        self.state = state
        self.lock = threading.RLock()
        self.serialize = isinstance(state, Copy)
        # The detectors (safegen._detectors) called after each batch, and those of them
        # also called before it.
        self.detectors = detectors
        self.early = tuple(d for d in detectors if type(d).before is not Detector.before)

    def after(self, dataset: Any, index: Any) -> None:
        """Run the detectors on the batch just processed (under the lock); retire those
        that are done."""
        # No objects made on the way (the garbage collector's full passes over a
        # framework's heap are what a per-batch allocation costs).
        for detector in self.detectors:
            if not detector.after(dataset, index, self.state):
                self.detectors = tuple(d for d in self.detectors if d is not detector)
                self.early = tuple(d for d in self.early if d is not detector)


_GUARDS: weakref.WeakKeyDictionary[Any, _Guard] = weakref.WeakKeyDictionary()
_GUARDS_LOCK = threading.Lock()


def _forget_all_after_fork() -> None:
    """A forked worker starts with fresh state (and fresh, unheld locks)."""
    global _GUARDS_LOCK
    _GUARDS_LOCK = threading.Lock()
    _GUARDS.clear()


os.register_at_fork(after_in_child=_forget_all_after_fork)


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


def _guard_of(dataset: Any) -> _Guard | None:
    """The state guarding ``dataset`` in this process, made on first use."""
    guard = _GUARDS.get(dataset)
    if guard is not None:
        return guard
    settings: Settings | None = dataset.__dict__.get(_SETTINGS_ATTRIBUTE)
    if settings is None or settings.mode == "off":
        return None
    with _GUARDS_LOCK:
        guard = _GUARDS.get(dataset)
        if guard is None:
            cls = type(dataset)
            state = make_state(settings, _source(cls))
            guard = _Guard(state, dataset_detectors(dataset, settings, state))
            _GUARDS[dataset] = guard
            totals = getattr(cls, "_safegen_totals", None)
            if totals is not None:
                totals.track(guard.state, guard.state.stats)
    return guard


def _guarded_getitem(original: Any) -> Any:
    def __getitem__(self: Any, index: Any) -> Any:
        guard = _guard_of(self)
        if guard is None:
            return original(self, index)
        state = guard.state
        if guard.early:
            with guard.lock:
                for detector in guard.early:
                    detector.before(self, index)
        if guard.serialize:
            with guard.lock:
                try:
                    batch = original(self, index)
                except BaseException as exc:
                    state.annotate(exc)
                    raise
                batch = state.process(batch)
                if guard.detectors:
                    guard.after(self, index)
                return batch
        try:
            batch = original(self, index)
        except BaseException as exc:
            with guard.lock:
                state.annotate(exc)
            raise
        with guard.lock:
            batch = state.process(batch)
            if guard.detectors:
                guard.after(self, index)
            return batch

    __getitem__.__doc__ = original.__doc__
    __getitem__.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(__getitem__, _WRAPPER_ATTRIBUTE, True)
    return __getitem__


def _unguarded(method: Any) -> Any:
    """``method`` without safegen's wrappers: a class guarded again (or a subclass of a
    guarded class, guarded itself) wraps the dataset's own methods once, not the inner
    guard's wrappers, which would process each batch a second time."""
    while getattr(method, _WRAPPER_ATTRIBUTE, False):
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
        guard = _guard_of(self)
        if guard is None:
            return original(self, *args, **kwargs)
        state = guard.state
        with guard.lock:
            token = state.before_epoch_method()
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                state.annotate(exc, writer=source)
                raise
            finally:
                state.undo_epoch_method(token)
            state.after_epoch_method(source)
            epoch_passed(self, guard.detectors, original.__name__)
        return result

    method.__name__ = original.__name__
    method.__qualname__ = original.__qualname__
    method.__doc__ = original.__doc__
    method.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(method, _WRAPPER_ATTRIBUTE, True)
    return method


def _counted_epoch_method(original: Any) -> Any:
    """Keras's own (no-op) epoch method, which tells the detectors an epoch passed."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        guard = _guard_of(self)
        if guard is not None:
            with guard.lock:
                epoch_passed(self, guard.detectors, original.__name__)
        return original(self, *args, **kwargs)

    method.__name__ = original.__name__
    method.__qualname__ = original.__qualname__
    method.__doc__ = original.__doc__
    method.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(method, _WRAPPER_ATTRIBUTE, True)
    return method


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


def _open(dataset: Any, settings: Settings) -> None:
    """The detectors' channel for a newly guarded instance (safegen._detectors)."""
    source = _source(type(dataset))
    open_dataset(dataset, settings, source.name, source.location)


def _stats_of(obj: Any) -> Stats | None:
    guard = _GUARDS.get(obj) if is_dataset(obj) else None
    if guard is not None:
        return Stats() + guard.state.stats
    if is_dataset(obj) and _SETTINGS_ATTRIBUTE in obj.__dict__:
        # Guarded, but no batch was returned in this process yet (with worker processes,
        # every batch may be made in a worker): nothing counted here.
        return Stats()
    totals = obj.__dict__.get("_safegen_totals") if isinstance(obj, type) else None
    if totals is not None:
        total: Stats = totals.total()
        return total
    return None


def guard_dataset_class(cls: Any, overrides: dict[str, Any]) -> Any:
    """A subclass of ``cls`` whose instances guard every batch they return.

    It keeps ``cls``'s name, qualified name and module, so that instances pickle by
    reference to the decorated class (worker processes started with ``spawn`` need that).
    Options are resolved when each instance is created. When ``cls`` is itself guarded
    (or derives from a guarded class), this outer guard takes over: the inner guard's
    ``__init__``, run by ``cls.__init__``, keeps the settings the outer one gave.
    """
    original_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if _SETTINGS_ATTRIBUTE not in self.__dict__:  # else an outer guard's, kept
            settings = self.__dict__[_SETTINGS_ATTRIBUTE] = resolve(overrides)
            _open(self, settings)
        original_init(self, *args, **kwargs)

    namespace = {
        "__init__": __init__,
        "__getitem__": _guarded_getitem(_unguarded(cls.__getitem__)),
        **_epoch_methods(cls),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_safegen_totals": Totals(),
        "_safegen_overrides": dict(overrides),
    }
    return type(cls)(cls.__name__, (cls,), namespace)


_INSTANCE_CLASSES: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def _restore(cls: Any, state: dict[str, Any]) -> Any:
    """Unpickle an instance guarded by ``guard(dataset)``."""
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    obj.__class__ = _instance_class(cls)
    return obj


def _instance_class(cls: Any) -> Any:
    """The (cached) guarded subclass that ``guard(dataset)`` gives instances of ``cls``."""
    guarded = _INSTANCE_CLASSES.get(cls)
    if guarded is None:

        def __reduce_ex__(self: Any, protocol: Any) -> Any:
            return (_restore, (cls, dict(self.__dict__)))

        namespace = {
            "__getitem__": _guarded_getitem(_unguarded(cls.__getitem__)),
            **_epoch_methods(cls),
            "__reduce_ex__": __reduce_ex__,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        }
        guarded = type(cls)(cls.__name__, (cls,), namespace)
        _INSTANCE_CLASSES[cls] = guarded
    return guarded


def guard_dataset(dataset: Any, overrides: dict[str, Any]) -> Any:
    """Guard one dataset instance in place (its class becomes a guarded subclass).

    Returns the same object, so ``model.fit(safegen.guard(ds))`` and
    ``safegen.guard(ds); model.fit(ds)`` are the same. Guarding it again replaces the
    options and starts a fresh state.
    """
    cls = type(dataset)
    if "_safegen_totals" not in cls.__dict__ and cls not in _INSTANCE_CLASSES.values():
        dataset.__class__ = _instance_class(cls)
    settings = dataset.__dict__[_SETTINGS_ATTRIBUTE] = resolve(overrides)
    _open(dataset, settings)
    with _GUARDS_LOCK:
        _GUARDS.pop(dataset, None)
    return dataset


def forget_dataset(dataset: Any) -> None:
    """Drop this process's safegen state for ``dataset`` (it is no longer guarded)."""
    with _GUARDS_LOCK:
        _GUARDS.pop(dataset, None)
    dataset.__dict__.pop(CHANNEL_ATTRIBUTE, None)


def own_mode(obj: Any) -> str | None:
    """The mode of a dataset's own guard: an instance's, or the ``mode=`` a guarded class
    pins (``None`` when it has no guard, or a class's takes the mode in force)."""
    if isinstance(obj, type):
        for base in obj.__mro__:
            overrides = base.__dict__.get("_safegen_overrides")
            if overrides is not None:
                mode: str | None = overrides.get("mode")
                return mode
        return None
    settings: Settings | None = obj.__dict__.get(_SETTINGS_ATTRIBUTE)
    return None if settings is None else settings.mode


@contextlib.contextmanager
def lent(dataset: Any) -> Iterator[None]:
    """Guard ``dataset`` differently for the block only (``safegen check`` reading it).

    Afterwards it has its class, its attributes and this process's safegen state back:
    its own guard, if it had one, goes on watching the batches it watched, with its own
    settings, and the block's guard is forgotten.
    """
    saved_class, saved = dataset.__class__, dict(dataset.__dict__)
    with _GUARDS_LOCK:
        saved_guard = _GUARDS.get(dataset)
    try:
        yield
    finally:
        dataset.__class__ = saved_class
        dataset.__dict__.clear()
        dataset.__dict__.update(saved)
        with _GUARDS_LOCK:
            if saved_guard is None:
                _GUARDS.pop(dataset, None)
            else:
                _GUARDS[dataset] = saved_guard


def dataset_stats(obj: Any) -> Stats | None:
    """Stats of a guarded dataset instance or class, or ``None`` if it is neither."""
    return _stats_of(obj)
