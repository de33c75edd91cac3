"""Keras 3 layers that check their real output against the shape they declare.

Keras 3 never compares what a layer *returns* with what it *declares*: a ``Lambda``
computing ``(x[:, 0] + x[:, 1]) / 2`` returns ``(batch,)`` while ``output_shape=(1,)``
declares ``(batch, 1)``, the model reports ``(None, 1)``, and broadcasting or the losses
hide the difference.

How a layer is checked: :func:`ShapeChecked` switches the class of that one layer object
to a subclass of its own class that overrides only ``call`` (the original ``call``, then
the check). The subclass is made once per class, keeps the class's name and module, and
forwards ``call``'s signature, so the layer stays itself: the same object, call
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
import weakref
from collections.abc import Callable
from typing import Any

import keras
from keras import tree

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

_STATE = "_safegen_check"  # the instance attribute holding a layer's _CheckState
_REGISTERED_NAME = "ShapeChecked"  # serialized as "safegen>ShapeChecked"
_CACHE_LIMIT = 64


class _CheckState:
    """A checked layer's settings and declared-shape cache (a plain, untracked object)."""

    __slots__ = ("cache", "check", "output_shape", "__weakref__")

    def __init__(self, check: CheckMode, output_shape: Any) -> None:
        self.check: CheckMode = check
        self.output_shape: Any = output_shape
        self.cache: dict[Any, tuple[list[Shape | None], str]] = {}


class _Inferring(threading.local):
    depth = 0


_inferring = _Inferring()


# --------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------


def _is_tensor(x: Any) -> bool:
    return bool(keras.ops.is_tensor(x)) or isinstance(x, keras.KerasTensor)


def _static_shape(x: Any) -> Shape | None:
    """The static shape of a tensor, or ``None`` if its rank is unknown."""
    shape = x.shape
    if getattr(shape, "rank", 0) is None:  # tf.TensorShape of unknown rank
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _describe(layer: Any) -> str:
    return f"{layer.name!r} ({type(layer).__name__})"


def _tensor_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The tensors a layer was called with, masks left out."""
    leaves = list(tree.flatten(args))
    for key, value in kwargs.items():
        if key != "mask" and not key.endswith("_mask"):
            leaves.extend(tree.flatten(value))
    return [x for x in leaves if _is_tensor(x)]


def _input_shapes(tensors: list[Any]) -> str:
    shapes = [fmt(_static_shape(x)) for x in tensors]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _cache_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Every call argument: tensors by static shape and dtype, the rest by value."""
    parts: list[Any] = []
    for path, x in tree.flatten_with_path((args, kwargs)):
        if _is_tensor(x):
            parts.append((path, "T", _static_shape(x), str(x.dtype)))
            continue
        try:
            hash(x)
            parts.append((path, "V", type(x).__name__, x))
        except TypeError:
            parts.append((path, "R", repr(x)))
    return tuple(parts)


def _declared_source(layer: Any) -> str:
    lambda_shape = getattr(layer, "_output_shape", None)
    if isinstance(layer, keras.layers.Lambda) and lambda_shape is not None:
        if callable(lambda_shape):
            return "the Lambda's output_shape function"
        return f"the Lambda's output_shape={lambda_shape!r}"
    if type(layer).compute_output_spec is not keras.layers.Layer.compute_output_spec:
        return f"{type(layer).__name__}.compute_output_spec()"
    if type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
        return f"{type(layer).__name__}.compute_output_shape()"
    return "Keras's symbolic shape inference of the layer"


