"""Walking the structures generators yield: tuples, lists, dicts, namedtuples.

Leaves are NumPy arrays (``np.ndarray`` and its subclasses); everything else (Python
scalars, str, bytes, None, NumPy scalars, tf/jax/torch tensors, sets, unknown objects) is
left alone. Containers are walked without recursion, so any depth works, and a container
that contains itself is walked once (the inner reference is left alone).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from safegen._errors import SafegenWarning
from safegen._frames import user_stacklevel

__all__ = ["Field", "format_path", "leaves", "map_arrays"]

Path = tuple[Any, ...]
_ndarray = np.ndarray


class Field(str):
    """A namedtuple field name inside a path (formatted ``.name``, not ``['name']``)."""

    __slots__ = ()


def format_path(path: Path) -> str:
    """``(0, 'image', Field('x'))`` -> ``"[0]['image'].x"``; ``()`` -> ``""``."""
    parts = []
    for key in path:
        if isinstance(key, Field):
            parts.append(f".{key}")
        else:
            parts.append(f"[{key!r}]")
    return "".join(parts)


def _items(container: Any) -> list[tuple[Any, Any]] | None:
    """The ``(key, child)`` pairs of a container safegen walks, or ``None`` for a leaf."""
    if isinstance(container, tuple):
        fields = getattr(type(container), "_fields", None)
        if isinstance(fields, tuple) and len(fields) == len(container):
            return [(Field(name), child) for name, child in zip(fields, container, strict=True)]
        return list(enumerate(container))
    if isinstance(container, list):
        return list(enumerate(container))
    if isinstance(container, dict):
        return list(container.items())
    return None


def leaves(value: Any) -> list[tuple[Path, np.ndarray]]:
    """Every array in ``value`` with its path, in depth-first order.

    Example:
        >>> import numpy as np
        >>> x, y = np.zeros(2), np.ones(1)
        >>> [(format_path(p), a.shape) for p, a in leaves(([x], {"y": y}))]
        [('[0][0]', (2,)), ("[1]['y']", (1,))]
    """
    kind = type(value)
    if kind is _ndarray:
        return [((), value)]
    out: list[tuple[Path, np.ndarray]] = []
    # Fast path: a flat tuple or list of plain arrays (the most common batch).
    if kind is tuple or kind is list:
        for i, child in enumerate(value):
            if type(child) is not _ndarray:
                break
            out.append(((i,), child))
        else:
            return out
        out.clear()
    if isinstance(value, _ndarray):
        return [((), value)]
    stack: list[tuple[Path, Any]] = [((), value)]
    active: set[int] = set()
    while stack:
        path, node = stack.pop()
        if isinstance(node, _ndarray):
            out.append((path, node))
            continue
        if id(node) in active:
            continue
        items = _items(node)
        if items is None:
            continue
        active.add(id(node))
        stack.extend((path + (key,), child) for key, child in reversed(items))
    return out


def _rebuild(container: Any, children: list[Any]) -> Any:
    """A container like ``container`` holding ``children`` instead of its own.

    Namedtuples and list and dict subclasses keep their type (and, for list and dict
    subclasses, their attributes). A container whose type cannot be rebuilt that way (an
    immutable mapping, a tuple subclass with its own ``__new__``) becomes a plain tuple,
    list or dict, with a :class:`safegen.SafegenWarning` that names the type.
    """
    kind = type(container)
    if kind is tuple:
        return tuple(children)
    if kind is list:
        return children
    if kind is dict:
        return dict(zip(container.keys(), children, strict=True))
    try:
        if isinstance(container, tuple):
            if hasattr(kind, "_fields"):
                return kind(*children)
            rebuilt = kind(children)
            if len(rebuilt) != len(children) or any(
                a is not b for a, b in zip(rebuilt, children, strict=False)
            ):
                raise TypeError(f"{kind.__qualname__}(items) does not hold those items")
            return rebuilt
        new = copy.copy(container)
        if isinstance(container, list):
            new[:] = children
        else:
            for key, child in zip(container.keys(), children, strict=True):
                new[key] = child
        return new
    except Exception as error:
        plain: Any
        if isinstance(container, tuple):
            plain = tuple(children)
        elif isinstance(container, list):
            plain = list(children)
        else:
            plain = dict(zip(container.keys(), children, strict=True))
        warnings.warn(
            f"safegen: cannot rebuild a {kind.__qualname__} around copied arrays "
            f"({type(error).__name__}: {error}); copy mode yields a plain "
            f"{type(plain).__name__} in its place",
            SafegenWarning,
            stacklevel=user_stacklevel(),
        )
        return plain


def map_arrays(value: Any, fn: Callable[[np.ndarray], Any]) -> Any:
    """``value`` with every array ``a`` replaced by ``fn(a)``.

    Containers that hold no array come back as the very same objects; the others are
    rebuilt with their own type (namedtuples, dict and list subclasses included).

    Example:
        >>> import numpy as np
        >>> x = np.zeros(2)
        >>> out = map_arrays((x, "label"), np.copy)
        >>> out[0] is x, out[1]
        (False, 'label')
    """
    kind = type(value)
    if kind is _ndarray:
        return fn(value)
    if (kind is tuple or kind is list) and all(type(child) is _ndarray for child in value):
        new = [fn(child) for child in value]
        if all(a is b for a, b in zip(new, value, strict=True)):
            return value
        return tuple(new) if kind is tuple else new
    if isinstance(value, _ndarray):
        return fn(value)
    items = _items(value)
    if items is None:
        return value
    # Iterative post-order walk: each frame is [container, items, next index, children].
    active = {id(value)}
    frames: list[list[Any]] = [[value, items, 0, [], False]]
    while True:
        frame = frames[-1]
        container, items, index, children, changed = frame
        if index < len(items):
            frame[2] = index + 1
            child = items[index][1]
            if isinstance(child, _ndarray):
                new_child = fn(child)
            else:
                child_items = None if id(child) in active else _items(child)
                if child_items is not None:
                    active.add(id(child))
                    frames.append([child, child_items, 0, [], False])
                    continue
                new_child = child
            children.append(new_child)
            if new_child is not child:
                frame[4] = True
            continue
        frames.pop()
        active.discard(id(container))
        result = _rebuild(container, children) if changed else container
        if not frames:
            return result
        parent = frames[-1]
        parent[3].append(result)
        if result is not container:
            parent[4] = True
