"""Logits fed where probabilities are expected, and the reverse (framework-free).

A probabilistic loss says what it expects of the model's output: probabilities
(``from_logits=False``, the default) or logits (``from_logits=True``). Mixing the two
up raises nothing. A linear last layer with ``binary_crossentropy`` has its logits
clipped to ``[1e-7, 1 - 1e-7]``: every logit above 1 or below 0 gives the same clipped
loss, its gradient is zero, and the model trains badly. A sigmoid or softmax output with
``from_logits=True`` is squashed twice: the loss can never reach 0 and the gradients
shrink.

The decision is taken on the **values** the model really outputs on a first batch (a
``Lambda(sigmoid)`` output is probabilities whatever its layer is called), with the
output layer's activation as the only other evidence:

* ``from_logits=False``: a value outside ``[0, 1]`` (beyond a rounding tolerance); for a
  categorical loss (``categorical_crossentropy``, its sparse and focal variants) also
  rows, along the loss's class axis, that do not sum to 1.
* ``from_logits=True``, categorical, two classes or more: every value in ``[0, 1]`` and
  every row summing to 1. Logits do that only by design.
* ``from_logits=True``, otherwise: every value in ``[0, 1]`` **and** an output layer
  whose activation is a sigmoid or a softmax (a per-class sigmoid fed to a categorical
  loss as logits, say). An untrained linear head on small inputs can produce values in
  ``(0, 1)`` by chance, and a false alarm costs more than a miss: values alone are not
  enough here.

This module holds what needs no framework: which losses are probabilistic
(:class:`LossSpec`), the rule (:func:`judge`) and the message. The framework glue
(reading a compiled model's losses, its outputs on a batch, the call check that
``safegen.enable()`` runs before ``fit`` and ``evaluate``, and
:func:`safegen.check_logits`) is :mod:`safegen.integrations._logits`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "FUNCTIONS",
    "LossKind",
    "LossSpec",
    "Verdict",
    "judge",
    "message",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

LossKind = Literal["binary", "categorical", "sparse_categorical"]

# The probabilistic losses of Keras (3 and 2) by their function's name: each takes
# ``from_logits`` (default False) and, for the categorical ones, ``axis`` (default -1).
FUNCTIONS: dict[str, LossKind] = {
    "binary_crossentropy": "binary",
    "binary_focal_crossentropy": "binary",
    "categorical_crossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse_categorical",
}

# Output activations that produce probabilities.
ACTIVATIONS = frozenset({"sigmoid", "softmax", "hard_sigmoid"})

# How far outside [0, 1] a probability may be by rounding, and how far from 1 a row of
# probabilities may sum: 0.03 for 16-bit floats (float16, bfloat16), else 0.001 (a
# float64 output may hold a float32 softmax of many classes).
_RANGE_TOLERANCE = 1e-3
_SUM_TOLERANCE = {2: 3e-2}


class LossSpec(NamedTuple):
    """What a probabilistic loss of a compiled model expects of one output.

    Attributes:
        name: the loss as the user wrote it, for messages (``"'binary_crossentropy'"``,
            ``"BinaryCrossentropy(from_logits=True)"``).
        kind: ``"binary"``, ``"categorical"`` or ``"sparse_categorical"``.
        from_logits: whether it expects logits.
        axis: the class axis of a categorical loss.
        function: the loss function's name (``"binary_focal_crossentropy"``).
    """

    name: str
    kind: LossKind
    from_logits: bool
    axis: int = -1
    function: str = ""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the values of one output say against its loss's ``from_logits``.

    Attributes:
        problem: ``"logits"`` (values outside [0, 1] given to a loss expecting
            probabilities), ``"unnormalized"`` (categorical rows not summing to 1) or
            ``"probabilities"`` (probabilities given to a loss expecting logits).
        low: the smallest value seen.
        high: the largest value seen.
        rows: how many rows (values, for a binary loss) were seen.
        sums: the smallest and largest row sum along the class axis, or ``None``.
    """

    problem: Literal["logits", "unnormalized", "probabilities"]
    low: float
    high: float
    rows: int
    sums: tuple[float, float] | None


def _sums(values: np.ndarray, axis: int) -> np.ndarray | None:
    """The row sums along ``axis`` when it holds two classes or more, else ``None``."""
    if values.ndim == 0:
        return None
    try:
        classes = values.shape[axis]
    except IndexError:
        return None
    if classes < 2:
        return None
    return np.asarray(values.sum(axis=axis, dtype=np.float64))


