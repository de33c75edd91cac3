"""Loss shape checks: the broadcasting rule, the message, and ``check_losses`` (framework-free).

A loss that compares ``y_true`` of shape ``(B,)`` with ``y_pred`` of shape ``(B, 1)``
(or the other way round) broadcasts them into a ``(B, B)`` matrix: every prediction is
compared with every target, and the model trains on that without a word. Keras squeezes
the two to one rank for its built-in losses and for plain functions given to
``compile``, but not for a ``keras.losses.Loss`` subclass with its own ``call``.

The check decides from where the broadcast happens. The integration traces the loss once
per signature (a TensorFlow graph, a JAX jaxpr) and hands its operations over as a list of
:class:`Step`; :func:`first_meeting` follows what is computed from ``y_true`` and what
from ``y_pred`` through them ("taint") and returns the first elementwise operation where
a value from ``y_true`` meets one from ``y_pred`` and broadcasting enlarges both
(:func:`enlarges_both`). A loss that reshapes, squeezes or indexes its inputs first never
gets there; one comparing ``y_pred`` with itself, or a constant vector with ``y_pred``,
is not ``y_true`` meeting ``y_pred``.

This module holds what does not need a framework: that rule, the text of the
:class:`safegen.ShapeError`, and the public :func:`check_losses`, which hands the model
to the integration of its Keras (``safegen.integrations.keras.losses`` or
``safegen.integrations.tf_keras.losses``).
"""

from __future__ import annotations

import linecache
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Literal, NamedTuple

from safegen._frames import relative_filename
from safegen._frameworks import integration
from safegen._shapes import Dim, Shape, fmt

__all__ = [
    "Meeting",
    "Step",
    "StepKind",
    "broadcast",
    "check_losses",
    "enlarges_both",
    "first_meeting",
    "loss_message",
    "relative",
    "source_line",
    "where_defined",
]


def broadcast(a: Sequence[Dim], b: Sequence[Dim]) -> Shape | None:
    """The shape ``a`` and ``b`` broadcast to, or ``None`` if they cannot.

    An unknown dimension (``None``) is taken to be neither 1 nor in conflict: it is the
    batch size, known only at run time.

    Example:
        >>> broadcast((None,), (None, 1)), broadcast((3, 2), (4, 2))
        ((None, None), None)
    """
    rank = max(len(a), len(b))
    padded_a = (1,) * (rank - len(a)) + tuple(a)
    padded_b = (1,) * (rank - len(b)) + tuple(b)
    out: list[Dim] = []
    for x, y in zip(padded_a, padded_b, strict=True):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif x is None:
            out.append(y)
        elif y is None:
            out.append(x)
        else:
            return None
    return tuple(out)


def _enlarged(shape: Sequence[Dim], result: Shape) -> bool:
    """Whether broadcasting ``shape`` to ``result`` repeats its elements."""
    padded = (1,) * (len(result) - len(shape)) + tuple(shape)
    return any(s == 1 and r != 1 for s, r in zip(padded, result, strict=True))


def enlarges_both(y_true: Sequence[Dim], y_pred: Sequence[Dim]) -> Shape | None:
    """The broadcast shape when broadcasting repeats the elements of both, else ``None``.

    That is the mistake: ``(B,)`` with ``(B, 1)`` gives ``(B, B)``. Sparse labels
    ``(B,)`` or ``(B, 1)`` against logits ``(B, C)`` enlarge only the labels, and equal
    shapes enlarge neither.

    Example:
        >>> enlarges_both((32,), (32, 1)), enlarges_both((None, 1), (None,))
        ((32, 32), (None, None))
        >>> enlarges_both((32,), (32, 10)) is None, enlarges_both((32, 1), (32, 1)) is None
        (True, True)
    """
    result = broadcast(y_true, y_pred)
    if result is None or not (_enlarged(y_true, result) and _enlarged(y_pred, result)):
        return None
    return result


StepKind = Literal["meet", "broadcast", "shape", "alias", "other"]
_TRUE, _PRED = 1, 2  # taint bits


