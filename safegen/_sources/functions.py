"""Functions that make data sources: generator functions and methods, async generator
functions, functions returning an iterator or iterable. Each call's result is guarded as
what it is (:func:`guard_result`)."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import wrapt

from safegen._config import Options, Settings
from safegen._handle import Guarded
from safegen._modes import Source
from safegen._sources._base import NOT_SOURCES, SourceKind, source_of
from safegen._sources.generators import guard_iterator, yielding_source
from safegen._sources.iterables import GuardedIterable
from safegen._stats import Totals

__all__ = ["Functions", "guard_function", "guard_result"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


def guard_result(result: Any, settings: Settings, source: Source, totals: Totals, role: str) -> Any:
    """Guard what a guarded function returned; ``role`` says why it had to be iterable."""
    if settings.mode == "off":
        return result
    if inspect.isgenerator(result) or inspect.isasyncgen(result) or hasattr(result, "__next__"):
        return guard_iterator(result, settings, yielding_source(result, source), totals)
    if hasattr(result, "__iter__") and not isinstance(result, NOT_SOURCES):
        return GuardedIterable(result, settings, source)
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

    def __init__(self, function: Any, options: Options, role: str) -> None:
        source = source_of(None, function)
        guarded = Guarded(options)
        totals = guarded.totals

        def call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return guard_result(wrapped(*args, **kwargs), options.resolve(), source, totals, role)

        super().__init__(function, call)
        self._self_handle = guarded

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


def guard_function(function: Any, options: Options, role: str) -> Any:
    """A wrapper around ``function`` that guards what each call returns.

    ``role`` completes the error message when a call returns something not iterable:
    ``"<function> at <file>:<line> {role}, so it must return ..."``.
    """
    return _GuardedFunction(function, options, role)


class Functions(SourceKind):
    """Callables (functions, methods, ``classmethod``/``staticmethod`` objects) that make
    a data source when called."""

    name = "function"

    @staticmethod
    def accepts(obj: Any) -> bool:
        return callable(obj) or isinstance(obj, (classmethod, staticmethod))

    @staticmethod
    def guard(obj: Any, options: Options, role: str) -> Any:
        return guard_function(obj, options, role)