def judge(spec: LossSpec, values: Any, activation: str | None = None) -> Verdict | None:
    """Whether ``values`` (the model's output for ``spec``'s loss, on real inputs)
    contradict the loss's ``from_logits``; ``None`` when they do not, or when they say
    nothing for sure.

    Args:
        spec: the loss.
        values: the output's values (an array; a batch of rows).
        activation: the name of the output layer's activation (``"sigmoid"``), or
            ``None`` when it is linear or unknown.

    Example:
        >>> import numpy as np
        >>> bce = LossSpec("'binary_crossentropy'", "binary", from_logits=False)
        >>> judge(bce, np.array([[-2.5], [0.3], [4.0]])).problem
        'logits'
        >>> judge(bce, np.array([[0.1], [0.9]])) is None
        True
        >>> logits = bce._replace(from_logits=True)
        >>> judge(logits, np.array([[0.1], [0.9]])) is None  # a linear head, by chance
        True
        >>> judge(logits, np.array([[0.1], [0.9]]), activation="sigmoid").problem
        'probabilities'
    """
    array = np.asarray(values)
    width = array.dtype.itemsize
    if array.dtype.name == "bfloat16":  # ml_dtypes' type, not a NumPy floating type
        array = array.astype(np.float32)
    if array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        return None
    if not np.isfinite(array).all():
        return None  # NaN or inf: another problem, not this one
    low, high = float(array.min()), float(array.max())
    categorical = spec.kind != "binary"
    sums = _sums(array, spec.axis)
    rows = int(array.size if sums is None else sums.size)
    sum_range = None if sums is None else (float(sums.min()), float(sums.max()))
    in_range = low >= -_RANGE_TOLERANCE and high <= 1 + _RANGE_TOLERANCE
    tolerance = _SUM_TOLERANCE.get(width, 1e-3)
    normalized = sums is not None and bool(np.all(np.abs(sums - 1.0) <= tolerance))

    def verdict(problem: Literal["logits", "unnormalized", "probabilities"]) -> Verdict:
        return Verdict(problem, low, high, rows, sum_range)

    if not spec.from_logits:
        if not in_range:
            return verdict("logits")
        if categorical and sums is not None and not normalized:
            return verdict("unnormalized")
        return None
    if not in_range:
        return None
    if normalized:  # rows of two classes or more, each summing to 1
        return verdict("probabilities")
    if activation in ACTIVATIONS:  # values in [0, 1], and made so by the output layer
        return verdict("probabilities")
    return None


def _number(x: float) -> str:
    return f"{x:.4g}"


def _fix(spec: LossSpec, verdict: Verdict, activation: str | None) -> str:
    function = (
        spec.function
        or {
            "binary": "binary_crossentropy",
            "categorical": "categorical_crossentropy",
            "sparse_categorical": "sparse_categorical_crossentropy",
        }[spec.kind]
    )
    klass = "".join(part.capitalize() for part in function.split("_"))
    squash = "sigmoid" if spec.kind == "binary" else "softmax"
    if verdict.problem == "logits":
        return (
            f"if the output is meant to be logits, compile with "
            f"`keras.losses.{klass}(from_logits=True)` (and apply a {squash} at predict "
            f"time to read probabilities); otherwise end the output in a {squash} "
            f'(`activation="{squash}"`).'
        )
    if verdict.problem == "unnormalized":
        return (
            "end the output in a softmax over the classes axis "
            f'(`activation="softmax"`), or, if the values are logits, compile with '
            f"`keras.losses.{klass}(from_logits=True)`."
        )
    layer = f"its {activation} " if activation else "the final sigmoid/softmax "
    return (
        f"remove {layer}activation from the output layer (`activation=None`; apply "
        f"{squash} at predict time to read probabilities), or compile with "
        f"`keras.losses.{klass}(from_logits=False)`."
    )


def message(
    spec: LossSpec,
    verdict: Verdict,
    *,
    model: str,
    output: str = "",
    method: str = "fit",
    activation: str | None = None,
) -> str:
    """The text of the :class:`safegen.LogitsError` for ``verdict``.

    Args:
        spec: the loss.
        verdict: what :func:`judge` found.
        model: the model's name.
        output: the output the loss belongs to, or ``""`` for a model's only output.
        method: ``"fit"``, ``"evaluate"``, or ``"check_logits"``.
        activation: the output layer's activation, or ``None``.

    Example:
        >>> spec = LossSpec("'binary_crossentropy'", "binary", from_logits=False)
        >>> verdict = judge(spec, np.array([[-2.5], [0.3], [4.0]]))
        >>> print(message(spec, verdict, model="sequential"))  # doctest: +ELLIPSIS
        model 'sequential' at fit: loss 'binary_crossentropy' expects probabilities \
(from_logits=False), but the model's output holds values from -2.5 to 4 ...
        ...
          hint: if the output is meant to be logits, compile with ...
    """
    where = f"model {model!r} at {method}: loss {spec.name}"
    if output:
        where += f" of output {output!r}"
    seen = f"values from {_number(verdict.low)} to {_number(verdict.high)}"
    if verdict.sums is not None and verdict.problem != "logits":
        low, high = _number(verdict.sums[0]), _number(verdict.sums[1])
        summing = low if low == high else f"{low} to {high}"
        seen += f", rows summing to {summing} along axis {spec.axis}"
    unit = "rows" if verdict.sums is not None else "values"
    seen += f" ({verdict.rows} {unit} of the first batch)"
    if verdict.problem == "logits":
        first = (
            f"{where} expects probabilities (from_logits=False), but the model's output "
            f"holds {seen}: those are logits, not probabilities."
        )
        why = (
            "The loss clips them into [1e-7, 1 - 1e-7]: every logit beyond that range "
            "gets the same loss and no gradient, and the model trains badly without an "
            "error."
        )
    elif verdict.problem == "unnormalized":
        first = (
            f"{where} expects probabilities (from_logits=False), but the model's output "
            f"holds {seen}: its rows are not probability distributions."
        )
        why = (
            "A categorical cross-entropy compares each row with a distribution over the "
            "classes; rows that do not sum to 1 are rescaled or clipped, and the loss "
            "does not measure what the model predicts."
        )
    else:
        made = f", from an output layer whose activation is {activation}" if activation else ""
        first = (
            f"{where} expects logits (from_logits=True), but the model's output holds "
            f"{seen}{made}: those are probabilities already."
        )
        why = (
            "The loss applies a sigmoid/softmax once more: the squashed values never "
            "reach 0 or 1, the loss cannot reach its minimum and the gradients shrink; "
            "the model trains badly without an error."
        )
    return "\n".join([first, f"  {why}", f"  hint: {_fix(spec, verdict, activation)}"])
