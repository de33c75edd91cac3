"""Loss shape checks: the broadcasting rule, the message, and ``check_losses`` (framework-free).

A loss that compares ``y_true`` of shape ``(B,)`` with ``y_pred`` of shape ``(B, 1)``
(or the other way round) broadcasts them into a ``(B, B)`` matrix: every prediction is
compared with every target, and the model trains on that without a word. Keras squeezes
the two to one rank for its built-in losses and for plain functions given to
``compile``, but not for a ``keras.losses.Loss`` subclass with its own ``call``.

This module holds what does not need a framework: when broadcasting two shapes enlarges
both (:func:`enlarges_both`), the text of the :class:`safegen.ShapeError`, and the public
:func:`check_losses`, which hands the model to the integration of its Keras
(``safegen.integrations.keras.losses`` or ``safegen.integrations.tf_keras.losses``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from safegen._frameworks import integration
from safegen._shapes import Dim, Shape, fmt

__all__ = ["broadcast", "check_losses", "enlarges_both", "loss_message", "where_defined"]


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


def where_defined(code: Any) -> str:
    """``"file.py:12"`` for a code object, relative to the working directory when below it.

    Example:
        >>> where_defined(None)
        ''
    """
    if code is None:
        return ""
    filename = code.co_filename
    try:
        relative = os.path.relpath(filename)
        if not relative.startswith(".."):
            filename = relative
    except ValueError:
        pass
    return f"{filename}:{code.co_firstlineno}"


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


def loss_message(
    loss: str,
    location: str,
    output: str | None,
    y_true: Shape,
    y_pred: Shape,
    result: Shape,
    *,
    details: Sequence[str] = (),
) -> str:
    """The text of the :class:`safegen.ShapeError` for a loss that broadcasts both sides.

    Example:
        >>> print(loss_message("MeanSquares.call()", "losses.py:8", "dense", (32,), (32, 1),
        ...                    (32, 32)))  # doctest: +ELLIPSIS
        loss MeanSquares.call() at losses.py:8, output 'dense': y_true of shape (32,) and \
y_pred of shape (32, 1) broadcast to (32, 32); expected shapes that ...
          ...
          hint: the targets are one rank short ...
    """
    where = f"{loss} at {location}" if location else loss
    if output:
        where += f", output {output!r}"
    lines = [
        f"loss {where}: y_true of shape {fmt(y_true)} and y_pred of shape {fmt(y_pred)} "
        f"broadcast to {fmt(result)}; expected shapes that broadcast to one of them. "
        "Every prediction is compared with every target, and the model trains on that.",
        "  Keras reconciles these shapes for its built-in losses and for plain functions, "
        "not for a Loss subclass with its own call().",
        *(f"  {d}" for d in details),
        f"  hint: {_fix(y_true, y_pred)}",
    ]
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