class Step(NamedTuple):
    """One operation of a traced loss, as :func:`first_meeting` reads it.

    Attributes:
        kind: ``"meet"``, an elementwise operation that broadcasts its operands (``x - y``,
            ``where(c, x, y)``); ``"broadcast"``, one operand repeated to a larger shape
            (its other inputs are shapes); ``"shape"``, reads only its inputs' shapes (its
            result is computed from neither side); ``"alias"``, passes its input through
            (a call's arguments into its body, and back); ``"other"``, any other.
        name: the operation's name in messages (``"Sub"``, ``"sub"``).
        inputs: an id per input value (``None`` for a constant).
        shapes: the static shape of each input (``None`` when its rank is unknown).
        outputs: an id per output value.
        where: the user's line that made it (``"losses.py:12"``), or ``""``.
        dims: for ``"broadcast"``, the output axis of each axis of input 0 (``None``:
            aligned to the right, as NumPy broadcasts).
        out_shape: for ``"broadcast"``, the static shape of its output.
        origin: the framework's own operation, to find its line only when reported.
    """

    kind: StepKind
    name: str
    inputs: tuple[Hashable | None, ...]
    shapes: tuple[Shape | None, ...]
    outputs: tuple[Hashable, ...]
    where: str = ""
    dims: tuple[int, ...] | None = None
    out_shape: Shape | None = None
    origin: Any = None


class Meeting(NamedTuple):
    """Where a value computed from ``y_true`` meets one from ``y_pred`` and both grow.

    Attributes:
        step: the operation.
        true_shape: the shape of the operand computed from ``y_true``, before broadcasting.
        pred_shape: the shape of the operand computed from ``y_pred``, before broadcasting.
        result: the shape they broadcast to.
    """

    step: Step
    true_shape: Shape
    pred_shape: Shape
    result: Shape


def _repeated_from(step: Step, shape: Shape) -> Shape | None:
    """The shape a broadcast step's output has before repeating: its input's axes in
    place, 1 on the axes the step adds."""
    out = step.out_shape
    if out is None:
        return None
    if step.dims is None:
        if len(shape) > len(out):
            return None
        return (1,) * (len(out) - len(shape)) + tuple(shape)
    before: list[Dim] = [1] * len(out)
    for axis, dim in zip(step.dims, shape, strict=False):
        if not 0 <= axis < len(out):
            return None
        before[axis] = dim
    return tuple(before)


def _set(
    taint: dict[Hashable, int], before: dict[Hashable, Shape], out: Hashable, mark: int
) -> None:
    if mark:
        taint[out] = mark
    else:
        taint.pop(out, None)
    before.pop(out, None)


def first_meeting(steps: Iterable[Step], y_true: Hashable, y_pred: Hashable) -> Meeting | None:
    """The first step where a value computed from ``y_true`` meets one computed from
    ``y_pred`` and broadcasting enlarges both (repeats elements of each), or ``None``.

    Two values that are each computed from both sides already (residuals, paired with
    each other as in ``d - ops.transpose(d)``) do not count: that pairing is deliberate,
    and where the two sides first met, their shapes agreed.

    Args:
        steps: the loss's operations, in an order where each value is made before it
            is used.
        y_true: the id of the ``y_true`` input among the steps' values.
        y_pred: the id of the ``y_pred`` input.

    Example:
        >>> steps = [
        ...     Step("meet", "sub", ("t", "p"), ((4,), (4, 1)), ("d",), "l.py:3"),
        ... ]
        >>> first_meeting(steps, "t", "p").result
        (4, 4)
        >>> first_meeting([Step("meet", "sub", ("p", "p2"), ((4,), (4, 1)), ("d",))],
        ...               "t", "p") is None  # y_pred with itself
        True
    """
    taint: dict[Hashable, int] = {y_true: _TRUE, y_pred: _PRED}
    # Values that are another one broadcast (repeated), with their shape before that:
    # an elementwise operation on them repeats elements the same way.
    before: dict[Hashable, Shape] = {}
    for step in steps:
        if not step.inputs:
            continue  # a constant, or an input (y_true, y_pred) being defined
        marks = [taint.get(i, 0) if i is not None else 0 for i in step.inputs]
        shapes = [
            before.get(i, s) if i is not None else s
            for i, s in zip(step.inputs, step.shapes, strict=True)
        ]
        if step.kind == "meet":
            for i, (mark_t, shape_t) in enumerate(zip(marks, shapes, strict=True)):
                if not mark_t & _TRUE or shape_t is None:
                    continue
                for j, (mark_p, shape_p) in enumerate(zip(marks, shapes, strict=True)):
                    if i == j or not mark_p & _PRED or shape_p is None:
                        continue
                    if mark_t == mark_p == _TRUE | _PRED:
                        continue  # both already mix the two (residuals paired with each other)
                    result = enlarges_both(shape_t, shape_p)
                    if result is not None:
                        return Meeting(step, shape_t, shape_p, result)
        if step.kind == "alias":  # one to one: input k becomes output k
            for source, out, mark in zip(step.inputs, step.outputs, marks, strict=False):
                _set(taint, before, out, mark)
                if mark and source in before:
                    before[out] = before[source]
            continue
        if step.kind == "shape":
            mark = 0
        elif step.kind == "broadcast":
            mark = marks[0] if marks else 0
        else:
            mark = 0
            for m in marks:
                mark |= m
        for out in step.outputs:
            _set(taint, before, out, mark)
        if mark and step.kind == "broadcast" and step.outputs and shapes[0] is not None:
            repeated = _repeated_from(step, shapes[0])
            if repeated is not None:
                before[step.outputs[0]] = repeated
    return None


