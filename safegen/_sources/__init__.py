"""Data sources, one module per kind, and the one way in that dispatches on them.

Every way of guarding a source goes through :func:`guard_source`: ``safegen.guard()``,
``safegen.enable()`` (its framework integrations, through :func:`for_framework`), tf.data's
``from_generator`` under ``enable()``, and the checks of ``safegen check`` and
``safegen.testing`` (``safegen._probe``). It takes validated
:class:`~safegen._config.Options`, refuses the usual mistakes, and hands the object to the
first kind (a :class:`~safegen._sources._base.SourceKind`, as Keras's data adapters) that
accepts it:

* :mod:`~safegen._sources.torch_data`: PyTorch ``Dataset`` and ``IterableDataset``
  classes and instances, and ``DataLoader`` instances (their datasets);
* :mod:`~safegen._sources.datasets`: Keras ``PyDataset``/``Sequence`` classes and
  instances;
* :mod:`~safegen._sources.iterables`: iterable classes, and iterable objects;
* :mod:`~safegen._sources.generators`: generators, iterators and async generators;
* :mod:`~safegen._sources.functions`: functions that return one of those.

Each guarded generator or dataset instance gets one handle (``safegen._handle``), which
holds its mode (``safegen._modes``) and detectors (``safegen._detectors``).
"""

from __future__ import annotations

import inspect
from typing import Any

from safegen._config import MODES, Options
from safegen._handle import handle_of
from safegen._sources._base import NOT_SOURCES, SourceKind
from safegen._sources.datasets import Datasets, is_dataset, unguard
from safegen._sources.functions import Functions
from safegen._sources.generators import Iterators
from safegen._sources.iterables import IterableClasses, Iterables
from safegen._sources.torch_data import TorchData

__all__ = ["KINDS", "for_framework", "guard_source", "is_guarded", "refuse"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# In the order they are asked: datasets before other classes and iterables, iterators
# (which are callable sometimes) before functions, iterables last.
KINDS: tuple[type[SourceKind], ...] = (
    TorchData,
    Datasets,
    IterableClasses,
    Iterators,
    Functions,
    Iterables,
)

_ROLE = "is guarded by safegen.guard"


def guard_source(obj: Any, options: Options, *, role: str = _ROLE) -> Any:
    """Guard ``obj`` with ``options``: the one way in.

    ``role`` completes the error raised when a guarded function returns something that
    is not iterable (``"was given to safegen check as the data source"``).

    Raises:
        TypeError: ``obj`` is none of the kinds, or a usual mistake (see :func:`refuse`).
    """
    if options.mode == "off":
        return obj
    refuse(obj)
    for kind in KINDS:
        if kind.accepts(obj):
            return kind.guard(obj, options, role)
    raise TypeError(
        f"safegen.guard() needs a generator function, a function returning an iterator, "
        f"or a generator, iterator or iterable; got {type(obj).__qualname__} {obj!r:.80}"
    )


def for_framework(obj: Any, options: Options, *, accept_iterators: bool = False) -> Any:
    """Guard one data source handed to a framework under ``safegen.enable()``.

    Generators are guarded (a new generator is returned); Keras ``PyDataset``/``Sequence``
    instances are guarded in place until the returned undo function is called; with
    ``accept_iterators``, other iterators too (``tf_keras`` accepts them). Anything else,
    and anything already guarded, is returned as it is.

    Returns:
        ``(source, undo)``: what to hand to the framework, and a function that puts a
            dataset instance back as it was (``None`` when there is nothing to undo).
    """
    if is_guarded(obj):
        return obj, None
    if is_dataset(obj):
        saved_class = obj.__class__
        guarded = guard_source(obj, options)

        def undo() -> None:
            unguard(obj, saved_class)

        return guarded, undo
    if inspect.isgenerator(obj) or (
        accept_iterators and hasattr(obj, "__next__") and hasattr(obj, "__iter__")
    ):
        return guard_source(obj, options), None
    return obj, None


def is_guarded(obj: Any) -> bool:
    """Whether ``obj`` already passes through safegen (so it must not be guarded twice)."""
    return handle_of(obj) is not None


_EXPECTED = (
    "safegen.guard() checks what a generator (or iterator, or dataset) yields: give it the "
    "generator function, the function that returns the iterator, or the iterator itself"
)


def refuse(obj: Any) -> None:
    """Raise a TypeError for the objects that look guardable but are mistakes."""
    if isinstance(obj, str) and obj in MODES:
        raise TypeError(
            f"safegen.guard() got the string {obj!r} as the object to guard; did you mean "
            f"@safegen.guard(mode={obj!r})?"
        )
    if isinstance(obj, NOT_SOURCES):
        raise TypeError(f"{_EXPECTED}; got {type(obj).__qualname__} {obj!r:.60}")
    function = getattr(obj, "__func__", obj)
    if inspect.iscoroutinefunction(function) or inspect.iscoroutine(obj):
        what = "coroutine function" if inspect.iscoroutinefunction(function) else "coroutine"
        raise TypeError(
            f"safegen.guard() got the {what} {getattr(obj, '__qualname__', obj)}, which "
            "returns one value; it guards async *generator* functions (async def ... with "
            "yield), whose values it can see"
        )
