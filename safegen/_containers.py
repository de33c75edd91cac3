"""The mutable containers (dicts, lists) a generator yields: reused ones, and detaching them.

A generator that yields the same ``dict`` every time, refilled with fresh arrays
(``d["x"] = np.full(3, i); yield d``), changes no array, yet every batch a consumer
still holds shows the latest values: ``list(gen())`` gives the last batch N times.

* Check mode (:class:`ContainerWatch`) remembers, for the last ``window`` yields, each
  mutable container in the yielded value and what it held (the identity of every
  child). When the generator yields one of those containers again and a key or index
  now holds another object (or was added or removed), that is reported, with the keys.
* Freeze mode (:func:`detach`) cannot make a ``dict`` or ``list`` read-only in place:
  CPython does not let an instance of them change its class, and a read-only proxy
  (``types.MappingProxyType``) would show the generator's later rebinding, since it is
  a view. So it hands the consumer a shallow copy of each mutable container, of the
  same type (a ``dict`` stays a ``dict``, a subclass its subclass), holding the very
  same (frozen) arrays: the generator's rebinding then changes only its own container.
  Tuples and namedtuples are immutable and passed as they are.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from safegen._structure import Path, _items, _rebuild, is_foreign

__all__ = ["ContainerWatch", "Rebound", "detach", "unprotected_leaves"]

_MUTABLE = (dict, list)


_NESTABLE = (dict, list, tuple)


def _nests(node: Any) -> bool:
    """Whether ``node`` is a container the walk goes into (see safegen._structure)."""
    return isinstance(node, _NESTABLE) or (
        not isinstance(node, np.ndarray) and _items(node) is not None
    )


def _walk(value: Any) -> list[tuple[Path, Any]]:
    """Every node of ``value``'s nesting of dicts, lists, tuples and other mappings and
    sequences (each container once, itself included, then its children), with their
    paths."""
    out: list[tuple[Path, Any]] = [((), value)]
    stack: list[tuple[Path, Any]] = [((), value)]
    seen: set[int] = set()
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, (list, tuple)):
            children = enumerate(node)
        elif isinstance(node, np.ndarray) or (children := _items(node)) is None:
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        for key, child in children:
            out.append(((*path, key), child))
            if _nests(child):
                stack.append(((*path, key), child))
    return out


def _containers(value: Any) -> list[tuple[Path, Any]]:
    """The mutable containers in ``value`` (itself included), with their paths."""
    kind = type(value)
    if kind is list or kind is dict:  # the usual batch: one flat list or dict
        for child in value.values() if kind is dict else value:
            if type(child) is not np.ndarray and _nests(child):
                break
        else:
            return [((), value)]
    found: dict[int, tuple[Path, Any]] = {}
    for path, node in _walk(value):
        if isinstance(node, _MUTABLE):
            found.setdefault(id(node), (path, node))
    return list(found.values())


def _snapshot(container: Any) -> tuple[Any, ...]:
    """What ``container`` holds: its children (and keys), compared by identity."""
    if isinstance(container, dict):
        return tuple(container.items())
    return tuple(container)


def _rebound(container: Any, before: tuple[Any, ...]) -> tuple[list[Any], tuple[int, ...]]:
    """The keys (or indices) whose child is not the object it was in ``before``; for a
    list that grew or shrank, also its length before and after (else ``()``)."""
    if isinstance(container, dict):
        old = dict(before)
        keys = [k for k, v in container.items() if k not in old or old[k] is not v]
        keys += [k for k in old if k not in container]
        return keys, ()
    pairs = enumerate(zip(container, before, strict=False))
    changed: list[Any] = [i for i, (a, b) in pairs if a is not b]
    if len(container) != len(before):
        return changed, (len(before), len(container))
    return changed, ()


class Rebound:
    """A container yielded again after a key or index in it was rebound."""

    __slots__ = ("changed_yield", "container", "keys", "lengths", "path")

    def __init__(
        self,
        path: Path,
        container: Any,
        keys: list[Any],
        changed_yield: int,
        lengths: tuple[int, ...] = (),
    ) -> None:
        self.path = path
        self.container = container
        self.keys = keys
        self.changed_yield = changed_yield
        self.lengths = lengths  # a list that grew or shrank: (before, after)


class ContainerWatch:
    """Check mode's record of the mutable containers of the last ``window`` yields."""

    __slots__ = ("by_id", "recent", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        # id -> [container, snapshot, yield number]; the container is kept alive, so
        # its id is not reused while it is watched.
        self.by_id: dict[int, list[Any]] = {}
        self.recent: collections.deque[tuple[int, list[int]]] = collections.deque()

    def check(self, value: Any, count: int) -> list[Rebound]:
        """Watch the containers of yield ``count``; return those yielded before and
        changed since."""
        found: list[Rebound] = []
        ids: list[int] = []
        by_id = self.by_id
        for path, container in _containers(value):
            key = id(container)
            entry = by_id.get(key)
            if entry is None:
                by_id[key] = [container, _snapshot(container), count]
            else:
                keys, lengths = _rebound(container, entry[1])
                if keys or lengths:
                    found.append(Rebound(path, container, keys, entry[2], lengths))
                entry[1] = _snapshot(container)
                entry[2] = count
            ids.append(key)
        recent = self.recent
        recent.append((count, ids))
        if len(recent) > self.window:
            old_count, old_ids = recent.popleft()
            for key in old_ids:
                entry = by_id.get(key)
                if entry is not None and entry[2] == old_count:  # not yielded again since
                    del by_id[key]
        return found


def detach(value: Any, _depth: int = 0) -> Any:
    """``value`` with every mutable container replaced by a shallow copy of its own type
    (the leaves are the same objects); immutable containers are rebuilt only when they
    hold a copied one. Freeze mode hands this to the consumer (see the module docstring).
    """
    if _depth > 64:  # a container that holds itself, or absurd nesting: left as it is
        return value
    if isinstance(value, _MUTABLE):
        children = list(value.values()) if isinstance(value, dict) else list(value)
        return _rebuild(value, [detach(child, _depth + 1) for child in children])
    if isinstance(value, tuple) and any(isinstance(c, (dict, list, tuple)) for c in value):
        children = [detach(child, _depth + 1) for child in value]
        if all(a is b for a, b in zip(children, value, strict=True)):
            return value
        return _rebuild(value, children)
    return value


def unprotected_leaves(value: Any) -> list[tuple[Path, Any]]:
    """The leaves of ``value`` that hold mutable memory but are not NumPy arrays (pandas
    objects, ``bytearray``, DLPack tensors): freeze mode cannot make them read-only."""
    return [(path, node) for path, node in _walk(value) if is_foreign(node)]