def source_line(where: str) -> str:
    """The text of the line ``"file.py:12"`` names, stripped, or ``""``.

    Example:
        >>> source_line("no-such-file.py:1")
        ''
    """
    filename, _, line = where.rpartition(":")
    if not filename or not line.isdigit():
        return ""
    return linecache.getline(filename, int(line)).strip()


def relative(filename: str) -> str:
    """``filename`` relative to the working directory when below it, with symbolic links
    resolved (:func:`safegen._frames.relative_filename`: every message names a file so)."""
    return relative_filename(filename)


def where_defined(code: Any) -> str:
    """``"file.py:12"`` for a code object, relative to the working directory when below it.

    Example:
        >>> where_defined(None)
        ''
    """
    if code is None:
        return ""
    return f"{relative(code.co_filename)}:{code.co_firstlineno}"


def _fix(y_true: Shape, y_pred: Shape) -> str:
    if len(y_pred) == len(y_true) - 1 and y_true[-1:] == (1,):
        return (
            "the model's output is one rank short of the targets: give it the targets' "
            "rank (end it in `ops.expand_dims(x, -1)`, or `keepdims=True` in a reduction), "
            "or squeeze the targets in the loss: `y_true = ops.squeeze(y_true, -1)`."
        )
    if len(y_true) == len(y_pred) - 1 and y_pred[-1:] == (1,):
        return (
            "the targets are one rank short of the model's output: reshape them in the "
            "loss (`y_true = ops.expand_dims(y_true, -1)`) or in the data (shape "
            f"{fmt((*y_true, 1))}), or squeeze the output (`ops.squeeze(y_pred, -1)`)."
        )
    return (
        "give y_true and y_pred the same shape before comparing them: "
        "`y_true = ops.reshape(y_true, ops.shape(y_pred))`, or give the model's output the "
        "targets' shape."
    )


def _aligned(a: Sequence[Dim], b: Sequence[Dim]) -> bool:
    """Whether ``a`` and ``b`` are one shape but for leading 1s (NumPy's rank promotion)."""
    rank = max(len(a), len(b))
    return (1,) * (rank - len(a)) + tuple(a) == (1,) * (rank - len(b)) + tuple(b)


