"""Walking the structures generators yield: tuples, lists, dicts, namedtuples (and their
subclasses), and a few other containers that hold their items in memory:
``types.MappingProxyType``, ``collections.UserDict``, ``collections.UserList`` and
``collections.deque`` (and their subclasses), read through ``items()``, iteration or
indexing up to ``len()``, never written to. A container that fails while it is read is
a leaf.

Other ``collections.abc.Mapping`` and ``Sequence`` implementations are leaves, not
walked: reading one may load data (``np.load``'s ``NpzFile``, ``shelve``, h5py and zarr
groups read an array per key, on every yield), never end (a cyclic ``__getitem__``, which
``Sequence.__iter__`` indexes until ``IndexError``), or raise (a ``KeyError`` past the
end).

Leaves are NumPy arrays (``np.ndarray`` and its subclasses) and the other objects that
hold mutable memory, seen through NumPy views of it: pandas ``DataFrame`` (each column
of a NumPy dtype) and ``Series`` (pandas is recognised only if the program imported it;
safegen never imports it), objects exporting the buffer protocol (``bytearray``,
``array.array``, ``memoryview``) and CPU DLPack producers (PyTorch tensors) through
``np.from_dlpack`` (a torch tensor that requires grad through ``detach()``, one of a
dtype NumPy lacks, such as ``bfloat16``, as its bytes). Everything else (Python
scalars, str, bytes, None, NumPy scalars,
TensorFlow and JAX tensors, which are immutable, sets, which cannot hold arrays because
arrays are unhashable, iterators, which would be consumed, and other objects, whose
attributes are not looked into) is left alone.
Containers are walked without recursion, so any depth works, and a container that
contains itself is walked once (the inner reference is left alone).
"""

from __future__ import annotations

import array as _array_module
import copy
import sys
import warnings
from collections import UserDict, UserList, deque
from collections.abc import Callable, Mapping, MutableSequence
from types import MappingProxyType
from typing import Any

import numpy as np

from safegen._errors import SafegenWarning
from safegen._frames import user_stacklevel

__all__ = ["Field", "foreign_views", "format_path", "is_foreign", "leaves", "map_arrays"]

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
    if type(container) in _PLAIN or not isinstance(container, _OTHER_WALKED):
        return None
    # The other containers that hold their items in memory: read only, and a leaf if that
    # fails (a subclass's own __getitem__, another thread mutating a deque).
    try:
        if isinstance(container, Mapping):
            return list(container.items())
        if isinstance(container, deque):
            return list(enumerate(container))
        return [(index, container[index]) for index in range(len(container))]
    except Exception:
        return None


# Leaves that never hold mutable memory: skipped without further checks.
_PLAIN = frozenset({int, float, complex, bool, str, bytes, type(None)})
# Walked besides tuples, lists and dicts (see the module docstring); any other Mapping
# or Sequence is a leaf.
_OTHER_WALKED = (MappingProxyType, UserDict, UserList, deque)
# DLPack producers whose tensors are immutable: not checked, not copied.
_IMMUTABLE_TENSORS = ("jax", "jaxlib", "tensorflow", "keras")
_BUFFERS = (bytearray, _array_module.array, memoryview)
_DLPACK_CPU = (1, 3)  # kDLCPU, kDLCUDAHost


def _pandas_types(node: Any) -> str:
    """``"frame"``, ``"series"`` or ``""``; pandas is looked up, never imported."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return ""
    if isinstance(node, pandas.DataFrame):
        return "frame"
    if isinstance(node, pandas.Series):
        return "series"
    return ""


def _is_dlpack(node: Any) -> bool:
    kind = type(node)
    if not hasattr(kind, "__dlpack__") or isinstance(node, (np.ndarray, np.generic)):
        return False
    module = getattr(kind, "__module__", "") or ""
    if module.split(".")[0] in _IMMUTABLE_TENSORS:
        return False
    try:
        return int(node.__dlpack_device__()[0]) in _DLPACK_CPU
    except Exception:
        return False


def is_foreign(node: Any) -> bool:
    """Whether ``node`` is a leaf other than an ndarray that safegen checks and copies.

    Example:
        >>> import numpy as np
        >>> is_foreign(bytearray(b"ab")), is_foreign(b"ab"), is_foreign(np.zeros(2))
        (True, False, False)
    """
    kind = type(node)
    if kind in _PLAIN or isinstance(node, np.ndarray):
        return False
    return isinstance(node, _BUFFERS) or bool(_pandas_types(node)) or _is_dlpack(node)


def _buffer_view(node: Any) -> np.ndarray | None:
    """A NumPy view of a buffer-protocol object's memory (typed when NumPy can)."""
    try:
        view = np.asarray(node if isinstance(node, memoryview) else memoryview(node))
    except (ValueError, TypeError, NotImplementedError):
        try:
            view = np.frombuffer(node, np.uint8)
        except (ValueError, TypeError, BufferError):
            return None
    return view if view.dtype != object else None


