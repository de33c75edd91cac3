"""Keras 2 (``tf_keras``) layers that check their real output against the shape they declare.

The same design as the Keras 3 integration (``safegen.integrations.keras.layers``):
:func:`ShapeChecked` switches the class of one layer object to a subclass of its own class
(same name and module) that overrides only ``call``, so the layer keeps its signature,
build, weights, variable names, layer name and summary. The check, the error text and
hints are the same (``safegen.integrations._checked_layers``, ``safegen._shapes``); this
module holds what Keras 2 does its own way.

What differs from Keras 3:

* the declared shape is ``output_shape`` given to ``ShapeChecked``, else the layer's
  ``compute_output_shape`` for the shapes of its first argument (Keras 2's own rule);
* Keras 2 builds a functional model by calling each layer on symbolic tensors, so a
  wrong *static* rank is reported already when the model is built, and again, once per
  trace, in ``fit``/``predict``;
* saved files (``.keras``, SavedModel, HDF5) store the plain layer: a reloaded model does
  not check until ``ShapeChecked``/``check_layers`` is applied again;
* run-time assertion messages are the short form (without the static and declared
  shapes), and the batch dimension is asserted at run time even where the first input's
  rank is unknown (Keras 3 skips that case).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras

from safegen._shapes import CheckMode, Shape
from safegen.integrations._checked_layers import LayerChecks, subclass
from safegen.integrations._output_check import OutputCheck

__all__ = [
    "CHECKS",
    "install_lambda_checks",
    "is_checked",
]


def _flatten_with_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, Any]]:
    """(path, leaf) pairs in tf.nest order (dict keys sorted)."""
    if isinstance(value, dict):
        return [pl for k in sorted(value) for pl in _flatten_with_paths(value[k], (*path, k))]
    if isinstance(value, (list, tuple)):
        return [pl for i, v in enumerate(value) for pl in _flatten_with_paths(v, (*path, i))]
    return [(path, value)]


def _flatten_declared(value: Any) -> list[Shape | None]:
    """Flattens what compute_output_shape returned, in tf.nest order."""
    if isinstance(value, tf.TensorShape):
        return [None if value.rank is None else tuple(value.as_list())]
    if isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value):
        return [value]
    if isinstance(value, dict):
        return [s for k in sorted(value) for s in _flatten_declared(value[k])]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _flatten_declared(v)]
    return [None]


class _TfKerasCheck(OutputCheck):
    """The output check for ``tf_keras`` layers; ``args[0]`` is the ``inputs`` argument."""

    detailed_runtime_messages = False
    skip_batch_without_input_batch = False

    def is_tensor(self, x: Any) -> bool:
        return bool(tf.is_tensor(x)) or type(x).__name__ == "KerasTensor"

    def static_shape(self, x: Any) -> Shape | None:
        shape = tf.TensorShape(x.shape)
        if shape.rank is None:
            return None
        return tuple(None if d is None else int(d) for d in shape.as_list())

    def flatten(self, structure: Any) -> list[Any]:
        leaves: list[Any] = tf.nest.flatten(structure)
        return leaves

    def flatten_with_path(self, structure: Any) -> list[tuple[tuple[Any, ...], Any]]:
        return _flatten_with_paths(structure)

    def pack_sequence_as(self, structure: Any, flat: list[Any]) -> Any:
        return tf.nest.pack_sequence_as(structure, flat)

    def inference(
        self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Callable[[], Any], str]:
        """Keras 2's rule: ``compute_output_shape`` for the shapes of the first argument."""
        lambda_shape = getattr(layer, "_output_shape", None)
        if isinstance(layer, tf_keras.layers.Lambda) and lambda_shape is not None:
            source = (
                "the Lambda's output_shape function"
                if callable(lambda_shape)
                else f"the Lambda's output_shape={lambda_shape!r}"
            )
        else:
            source = f"{type(layer).__name__}.compute_output_shape()"
        shapes = tf.nest.map_structure(lambda x: tf.TensorShape(x.shape), args[0])
        return (lambda: layer.compute_output_shape(shapes)), source

    def declared_shapes(self, declared: Any) -> list[Shape | None]:
        return _flatten_declared(declared)

    def assert_rank(self, x: Any, want: Shape, text: str) -> Any:
        tf.debugging.assert_equal(tf.rank(x), len(want), message=text)
        return x

    def assert_dim(self, x: Any, axis: int, expected: Any, text: str) -> None:
        tf.debugging.assert_equal(
            tf.shape(x)[axis],
            tf.shape(expected[1])[0] if isinstance(expected, tuple) else expected,
            message=text,
        )


class _TfKerasLayers(LayerChecks):
    framework = "tf_keras"
    layer_class = tf_keras.layers.Layer
    lambda_class = tf_keras.layers.Lambda
    model_class = tf_keras.Model
    layer_class_name = "tf_keras.layers.Layer"
    lambda_class_name = "tf_keras.layers.Lambda"

    def make_checked_class(self, base: Any) -> Any:
        return _make_checked_class(base)

    def checking_lambda_call(self, original: Any) -> Callable[..., Any]:
        @functools.wraps(original)
        def call(self: Any, inputs: Any, mask: Any = None, training: Any = None) -> Any:
            outputs = original(self, inputs, mask=mask, training=training)
            _check_lambda(self, (inputs,), {}, outputs)
            return outputs

        return call


_checks = _TfKerasLayers(_TfKerasCheck())
# What safegen.ShapeChecked, ShapeCheckedLambda, check_layers and unwrap call for this
# Keras (safegen._layers dispatches to it): the public functions are defined once, there.
CHECKS = _checks

# Autograph (tf_keras converts `call` in fit) must leave safegen's Python checks alone; the
# calls stay in `call` itself, so that the layer's own `call` is still converted.
_after_call: Callable[..., Any] = tf.autograph.experimental.do_not_convert(_checks.after_call)
_check_lambda: Callable[..., Any] = tf.autograph.experimental.do_not_convert(_checks.check_lambda)


def _make_checked_class(base: Any) -> Any:
    """The checked subclass of ``base``: ``call`` runs the original, then the check."""

    @functools.wraps(base.call)
    def call(self: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = super(checked, self).call(inputs, *args, **kwargs)
        _after_call(self, (inputs, *args), kwargs, outputs)
        return outputs

    call.__signature__ = inspect.signature(base.call)  # type: ignore[attr-defined]
    checked: Any = subclass(base, {"call": call})
    return checked


def is_checked(layer: Any) -> bool:
    """Whether ``layer`` is checked by :func:`ShapeChecked`.

    Example:
        >>> import tf_keras
        >>> is_checked(tf_keras.layers.Dense(1))
        False
    """
    return _checks.is_checked(layer)


def install_lambda_checks(check: CheckMode = "rank") -> Callable[[], None]:
    """Makes every ``tf_keras.layers.Lambda`` check its output; returns the undo function.

    The ``tf_keras`` counterpart of
    :func:`safegen.integrations.keras.layers.install_lambda_checks`.

    Example:
        >>> undo = install_lambda_checks()
        >>> undo()
    """
    return _checks.install_lambda_checks(check)
