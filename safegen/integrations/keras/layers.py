"""Keras 3 layers that check their real output against the shape they declare.

Keras 3 never compares what a layer *returns* with what it *declares*: a ``Lambda``
computing ``(x[:, 0] + x[:, 1]) / 2`` returns ``(batch,)`` while ``output_shape=(1,)``
declares ``(batch, 1)``, the model reports ``(None, 1)``, and broadcasting or the losses
hide the difference.

How a layer is checked: :func:`ShapeChecked` switches the class of that one layer object
to a subclass of its own class that overrides ``call`` and ``quantized_call`` (the
original, then the check: ``_check`` for Keras 3's side of it, the comparison itself
in ``safegen.integrations._checked_layers``) and, for saving,
``get_config``/``from_config``. The subclass is made once per class, keeps the class's
name and module, and forwards ``call``'s signature, so the layer stays itself: the same
object, call
signature, build, input validation, weights, variable paths, name, summary, dtype policy
and autocast. The check's settings live in a plain attribute that neither Keras nor
TensorFlow tracks (``tf.saved_model.save`` and ``model.export()`` work). Keras's
serializer writes them into ``.keras`` files under the key ``"safegen"``, so a reloaded
model checks again; ``get_config()`` called by anyone else returns the plain layer's
config.

:func:`install_lambda_checks` patches ``keras.layers.Lambda.call`` instead, for
``safegen.enable()``: every Lambda checks, nothing is written to saved files.

When the check runs:

* **Static checks** (every rank known while the graph is traced, and every dimension
  whose size is known then) are decided in Python: eagerly on every call, and once per
  trace inside ``tf.function`` (``fit``/``predict``/``evaluate`` in graph mode,
  ``jit_compile=True``, JAX's ``jit``). They add no op to the graph.
* **Run-time checks** are needed for what is unknown at trace time: with
  ``check="shape"``, a dimension that is ``None`` (typically the batch), and with any
  check, an output whose *rank* is unknown (``ops.squeeze(x)`` without an axis on a
  batch of unknown size). With the TensorFlow backend they become
  ``tf.debugging.assert_equal`` ops; a failure raises ``tf.errors.InvalidArgumentError``
  whose message starts with ``ShapeError:``. XLA (``jit_compile=True``) compiles
  ``Assert`` ops to no-ops, so there an unknown rank is checked by a ``tf.ensure_shape``
  op instead (XLA knows every shape when it compiles), which fails with
  ``InvalidArgumentError`` and TensorFlow's own message ("Shape of tensor ... is not
  compatible with expected shape"); a ``None`` dimension is not checked under XLA.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import keras

from safegen._frames import callers
from safegen._shapes import CheckMode
from safegen.integrations._checked_layers import LayerChecks, subclass
from safegen.integrations._output_check import STATE_ATTR, CheckState
from safegen.integrations.keras._check import Keras3Check

__all__ = [
    "CHECKS",
    "install_lambda_checks",
    "is_checked",
]

_REGISTERED_NAME = "ShapeChecked"  # serialized as "safegen>ShapeChecked"


# --------------------------------------------------------------------------------------
# Checked classes: one subclass per layer class, overriding `call` and saving
# --------------------------------------------------------------------------------------


class _Keras3Layers(LayerChecks):
    framework = "Keras 3"
    layer_class = keras.layers.Layer
    lambda_class = keras.layers.Lambda
    model_class = keras.Model
    layer_class_name = "keras.layers.Layer"
    lambda_class_name = "keras.layers.Lambda"

    def make_checked_class(self, base: Any) -> Any:
        return _make_checked_class(base)

    def checking_lambda_call(self, original: Any) -> Callable[..., Any]:
        check_lambda = self.check_lambda

        @functools.wraps(original)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            outputs = original(self, *args, **kwargs)
            return check_lambda(self, args, kwargs, outputs)

        return call

    def validate_layer(self, layer: Any, name: str) -> None:
        if "call" in vars(layer):
            raise TypeError(
                f"ShapeChecked({name!r}): this layer has its own `call` attribute set on the "
                "instance, which would bypass the check; check the layer it delegates to."
            )

    def on_check(self, layer: Any) -> None:
        quantize = vars(layer).get("quantize")
        if quantize is not None and not getattr(quantize, "_safegen_plain_class", False):
            object.__setattr__(layer, "quantize", _as_plain_class(layer, quantize))

    def on_unwrap(self, layer: Any) -> None:
        quantize = vars(layer).get("quantize")
        if getattr(quantize, "_safegen_plain_class", False):
            object.__setattr__(layer, "quantize", quantize.__wrapped__)


_checks = _Keras3Layers(Keras3Check())
# What safegen.ShapeChecked, ShapeCheckedLambda, check_layers and unwrap call for this
# Keras (safegen._layers dispatches to it): the public functions are defined once, there.
CHECKS = _checks


def _make_checked_class(base: Any) -> Any:
    """The checked subclass of ``base``: checks in ``call``, saved with its settings."""
    after_call = _checks.after_call

    @functools.wraps(base.call)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = super(checked, self).call(*args, **kwargs)
        return after_call(self, args, kwargs, outputs)

    @functools.wraps(base.quantized_call)
    def quantized_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = super(checked, self).quantized_call(*args, **kwargs)
        return after_call(self, args, kwargs, outputs)

    @functools.wraps(base.get_config)  # keeps Keras's "is default" marker
    def get_config(self: Any) -> Any:
        config = super(checked, self).get_config()
        state = self.__dict__.get(STATE_ATTR)
        if state is not None and _called_by_keras_serializer():
            config = {**config, "safegen": _state_config(state, base)}
        return config

    def from_config(klass: type, config: Any, *args: Any, **kwargs: Any) -> Any:
        config = dict(config)
        info = config.pop("safegen", None) or {}
        layer = base.from_config(config, *args, **kwargs)
        return _checks.shape_checked(layer, info.get("output_shape"), info.get("check", "rank"))

    methods = {
        "call": call,
        "quantized_call": quantized_call,
        "get_config": get_config,
        "from_config": classmethod(from_config),
    }
    checked: Any = subclass(base, methods)
    keras.saving.register_keras_serializable("safegen", _REGISTERED_NAME)(checked)
    # The registered name must resolve to the loader, which handles every class.
    keras.saving.register_keras_serializable("safegen", _REGISTERED_NAME)(_Loader)
    return checked


def is_checked(layer: Any) -> bool:
    """Whether ``layer`` is checked by :func:`ShapeChecked`.

    Example:
        >>> import keras, safegen
        >>> is_checked(safegen.ShapeChecked(keras.layers.Dense(1)))
        True
    """
    return _checks.is_checked(layer)


def _called_by_keras_serializer() -> bool:
    """Whether get_config() was called by Keras's serializer or by ``clone_model``."""
    above = itertools.islice(callers(2), 2)  # our get_config's callers
    return any(
        frame.f_globals.get("__name__", "").startswith("keras.")
        and frame.f_code.co_name in ("_get_class_or_fn_config", "_clone_layer")
        for frame in above
    )


