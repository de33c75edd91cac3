"""The output check of a Keras 3 layer: declared shapes, comparison, run-time assertions.

Used by ``safegen.integrations.keras.layers`` (checked layer classes and the Lambda patch of
``install_lambda_checks``). See that module for when each check runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import keras
from keras import tree

from safegen import _session
from safegen._errors import ShapeError
from safegen._shapes import (
    CheckMode,
    Shape,
    flatten_shapes,
    fmt,
    fmt_path,
    message,
    rank_hint,
)

__all__ = ["STATE_ATTR", "CheckState", "Inferring", "inferring", "run_check"]

STATE_ATTR = "_safegen_check"  # the instance attribute holding a layer's CheckState
_CACHE_LIMIT = 64


class CheckState:
    """A checked layer's settings and declared-shape cache (a plain, untracked object)."""

    __slots__ = ("cache", "check", "output_shape", "__weakref__")

    def __init__(self, check: CheckMode, output_shape: Any) -> None:
        self.check: CheckMode = check
        self.output_shape: Any = output_shape
        self.cache: dict[Any, tuple[list[Shape | None], str]] = {}


class Inferring(threading.local):
    """How deep this thread is in a declared-shape inference (checks are off meanwhile)."""

    depth = 0


inferring = Inferring()


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
    layer: Any, state: CheckState, args: tuple[Any, ...], kwargs: dict[str, Any]
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

        inferring.depth += 1
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
            inferring.depth -= 1
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
    layer: Any, state: CheckState, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
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
    state: CheckState,
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


def run_check(
    layer: Any, state: CheckState, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
) -> Any:
    outputs = _check_outputs(layer, state, args, kwargs, outputs)
    _session.record_layer(layer)
    return outputs
