"""``DistributedSampler`` iterated twice with shuffling on and the same epoch.

While safegen is enabled, ``DistributedSampler.__iter__`` is wrapped (and the
``__iter__`` of each subclass that defines its own, on its first instance): each
iteration's order is read in full (the sampler builds the whole list anyway) and handed
to the sampler's :class:`~safegen._detectors.repeated_orders.OrderWatch`, which
reports the same shuffled order at the same epoch (``set_epoch`` never called) as a
:class:`safegen.OrderError`. ``set_epoch`` is wrapped to count its calls. A sampler
given to :func:`watch` (``safegen.guard`` on a ``DataLoader``) is watched with its own
settings, enabled or not.

The order reaches the ``DataLoader`` unchanged (an iterator over the same indices); a
subclass whose ``__iter__`` calls ``super().__iter__()`` is recorded once, by the
outermost call.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from safegen import _session
from safegen._config import Settings
from safegen._detectors.repeated_orders import OrderWatch
from safegen._finding import Finding
from safegen._frames import user_line
from safegen._handling import Handling, report
from safegen.integrations._patching import patch
from safegen.integrations.torch._watched import Watched

__all__ = ["install", "watch"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_WATCHES: weakref.WeakKeyDictionary[Any, OrderWatch] = weakref.WeakKeyDictionary()
_HANDLINGS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_inside = threading.local()  # an __iter__ being recorded on this thread (no nesting)
# Undo functions: the enable()-time patches, and the subclasses patched on first use.
_patched: dict[Any, Callable[[], None]] = {}


def install() -> Callable[[], None]:
    """Wrap ``DistributedSampler``'s ``__init__``, ``__iter__`` and ``set_epoch``;
    returns the function that undoes it (and the subclasses patched since)."""
    return _watched.install()


def watch(sampler: Any, settings: Settings) -> None:
    """Watch ``sampler`` (a ``DistributedSampler``) with ``settings``, enabled or not."""
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(sampler, DistributedSampler) and _watched.watch(sampler, settings):
        with _lock:
            _patch_subclass(type(sampler))


def _install() -> None:
    from torch.utils.data.distributed import DistributedSampler

    _patched[(DistributedSampler, "__init__")] = patch(DistributedSampler, "__init__", _init)
    _patched[(DistributedSampler, "__iter__")] = patch(DistributedSampler, "__iter__", _iter)
    _patched[(DistributedSampler, "set_epoch")] = patch(DistributedSampler, "set_epoch", _set_epoch)


def _uninstall() -> None:
    for key in reversed(list(_patched)):
        _patched.pop(key)()


_watched = Watched(_install, _uninstall)
_lock = _watched.lock


def _patch_subclass(cls: type) -> None:
    """Wrap the ``__iter__`` of ``cls`` and its bases below ``DistributedSampler`` that
    define their own (once each)."""
    from torch.utils.data.distributed import DistributedSampler

    for base in cls.__mro__:
        if base is DistributedSampler or not issubclass(base, DistributedSampler):
            break
        if "__iter__" in base.__dict__ and (base, "__iter__") not in _patched:
            _patched[(base, "__iter__")] = patch(base, "__iter__", _iter)


def _watch_of(sampler: Any) -> OrderWatch:
    with _lock:
        found = _WATCHES.get(sampler)
        if found is None:
            found = _WATCHES[sampler] = OrderWatch(type(sampler).__qualname__)
        return found


def _init(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    if instance is not None and _watched.settings(instance) is not None:
        with _lock:
            _patch_subclass(type(instance))
            if instance not in _WATCHES:
                _WATCHES[instance] = OrderWatch(type(instance).__qualname__, user_line())
    return result


def _set_epoch(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if instance is not None:
        _watch_of(instance).set_epoch_calls += 1
    return wrapped(*args, **kwargs)


def _iter(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    settings = None if instance is None else _watched.settings(instance)
    if settings is None or getattr(_inside, "active", False):
        return wrapped(*args, **kwargs)
    _inside.active = True
    try:
        order = list(wrapped(*args, **kwargs))
    finally:
        _inside.active = False
    rank = ""
    if hasattr(instance, "rank") and hasattr(instance, "num_replicas"):
        rank = f"rank {instance.rank} of {instance.num_replicas}"
    watch = _watch_of(instance)
    _session.record_check(watch.source, watch.location)
    found = watch.saw(
        order,
        getattr(instance, "epoch", None),
        bool(getattr(instance, "shuffle", False)),
        user_line(),
        rank,
    )
    if found is not None:
        with _lock:
            warned = _HANDLINGS.setdefault(instance, set())
        report(Finding.of(found), Handling(settings.on_violation, None, warned))
    return iter(order)