def loss_message(
    loss: str,
    location: str,
    output: str | None,
    y_true: Shape,
    y_pred: Shape,
    meeting: Meeting,
    *,
    details: Sequence[str] = (),
    reconciled: bool = False,
) -> str:
    """The text of the :class:`safegen.ShapeError` for a loss in which a value computed
    from ``y_true`` and one from ``y_pred`` broadcast to a shape larger than both.

    Args:
        loss: the loss's name (``"MeanSquares.call()"``).
        location: where it is defined (``"losses.py:8"``), or ``""``.
        output: the model output it belongs to, or ``""`` for a model's only loss.
        y_true: the shape of ``y_true`` as the loss received it.
        y_pred: the shape of ``y_pred`` as the loss received it.
        meeting: where the two meet, from :func:`first_meeting`.
        details: more lines.
        reconciled: whether Keras reconciled the ranks before calling the loss (a plain
            function), so the broadcast is the loss's own doing.

    Example:
        >>> step = Step("meet", "Sub", ("t", "p"), ((32,), (32, 1)), ("d",), "losses.py:10")
        >>> print(loss_message("MeanSquares.call()", "losses.py:8", "dense", (32,), (32, 1),
        ...                    first_meeting([step], "t", "p")))  # doctest: +ELLIPSIS
        loss MeanSquares.call() at losses.py:8, output 'dense': y_true of shape (32,) and \
y_pred of shape (32, 1) broadcast to (32, 32) in Sub at losses.py:10; expected shapes ...
          ...
          hint: the targets are one rank short ...
    """
    where = f"{loss} at {location}" if location else loss
    if output:
        where += f", output {output!r}"
    step = meeting.step
    op = f"{step.name} at {step.where}" if step.where else step.name
    as_received = _aligned(meeting.true_shape, y_true) and _aligned(meeting.pred_shape, y_pred)
    if as_received:
        what = f"y_true of shape {fmt(y_true)} and y_pred of shape {fmt(y_pred)}"
    else:
        what = (
            f"a value of shape {fmt(meeting.true_shape)} computed from y_true (shape "
            f"{fmt(y_true)}) and one of shape {fmt(meeting.pred_shape)} computed from y_pred "
            f"(shape {fmt(y_pred)})"
        )
    lines = [
        f"loss {where}: {what} broadcast to {fmt(meeting.result)} in {op}; expected shapes "
        "that broadcast to one of them. Every prediction is compared with every target, "
        "and the model trains on that.",
    ]
    text = source_line(step.where) if step.where else ""
    if text:
        lines.append(f"  {step.where}: {text}")
    if not reconciled and enlarges_both(y_true, y_pred) is not None:
        lines.append(
            "  Keras reconciles these shapes for its built-in losses and for plain "
            "functions, not for a Loss subclass with its own call()."
        )
        fix = _fix(tuple(y_true), tuple(y_pred))
    else:
        at = f" at {step.where}" if step.where else ""
        fix = (
            f"give the two values the same shape before they meet{at}: index, squeeze or "
            "expand the one that has a dimension too many or too few."
        )
    lines += [*(f"  {d}" for d in details), f"  hint: {fix}"]
    return "\n".join(lines)


def check_losses(model: Any) -> list[str]:
    """Checks, in place, the shapes each loss of a compiled ``model`` receives.

    From the next ``fit``/``evaluate`` on (the model's compiled loss is built with the
    first batch), each loss given to ``compile`` compares the static shapes of
    ``y_true`` and ``y_pred`` as the loss receives them, once per traced shape. When
    broadcasting them would enlarge both (``(B,)`` with ``(B, 1)`` gives ``(B, B)``), and
    the loss computes something else than it does on same-shaped inputs, it raises
    :class:`safegen.ShapeError` naming the loss, where it is defined, the output, both
    shapes and the fix. Built-in losses and plain functions (Keras reconciles their
    shapes), sparse labels against logits and sample weights are never reported.

    Call it after ``compile``; compiling again needs a new call. ``safegen.enable()``
    (``python -m safegen run``, ``pytest --safegen``) checks every compiled model.

    Args:
        model: a compiled Keras 3 (``keras``) or Keras 2 (``tf_keras``) model.

    Returns:
        The names of the outputs whose loss is checked (already built) or will be
            (built at the next ``fit``/``evaluate``): an empty list for a model compiled
            without a loss.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: ``model`` is not compiled.

    Example:
        >>> import keras, safegen
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
        >>> model.compile(loss="mse")
        >>> safegen.check_losses(model)
        ['d']
    """
    module = integration(model, "losses", "check_losses(model)", "model")
    result: list[str] = module.check_losses(model)
    return result


check_losses.__module__ = "safegen"
