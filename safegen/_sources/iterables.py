"""Iterable objects and classes: every iterator they hand out is guarded."""

from __future__ import annotations

from typing import Any

import wrapt

from safegen._config import Options, Settings
from safegen._handle import ATTRIBUTE, Guarded
from safegen._modes import Source
from safegen._sources._base import ByIdentity, SourceKind, guarded_subclass, source_of
from safegen._sources.generators import guard_iterator

__all__ = ["GuardedIterable", "IterableClasses", "Iterables"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class GuardedIterable(ByIdentity, wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An iterable whose every iterator is guarded; everything else goes to the iterable.

    A wrapt proxy: attributes, ``len``, indexing, ``in``, truth, comparison and
    ``isinstance`` see the wrapped object (``isinstance(proxy, list)`` holds for a
    guarded list); ``iter`` gives guarded iterators.
    """

    def __init__(self, wrapped: Any, settings: Settings, source: Source) -> None:
        super().__init__(wrapped)
        self._self_settings = settings
        self._self_source = source
        self._self_handle = Guarded(None)

    def __iter__(self) -> Any:
        return guard_iterator(
            iter(self.__wrapped__),
            self._self_settings,
            self._self_source,
            self._self_handle.totals,
        )

    def __repr__(self) -> str:
        return f"<safegen-guarded {self.__wrapped__!r}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle a safegen-guarded {type(self.__wrapped__).__name__}")

    def __copy__(self) -> Any:
        raise TypeError(f"cannot copy a safegen-guarded {type(self.__wrapped__).__name__}")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"cannot copy a safegen-guarded {type(self.__wrapped__).__name__}")


class Iterables(SourceKind):
    """Iterable objects that are not iterators (lists, ranges, custom iterables)."""

    name = "iterable"

    @staticmethod
    def accepts(obj: Any) -> bool:
        return hasattr(obj, "__iter__") and not isinstance(obj, type)

    @staticmethod
    def guard(obj: Any, options: Options, role: str) -> Any:
        return GuardedIterable(obj, options.resolve(), source_of(obj))


class IterableClasses(SourceKind):
    """Classes whose instances are iterable: a subclass whose ``__iter__`` returns guarded
    iterators (options resolved on each ``iter()``)."""

    name = "iterable class"

    @staticmethod
    def accepts(obj: Any) -> bool:
        return isinstance(obj, type)

    @staticmethod
    def guard(cls: Any, options: Options, role: str) -> Any:
        original = getattr(cls, "__iter__", None)
        if original is None:
            raise TypeError(
                f"safegen.guard() got the class {cls.__qualname__}, which is neither a "
                "Keras PyDataset nor iterable (it has no __iter__); guard the generator "
                "function or the dataset class instead"
            )
        code = getattr(original, "__code__", None)
        source = Source(f"{cls.__qualname__}.__iter__()", code)
        guarded = Guarded(options)

        def __iter__(self: Any) -> Any:
            return guard_iterator(original(self), options.resolve(), source, guarded.totals)

        return guarded_subclass(
            cls,
            {"__iter__": __iter__, ATTRIBUTE: guarded},
            f"guard its instances instead, e.g. safegen.guard({cls.__name__}(...))",
        )