def foreign_views(node: Any) -> list[tuple[Path, np.ndarray]]:
    """NumPy views of the memory behind a leaf that :func:`is_foreign` accepts.

    A ``DataFrame`` gives one view per column of a NumPy dtype (path: the column name);
    columns of pandas' own dtypes (categorical, nullable, Arrow strings) and the index
    are not checked. A ``Series`` of a NumPy dtype, a buffer-protocol object or a CPU
    DLPack tensor gives one view of all of its memory.

    Example:
        >>> import numpy as np
        >>> [(p, a.dtype.name, a.shape) for p, a in foreign_views(bytearray(3))]
        [((), 'uint8', (3,))]
    """
    if isinstance(node, _BUFFERS):
        view = _buffer_view(node)
        return [] if view is None else [((), view)]
    pandas_kind = _pandas_types(node)
    if pandas_kind == "series":
        if not isinstance(node.dtype, np.dtype):
            return []
        return [((), node.to_numpy(copy=False))]
    if pandas_kind == "frame":
        out = []
        for position, name in enumerate(node.columns):
            column = node.iloc[:, position]
            if isinstance(column.dtype, np.dtype):
                out.append(((name,), column.to_numpy(copy=False)))
        return out
    try:
        return [((), np.from_dlpack(node))]
    except Exception:  # a tensor that needs grad, of a dtype NumPy lacks, on a GPU, ...
        return _torch_view(node)


def _torch_view(node: Any) -> list[tuple[Path, np.ndarray]]:
    """A NumPy view of a CPU torch tensor's memory that ``np.from_dlpack`` refused: one
    that requires grad (through ``detach()``, which shares the memory), or of a dtype
    NumPy lacks (``bfloat16``, read as its bytes); ``[]`` for anything else. torch is
    looked up, never imported."""
    torch: Any = sys.modules.get("torch")
    tensor_type = getattr(torch, "Tensor", None)
    if tensor_type is None or not isinstance(node, tensor_type):
        return []
    try:
        tensor = node.detach()
        try:
            return [((), np.from_dlpack(tensor))]
        except Exception:
            if not tensor.is_contiguous():
                return []
            return [((), np.from_dlpack(tensor.reshape(-1).view(torch.uint8)))]
    except Exception:  # on another device, sparse, ...: left alone
        return []


def leaves(value: Any, foreign: bool = True) -> list[tuple[Path, np.ndarray]]:
    """Every array in ``value`` with its path, in depth-first order.

    With ``foreign`` (the default), the leaves :func:`is_foreign` accepts are given as
    NumPy views of their memory (:func:`foreign_views`).

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
            if foreign and is_foreign(node):
                out.extend((path + sub, view) for sub, view in foreign_views(node))
            continue
        active.add(id(node))
        stack.extend((path + (key,), child) for key, child in reversed(items))
    return out


def _rebuild(container: Any, children: list[Any]) -> Any:
    """A container like ``container`` holding ``children`` instead of its own.

    Namedtuples and list and dict subclasses keep their type (and, for list and dict
    subclasses, their attributes); a ``deque`` keeps its ``maxlen``; a
    ``MappingProxyType``, ``UserDict`` or ``UserList`` is built by its own type from a
    plain ``dict`` or ``list`` of the children, if that gives
    back exactly those children. A container whose type cannot be rebuilt that way (a
    dict subclass that refuses item assignment, a tuple subclass with its own
    ``__new__``, a mapping whose constructor takes something else) becomes a plain
    tuple, list or dict, with a :class:`safegen.SafegenWarning` that names the type.
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
        if isinstance(container, (list, dict)):
            new = copy.copy(container)
            if isinstance(container, list):
                new[:] = children
            else:
                for key, child in zip(container.keys(), children, strict=True):
                    new[key] = child
            return new
        if isinstance(container, Mapping):
            keys = list(container.keys())
            rebuilt = kind(dict(zip(keys, children, strict=True)))
            if len(rebuilt) != len(keys) or any(
                rebuilt[key] is not child for key, child in zip(keys, children, strict=True)
            ):
                raise TypeError(f"{kind.__qualname__}(dict) does not hold those items")
            return rebuilt
        rebuilt = (
            kind(children, container.maxlen) if isinstance(container, deque) else kind(children)
        )
        if len(rebuilt) != len(children) or any(
            a is not b for a, b in zip(rebuilt, children, strict=False)
        ):
            raise TypeError(f"{kind.__qualname__}(list) does not hold those items")
        return rebuilt
    except Exception as error:
        plain: Any
        if isinstance(container, Mapping):
            plain = dict(zip(container.keys(), children, strict=True))
        elif isinstance(container, MutableSequence):
            plain = list(children)
        else:
            plain = tuple(children)
        warnings.warn(
            f"safegen: cannot rebuild a {kind.__qualname__} around copied arrays "
            f"({type(error).__name__}: {error}); copy mode yields a plain "
            f"{type(plain).__name__} in its place",
            SafegenWarning,
            stacklevel=user_stacklevel(),
        )
        return plain


def map_arrays(
    value: Any, fn: Callable[[np.ndarray], Any], other: Callable[[Any], Any] | None = None
) -> Any:
    """``value`` with every array ``a`` replaced by ``fn(a)``, and, if ``other`` is given,
    every leaf ``x`` that :func:`is_foreign` accepts by ``other(x)``.

    Containers that hold no array come back as the very same objects; the others are
    rebuilt with their own type (namedtuples, dict and list subclasses, other mappings
    and sequences included; see :func:`_rebuild`).

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
        return other(value) if other is not None and is_foreign(value) else value
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
                new_child = other(child) if other is not None and is_foreign(child) else child
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
