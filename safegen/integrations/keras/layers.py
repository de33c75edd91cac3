"""Keras 3 layers that check their real output against the shape they declare.

Keras 3 never compares what a layer *returns* with what it *declares*: a ``Lambda``
computing ``(x[:, 0] + x[:, 1]) / 2`` returns ``(batch,)`` while ``output_shape=(1,)``
declares ``(batch, 1)``, the model reports ``(None, 1)``, and broadcasting or the losses
hide the difference.

How a layer is checked: :func:`ShapeChecked` switches the class of that one layer object
to a subclass of its own class that overrides ``call`` and ``quantized_call`` (the
original, then the check; the check itself is in ``_check``) and, for saving,
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
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import keras

from safegen._errors import SafegenWarning
from safegen._shapes import (
    SHAPE_HELP,
    CheckMode,
    normalize_output_shape,
    validate_check,
)
from safegen.integrations.keras._check import (
    STATE_ATTR,
    CheckState,
    inferring,
    run_check,
)

__all__ = [
    "ShapeChecked",
    "ShapeCheckedLambda",
    "check_layers",
    "install_lambda_checks",
    "is_checked",
    "unwrap",
]

_REGISTERED_NAME = "ShapeChecked"  # serialized as "safegen>ShapeChecked"


# --------------------------------------------------------------------------------------
# Checked classes: one subclass per layer class, overriding only `call`
# --------------------------------------------------------------------------------------

_checked_classes: dict[type, type] = {}
_bases: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()
_classes_lock = threading.Lock()


def _base_class(cls: type) -> type:
    return _bases.get(cls, cls)


def is_checked(layer: Any) -> bool:
    """Whether ``layer`` is checked by :func:`ShapeChecked`.

    Example:
        >>> import keras
        >>> is_checked(ShapeChecked(keras.layers.Dense(1)))
        True
    """
    return type(layer) in _bases and STATE_ATTR in vars(layer)


def _called_by_keras_serializer() -> bool:
    """Whether get_config() was called by Keras's serializer or by ``clone_model``."""
    frame: Any = sys._getframe(2)  # our get_config's caller
    for _ in range(2):
        if frame is None:
            return False
        module = frame.f_globals.get("__name__", "")
        if module.startswith("keras.") and frame.f_code.co_name in (
            "_get_class_or_fn_config",
            "_clone_layer",
        ):
            return True
        frame = frame.f_back
    return False


def _checked_class(base: Any) -> Any:
    with _classes_lock:
        cls = _checked_classes.get(base)
        if cls is not None:
            return cls

        @functools.wraps(base.call)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            outputs = super(checked, self).call(*args, **kwargs)
            state = self.__dict__.get(STATE_ATTR)
            if state is not None and not inferring.depth:
                outputs = run_check(self, state, args, kwargs, outputs)
            return outputs

        @functools.wraps(base.quantized_call)
        def quantized_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            outputs = super(checked, self).quantized_call(*args, **kwargs)
            state = self.__dict__.get(STATE_ATTR)
            if state is not None and not inferring.depth:
                outputs = run_check(self, state, args, kwargs, outputs)
            return outputs

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
            return ShapeChecked(layer, info.get("output_shape"), check=info.get("check", "rank"))

        namespace = {
            "call": call,
            "quantized_call": quantized_call,
            "get_config": get_config,
            "from_config": classmethod(from_config),
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
        }
        checked: Any = type(base)(base.__name__, (base,), namespace)
        keras.saving.register_keras_serializable("safegen", _REGISTERED_NAME)(checked)
        # The registered name must resolve to the loader, which handles every class.
        keras.saving.register_keras_serializable("safegen", _REGISTERED_NAME)(_Loader)
        _checked_classes[base] = checked
        _bases[checked] = base
        return checked


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
        return ShapeChecked(layer, info.get("output_shape"), check=info.get("check", "rank"))

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - never instantiated
        return {}


