"""The random states a dataset or a generator can reach, and their fingerprints.

A worker process starts with a copy of every random state its parent held: NumPy's
global state, and each ``numpy.random.Generator``, ``RandomState`` and ``random.Random``
that the dataset (or a generator's frame) can reach. :func:`dataset_candidates` and
:func:`frame_candidates` list them, each with a label for messages and a resolver that
finds the same state again on the worker's copy; :func:`state_digest` fingerprints one.
The states CPython reseeds itself in a forked child (the ``random`` module's), and
``random.SystemRandom`` (no state), are left out. Read by the random-stream detectors
(:mod:`safegen._detectors.random_workers`).
"""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xxhash

__all__ = [
    "GLOBAL",
    "Candidates",
    "Resolver",
    "dataset_candidates",
    "frame_candidates",
    "is_state",
    "state_digest",
    "state_kind",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

GLOBAL = "NumPy's global state"

_RNG_TYPES = (np.random.Generator, np.random.RandomState, random.Random)


# -- Fingerprints ---------------------------------------------------------------------


def _feed(hasher: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        hasher.update(np.ascontiguousarray(value).view(np.uint8).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            hasher.update(str(key).encode())
            _feed(hasher, value[key])
    elif isinstance(value, (tuple, list)):
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(repr(value).encode())
        hasher.update(b"\0")


def state_digest(rng: Any) -> int:
    """A fingerprint of ``rng``'s state (``None``: NumPy's global state)."""
    if rng is None:
        state: Any = np.random.get_state(legacy=False)
    elif isinstance(rng, np.random.Generator):
        state = rng.bit_generator.state
    elif isinstance(rng, np.random.RandomState):
        state = rng.get_state(legacy=False)
    else:
        state = rng.getstate()
    hasher = xxhash.xxh3_64()
    _feed(hasher, state)
    return int(hasher.intdigest())


def _kind(rng: Any) -> str:
    cls = type(rng)
    module = cls.__module__
    if module in ("numpy.random._generator", "numpy.random.mtrand"):
        module = "numpy.random"  # where the user finds it
    return f"{module}.{cls.__name__}"


def is_state(value: Any) -> bool:
    """Whether ``value`` is a random state a worker process copies with its dataset (a
    ``Generator``, ``RandomState`` or ``random.Random``; not the global ones)."""
    return _is_rng(value)


def state_kind(rng: Any) -> str:
    """``"numpy.random.Generator"``: the type of ``rng`` as messages name it."""
    return _kind(rng)


def _is_rng(value: Any) -> bool:
    return (
        isinstance(value, _RNG_TYPES)
        and not isinstance(value, random.SystemRandom)  # no state: the OS's entropy
        and value is not getattr(random, "_inst", None)  # reseeded by CPython at fork
        and value is not getattr(np.random.mtrand, "_rand", None)  # the global state
    )


# -- The search -----------------------------------------------------------------------

Resolver = Callable[[Any], Any]
# What a search yields: (label, resolver, the state found).
Candidates = Callable[[Any], Iterator[tuple[str, Resolver, Any]]]


def _attribute(name: str, inner: str | None = None) -> Resolver:
    def resolve(dataset: Any) -> Any:
        value = dataset.__dict__.get(name)
        return value if inner is None else getattr(value, "__dict__", {}).get(inner)

    return resolve


def _global(module: types.ModuleType, name: str) -> Resolver:
    return lambda dataset: module.__dict__.get(name)


def dataset_candidates(dataset: Any) -> Iterator[tuple[str, Resolver, Any]]:
    """Random states reachable from ``dataset``: its attributes, their attributes, the
    locals of the generator objects it holds (a ``RandomState`` a generator made on its
    first ``next()``, in the parent, is copied into each worker with it), and the module
    globals of its class's code."""
    for name, value in list(vars(dataset).items()):
        if _is_rng(value):
            yield f"`self.{name}` ({_kind(value)})", _attribute(name), value
        elif isinstance(value, types.GeneratorType):
            for local, get, item in _frame_locals(value):
                label = f"{local} in the generator `self.{name}` ({_kind(item)})"
                yield label, _in_generator(name, get), item
        elif not isinstance(value, (type, types.ModuleType, np.ndarray)):
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, dict):
                for key, item in list(inner.items()):
                    if _is_rng(item):
                        label = f"`self.{name}.{key}` ({_kind(item)})"
                        yield label, _attribute(name, key), item
    for cls in type(dataset).__mro__:
        module = sys.modules.get(cls.__module__)
        if module is None or cls.__module__.startswith(("keras", "tensorflow", "tf_keras")):
            continue
        for name, value in list(vars(module).items()):
            if _is_rng(value):
                yield f"`{module.__name__}.{name}` ({_kind(value)})", _global(module, name), value
        break  # the dataset's own module only


def _in_generator(name: str, get: Resolver) -> Resolver:
    return lambda dataset: get(dataset.__dict__.get(name))


def _local(name: str, inner: str | None = None) -> Resolver:
    def resolve(generator: Any) -> Any:
        frame = getattr(generator, "gi_frame", None)
        value = None if frame is None else frame.f_locals.get(name)
        return value if inner is None else getattr(value, "__dict__", {}).get(inner)

    return resolve


def _frame_locals(generator: Any) -> Iterator[tuple[str, Resolver, Any]]:
    """Random states among a suspended generator's locals and their attributes, as
    (label, getter from the generator, state); none once it has finished."""
    frame = getattr(generator, "gi_frame", None)
    if frame is None:
        return
    for name, value in list(frame.f_locals.items()):
        if _is_rng(value):
            yield f"`{name}`", _local(name), value
        elif not isinstance(value, (type, types.ModuleType, np.ndarray)):
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, dict):
                for key, item in list(inner.items()):
                    if _is_rng(item):
                        yield f"`{name}.{key}`", _local(name, key), item


def frame_candidates(generator: Any) -> Iterator[tuple[str, Resolver, Any]]:
    """Random states reachable from a suspended generator: its frame's locals, their
    attributes (``self.rng`` in a generator method), and the module globals of its code.
    None for an iterator that is not a generator."""
    frame = getattr(generator, "gi_frame", None)
    if frame is None:
        return
    for label, get, value in _frame_locals(generator):
        yield f"{label} ({_kind(value)})", get, value
    module = sys.modules.get(frame.f_globals.get("__name__", ""))
    if module is not None and not module.__name__.startswith(("keras", "tensorflow", "tf_keras")):
        for name, value in list(vars(module).items()):
            if _is_rng(value):
                yield f"`{module.__name__}.{name}` ({_kind(value)})", _global(module, name), value
