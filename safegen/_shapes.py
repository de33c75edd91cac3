"""Declared output shapes: validation, formatting, messages and hints (framework-free).

The layer checks of every framework integration (``safegen.integrations.keras`` for
Keras 3, ``safegen.integrations.tf_keras`` for Keras 2) share these, so a shape error
reads the same whichever Keras raised it. Nothing here imports a framework: a shape is
a tuple of ints and ``None``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

__all__ = [
    "CHECKS",
    "CheckMode",
    "Dim",
    "SHAPE_HELP",
    "Shape",
    "flatten_shapes",
    "fmt",
    "fmt_path",
    "message",
    "normalize_output_shape",
    "rank_hint",
    "validate_check",
]

Dim: TypeAlias = int | None
Shape: TypeAlias = tuple[Dim, ...]
CheckMode: TypeAlias = Literal["rank", "shape"]

CHECKS: tuple[str, ...] = ("rank", "shape")
SHAPE_HELP = (
    "a shape without the batch dimension, such as (1,) or (None, 3): a tuple of ints "
    "or None, or a list, tuple or dict of such shapes for a layer with several outputs"
)


def validate_check(check: object, source: str) -> None:
    """Raises a ValueError naming ``source`` unless ``check`` is a valid check mode.

    Example:
        >>> validate_check("size", "ShapeChecked('mean')")
        Traceback (most recent call last):
        ...
        ValueError: ShapeChecked('mean'): check must be one of 'rank', 'shape'; got 'size'.
    """
    if not isinstance(check, str) or check not in CHECKS:
        raise ValueError(
            f"{source}: check must be one of {', '.join(repr(c) for c in CHECKS)}; got {check!r}."
        )


def _is_dim(value: Any) -> bool:
    return value is None or (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0
    )


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(_is_dim(d) for d in value)


def normalize_output_shape(value: Any, where: str) -> Any:
    """Validates a declared ``output_shape`` and turns every shape into a tuple.

    Example:
        >>> normalize_output_shape([None, 3], "ShapeChecked")
        (None, 3)
        >>> normalize_output_shape(1, "ShapeChecked")
        Traceback (most recent call last):
        ...
        TypeError: ShapeChecked: output_shape must be a shape without the batch ... (did you mean (1,)?).
    """  # noqa: E501
    if isinstance(value, (tuple, list)) and _is_shape(value):
        return tuple(None if d is None else int(d) for d in value)
    if isinstance(value, Mapping):
        if not value:
            raise TypeError(f"{where}: output_shape is an empty dict; expected {SHAPE_HELP}.")
        return {str(k): normalize_output_shape(v, where) for k, v in value.items()}
    if (
        isinstance(value, (tuple, list))
        and value
        and all(isinstance(v, (tuple, list, Mapping)) for v in value)
    ):
        return type(value)(normalize_output_shape(v, where) for v in value)
    hint = ""
    if _is_dim(value) and value is not None:
        hint = f" (did you mean ({value},)?)"
    elif isinstance(value, (tuple, list)) and any(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and int(d) < 0 for d in value
    ):
        hint = " (dimensions must be >= 0 or None)"
    raise TypeError(
        f"{where}: output_shape must be {SHAPE_HELP}; got {value!r} "
        f"of type {type(value).__name__}{hint}."
    )


def flatten_shapes(value: Any) -> list[Shape]:
    """Flattens a normalized shape structure in ``keras.tree`` order (dict keys sorted).

    Example:
        >>> flatten_shapes({"b": (1,), "a": [(2,), (None, 3)]})
        [(2,), (None, 3), (1,)]
    """
    if isinstance(value, tuple) and _is_shape(value):
        return [value]
    if isinstance(value, Mapping):
        return [s for k in sorted(value) for s in flatten_shapes(value[k])]
    return [s for v in value for s in flatten_shapes(v)]


def fmt(shape: Sequence[Dim] | None) -> str:
    """Formats a shape as Python writes a tuple; ``None`` (unknown rank) as ``<unknown>``.

    Example:
        >>> fmt((5,)), fmt((None, 1)), fmt(None)
        ('(5,)', '(None, 1)', '<unknown>')
    """
    if shape is None:
        return "<unknown>"
    dims = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def fmt_path(path: tuple[Any, ...]) -> str:
    """Formats the path of a leaf in a nested output: ``[1]``, ``['b']``.

    Example:
        >>> fmt_path((1, "b"))
        "[1]['b']"
    """
    return "".join(f"[{p!r}]" for p in path)


def rank_hint(got: Shape, want: Shape) -> str | None:
    """A likely cause of a rank mismatch, or ``None``.

    Example:
        >>> rank_hint((5,), (5, 1)).split(":")[0]
        'the output is one rank short and the declared last dimension is 1'
    """
    if len(got) == len(want) - 1 and want and want[-1] == 1:
        return (
            "the output is one rank short and the declared last dimension is 1: "
            "the function probably forgot `expand_dims(..., -1)`, or `keepdims=True` in a "
            "reduction such as `ops.mean(x, axis=-1, keepdims=True)`."
        )
    if len(got) == len(want) + 1 and got and got[-1] == 1:
        return (
            "the output has an extra trailing dimension of size 1: squeeze it "
            "(`ops.squeeze(x, -1)`) or declare it in output_shape."
        )
    if len(got) == len(want) + 1 and len(want) >= 1 and want[0] is None:
        return "did output_shape include the batch dimension? It must not."
    return None


def message(
    layer: str,
    what: str,
    source: str,
    input_shapes: str,
    check: str,
    *,
    hint: str | None = None,
    details: Iterable[str] = (),
    created: str = "",
) -> str:
    """The text of a :class:`safegen.ShapeError`: what and where on the first line.

    Args:
        layer: the layer, as ``"'mean' (Lambda)"``.
        what: what it did, as ``"returned rank 1, shape (5,); declared rank 2, ..."``.
        source: who declared the shape.
        input_shapes: the shapes of the tensors the layer was called with.
        check: the check mode.
        hint: a likely cause and fix.
        details: further lines.
        created: where the layer was made (or its function defined), ``"model.py:12"``.

    Example:
        >>> print(message("'mean' (Lambda)", "returned rank 1", "output_shape=(1,)", "(5, 2)",
        ...               "rank"))
        layer 'mean' (Lambda) returned rank 1.
          declared by: output_shape=(1,)
          input shape: (5, 2)
          check: 'rank'
    """
    lines = [
        f"layer {layer} {what}.",
        *([f"  created at: {created}"] if created else []),
        f"  declared by: {source}",
        f"  input shape: {input_shapes}",
        f"  check: {check!r}",
        *(f"  {d}" for d in details),
    ]
    if hint:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)