keras.saving.register_keras_serializable("safegen", _REGISTERED_NAME)(_Loader)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def ShapeChecked(  # noqa: N802 - the public name reads like a class
    layer: Any, output_shape: Any = None, *, check: CheckMode = "rank"
) -> Any:
    """Switches the output check on for a Keras 3 ``layer``; returns that same layer.

    See :func:`safegen.ShapeChecked`.

    Example:
        >>> import keras
        >>> dense = keras.layers.Dense(3)
        >>> ShapeChecked(dense, (3,), check="shape") is dense
        True
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            "ShapeChecked(layer): layer must be a Keras 3 layer (keras.layers.Layer); "
            f"got {layer!r} of type {type(layer).__name__}."
        )
    name = getattr(layer, "name", None) or type(layer).__name__
    validate_check(check, f"ShapeChecked({name!r})")
    if output_shape is not None:
        output_shape = normalize_output_shape(output_shape, f"ShapeChecked({name!r})")
    if "call" in vars(layer):
        raise TypeError(
            f"ShapeChecked({name!r}): this layer has its own `call` attribute set on the "
            "instance, which would bypass the check; check the layer it delegates to."
        )
    checked = _checked_class(_base_class(type(layer)))
    object.__setattr__(layer, STATE_ATTR, CheckState(check, output_shape))
    if type(layer) is not checked:
        object.__setattr__(layer, "__class__", checked)
    quantize = vars(layer).get("quantize")
    if quantize is not None and not getattr(quantize, "_safegen_plain_class", False):
        object.__setattr__(layer, "quantize", _as_plain_class(layer, quantize))
    return layer


def _as_plain_class(layer: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run while ``layer`` is an instance of its plain class again.

    ``Dense.quantize`` (and Embedding's, EinsumDense's) refuse subclasses with
    ``type(self) is not Dense``; Keras binds it to the instance in ``Layer.__new__``.
    """

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        checked = type(layer)
        base = _bases.get(checked)
        if base is None:
            return method(*args, **kwargs)
        object.__setattr__(layer, "__class__", base)
        try:
            return method(*args, **kwargs)
        finally:
            object.__setattr__(layer, "__class__", checked)

    run._safegen_plain_class = True  # type: ignore[attr-defined]
    return run


def ShapeCheckedLambda(  # noqa: N802 - reads like the layer class it returns
    function: Callable[..., Any],
    output_shape: Any,
    *,
    check: CheckMode = "rank",
    **lambda_kwargs: Any,
) -> Any:
    """Returns ``ShapeChecked(keras.layers.Lambda(function, output_shape, ...))``.

    See :func:`safegen.ShapeCheckedLambda`.

    Example:
        >>> import keras
        >>> type(ShapeCheckedLambda(lambda x: x, (2,))).__name__
        'Lambda'
    """
    if not callable(function):
        raise TypeError(
            f"ShapeCheckedLambda(function): function must be callable; got {function!r} "
            f"of type {type(function).__name__}."
        )
    if output_shape is None:
        raise TypeError(
            f"ShapeCheckedLambda: output_shape is required; expected {SHAPE_HELP}, "
            "or a function of the input shape."
        )
    if not callable(output_shape):
        output_shape = normalize_output_shape(output_shape, "ShapeCheckedLambda")
    layer = keras.layers.Lambda(function, output_shape=output_shape, **lambda_kwargs)
    return ShapeChecked(layer, check=check)


def _sublayers(model: Any, who: str) -> list[Any]:
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"{who}(model): model must be a Keras 3 model or layer; "
            f"got {model!r} of type {type(model).__name__}."
        )
    layers: list[Any] = model._flatten_layers(include_self=True, recursive=True)
    return layers


