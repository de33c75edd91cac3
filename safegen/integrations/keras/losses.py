"""Keras 3 loss checks: the shapes each loss of a compiled model receives (any backend).

``model.compile(loss=...)`` keeps the losses in a ``CompileLoss``, built with the first
batch (``fit`` builds it symbolically, before the first step). Each entry's loss is a
``keras.losses.Loss``: a built-in, a ``LossFunctionWrapper`` around a plain function
(whose ``call`` first squeezes or expands ``y_true``/``y_pred`` to one rank, in
``keras/src/losses/losses.py``), or the user's own subclass, whose ``call`` gets the two
as they are. Once built, every entry that runs the user's code is replaced by a
:class:`~safegen.integrations._checked_losses.CheckedLoss` (see that module for the
rule).

The loss is traced on its own, outside the train step's trace: a ``tf.function``
concrete function with TensorFlow, a jaxpr with JAX
(:mod:`safegen.integrations._loss_graphs`). Its inputs are converted to the loss's
dtype first, as ``Loss.__call__`` does, and a ``LossFunctionWrapper``'s ``call``
reconciles the ranks itself, as in training. Other backends (PyTorch, NumPy, OpenVINO)
are not traced: their losses are not reported.
"""

from __future__ import annotations

from collections.abc import Callable
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
from safegen.integrations._loss_graphs import Traced, jax_trace, tf_trace, torch_trace
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

    def trace(self, loss: Any, st: Shape, sp: Shape, dt: str, dp: str) -> Traced | None:
        backend = keras.backend.backend()
        dtype = loss.dtype

        def call(y_true: Any, y_pred: Any) -> Any:
            t = keras.ops.convert_to_tensor(y_true, dtype=dtype)
            p = keras.ops.convert_to_tensor(y_pred, dtype=dtype)
            return loss.call(t, p)

        if backend == "tensorflow":
            return tf_trace(call, st, sp, dt, dp)
        if backend == "jax" and None not in st and None not in sp:
            # (Unknown dimensions only in the symbolic build; the train step has them.)
            return jax_trace(call, st, sp, dt, dp)
        if backend == "torch" and None not in st and None not in sp:
            return torch_trace(call, st, sp, dt, dp)
        return None


_checks = _Keras3Losses()


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
