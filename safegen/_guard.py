"""``safegen.guard``: check, copy or freeze what generators and iterators yield."""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar, overload

import numpy as np
import wrapt

from safegen._config import (
    MODES,
    Mode,
    OnViolation,
    Settings,
    resolve,
    validate_environment,
    validate_mode,
    validate_on_violation,
    validate_verify_all,
    validate_window,
)
from safegen._dataset import (
    _SETTINGS_ATTRIBUTE,
    dataset_stats,
    forget_dataset,
    guard_dataset,
    guard_dataset_class,
    is_dataset,
    is_dataset_class,
)
from safegen._detectors import watch_generator
from safegen._modes import Source, _State, make_state
from safegen._stats import Stats, Totals

__all__ = ["guard", "guard_for_enable", "is_guarded", "stats"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

F = TypeVar("F")

# The state of each guarded generator (a proxy) and async generator (a real one, which
# takes no attributes), found through this table.
_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()


def _run(gen: Generator[Any, Any, Any], state: _State) -> Generator[Any, Any, Any]:
    """Drive ``gen`` as ``yield from`` would, passing each value through ``state``."""
    __tracebackhide__ = True  # pytest shows the generator's frame, not this one
    process = state.process
    try:
        value = gen.send(None)
    except StopIteration as stop:
        state.finish()
        return stop.value
    except BaseException as exc:
        state.annotate(exc)
        raise
    while True:
        out = process(value)
        try:
            sent = yield out
            # Drop our reference at once: in copy mode the consumer may already have
            # freed this batch, and its memory can serve the next copy.
            out = None
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as thrown:
            out = None
            if state.inflight is not None:
                state.settle()
            try:
                value = gen.throw(thrown)
            except StopIteration as stop:
                state.finish()
                return stop.value
            except BaseException as exc:
                state.annotate(exc)
                raise
            continue
        if state.inflight is not None:  # hashes still running (check mode, large arrays)
            state.settle()
        try:
            value = gen.send(sent)
        except StopIteration as stop:
            state.finish()
            return stop.value
        except BaseException as exc:
            state.annotate(exc)
            raise


def _run_iterator(it: Iterator[Any], state: _State) -> Generator[Any, None, None]:
    """Iterate a plain iterator, passing each value through ``state``."""
    __tracebackhide__ = True  # pytest shows the generator's frame, not this one
    process = state.process
    advance = it.__next__
    while True:
        if state.inflight is not None:
            state.settle()
        try:
            value = advance()
        except StopIteration:
            state.finish()
            return
        except BaseException as exc:
            state.annotate(exc)
            raise
        yield process(value)


async def _run_async(agen: AsyncGenerator[Any, Any], state: _State) -> AsyncGenerator[Any, Any]:
    """Drive an async generator as ``_run`` drives a generator."""
    __tracebackhide__ = True  # pytest shows the generator's frame, not this one
    process = state.process
    try:
        value = await agen.asend(None)
    except StopAsyncIteration:
        state.finish()
        return
    except BaseException as exc:
        state.annotate(exc)
        raise
    while True:
        out = process(value)
        try:
            sent = yield out
            # Drop our reference at once: in copy mode the consumer may already have
            # freed this batch, and its memory can serve the next copy.
            out = None
        except GeneratorExit:
            await agen.aclose()
            raise
        except BaseException as thrown:
            out = None
            if state.inflight is not None:
                state.settle()
            try:
                value = await agen.athrow(thrown)
            except StopAsyncIteration:
                state.finish()
                return
            except BaseException as exc:
                state.annotate(exc)
                raise
            continue
        if state.inflight is not None:
            state.settle()
        try:
            value = await agen.asend(sent)
        except StopAsyncIteration:
            state.finish()
            return
        except BaseException as exc:
            state.annotate(exc)
            raise


def _source_of(obj: Any, function: Any = None) -> Source:
    """Name and code location of what is guarded, for messages."""
    if function is not None:
        code = getattr(getattr(function, "__func__", function), "__code__", None)
        name = getattr(function, "__qualname__", None) or type(function).__qualname__
        return Source(f"{name}()", code)
    code = getattr(obj, "gi_code", None) or getattr(obj, "ag_code", None)
    if code is not None:
        return Source(f"{getattr(obj, '__qualname__', code.co_name)}()", code)
    return Source(f"{type(obj).__qualname__} object", None)


class _ByIdentity:
    """Equality and hash by identity, for the proxies of safegen's own objects.

    A wrapt proxy compares and hashes as what it wraps; a guarded generator is its own
    object, as a generator is, and a guarded list of arrays must stay hashable and not
    compare arrays with ``==``.
    """

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return object.__hash__(self)


class _SerializedGenerator(_ByIdentity, wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A guarded generator that several threads may share.

    ``next()``, ``send()``, ``throw()`` and ``close()`` take a per-generator lock, as the
    ``threadsafe_generator`` recipe of Keras 2 users did by hand: two threads never run
    the generator at once (a bare generator raises ``ValueError: generator already
    executing``, which tf_keras turns into "Your generator is NOT thread-safe"), each
    value goes to exactly one caller, and safegen's bookkeeping for a yield is done
    before the next one starts. Everything else (``gi_frame``, ``__name__``,
    ``isinstance(g, types.GeneratorType)``, ``inspect.isgenerator``) sees the generator.
    The lock is reentrant, so a generator that calls ``next()`` on itself still gets
    Python's own ``ValueError``.
    """

    def __init__(self, wrapped: Generator[Any, Any, Any], state: _State) -> None:
        super().__init__(wrapped)
        self._self_lock = threading.RLock()
        self._self_send = wrapped.send
        self._self_state = state
        watch_generator(self)  # its copies in forked workers (safegen._detectors)

    def __iter__(self) -> _SerializedGenerator:
        return self

    def __next__(self) -> Any:
        with self._self_lock:
            return self._self_send(None)

    def send(self, value: Any) -> Any:
        with self._self_lock:
            return self._self_send(value)

    def throw(self, *args: Any) -> Any:
        with self._self_lock:
            return self.__wrapped__.throw(*args)

    def close(self) -> None:
        with self._self_lock:
            self.__wrapped__.close()

    def __repr__(self) -> str:
        return f"<safegen-guarded {self.__wrapped__!r}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("cannot pickle a safegen-guarded 'generator' object")

    def __copy__(self) -> Any:
        raise TypeError("cannot copy a safegen-guarded 'generator' object")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError("cannot copy a safegen-guarded 'generator' object")


def _wrap_iterator(
    obj: Any, settings: Settings, source: Source, totals: Totals | None = None
) -> Any:
    """A guarded generator (or async generator) yielding what ``obj`` yields.

    Generators and iterators come back as a :class:`_SerializedGenerator`, safe to share
    between threads; async generators as an async generator (one event loop runs them).
    """
    if settings.mode == "off":
        return obj
    state = make_state(settings, source, background=True)
    state.producer = obj
    driver: Any
    if inspect.isgenerator(obj):
        driver = _run(obj, state)
    elif inspect.isasyncgen(obj):
        driver = _run_async(obj, state)
    else:
        driver = _run_iterator(obj, state)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        driver.__name__ = getattr(obj, "__name__", qualname)
        driver.__qualname__ = qualname
    guarded = driver if inspect.isasyncgen(driver) else _SerializedGenerator(driver, state)
    _STATES[guarded] = state
    if totals is not None:
        totals.track(state, state.stats)
    return guarded


class _GuardedIterable(_ByIdentity, wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An iterable whose every iterator is guarded; everything else goes to the iterable.

    A wrapt proxy: attributes, ``len``, indexing, ``in``, truth, comparison and
    ``isinstance`` see the wrapped object (``isinstance(proxy, list)`` holds for a
    guarded list); ``iter`` gives guarded iterators.
    """

    def __init__(self, wrapped: Any, settings: Settings, source: Source) -> None:
        super().__init__(wrapped)
        self._self_settings = settings
        self._self_source = source
        self._self_totals = Totals()

    def __iter__(self) -> Any:
        return _wrap_iterator(
            iter(self.__wrapped__), self._self_settings, self._self_source, self._self_totals
        )

    def __repr__(self) -> str:
        return f"<safegen-guarded {self.__wrapped__!r}>"

    def _self_safegen_stats(self) -> Stats:
        return self._self_totals.total()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle a safegen-guarded {type(self.__wrapped__).__name__}")

    def __copy__(self) -> Any:
        raise TypeError(f"cannot copy a safegen-guarded {type(self.__wrapped__).__name__}")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"cannot copy a safegen-guarded {type(self.__wrapped__).__name__}")


def _yielding_source(result: Any, source: Source) -> Source:
    """Who yields: the generator ``result`` when the guarded function is a factory that
    returned it (``batch_generator()``, made by ``make()``), else ``source`` itself; a
    generator already guarded (by the function's own ``@safegen.guard``) is named as that
    guard names it."""
    inner = _STATES.get(result) if isinstance(result, _SerializedGenerator) else None
    if inner is not None:
        return inner.source
    code = getattr(result, "gi_code", None) or getattr(result, "ag_code", None)
    if code is None or code is source.code:
        return source
    name = getattr(result, "__qualname__", None) or code.co_name
    return Source(f"{name}()", code, source.kind, made_by=source.where())


def _guard_result(
    result: Any, settings: Settings, source: Source, totals: Totals, role: str
) -> Any:
    """Guard what a guarded function returned; ``role`` says why it had to be iterable."""
    if settings.mode == "off":
        return result
    if inspect.isgenerator(result) or inspect.isasyncgen(result) or hasattr(result, "__next__"):
        return _wrap_iterator(result, settings, _yielding_source(result, source), totals)
    if hasattr(result, "__iter__") and not isinstance(result, _NOT_SOURCES):
        return _GuardedIterable(result, settings, source)
    # An array, a string or a mapping iterates, but over rows, characters or keys: not a
    # stream of batches (guard(np.zeros(3)) is refused the same way).
    raise TypeError(
        f"{source.where()} {role}, so it must return a generator, "
        f"an iterator or an iterable of batches; it returned {type(result).__qualname__} "
        f"{result!r:.80}: safegen.guard() checks what a generator (or iterator, or dataset) "
        "yields, and an array, a string or a mapping iterates over rows, characters or keys"
    )


class _BoundGuardedFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    """A guarded method bound to an instance or class; pickles like a bound method."""

    def __repr__(self) -> str:
        return repr(self._self_parent).replace("function", "bound method", 1)

    def _self_safegen_stats(self) -> Stats:
        # Found on the parent by wrapt 2 by itself; wrapt 1 would look in the method.
        stats: Stats = self._self_parent._self_safegen_stats()
        return stats

    def _self_owner_object(self) -> Any:
        """The instance or class this method is bound to (``None``: a staticmethod taken
        from its class under wrapt 1, which does not keep the class)."""
        owner = self._self_instance
        if owner is None:  # a classmethod's class; else the owner, which wrapt 2 keeps
            owner = getattr(self.__wrapped__, "__self__", None) or getattr(
                self, "_self_owner", None
            )
        return owner

    def __reduce_ex__(self, protocol: Any) -> Any:
        owner = self._self_owner_object()
        if owner is None:
            raise TypeError(
                f"cannot pickle the safegen-guarded method {self._self_parent.__qualname__} "
                "taken from its class with wrapt < 2; pickle the class, or upgrade wrapt"
            )
        return (getattr, (owner, self._self_parent.__name__))

    # As for a bound method: a copy is the method itself; a deep copy is the same method
    # of a deep copy of its instance (a class is its own deep copy).
    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        owner = self._self_owner_object()
        if owner is None:
            return self
        return getattr(copy.deepcopy(owner, memo), self._self_parent.__name__)


class _GuardedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A guarded function: calls it, then guards what it returned.

    A wrapt ``FunctionWrapper``, so it binds as the function does on instance methods, and
    over or under ``classmethod`` and ``staticmethod``, and ``inspect``
    (``isgeneratorfunction``, ``signature``), ``__name__``, ``__doc__`` and the
    function's attributes see the wrapped function. It pickles by reference to its
    module-level name, as functions do (worker processes started with ``spawn`` need
    that).
    """

    __bound_function_wrapper__ = _BoundGuardedFunction

    def __init__(self, function: Any, overrides: dict[str, Any], role: str) -> None:
        source = _source_of(None, function)
        totals = Totals()

        def call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return _guard_result(wrapped(*args, **kwargs), resolve(overrides), source, totals, role)

        super().__init__(function, call)
        self._self_totals = totals

    def _self_safegen_stats(self) -> Stats:
        return self._self_totals.total()

    def __repr__(self) -> str:
        name = getattr(self.__wrapped__, "__qualname__", None) or repr(self.__wrapped__)
        return f"<safegen-guarded function {name}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        name = getattr(self.__wrapped__, "__qualname__", None)
        if not isinstance(name, str):
            raise TypeError(
                f"cannot pickle {self!r}: a guarded function pickles by its module-level "
                "name, and this one has none; guard a module-level function (or method) "
                "for worker processes started with spawn"
            )
        return name

    def __copy__(self) -> Any:
        return self  # as for a function

    def __deepcopy__(self, memo: Any) -> Any:
        return self


def _wrap_callable(
    function: Any, overrides: dict[str, Any], role: str = "is guarded by safegen.guard"
) -> Any:
    """A wrapper around ``function`` that guards what each call returns.

    ``role`` completes the error message when a call returns something not iterable:
    ``"<function> at <file>:<line> {role}, so it must return ..."``.
    """
    return _GuardedFunction(function, overrides, role)


def _check_options(mode: Any, on_violation: Any, window: Any, verify_all: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if mode is not None:
        overrides["mode"] = validate_mode(mode, "safegen.guard()")
    if on_violation is not None:
        overrides["on_violation"] = validate_on_violation(on_violation, "safegen.guard()")
    if window is not None:
        overrides["window"] = validate_window(window, "safegen.guard()")
    if verify_all is not None:
        overrides["verify_all"] = validate_verify_all(verify_all, "safegen.guard()")
    return overrides


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
    return an iterator or iterable, generator, iterator and iterable objects, and Keras
    ``PyDataset`` (or ``Sequence``) classes and instances, whose ``__getitem__`` results
    are guarded (an instance is guarded in place and returned).

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
    overrides = _check_options(mode, on_violation, window, verify_all)
    validate_environment()
    if obj is None:
        return functools.partial(guard, **overrides)
    if overrides.get("mode") == "off":
        return obj
    _refuse(obj)
    if is_dataset_class(obj):
        return guard_dataset_class(obj, overrides)
    if is_dataset(obj):
        return guard_dataset(obj, overrides)
    if isinstance(obj, type):
        return _guard_iterable_class(obj, overrides)
    if inspect.isgenerator(obj) or inspect.isasyncgen(obj) or hasattr(obj, "__next__"):
        return _wrap_iterator(obj, resolve(overrides), _source_of(obj))
    if callable(obj) or isinstance(obj, (classmethod, staticmethod)):
        return _wrap_callable(obj, overrides)
    if hasattr(obj, "__iter__"):
        return _GuardedIterable(obj, resolve(overrides), _source_of(obj))
    raise TypeError(
        f"safegen.guard() needs a generator function, a function returning an iterator, "
        f"or a generator, iterator or iterable; got {type(obj).__qualname__} {obj!r:.80}"
    )


_EXPECTED = (
    "safegen.guard() checks what a generator (or iterator, or dataset) yields: give it the "
    "generator function, the function that returns the iterator, or the iterator itself"
)


# Iterable, but not what a data source yields batch by batch.
_NOT_SOURCES = (str, bytes, bytearray, Mapping, np.ndarray)


def _refuse(obj: Any) -> None:
    """Raise a TypeError for the objects that look guardable but are mistakes."""
    if isinstance(obj, str) and obj in MODES:
        raise TypeError(
            f"safegen.guard() got the string {obj!r} as the object to guard; did you mean "
            f"@safegen.guard(mode={obj!r})?"
        )
    if isinstance(obj, _NOT_SOURCES):
        raise TypeError(f"{_EXPECTED}; got {type(obj).__qualname__} {obj!r:.60}")
    function = getattr(obj, "__func__", obj)
    if inspect.iscoroutinefunction(function) or inspect.iscoroutine(obj):
        what = "coroutine function" if inspect.iscoroutinefunction(function) else "coroutine"
        raise TypeError(
            f"safegen.guard() got the {what} {getattr(obj, '__qualname__', obj)}, which "
            "returns one value; it guards async *generator* functions (async def ... with "
            "yield), whose values it can see"
        )


def _guard_iterable_class(cls: Any, overrides: dict[str, Any]) -> Any:
    """A subclass of ``cls`` whose ``__iter__`` returns guarded iterators.

    It keeps ``cls``'s name, qualified name and module (so instances pickle by reference
    to the decorated class), and subclasses of it stay guarded. Options are resolved on
    each ``iter()``.
    """
    original = getattr(cls, "__iter__", None)
    if original is None:
        raise TypeError(
            f"safegen.guard() got the class {cls.__qualname__}, which is neither a Keras "
            "PyDataset nor iterable (it has no __iter__); guard the generator function or "
            "the dataset class instead"
        )
    code = getattr(original, "__code__", None)
    source = Source(f"{cls.__qualname__}.__iter__()", code)
    totals = Totals()

    def __iter__(self: Any) -> Any:
        return _wrap_iterator(original(self), resolve(overrides), source, totals)

    namespace = {
        "__iter__": __iter__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_safegen_totals": totals,
    }
    try:
        return type(cls)(cls.__name__, (cls,), namespace)
    except TypeError as error:
        raise TypeError(
            f"safegen.guard() cannot guard the class {cls.__qualname__} ({error}); guard its "
            f"instances instead, e.g. safegen.guard({cls.__name__}(...))"
        ) from None


def is_guarded(obj: Any) -> bool:
    """Whether ``obj`` already passes through safegen (so it must not be guarded twice)."""
    try:
        if obj in _STATES:
            return True
    except TypeError:  # unhashable
        pass
    if getattr(obj, "_self_safegen_stats", None) is not None:
        return True
    if is_dataset(obj):
        return obj.__dict__.get(_SETTINGS_ATTRIBUTE) is not None
    return False


def guard_for_enable(obj: Any, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """Guard a source handed to a framework under ``safegen.enable()``.

    Returns ``(guarded, undo)``: a dataset instance is guarded in place, and ``undo()``
    gives it back its class and attributes; ``undo`` is ``None`` for an iterator, which
    is wrapped in a new generator.
    """
    if is_dataset(obj):
        saved_class = obj.__class__
        guard_dataset(obj, overrides)

        def undo() -> None:
            obj.__class__ = saved_class
            obj.__dict__.pop(_SETTINGS_ATTRIBUTE, None)
            forget_dataset(obj)

        return obj, undo
    return _wrap_iterator(obj, resolve(overrides), _source_of(obj)), None


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
    try:
        state = _STATES.get(obj)
    except TypeError:
        state = None
    if state is not None:
        return Stats() + state.stats
    found = dataset_stats(obj)
    if found is not None:
        return found
    for candidate in (obj, getattr(obj, "_self_parent", None)):
        getter = getattr(candidate, "_self_safegen_stats", None)
        if getter is not None:
            result: Stats = getter()
            return result
    raise TypeError(
        "safegen.stats() needs a generator, iterator, iterable or function guarded by "
        f"safegen.guard; got {type(obj).__qualname__} {obj!r:.80}"
    )