def _state_config(state: CheckState, base: type) -> dict[str, Any]:
    return {
        "check": state.check,
        "output_shape": state.output_shape,
        "layer": _class_identity(base),
    }


def _class_identity(cls: type) -> dict[str, Any]:
    """How plain Keras would name ``cls`` in a saved file (module, class_name, registered)."""
    try:
        from keras.src.saving.serialization_lib import serialize_with_public_class

        public = serialize_with_public_class(cls)
    except ImportError:  # pragma: no cover - a Keras that moved it
        public = None
    if public is not None:
        return {k: public[k] for k in ("module", "class_name", "registered_name")}
    return {
        "module": cls.__module__,
        "class_name": cls.__name__,
        "registered_name": keras.saving.get_registered_name(cls),
    }


class _Loader:
    """What ``"safegen>ShapeChecked"`` resolves to when Keras loads a saved layer."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = dict(config)
        info = config.pop("safegen")
        layer = keras.saving.deserialize_keras_object({**info["layer"], "config": config})
        return _checks.shape_checked(layer, info.get("output_shape"), info.get("check", "rank"))

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - never instantiated
        return {}


keras.saving.register_keras_serializable("safegen", _REGISTERED_NAME)(_Loader)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def _as_plain_class(layer: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run while ``layer`` is an instance of its plain class again.

    ``Dense.quantize`` (and Embedding's, EinsumDense's) refuse subclasses with
    ``type(self) is not Dense``; Keras binds it to the instance in ``Layer.__new__``.
    """

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        checked = type(layer)
        base = _checks.base_of(checked)
        if base is None:
            return method(*args, **kwargs)
        object.__setattr__(layer, "__class__", base)
        try:
            return method(*args, **kwargs)
        finally:
            object.__setattr__(layer, "__class__", checked)

    run._safegen_plain_class = True  # type: ignore[attr-defined]
    return run


# --------------------------------------------------------------------------------------
# Every Lambda, for safegen.enable()
# --------------------------------------------------------------------------------------


def install_lambda_checks(check: CheckMode = "rank") -> Callable[[], None]:
    """Makes every ``keras.layers.Lambda`` check its real output against its declared shape.

    Lambdas built before or after this call are checked, with the same rules and
    :class:`safegen.ShapeError` text as :func:`ShapeChecked`, against their own
    ``output_shape`` (a Lambda without one declares nothing and is not checked). Weights,
    variable paths, layer names and what ``model.save`` writes do not change: this
    replaces ``keras.layers.Lambda.call`` by a checking version with the same signature.
    Layers checked by :func:`ShapeChecked` are not checked twice. Installs nest: the last
    one's ``check`` applies, and the patch is removed when every install is undone.

    Args:
        check: ``"rank"`` or ``"shape"``, as for :func:`ShapeChecked`.

    Returns:
        A function that undoes exactly this install (calling it again does nothing).

    Example:
        >>> import keras
        >>> undo = install_lambda_checks()
        >>> mean = keras.layers.Lambda(lambda x: x[:, 0], output_shape=(1,), name="m")
        >>> mean(keras.ops.ones((3, 2)))
        Traceback (most recent call last):
        ...
        safegen.ShapeError: layer 'm' (Lambda) returned rank 1, shape (3,); ...
        >>> undo()
    """
    return _checks.install_lambda_checks(check)
