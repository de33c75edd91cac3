"""A loss traced once, read as :class:`~safegen._losses.Step` lists: TensorFlow and JAX.

The loss checks decide from the operations a loss performs
(:func:`safegen._losses.first_meeting`). This module traces a loss's ``call`` on two
symbolic inputs with the static shapes and dtypes it was given, and lists the
operations of the result:

* TensorFlow (Keras 3 on TensorFlow, tf_keras): a ``tf.function`` concrete function's
  graph. Elementwise operations broadcast their operands implicitly (``Sub`` of ``(B,)``
  and ``(B, 1)`` gives ``(B, B)``); ``BroadcastTo`` repeats one operand; ``Shape`` and
  the like read only shapes. Calls of nested functions and control flow (``If``,
  ``While``, ``PartitionedCall``) pass what they are given through, unread.
* JAX: a jaxpr (``jax.make_jaxpr``). ``jnp`` broadcasts operands with
  ``broadcast_in_dim`` before an elementwise primitive, or lets the primitive broadcast
  size-1 axes itself; nested ``jit``, ``custom_jvp_call`` and ``custom_vjp_call``
  jaxprs are read inside. Control flow (``cond``, ``while``, ``scan``) passes what it is
  given through, unread.
* PyTorch (Keras 3 on torch): an FX graph of ATen operations
  (``torch.fx.experimental.proxy_tensor.make_fx`` on fake tensors, with the stack trace
  of each node). ATen's elementwise operations broadcast their operands themselves;
  ``expand`` repeats one operand; ``getitem`` picks one output of a multi-output
  operation (an alias).

Which line made an operation: the innermost frame of its traceback that is the user's
code, not an installed package's, the standard library's or safegen's.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from safegen._frames import in_library
from safegen._losses import Step, StepKind, relative
from safegen._shapes import Shape

__all__ = ["Traced", "jax_trace", "tf_trace", "torch_trace"]

_SAFEGEN = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB = tuple(
    os.path.abspath(p) + os.sep
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)

# Elementwise operations that broadcast their operands against each other.
TF_MEET = frozenset(
    {
        "Add", "AddV2", "ApproximateEqual", "Atan2", "BitwiseAnd", "BitwiseOr",
        "BitwiseXor", "Div", "DivNoNan", "Equal", "FloorDiv", "FloorMod", "Greater",
        "GreaterEqual", "Igamma", "Igammac", "LeftShift", "Less", "LessEqual",
        "LogicalAnd", "LogicalOr", "Maximum", "Minimum", "Mod", "Mul", "MulNoNan",
        "NextAfter", "NotEqual", "Polygamma", "Pow", "RealDiv", "RightShift", "SelectV2",
        "SquaredDifference", "Sub", "TruncateDiv", "TruncateMod", "Xdivy", "Xlog1py",
        "Xlogy", "Zeta",
    }
)  # fmt: skip
TF_SHAPE = frozenset({"Shape", "ShapeN", "Size", "Rank", "BroadcastArgs"})
TF_BROADCAST = frozenset({"BroadcastTo"})

JAX_MEET = frozenset(
    {
        "add", "add_any", "and", "atan2", "clamp", "complex", "div", "eq", "ge", "gt",
        "igamma", "igammac", "le", "lt", "max", "min", "mul", "ne", "nextafter", "or",
        "polygamma", "pow", "rem", "select_n", "shift_left", "shift_right_arithmetic",
        "shift_right_logical", "sub", "xor", "zeta",
    }
)  # fmt: skip
_JAX_BODIES = ("jaxpr", "call_jaxpr", "fun_jaxpr")


class Traced(NamedTuple):
    """A traced loss: its steps, the ids of its two inputs, and how to find the user's
    line of a step (from its ``origin``)."""

    steps: list[Step]
    y_true: Any
    y_pred: Any
    locate: Callable[[Any], str]


def _is_user_file(filename: str) -> bool:
    if not filename or filename.startswith("<") or "__autograph_generated_file" in filename:
        return False
    path = os.path.abspath(filename)
    return not (in_library(path) or path.startswith(_SAFEGEN) or path.startswith(_STDLIB))


def _first_user_frame(frames: Iterable[tuple[str, int]]) -> str:
    """``"file.py:12"`` of the first user frame among ``(filename, line)``, innermost
    first, or ``""``."""
    for filename, line in frames:
        if _is_user_file(filename):
            return f"{relative(filename)}:{line}"
    return ""


# TensorFlow ------------------------------------------------------------------------------


def _tf_shape(tensor: Any) -> Shape | None:
    shape = tensor.shape
    if shape.rank is None:
        return None
    return tuple(shape.as_list())


def _tf_where(op: Any) -> str:
    frames = list(op.traceback)  # outermost first
    return _first_user_frame((f.filename, f.lineno) for f in reversed(frames))


def tf_trace(call: Callable[[Any, Any], Any], st: Shape, sp: Shape, dt: str, dp: str) -> Traced:
    """``call(y_true, y_pred)`` traced by ``tf.function`` with these static shapes and
    dtypes (``None`` for an unknown dimension), outside any enclosing trace.

    Without autograph first (the lines are the user's own); with it when that fails (a
    Python ``if`` on a tensor), as Keras traces a train step.
    """
    import tensorflow as tf

    specs = (tf.TensorSpec(st, tf.as_dtype(dt)), tf.TensorSpec(sp, tf.as_dtype(dp)))
    with tf.init_scope():
        try:
            concrete = tf.function(call, autograph=False).get_concrete_function(*specs)
        except Exception:  # noqa: BLE001 - tried again as Keras traces it
            concrete = tf.function(call).get_concrete_function(*specs)
    graph = concrete.graph
    steps = []
    for op in graph.get_operations():
        kind: StepKind = (
            "meet"
            if op.type in TF_MEET
            else "shape"
            if op.type in TF_SHAPE
            else "broadcast"
            if op.type in TF_BROADCAST
            else "other"
        )
        steps.append(
            Step(
                kind,
                op.type,
                tuple(x.name for x in op.inputs),
                tuple(_tf_shape(x) for x in op.inputs),
                tuple(x.name for x in op.outputs),
                out_shape=_tf_shape(op.outputs[0]) if op.outputs else None,
                origin=op,
            )
        )
    y_true, y_pred = graph.inputs[:2]
    return Traced(steps, y_true.name, y_pred.name, _tf_where)


# JAX -------------------------------------------------------------------------------------


def _jax_id(var: Any) -> Any:
    from jax.extend.core import Literal

    return None if isinstance(var, Literal) else var


def _jax_shape(var: Any) -> Shape | None:
    shape = getattr(getattr(var, "aval", None), "shape", None)
    return None if shape is None else tuple(int(d) for d in shape)


def _body(eqn: Any) -> Any:
    """The jaxpr a call-like equation runs (nested ``jit``, custom derivatives), or None."""
    for key in _JAX_BODIES:
        body = eqn.params.get(key)
        body = getattr(body, "jaxpr", body)  # a ClosedJaxpr's Jaxpr
        if (
            body is not None
            and hasattr(body, "eqns")
            and len(body.invars) == len(eqn.invars)
            and len(body.outvars) == len(eqn.outvars)
        ):
            return body
    return None


def _jax_steps(jaxpr: Any, site: Any = None, inside: str = "") -> Iterator[Step]:
    """The steps of ``jaxpr``; those of a nested jaxpr are located at the equation that
    calls it (``site``): a jitted function's jaxpr is cached, with the first caller's
    traceback."""
    for eqn in jaxpr.eqns:
        origin = site if site is not None else eqn
        name = eqn.primitive.name + inside
        ins = tuple(_jax_id(v) for v in eqn.invars)
        shapes = tuple(_jax_shape(v) for v in eqn.invars)
        outs = tuple(eqn.outvars)
        body = _body(eqn)
        if body is not None:
            called = eqn.params.get("name") or eqn.primitive.name
            yield Step("alias", name, ins, shapes, tuple(body.invars), origin=origin)
            yield from _jax_steps(body, origin, inside or f" (in {called})")
            yield Step(
                "alias",
                name,
                tuple(_jax_id(v) for v in body.outvars),
                tuple(_jax_shape(v) for v in body.outvars),
                outs,
                origin=origin,
            )
            continue
        if eqn.primitive.name == "broadcast_in_dim":
            yield Step(
                "broadcast",
                name,
                ins,
                shapes,
                outs,
                dims=tuple(eqn.params["broadcast_dimensions"]),
                out_shape=_jax_shape(eqn.outvars[0]),
                origin=origin,
            )
            continue
        kind: StepKind = "meet" if eqn.primitive.name in JAX_MEET else "other"
        yield Step(kind, name, ins, shapes, outs, origin=origin)


def _jax_where(eqn: Any) -> str:
    traceback = getattr(eqn.source_info, "traceback", None)
    if traceback is None:
        return ""
    codes, lastis = traceback.raw_frames()  # innermost first
    from jax._src.source_info_util import raw_frame_to_frame

    def frames() -> Iterator[tuple[str, int]]:
        for code, lasti in zip(codes, lastis, strict=False):
            if _is_user_file(code.co_filename):
                yield code.co_filename, raw_frame_to_frame(code, lasti).start_line

    return _first_user_frame(frames())


def jax_trace(call: Callable[[Any, Any], Any], st: Shape, sp: Shape, dt: str, dp: str) -> Traced:
    """``call(y_true, y_pred)`` traced by ``jax.make_jaxpr`` with these static shapes and
    dtypes (all known: JAX traces with concrete shapes)."""
    import jax
    import jax.numpy as jnp

    struct: Any = jax.ShapeDtypeStruct
    closed = jax.make_jaxpr(call)(struct(st, jnp.dtype(dt)), struct(sp, jnp.dtype(dp)))
    jaxpr = closed.jaxpr
    y_true, y_pred = jaxpr.invars[:2]
    return Traced(list(_jax_steps(jaxpr)), y_true, y_pred, _jax_where)


# PyTorch ---------------------------------------------------------------------------------

# ATen's elementwise operations that broadcast their operands against each other (by
# their overload packet's name: aten.sub.Tensor is "sub").
TORCH_MEET = frozenset(
    {
        "add", "atan2", "bitwise_and", "bitwise_or", "bitwise_xor", "clamp", "copysign",
        "div", "eq", "floor_divide", "fmax", "fmin", "fmod", "ge", "gt", "hypot", "le",
        "logaddexp", "logical_and", "logical_or", "logical_xor", "lt", "maximum",
        "minimum", "mul", "ne", "nextafter", "pow", "remainder", "rsub", "sub", "where",
        "xlogy",
    }
)  # fmt: skip
TORCH_SHAPE = frozenset({"sym_size", "sym_numel", "sym_stride"})
TORCH_BROADCAST = frozenset({"expand"})
_TORCH_FRAME = __import__("re").compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _torch_shape(value: Any) -> Shape | None:
    meta = getattr(value, "meta", None)
    if meta is None:  # a constant
        return () if isinstance(value, (int, float, bool)) else None
    shape = getattr(meta.get("val"), "shape", None)
    try:
        return None if shape is None else tuple(int(d) for d in shape)
    except TypeError:  # a symbolic dimension
        return None


def _torch_where(node: Any) -> str:
    trace = node.meta.get("stack_trace") or ""
    frames = [(m["file"], int(m["line"])) for m in _TORCH_FRAME.finditer(trace)]
    return _first_user_frame(reversed(frames))  # innermost first


def _all_frames(self: Any, summary: Any) -> Any:
    return summary


def torch_trace(
    call: Callable[[Any, Any], Any], st: Shape, sp: Shape, dt: str, dp: str
) -> Traced | None:
    """``call(y_true, y_pred)`` traced by ``make_fx`` on fake tensors with these static
    shapes and dtypes (all known), or ``None`` inside ``torch.compile``'s own trace."""
    import operator

    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    if torch.compiler.is_compiling():
        return None
    shapes: Any = (st, sp)  # all known (the caller asks with static shapes only)
    t = torch.empty(shapes[0], dtype=getattr(torch, dt))
    p = torch.empty(shapes[1], dtype=getattr(torch, dp))
    # make_fx keeps only the frames of modules' forward(); a loss's lines are elsewhere:
    # its tracer keeps every frame for the duration of this trace.
    from torch.fx.experimental.proxy_tensor import PythonKeyTracer

    saved = PythonKeyTracer.__dict__.get("_filter_traceback_frames")
    PythonKeyTracer._filter_traceback_frames = _all_frames  # type: ignore[method-assign,assignment]
    try:
        graph = make_fx(
            call, tracing_mode="fake", _allow_non_fake_inputs=True, record_stack_traces=True
        )(t, p).graph
    finally:
        if saved is None:
            del PythonKeyTracer._filter_traceback_frames
        else:
            PythonKeyTracer._filter_traceback_frames = saved  # type: ignore[method-assign]
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    steps = []
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        args = [a for arg in node.args for a in (arg if isinstance(arg, (list, tuple)) else [arg])]
        ids = tuple(a if isinstance(a, torch.fx.Node) else None for a in args)
        shapes = tuple(_torch_shape(a) for a in args)
        if node.target is operator.getitem:
            steps.append(Step("alias", "getitem", ids[:1], shapes[:1], (node,), origin=node))
            continue
        packet = getattr(node.target, "overloadpacket", None)
        name = str(getattr(packet, "__name__", None) or getattr(node.target, "__name__", "?"))
        kind: StepKind = (
            "meet"
            if name in TORCH_MEET
            else "shape"
            if name in TORCH_SHAPE
            else "broadcast"
            if name in TORCH_BROADCAST
            else "other"
        )
        if kind == "broadcast":
            ids, shapes = ids[:1], shapes[:1]  # the rest is the target shape
        steps.append(
            Step(kind, name, ids, shapes, (node,), out_shape=_torch_shape(node), origin=node)
        )
    return Traced(steps, placeholders[0], placeholders[1], _torch_where)
