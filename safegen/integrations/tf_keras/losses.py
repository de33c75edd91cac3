"""tf_keras (Keras 2) loss checks: the shapes each loss of a compiled model receives.

``model.compile(loss=...)`` keeps the losses in a ``LossesContainer``
(``model.compiled_loss``), built with the first batch. It expands a rank-1 ``y_true`` to
rank 2 when ``y_pred`` has rank 2 (``match_dtype_and_rank``), and a
``LossFunctionWrapper`` (built-in losses, plain functions) also squeezes a trailing
dimension of 1 (``squeeze_or_expand_dimensions``); a ``tf_keras.losses.Loss`` subclass
with its own ``call`` gets ``y_pred`` of shape ``(B,)`` against ``y_true`` ``(B, 1)`` as
they are. Once built, every loss that runs the user's code is replaced in the container
by a :class:`~safegen.integrations._checked_losses.CheckedLoss` (see that module),
whose loss is traced as a ``tf.function`` (:mod:`safegen.integrations._loss_graphs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras
from tf_keras.src.engine.compile_utils import LossesContainer
from tf_keras.src.losses import LossFunctionWrapper

from safegen._shapes import Shape
from safegen.integrations._checked_losses import (
    LossChecks,
    check_when_built,
    checking_build,
    retrace,
)
from safegen.integrations._loss_graphs import Traced, tf_trace
from safegen.integrations._patching import patch

__all__ = ["check_losses", "install_loss_checks"]


def _is_keras(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.startswith(("tf_keras.", "keras.", "tensorflow."))


class _TfKerasLosses(LossChecks):
    framework = "tf_keras"

    wrapper_class = LossFunctionWrapper
    loss_class = tf_keras.losses.Loss
    is_framework = staticmethod(_is_keras)

    def static_shape(self, x: Any) -> Shape | None:
        shape = getattr(x, "shape", None)
        if not isinstance(shape, tf.TensorShape) or shape.rank is None:
            return None
        return tuple(shape.as_list())

    def dtype_name(self, x: Any) -> str:
        return str(tf.as_dtype(x.dtype).name)

    def trace(self, loss: Any, st: Shape, sp: Shape, dt: str, dp: str) -> Traced | None:
        return tf_trace(loss.call, st, sp, dt, dp)


_checks = _TfKerasLosses()


def _wrap_entries(container: Any, *, always: bool) -> list[str]:
    names = [str(n) for n in (container._output_names or [])]
    several = sum(loss is not None for loss in container._losses) > 1
    container._losses = [
        _checks.wrap(loss, name if several else "", always=always)
        for loss, name in zip(container._losses, names, strict=False)
    ]
    return [n for n, loss in zip(names, container._losses, strict=False) if loss is not None]


def install_loss_checks() -> Callable[[], None]:
    """Makes every compiled tf_keras model check its losses' input shapes (for
    ``safegen.enable()``); returns the function that undoes it.

    Example:
        >>> undo = install_loss_checks()
        >>> undo()
    """

    def patch_build() -> Callable[[], None]:
        return patch(LossesContainer, "build", checking_build(_wrap_entries, always=False))

    return _checks.install(patch_build)


def check_losses(model: Any) -> list[str]:
    """Checks each loss of a compiled tf_keras model; see :func:`safegen.check_losses`.

    Example:
        >>> import tf_keras
        >>> model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,), name="d")])
        >>> model.compile(loss="mse")
        >>> check_losses(model)
        ['d']
    """
    if not isinstance(model, tf_keras.Model):
        raise TypeError(
            "check_losses(model): model must be a tf_keras model (tf_keras.Model); got "
            f"{model!r} of type {type(model).__name__}."
        )
    container = getattr(model, "compiled_loss", None)
    if not model._is_compiled:
        raise ValueError(
            f"check_losses(model): model {model.name!r} is not compiled; call "
            "model.compile(loss=...) first."
        )
    if not isinstance(container, LossesContainer):
        return []
    if container.built:
        names = _wrap_entries(container, always=True)
    else:
        check_when_built(container, _wrap_entries)
        names = [
            str(n) for n in (container._output_names or getattr(model, "output_names", None) or [])
        ]
    retrace(model)
    return names