def _retrace(model: Any) -> None:
    """Drops a model's compiled train/test/predict functions so they trace again."""
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def check_layers(
    model: Any,
    *,
    layer_types: type | tuple[type, ...] | None = None,
    check: CheckMode = "rank",
) -> list[Any]:
    """Checks every Lambda (or chosen type) of a Keras 3 model in place.

    See :func:`safegen.check_layers`.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
        >>> [layer.name for layer in check_layers(model, layer_types=keras.layers.Dense)]
        ['d']
    """
    if layer_types is None:
        layer_types = (keras.layers.Lambda,)
    if isinstance(layer_types, type):
        layer_types = (layer_types,)
    if not (
        isinstance(layer_types, tuple)
        and layer_types
        and all(isinstance(t, type) for t in layer_types)
    ):
        raise TypeError(
            "check_layers(layer_types): expected a layer class or a non-empty tuple of "
            f"layer classes, e.g. (keras.layers.Lambda,); got {layer_types!r}."
        )
    validate_check(check, "check_layers")
    layers = _sublayers(model, "check_layers")
    matched = [
        layer
        for layer in layers
        if isinstance(layer, layer_types) and not isinstance(layer, keras.Model)
    ]
    for layer in matched:
        if not is_checked(layer):
            ShapeChecked(layer, check=check)
    if not matched:
        names = ", ".join(t.__name__ for t in layer_types)
        warnings.warn(
            f"check_layers: model {model.name!r} has no layer of type {names}; nothing is checked.",
            SafegenWarning,
            stacklevel=3,
        )
    _retrace(model)
    return matched


def unwrap(model: Any) -> Any:
    """Switches every check of a Keras 3 model or layer off, in place; returns it.

    See :func:`safegen.unwrap`.

    Example:
        >>> import keras
        >>> dense = ShapeChecked(keras.layers.Dense(1))
        >>> type(unwrap(dense)) is keras.layers.Dense
        True
    """
    for layer in _sublayers(model, "unwrap"):
        if type(layer) in _bases:
            object.__setattr__(layer, "__class__", _bases[type(layer)])
        layer.__dict__.pop(STATE_ATTR, None)
        quantize = vars(layer).get("quantize")
        if getattr(quantize, "_safegen_plain_class", False):
            object.__setattr__(layer, "quantize", quantize.__wrapped__)
    _retrace(model)
    return model


# --------------------------------------------------------------------------------------
# Every Lambda, for safegen.enable()
# --------------------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed: list[tuple[object, CheckMode]] = []  # one token per install, newest last
_original_lambda_call: Any = None
_lambda_states: weakref.WeakKeyDictionary[Any, CheckState] = weakref.WeakKeyDictionary()


def _lambda_state(layer: Any, check: CheckMode) -> CheckState:
    state = _lambda_states.get(layer)
    if state is None or state.check != check:
        state = _lambda_states[layer] = CheckState(check, None)
    return state


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
    global _original_lambda_call
    validate_check(check, "install_lambda_checks")
    token = object()
    with _install_lock:
        if not _installed:
            original = keras.layers.Lambda.__dict__["call"]

            @functools.wraps(original)
            def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                outputs = original(self, *args, **kwargs)
                installs = _installed
                if (
                    installs
                    and not inferring.depth
                    and STATE_ATTR not in self.__dict__  # ShapeChecked checks it itself
                    and getattr(self, "_output_shape", None) is not None
                ):
                    state = _lambda_state(self, installs[-1][1])
                    outputs = run_check(self, state, args, kwargs, outputs)
                return outputs

            _original_lambda_call = original
            keras.layers.Lambda.call = call
        _installed.append((token, check))

    def undo() -> None:
        global _original_lambda_call
        with _install_lock:
            for i, (t, _) in enumerate(_installed):
                if t is token:
                    del _installed[i]
                    break
            else:
                return
            if not _installed and _original_lambda_call is not None:
                keras.layers.Lambda.call = _original_lambda_call
                _original_lambda_call = None
                _lambda_states.clear()

    return undo