def _declared(
    layer: Any, state: _CheckState, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Shape | None], str]:
    """The declared shape of every output leaf, and who declared it (cached per call)."""
    key = _cache_key(args, kwargs)
    cached = state.cache.get(key)
    if cached is not None:
        return cached
    tensors = _tensor_args(args, kwargs)
    if state.output_shape is not None:
        first = _static_shape(tensors[0]) if tensors else None
        batch = first[0] if first else None
        result: tuple[list[Shape | None], str] = (
            [(batch, *s) for s in flatten_shapes(state.output_shape)],
            f"output_shape={state.output_shape!r} given to ShapeChecked",
        )
    else:

        def spec(x: Any) -> Any:
            if _is_tensor(x):
                return keras.KerasTensor(_static_shape(x), dtype=x.dtype)
            return x

        _inferring.depth += 1
        try:
            declared = layer.compute_output_spec(
                *tree.map_structure(spec, args),
                **{k: tree.map_structure(spec, v) for k, v in kwargs.items()},
            )
        except Exception as e:
            raise _shape_error(
                layer,
                f"layer {_describe(layer)}: safegen could not determine its declared output "
                f"shape for input shape {_input_shapes(tensors)}: {type(e).__name__}: "
                f"{_first_line(e)}\n  Pass output_shape= to safegen.ShapeChecked.",
            ) from e
        finally:
            _inferring.depth -= 1
        shapes: list[Shape | None] = [
            _static_shape(s) if hasattr(s, "shape") else None for s in tree.flatten(declared)
        ]
        result = (shapes, _declared_source(layer))
    if len(state.cache) >= _CACHE_LIMIT:
        state.cache.clear()
    state.cache[key] = result
    return result


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _shape_error(layer: Any, text: str) -> ShapeError:
    """A ShapeError that Keras passes through as is (no re-raise with its own context)."""
    _session.record_shape_error(layer, text)
    error: ShapeError = ShapeError(text)
    # Keras's call wrapper re-raises a layer's exception as type(e)(message + the call's
    # arguments, in ANSI bold) unless this attribute is set: keep the message clean.
    vars(error)["_keras_call_info_injected"] = True
    return error


def _check_outputs(
    layer: Any, state: _CheckState, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
) -> Any:
    """Raises ShapeError (or adds run-time assertions) where ``outputs`` break the declaration.

    Returns ``outputs``, where a leaf of rank unknown at trace time is replaced by the same
    tensor with the declared rank asserted (the only case that changes the graph).
    """
    declared, source = _declared(layer, state, args, kwargs)
    tensors = _tensor_args(args, kwargs)
    inputs = _input_shapes(tensors)

    def fail(what: str, *, hint: str | None = None, details: tuple[str, ...] = ()) -> ShapeError:
        text = message(_describe(layer), what, source, inputs, state.check, hint=hint,
                       details=details)  # fmt: skip
        return _shape_error(layer, text)

    actual = [(p, x) for p, x in tree.flatten_with_path(outputs) if x is not None]
    several = len(actual) > 1 or len(declared) > 1
    if len(actual) != len(declared):
        structure = tree.map_structure(
            lambda x: fmt(_static_shape(x)) if hasattr(x, "shape") else x, outputs
        )
        raise fail(
            f"returned {len(actual)} output tensor(s); declared {len(declared)}",
            details=(f"output structure: {structure}",),
        )
    batch_ref = tensors[0] if tensors else None
    replaced: dict[int, Any] = {}
    for (path, x), want in zip(actual, declared, strict=True):
        if want is None or not hasattr(x, "shape"):
            continue
        where = f"output {fmt_path(path)} " if several else ""
        got = _static_shape(x)
        if got is None:  # rank unknown at trace time: only a run-time check can tell
            replaced[id(x)] = _runtime_rank_check(
                x,
                want,
                "ShapeError: "
                + message(
                    _describe(layer),
                    f"{where}rank is not {len(want)} (declared shape {fmt(want)})",
                    source,
                    inputs,
                    state.check,
                ),
            )
            continue
        if len(got) != len(want):
            raise fail(
                f"{where}returned rank {len(got)}, shape {fmt(got)}; "
                f"declared rank {len(want)}, shape {fmt(want)}",
                hint=rank_hint(got, want),
            )
        if state.check == "shape":
            _check_dims(layer, x, got, want, where, batch_ref, fail, source, inputs, state)
    if not replaced:
        return outputs
    flat = [replaced.get(id(x), x) for x in tree.flatten(outputs)]
    return tree.pack_sequence_as(outputs, flat)


