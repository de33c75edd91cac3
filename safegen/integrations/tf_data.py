"""``safegen.enable()`` for tf.data: guard every callable given to ``Dataset.from_generator``.

Callables that Keras or tf_keras pass in themselves are left alone: they read from a
source that the training-method integration has already guarded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safegen import _enable
from safegen._sources import guard_source, is_guarded
from safegen.integrations._patching import patch, reraise_safegen_error

__all__ = ["install"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_FRAMEWORK_MODULES = ("keras.", "tf_keras.", "tensorflow.")


def _guarded(generator: Any) -> Any:
    options = _enable.options()
    if options is None or not callable(generator) or is_guarded(generator):
        return generator
    module = getattr(generator, "__module__", None) or ""
    if module.startswith(_FRAMEWORK_MODULES):
        return generator
    return guard_source(generator, options.options)


def install() -> Callable[[], None]:
    """Patch ``tf.data.Dataset.from_generator``, and the dataset iterator so that an
    error safegen raised in a data thread comes out as itself; returns the undo."""
    from tensorflow.python.data.ops import dataset_ops, iterator_ops

    def from_generator(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if args:
            args = (_guarded(args[0]), *args[1:])
        elif "generator" in kwargs:
            kwargs = {**kwargs, "generator": _guarded(kwargs["generator"])}
        return wrapped(*args, **kwargs)

    def next_(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except StopIteration:
            raise
        except Exception as error:
            reraise_safegen_error(error)
            raise

    undos = [
        patch(dataset_ops.DatasetV2, "from_generator", from_generator),
        patch(iterator_ops.OwnedIterator, "__next__", next_),
    ]

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo
