"""``safegen.guard`` and ``safegen.stats``: the public door to the one way in
(``safegen._sources``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from safegen._config import Mode, OnViolation, Options, validate_environment
from safegen._handle import handle_of
from safegen._sources import guard_source, is_guarded
from safegen._stats import Stats

__all__ = ["guard", "is_guarded", "stats"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

F = TypeVar("F")


@overload
def guard(
    obj: None = None,
    /,
    *,
    mode: Mode | None = None,
    on_violation: OnViolation | None = None,
    window: int | None = None,
    verify_all: bool | None = None,
) -> Callable[[F], F]: ...


@overload
def guard(
    obj: F,
    /,
    *,
    mode: Mode | None = None,
    on_violation: OnViolation | None = None,
    window: int | None = None,
    verify_all: bool | None = None,
) -> F: ...


def guard(
    obj: Any = None,
    /,
    *,
    mode: Mode | None = None,
    on_violation: OnViolation | None = None,
    window: int | None = None,
    verify_all: bool | None = None,
) -> Any:
    """Check, copy or freeze every NumPy array a generator (or iterator) yields.

    Use it bare (``@safegen.guard``), with options (``@safegen.guard(mode="copy")``), or
    on an existing object (``safegen.guard(it)``). It accepts generator functions and
    methods (instance, class and static), async generator functions, functions that
    return an iterator or iterable, generator, iterator and iterable objects, Keras
    ``PyDataset`` (or ``Sequence``) classes and instances, whose ``__getitem__`` results
    are guarded (an instance is guarded in place and returned), and PyTorch
    ``torch.utils.data`` ``Dataset`` and ``IterableDataset`` classes and instances (each
    item ``__getitem__`` returns, or each iterator ``__iter__`` returns, is guarded) and
    ``DataLoader`` instances (their datasets are guarded in place; the loader is
    returned).

    A guarded generator function returns a generator proxy (``inspect.isgenerator`` and
    ``isinstance(g, types.GeneratorType)`` are true, so Keras and ``tf.data`` accept it)
    that passes ``send``, ``throw``, ``close``, the return value and exceptions through,
    and that several threads may share: their calls run one at a time. The arrays may
    sit anywhere in tuples, lists, dicts, namedtuples, ``MappingProxyType``,
    ``UserDict``, ``UserList`` and ``deque`` (and their subclasses); other leaves,
    other mappings and sequences among them, are left alone.

    Modes:
        * ``"check"`` (default): yields the generator's own objects and reports any
          array that changes after it was yielded, while one of the last ``window``
          yields, and any dict or list yielded again after a key or index in it was
          rebound. A reused buffer is found by the 2nd yield.
        * ``"copy"``: yields copies, in memory of their own (64-byte aligned above
          256 KiB, so TensorFlow wraps them without a second copy).
        * ``"freeze"``: makes each yielded array read-only, so the generator's next write
          into it fails at that line, with a note from safegen; yielded dicts and lists
          are handed out as shallow copies of their own type (they cannot be made
          read-only), and other leaves (pandas, bytearray) are warned about once.
        * ``"off"``: given here, hands ``obj`` back untouched; from
          :func:`safegen.mode` or :func:`safegen.configure`, generators are created
          unguarded.

    Options left as ``None`` come from :func:`safegen.mode`, :func:`safegen.configure`
    and the ``SAFEGEN_MODE`` environment variable, when each generator is created.
    ``SAFEGEN_DISABLE=1`` in the environment wins over all of them, ``mode`` included:
    modes ``"check"`` and ``"freeze"`` then guard nothing (``"copy"`` still copies).

    Args:
        obj: what to guard; omit it to get a decorator.
        mode: ``"check"``, ``"copy"``, ``"freeze"`` or ``"off"``.
        on_violation: ``"raise"`` (:class:`safegen.AliasingError`), ``"warn"``
            (:class:`safegen.AliasingWarning`), or a callable given each
            :class:`safegen.AliasingReport`. After ``"raise"`` the guarded generator is
            finished.
        window: how many recent yields check mode watches (default 12: the 2 batches
            Keras peeks plus a prefetch queue of 10).
        verify_all: in check mode, re-hash every watched array on every yield.

    Returns:
        The guarded function or object, or a decorator when ``obj`` is omitted.

    Raises:
        TypeError: ``obj`` is neither callable nor iterable; or, when a guarded function
            is called, it returned something that is not iterable.
        ValueError: an option, or the ``SAFEGEN_MODE`` or ``SAFEGEN_DISABLE``
            environment variable, has an invalid value (the valid ones are listed).

    Example:
        >>> import numpy as np, safegen
        >>> @safegen.guard(mode="copy")
        ... def batches():
        ...     x = np.zeros(2)
        ...     for i in range(2):
        ...         x[:] = i
        ...         yield x
        >>> a, b = batches()
        >>> a, b
        (array([0., 0.]), array([1., 1.]))
    """
    options = Options.parse(
        "safegen.guard()",
        mode=mode,
        on_violation=on_violation,
        window=window,
        verify_all=verify_all,
    )
    validate_environment()
    if obj is None:
        return functools.partial(guard, **options.given())
    return guard_source(obj, options)


def stats(obj: Any) -> Stats:
    """The statistics of a guarded generator, iterator, iterable or function.

    For a guarded function or iterable, the sum over every generator it has made.

    Args:
        obj: what :func:`safegen.guard` returned, or a generator made by a guarded
            generator function.

    Returns:
        A :class:`safegen.Stats` snapshot (later yields do not change it).

    Raises:
        TypeError: ``obj`` is not guarded by safegen.

    Example:
        >>> import safegen
        >>> @safegen.guard
        ... def numbers():
        ...     yield 1
        >>> list(numbers())
        [1]
        >>> safegen.stats(numbers).yields
        1
    """
    found = handle_of(obj)
    if found is None:
        raise TypeError(
            "safegen.stats() needs a generator, iterator, iterable or function guarded by "
            f"safegen.guard; got {type(obj).__qualname__} {obj!r:.80}"
        )
    snapshot: Stats = Stats() + found.stats
    return snapshot
