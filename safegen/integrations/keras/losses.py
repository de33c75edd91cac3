"""Keras 3 loss checks: the shapes each loss of a compiled model receives (any backend).

``model.compile(loss=...)`` keeps the losses in a ``CompileLoss``, built with the first
batch (``fit`` builds it symbolically, before the first step). Each entry's loss is a
``keras.losses.Loss``: a built-in, a ``LossFunctionWrapper`` around a plain function
(whose ``call`` first squeezes or expands ``y_true``/``y_pred`` to one rank, in
``keras/src/losses/losses.py``), or the user's own subclass, whose ``call`` gets the two
as they are. Once built, every entry that runs the user's code is replaced by a
:class:`~safegen.integrations._checked_losses.CheckedLoss` (see that module for the
rule).

The test run of a suspicious loss happens outside the trace: under ``tf.init_scope()``
with TensorFlow, ``jax.ensure_compile_time_eval()`` with JAX.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras.src.losses.losses import LossFunctionWrapper
from keras.src.trainers.compile_utils import CompileLoss

from safegen._shapes import Shape
from safegen.integrations._checked_losses import (
    LossChecks,
    check_when_built,
    checking_build,
    retrace,
)
from safegen.integrations._patching import patch

__all__ = ["check_losses", "install_loss_checks"]

_KERAS_MODULES = ("keras.", "keras_hub.", "keras_cv.", "keras_nlp.")


def _is_keras(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == "keras" or module.startswith(_KERAS_MODULES)


class _Keras3Losses(LossChecks):
    framework = "Keras 3"

    wrapper_class = LossFunctionWrapper
    loss_class = keras.losses.Loss
    is_framework = staticmethod(_is_keras)

    def static_shape(self, x: Any) -> Shape | None:
        shape = getattr(x, "shape", None)
        if shape is None or getattr(shape, "rank", 0) is None:
            return None
        try:
            return tuple(None if d is None else int(d) for d in shape)
        except TypeError:
            return None

    def dtype_name(self, x: Any) -> str:
        return str(keras.backend.standardize_dtype(x.dtype))

    def reconcile(self, y_true: Shape, y_pred: Shape) -> tuple[Shape, Shape]:
        # keras.src.losses.loss.squeeze_or_expand_to_same_rank, on shapes.
        if len(y_true) == len(y_pred) + 1 and y_true[-1] == 1:
            return (y_true, (*y_pred, 1)) if len(y_pred) == 1 else (y_true[:-1], y_pred)
        if len(y_pred) == len(y_true) + 1 and y_pred[-1] == 1:
            return ((*y_true, 1), y_pred) if len(y_true) == 1 else (y_true, y_pred[:-1])
        return y_true, y_pred

    def evaluate(self, loss: Any, y_true: Any, y_pred: Any) -> Any:
        with _outside_trace():
            dtype = loss.dtype
            t = keras.ops.convert_to_tensor(y_true, dtype=dtype)
            p = keras.ops.convert_to_tensor(y_pred, dtype=dtype)
            return keras.ops.convert_to_numpy(loss.call(t, p))


_checks = _Keras3Losses()


@contextlib.contextmanager
def _outside_trace() -> Iterator[None]:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.init_scope():
            yield
    elif backend == "jax":
        import jax

        with jax.ensure_compile_time_eval():
            yield
    else:
        yield


def _wrap_entries(compile_loss: Any, *, always: bool) -> list[str]:
    entries = compile_loss._flat_losses or []
    several = len(entries) > 1  # a single loss is named after the loss, not the output
    compile_loss._flat_losses = [
        entry._replace(
            loss=_checks.wrap(entry.loss, str(entry.name) if several else "", always=always)
        )
        for entry in entries
    ]
    return [str(entry.name) for entry in entries]


def install_loss_checks() -> Callable[[], None]:
    """Makes every compiled Keras 3 model check its losses' input shapes (for
    ``safegen.enable()``); returns the function that undoes it.

    Patches ``CompileLoss.build``: a model compiled before or after this call is checked
    when its loss is built (with the first batch of ``fit``/``evaluate``).

    Example:
        >>> undo = install_loss_checks()
        >>> undo()
    """

    def patch_build() -> Callable[[], None]:
        return patch(CompileLoss, "build", checking_build(_wrap_entries, always=False))

    return _checks.install(patch_build)


def _output_names(model: Any, compile_loss: Any) -> list[str]:
    """The model's output names, as ``CompileLoss`` will name them once built."""
    names = compile_loss.output_names or getattr(model, "output_names", None)
    if names:
        return [str(n) for n in names]
    try:
        outputs = model.outputs or []
    except (AttributeError, ValueError):  # a subclassed model not yet called
        return []
    return [str(getattr(getattr(t, "_keras_history", None), "operation", t).name) for t in outputs]


def check_losses(model: Any) -> list[str]:
    """Checks each loss of a compiled Keras 3 model; see :func:`safegen.check_losses`.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
        >>> model.compile(loss="mse")
        >>> check_losses(model)
        ['d']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "check_losses(model): model must be a Keras 3 model (keras.Model); got "
            f"{model!r} of type {type(model).__name__}."
        )
    if not model.compiled:
        raise ValueError(
            f"check_losses(model): model {model.name!r} is not compiled; call "
            "model.compile(loss=...) first."
        )
    compile_loss = model._compile_loss
    if compile_loss is None:
        return []
    if compile_loss.built:
        names = _wrap_entries(compile_loss, always=True)
        if len(names) == 1:  # named after the loss, not the output
            names = _output_names(model, compile_loss)[:1] or names
    else:
        check_when_built(compile_loss, _wrap_entries)
        names = _output_names(model, compile_loss)
    retrace(model)
    return names