def _check_dims(
    layer: Any,
    x: Any,
    got: Shape,
    want: Shape,
    where: str,
    batch_ref: Any,
    fail: Callable[..., ShapeError],
    source: str,
    inputs: str,
    state: _CheckState,
) -> None:
    def runtime(axis: int, expected: Any, what: str) -> None:
        text = message(_describe(layer), what, source, inputs, state.check)
        _runtime_dim_check(x, axis, expected, "ShapeError: " + text)

    for axis, (g, w) in enumerate(zip(got, want, strict=True)):
        if axis == 0 and batch_ref is not None:
            ref_shape = _static_shape(batch_ref)
            if not ref_shape:
                continue
            ref = w if w is not None else ref_shape[0]
            if g is not None and ref is not None:
                if g != ref:
                    raise fail(
                        f"{where}returned batch dimension {g}, shape {fmt(got)}; "
                        f"the input's batch dimension is {ref} (declared shape {fmt(want)})"
                    )
            else:
                runtime(
                    0,
                    ref if ref is not None else ("dynamic", batch_ref),
                    f"{where}batch dimension differs from the input's "
                    f"(static shape {fmt(got)}, declared {fmt(want)})",
                )
            continue
        if w is None:
            continue
        if g is None:
            runtime(
                axis,
                w,
                f"{where}dimension {axis} is not {w} (static shape {fmt(got)}, "
                f"declared {fmt(want)})",
            )
        elif g != w:
            raise fail(
                f"{where}returned shape {fmt(got)}; declared shape {fmt(want)} "
                f"(dimension {axis}: {g} != {w})"
            )


def _runtime_dim_check(x: Any, axis: int, expected: Any, text: str) -> None:
    if keras.backend.backend() != "tensorflow":
        return  # other backends trace with concrete shapes; nothing left to check
    import tensorflow as tf

    if isinstance(expected, tuple):  # ("dynamic", tensor): that tensor's batch size
        expected = tf.shape(expected[1])[0]
    tf.debugging.assert_equal(tf.shape(x)[axis], tf.cast(expected, tf.int32), message=text)


def _runtime_rank_check(x: Any, want: Shape, text: str) -> Any:
    """Asserts ``x``'s rank at run time (TensorFlow); returns ``x`` or, under XLA, a copy."""
    if keras.backend.backend() != "tensorflow":
        return x
    import tensorflow as tf

    tf.debugging.assert_equal(tf.rank(x), len(want), message=text)
    if _in_xla_context():
        # XLA compiles Assert ops to no-ops, but it knows every shape when it compiles:
        # an EnsureShape op fails there (with TensorFlow's message, not ours).
        return tf.ensure_shape(x, [None] * len(want))
    return x


def _in_xla_context() -> bool:
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow that moved it
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


def _run_check(
    layer: Any, state: _CheckState, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
) -> Any:
    outputs = _check_outputs(layer, state, args, kwargs, outputs)
    _session.record_layer(layer)
    return outputs


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
    return type(layer) in _bases and _STATE in vars(layer)


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
            state = self.__dict__.get(_STATE)
            if state is not None and not _inferring.depth:
                outputs = _run_check(self, state, args, kwargs, outputs)
            return outputs

        @functools.wraps(base.quantized_call)
        def quantized_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            outputs = super(checked, self).quantized_call(*args, **kwargs)
            state = self.__dict__.get(_STATE)
            if state is not None and not _inferring.depth:
                outputs = _run_check(self, state, args, kwargs, outputs)
            return outputs

        @functools.wraps(base.get_config)  # keeps Keras's "is default" marker
        def get_config(self: Any) -> Any:
            config = super(checked, self).get_config()
            state = self.__dict__.get(_STATE)
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


def _state_config(state: _CheckState, base: type) -> dict[str, Any]:
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
    object.__setattr__(layer, _STATE, _CheckState(check, output_shape))
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
        import warnings

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
        layer.__dict__.pop(_STATE, None)
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
_lambda_states: weakref.WeakKeyDictionary[Any, _CheckState] = weakref.WeakKeyDictionary()


def _lambda_state(layer: Any, check: CheckMode) -> _CheckState:
    state = _lambda_states.get(layer)
    if state is None or state.check != check:
        state = _lambda_states[layer] = _CheckState(check, None)
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
                    and not _inferring.depth
                    and _STATE not in self.__dict__  # ShapeChecked checks it itself
                    and getattr(self, "_output_shape", None) is not None
                ):
                    state = _lambda_state(self, installs[-1][1])
                    outputs = _run_check(self, state, args, kwargs, outputs)
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
