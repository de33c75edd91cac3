"""What every kind of data source shares: the :class:`SourceKind` base class, identity
semantics for safegen's proxies, and the one way guarded subclasses are built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from safegen._config import Options
from safegen._modes import Source

__all__ = ["NOT_SOURCES", "ByIdentity", "SourceKind", "guarded_subclass", "source_of"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


# Iterable, but not what a data source yields batch by batch.
NOT_SOURCES = (str, bytes, bytearray, Mapping, np.ndarray)


class SourceKind:
    """One kind of data source (as Keras's data adapters: one class per kind).

    :func:`safegen._sources.kind_of` asks each kind in turn whether it ``accepts`` an
    object; the first that does guards it.
    """

    #: what the kind is, in messages and in the dispatcher's list
    name = ""

    @staticmethod
    def accepts(obj: Any) -> bool:  # pragma: no cover - every kind defines it
        raise NotImplementedError

    @staticmethod
    def guard(obj: Any, options: Options, role: str) -> Any:  # pragma: no cover
        """Guard ``obj``; ``role`` completes the error when a guarded function returns
        something that is not iterable."""
        raise NotImplementedError


class ByIdentity:
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


def source_of(obj: Any, function: Any = None) -> Source:
    """Name and code location of what is guarded, for messages."""
    if function is not None:
        code = getattr(getattr(function, "__func__", function), "__code__", None)
        name = getattr(function, "__qualname__", None) or type(function).__qualname__
        return Source(f"{name}()", code)
    code = getattr(obj, "gi_code", None) or getattr(obj, "ag_code", None)
    if code is not None:
        return Source(f"{getattr(obj, '__qualname__', code.co_name)}()", code)
    return Source(f"{type(obj).__qualname__} object", None)


def guarded_subclass(cls: Any, namespace: dict[str, Any], instead: str) -> Any:
    """A subclass of ``cls`` with ``namespace`` that keeps ``cls``'s name, qualified name,
    module and docstring (so that instances pickle by reference to the decorated class).

    ``instead`` says what to guard when ``cls`` cannot be subclassed.
    """
    namespace = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        **namespace,
    }
    try:
        return type(cls)(cls.__name__, (cls,), namespace)
    except TypeError as error:
        raise TypeError(
            f"safegen.guard() cannot guard the class {cls.__qualname__} ({error}); {instead}"
        ) from None
