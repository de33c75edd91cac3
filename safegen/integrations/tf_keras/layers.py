"""Keras 2 (``tf_keras``) layers that check their real output against the shape they declare.

The same design as the Keras 3 integration (``safegen.integrations.keras.layers``):
:func:`ShapeChecked` switches the class of one layer object to a subclass of its own class
(same name and module) that overrides only ``call``, so the layer keeps its signature,
build, weights, variable names, layer name and summary. The error text and hints are the
same (``safegen._shapes``).

What differs from Keras 3:

* the declared shape is ``output_shape`` given to ``ShapeChecked``, else the layer's
  ``compute_output_shape`` for the shapes of its first argument (Keras 2's own rule);
* Keras 2 builds a functional model by calling each layer on symbolic tensors, so a
  wrong *static* rank is reported already when the model is built, and again, once per
  trace, in ``fit``/``predict``;
* saved files (``.keras``, SavedModel, HDF5) store the plain layer: a reloaded model does
  not check until ``ShapeChecked``/``check_layers`` is applied again.
"""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras

from safegen import _session
from safegen._errors import SafegenWarning, ShapeError
from safegen._shapes import (
    SHAPE_HELP,
    CheckMode,
    Shape,
    flatten_shapes,
    fmt,
    fmt_path,
    message,
    normalize_output_shape,
    rank_hint,
    validate_check,
)

__all__ = [
    "ShapeChecked",
    "ShapeCheckedLambda",
    "check_layers",
    "install_lambda_checks",
    "is_checked",
    "unwrap",
]

_STATE = "_safegen_check"
_CACHE_LIMIT = 64


class _CheckState:
    __slots__ = ("cache", "check", "output_shape", "__weakref__")

    def __init__(self, check: CheckMode, output_shape: Any) -> None:
        self.check: CheckMode = check
        self.output_shape: Any = output_shape
        self.cache: dict[Any, tuple[list[Shape | None], str]] = {}


class _Inferring(threading.local):
    depth = 0


_inferring = _Inferring()


def _is_tensor(x: Any) -> bool:
    return bool(tf.is_tensor(x)) or type(x).__name__ == "KerasTensor"


def _static_shape(x: Any) -> Shape | None:
    shape = tf.TensorShape(x.shape)
    if shape.rank is None:
        return None
    return tuple(None if d is None else int(d) for d in shape.as_list())


def _describe(layer: Any) -> str:
    return f"{layer.name!r} ({type(layer).__name__})"


def _tensors(inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    leaves = list(tf.nest.flatten((inputs, args)))
    for key, value in kwargs.items():
        if key != "mask" and not key.endswith("_mask"):
            leaves.extend(tf.nest.flatten(value))
    return [x for x in leaves if _is_tensor(x)]


def _input_shapes(tensors: list[Any]) -> str:
    shapes = [fmt(_static_shape(x)) for x in tensors]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _flatten_with_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, Any]]:
    """(path, leaf) pairs in tf.nest order (dict keys sorted)."""
    if isinstance(value, dict):
        return [pl for k in sorted(value) for pl in _flatten_with_paths(value[k], (*path, k))]
    if isinstance(value, (list, tuple)):
        return [pl for i, v in enumerate(value) for pl in _flatten_with_paths(v, (*path, i))]
    return [(path, value)]


def _cache_key(inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    parts: list[Any] = []
    for path, x in _flatten_with_paths((inputs, args, kwargs)):
        if _is_tensor(x):
            parts.append((path, "T", _static_shape(x), str(x.dtype)))
            continue
        try:
            hash(x)
            parts.append((path, "V", type(x).__name__, x))
        except TypeError:
            parts.append((path, "R", repr(x)))
    return tuple(parts)


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


def _declared(
    layer: Any, state: _CheckState, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Shape | None], str]:
    key = _cache_key(inputs, args, kwargs)
    cached = state.cache.get(key)
    if cached is not None:
        return cached
    tensors = _tensors(inputs, args, kwargs)
    if state.output_shape is not None:
        first = _static_shape(tensors[0]) if tensors else None
        batch = first[0] if first else None
        result: tuple[list[Shape | None], str] = (
            [(batch, *s) for s in flatten_shapes(state.output_shape)],
            f"output_shape={state.output_shape!r} given to ShapeChecked",
        )
    else:
        lambda_shape = getattr(layer, "_output_shape", None)
        if isinstance(layer, tf_keras.layers.Lambda) and lambda_shape is not None:
            source = (
                "the Lambda's output_shape function"
                if callable(lambda_shape)
                else f"the Lambda's output_shape={lambda_shape!r}"
            )
        else:
            source = f"{type(layer).__name__}.compute_output_shape()"
        shapes = tf.nest.map_structure(lambda x: tf.TensorShape(x.shape), inputs)
        _inferring.depth += 1
        try:
            declared = layer.compute_output_shape(shapes)
        except Exception as e:
            text = str(e).strip().splitlines()
            raise _shape_error(
                layer,
                f"layer {_describe(layer)}: safegen could not determine its declared output "
                f"shape for input shape {_input_shapes(tensors)}: {type(e).__name__}: "
                f"{text[0] if text else ''}\n  Pass output_shape= to safegen.ShapeChecked.",
            ) from e
        finally:
            _inferring.depth -= 1
        result = (_flatten_declared(declared), source)
    if len(state.cache) >= _CACHE_LIMIT:
        state.cache.clear()
    state.cache[key] = result
    return result


def _shape_error(layer: Any, text: str) -> ShapeError:
    _session.record_shape_error(layer, text)
    error: ShapeError = ShapeError(text)
    vars(error)["_keras_call_info_injected"] = True
    return error


def _check_now(
    layer: Any,
    state: _CheckState,
    inputs: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    outputs: Any,
) -> None:
    declared, source = _declared(layer, state, inputs, args, kwargs)
    tensors = _tensors(inputs, args, kwargs)
    shapes = _input_shapes(tensors)

    def text(what: str, hint: str | None = None, details: tuple[str, ...] = ()) -> str:
        return message(_describe(layer), what, source, shapes, state.check, hint=hint,
                       details=details)  # fmt: skip

    actual = [(p, x) for p, x in _flatten_with_paths(outputs) if x is not None]
    several = len(actual) > 1 or len(declared) > 1
    if len(actual) != len(declared):
        raise _shape_error(
            layer, text(f"returned {len(actual)} output tensor(s); declared {len(declared)}")
        )
    batch_ref = tensors[0] if tensors else None
    for (path, x), want in zip(actual, declared, strict=True):
        if want is None or not hasattr(x, "shape"):
            continue
        where = f"output {fmt_path(path)} " if several else ""
        got = _static_shape(x)
        if got is None:
            tf.debugging.assert_equal(
                tf.rank(x),
                len(want),
                message="ShapeError: "
                + text(f"{where}rank is not {len(want)} (declared shape {fmt(want)})"),
            )
            continue
        if len(got) != len(want):
            raise _shape_error(
                layer,
                text(
                    f"{where}returned rank {len(got)}, shape {fmt(got)}; "
                    f"declared rank {len(want)}, shape {fmt(want)}",
                    hint=rank_hint(got, want),
                ),
            )
        if state.check != "shape":
            continue
        for axis, (g, w) in enumerate(zip(got, want, strict=True)):
            if axis == 0 and batch_ref is not None:
                ref_shape = _static_shape(batch_ref)
                ref = w if w is not None else (ref_shape[0] if ref_shape else None)
                if g is not None and ref is not None and g != ref:
                    raise _shape_error(
                        layer,
                        text(
                            f"{where}returned batch dimension {g}, shape {fmt(got)}; the "
                            f"input's batch dimension is {ref} (declared shape {fmt(want)})"
                        ),
                    )
                if g is None or ref is None:
                    tf.debugging.assert_equal(
                        tf.shape(x)[0],
                        tf.shape(batch_ref)[0] if ref is None else ref,
                        message="ShapeError: "
                        + text(f"{where}batch dimension differs from the input's"),
                    )
                continue
            if w is None:
                continue
            if g is None:
                tf.debugging.assert_equal(
                    tf.shape(x)[axis],
                    w,
                    message="ShapeError: " + text(f"{where}dimension {axis} is not {w}"),
                )
            elif g != w:
                raise _shape_error(
                    layer,
                    text(
                        f"{where}returned shape {fmt(got)}; declared shape {fmt(want)} "
                        f"(dimension {axis}: {g} != {w})"
                    ),
                )
    _session.record_layer(layer)


# Autograph (tf_keras converts `call` in fit) must leave safegen's Python checks alone.
_run_check: Callable[..., None] = tf.autograph.experimental.do_not_convert(_check_now)

_checked_classes: dict[type, type] = {}
_bases: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()
_classes_lock = threading.Lock()


def is_checked(layer: Any) -> bool:
    """Whether ``layer`` is checked by :func:`ShapeChecked`.

    Example:
        >>> import tf_keras
        >>> is_checked(tf_keras.layers.Dense(1))
        False
    """
    return type(layer) in _bases and _STATE in vars(layer)


def _checked_class(base: Any) -> Any:
    with _classes_lock:
        cls = _checked_classes.get(base)
        if cls is not None:
            return cls

        @functools.wraps(base.call)
        def call(self: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            outputs = super(checked, self).call(inputs, *args, **kwargs)
            state = self.__dict__.get(_STATE)
            if state is not None and not _inferring.depth:
                _run_check(self, state, inputs, args, kwargs, outputs)
            return outputs

        call.__signature__ = inspect.signature(base.call)  # type: ignore[attr-defined]
        namespace = {
            "call": call,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
        }
        checked: Any = type(base)(base.__name__, (base,), namespace)
        _checked_classes[base] = checked
        _bases[checked] = base
        return checked


def ShapeChecked(  # noqa: N802 - the public name reads like a class
    layer: Any, output_shape: Any = None, *, check: CheckMode = "rank"
) -> Any:
    """Switches the output check on for a ``tf_keras`` layer; returns that same layer.

    See :func:`safegen.ShapeChecked`.

    Example:
        >>> import tf_keras
        >>> dense = tf_keras.layers.Dense(3)
        >>> ShapeChecked(dense, (3,)) is dense
        True
    """
    if not isinstance(layer, tf_keras.layers.Layer):
        raise TypeError(
            "ShapeChecked(layer): layer must be a tf_keras layer (tf_keras.layers.Layer); "
            f"got {layer!r} of type {type(layer).__name__}."
        )
    name = getattr(layer, "name", None) or type(layer).__name__
    validate_check(check, f"ShapeChecked({name!r})")
    if output_shape is not None:
        output_shape = normalize_output_shape(output_shape, f"ShapeChecked({name!r})")
    checked = _checked_class(_bases.get(type(layer), type(layer)))
    object.__setattr__(layer, _STATE, _CheckState(check, output_shape))
    if type(layer) is not checked:
        object.__setattr__(layer, "__class__", checked)
    return layer


def ShapeCheckedLambda(  # noqa: N802 - reads like the layer class it returns
    function: Callable[..., Any],
    output_shape: Any,
    *,
    check: CheckMode = "rank",
    **lambda_kwargs: Any,
) -> Any:
    """Returns ``ShapeChecked(tf_keras.layers.Lambda(function, output_shape, ...))``.

    Example:
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
    layer = tf_keras.layers.Lambda(function, output_shape=output_shape, **lambda_kwargs)
    return ShapeChecked(layer, check=check)


def _sublayers(model: Any, who: str) -> list[Any]:
    if not isinstance(model, tf_keras.layers.Layer):
        raise TypeError(
            f"{who}(model): model must be a tf_keras model or layer; "
            f"got {model!r} of type {type(model).__name__}."
        )
    layers: list[Any] = list(model._flatten_layers(include_self=True, recursive=True))
    return layers


def _retrace(model: Any) -> None:
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def check_layers(
    model: Any,
    *,
    layer_types: type | tuple[type, ...] | None = None,
    check: CheckMode = "rank",
) -> list[Any]:
    """Checks every Lambda (or chosen type) of a ``tf_keras`` model in place.

    Example:
        >>> import tf_keras
        >>> model = tf_keras.Sequential([tf_keras.layers.Dense(1, name="d", input_shape=(2,))])
        >>> [layer.name for layer in check_layers(model, layer_types=tf_keras.layers.Dense)]
        ['d']
    """
    if layer_types is None:
        layer_types = (tf_keras.layers.Lambda,)
    if isinstance(layer_types, type):
        layer_types = (layer_types,)
    if not (
        isinstance(layer_types, tuple)
        and layer_types
        and all(isinstance(t, type) for t in layer_types)
    ):
        raise TypeError(
            "check_layers(layer_types): expected a layer class or a non-empty tuple of "
            f"layer classes, e.g. (tf_keras.layers.Lambda,); got {layer_types!r}."
        )
    validate_check(check, "check_layers")
    matched = [
        layer
        for layer in _sublayers(model, "check_layers")
        if isinstance(layer, layer_types) and not isinstance(layer, tf_keras.Model)
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
    """Switches every check of a ``tf_keras`` model or layer off, in place; returns it.

    Example:
        >>> import tf_keras
        >>> dense = ShapeChecked(tf_keras.layers.Dense(1))
        >>> type(unwrap(dense)) is tf_keras.layers.Dense
        True
    """
    for layer in _sublayers(model, "unwrap"):
        if type(layer) in _bases:
            object.__setattr__(layer, "__class__", _bases[type(layer)])
        layer.__dict__.pop(_STATE, None)
    _retrace(model)
    return model


_install_lock = threading.Lock()
_installed: list[tuple[object, CheckMode]] = []
_original_lambda_call: Any = None
_lambda_states: weakref.WeakKeyDictionary[Any, _CheckState] = weakref.WeakKeyDictionary()


def install_lambda_checks(check: CheckMode = "rank") -> Callable[[], None]:
    """Makes every ``tf_keras.layers.Lambda`` check its output; returns the undo function.

    The ``tf_keras`` counterpart of
    :func:`safegen.integrations.keras.layers.install_lambda_checks`.

    Example:
        >>> undo = install_lambda_checks()
        >>> undo()
    """
    global _original_lambda_call
    validate_check(check, "install_lambda_checks")
    token = object()
    with _install_lock:
        if not _installed:
            original = tf_keras.layers.Lambda.__dict__["call"]

            @functools.wraps(original)
            def call(self: Any, inputs: Any, mask: Any = None, training: Any = None) -> Any:
                outputs = original(self, inputs, mask=mask, training=training)
                installs = _installed
                if (
                    installs
                    and not _inferring.depth
                    and _STATE not in self.__dict__
                    and getattr(self, "_output_shape", None) is not None
                ):
                    state = _lambda_states.get(self)
                    if state is None or state.check != installs[-1][1]:
                        state = _lambda_states[self] = _CheckState(installs[-1][1], None)
                    _run_check(self, state, inputs, (), {}, outputs)
                return outputs

            _original_lambda_call = original
            tf_keras.layers.Lambda.call = call
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
                tf_keras.layers.Lambda.call = _original_lambda_call
                _original_lambda_call = None
                _lambda_states.clear()

    return undo
