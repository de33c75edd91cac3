"""``safegen.enable()`` for tf.data: guard every callable given to ``Dataset.from_generator``.

Callables that Keras or tf_keras pass in themselves are left alone: they read from a
source that the training-method integration has already guarded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from safegen import _enable
from safegen._guard import guard, is_guarded
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
    return guard(generator, **options.overrides)


def install() -> Callable[[], None]:
    """Patch ``tf.data.Dataset.from_generator``, and the dataset iterator so that an
    error safegen raised in a data thread comes out as itself; returns the undo."""
    from tensorflow.python.data.ops import dataset_ops, iterator_ops

    dataset = dataset_ops.DatasetV2
    original = dataset.__dict__["from_generator"].__func__

    @functools.wraps(original)
    def from_generator(generator: Any, *args: Any, **kwargs: Any) -> Any:
        return original(_guarded(generator), *args, **kwargs)

    from_generator.__safegen_original__ = original  # type: ignore[attr-defined]
    undos = [patch(dataset, "from_generator", staticmethod(from_generator))]

    iterator = iterator_ops.OwnedIterator
    next_original = iterator.__next__

    @functools.wraps(next_original)
    def __next__(self: Any) -> Any:
        try:
            return next_original(self)
        except StopIteration:
            raise
        except Exception as error:
            reraise_safegen_error(error)
            raise

    __next__.__safegen_original__ = next_original  # type: ignore[attr-defined]
    undos.append(patch(iterator, "__next__", __next__))

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo
