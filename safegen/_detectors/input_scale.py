"""Inputs at ``predict``/``evaluate`` on another scale than at ``fit`` (framework-free).

A model trained on ``x / 255`` and asked to predict on raw 0-255 pixels (or on pixels
divided by 255 twice, or on raw features when it was trained on standardized ones)
returns numbers without a word: the inputs are unlike anything it was fit on. The
integration (``safegen.integrations._input_scale``) samples what ``fit`` trains on, per
model input, into a :class:`Sample`, and keeps its :class:`Range` per model; at
``predict``/``evaluate`` it samples the inputs the same way and asks :func:`compare`.

The rule (see ``docs/input-scale.md`` for the numbers behind it): with the training
range's bulk ``[low, high]`` (1st and 99th percentiles) of width ``w = high - low``,
the inputs seen are reported

* **too wide** when more than 5% of their values (their 5th or 95th percentile) lie
  more than :data:`WIDE` training widths beyond the training bulk, and beyond the
  training minimum/maximum too (0-255 against 0-1: 254 widths; raw against standardized
  features); or
* **too narrow** when their bulk is more than :data:`NARROW` times smaller than the
  training width, in magnitude as well as in width, with at least :data:`MIN_NARROW`
  values seen, not all equal, and not both integer-valued (0-1/255 against 0-1: 255
  times).

Not reported: a training input that was constant (no scale to compare with), inputs all
equal (a blank image, one value), inputs that are not numbers, new data a little wider
than the training sample, outliers (up to 5% of the values), token ids or
category indices (integer-valued on both sides are never "too narrow").
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from safegen._finding import Kind

__all__ = [
    "MAX_VALUES",
    "MIN_NARROW",
    "NARROW",
    "WIDE",
    "InputScaleReport",
    "Range",
    "Sample",
    "compare",
    "sample_values",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# Reported when more than 5% of the inputs' values lie more than WIDE training widths
# beyond the training bulk.
WIDE = 5.0
# Reported when the inputs' bulk is NARROW times smaller than the training width: a
# factor of 255 (pixels divided twice) is caught; a quiet stretch of standardized data
# (+-0.01 against +-1.5: 150 times) or near-black images (below 2/255: 127 times) are not.
NARROW = 200.0
# The fewest values (of an input, at one call) the "too narrow" side needs.
MIN_NARROW = 64
# The values sampled per input and call (rows evenly spaced, no random draws).
MAX_VALUES = 65536
# The bulk (1st and 99th percentiles), and the inner bounds that more than 5% of the
# values must pass to be "too wide" (5th and 95th).
PERCENTILES = (1.0, 5.0, 95.0, 99.0)


@dataclasses.dataclass(frozen=True)
class Range:
    """What one input's values span.

    Attributes:
        dtype: the dtype the values came in (``"float32"``, ``"uint8"``).
        count: how many finite values were summarized.
        low: the 1st percentile.
        high: the 99th percentile.
        min: the smallest value.
        max: the largest value.
        integral: whether every value was a whole number.
        inner_low: the 5th percentile (``low`` when not given).
        inner_high: the 95th percentile (``high`` when not given).

    Example:
        >>> r = Range("float32", 100, 0.0, 1.0, 0.0, 1.0, False)
        >>> r.width, r.text()
        (1.0, 'float32, 1st-99th percentile 0 .. 1, min 0, max 1')
    """

    dtype: str
    count: int
    low: float
    high: float
    min: float
    max: float
    integral: bool
    inner_low: float | None = None
    inner_high: float | None = None

    @property
    def lower(self) -> float:
        """The 5th percentile."""
        return self.low if self.inner_low is None else self.inner_low

    @property
    def upper(self) -> float:
        """The 95th percentile."""
        return self.high if self.inner_high is None else self.inner_high

    @property
    def width(self) -> float:
        """The width of the bulk (99th minus 1st percentile)."""
        return self.high - self.low

    @property
    def magnitude(self) -> float:
        """The largest absolute value of the bulk."""
        return max(abs(self.low), abs(self.high))

    def union(self, other: Range) -> Range:
        """The range of two fits of one input: the wider of each bound."""
        dtype = self.dtype if self.dtype == other.dtype else f"{self.dtype}/{other.dtype}"
        return Range(
            dtype,
            self.count + other.count,
            min(self.low, other.low),
            max(self.high, other.high),
            min(self.min, other.min),
            max(self.max, other.max),
            self.integral and other.integral,
            min(self.lower, other.lower),
            max(self.upper, other.upper),
        )

    def text(self) -> str:
        """``"float32, 1st-99th percentile 0 .. 1, min 0, max 1"``."""
        return (
            f"{self.dtype}, 1st-99th percentile {_num(self.low)} .. {_num(self.high)}, "
            f"min {_num(self.min)}, max {_num(self.max)}"
        )


def _num(value: float) -> str:
    return f"{value:.4g}"


def sample_values(array: Any, limit: int = MAX_VALUES) -> np.ndarray | None:
    """At most about ``limit`` values of ``array`` (rows evenly spaced along the first
    axis, then values evenly spaced within), as a flat float64 array of the finite ones;
    ``None`` when ``array`` holds no numbers (strings, objects) or cannot be read.

    No random draw: the user's random streams are left alone, and one array always gives
    one sample.

    Example:
        >>> sample_values(np.arange(10), limit=4).tolist()
        [0.0, 3.0, 6.0, 9.0]
    """
    shape = getattr(array, "shape", None)
    try:
        if shape is not None and len(shape) >= 1 and shape[0] is not None and shape[0] > 0:
            rows = int(shape[0])
            per_row = 1
            for dim in shape[1:]:
                per_row *= int(dim)
            if per_row == 0:
                return None
            wanted = max(1, min(rows, -(-limit // per_row)))
            step = -(-rows // wanted)
            if step > 1:
                array = array[::step]
        values = np.asarray(array)
    except Exception:  # noqa: BLE001 - a sparse or ragged tensor, a lazy frame
        return None
    if values.dtype.kind not in "biuf":
        return None
    flat = values.reshape(-1)
    if flat.size > limit:
        flat = flat[:: -(-flat.size // limit)]
    if values.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    return flat.astype(np.float64, copy=False)


class Sample:
    """One input's values, sampled over one call's arrays or batches, with their dtype.

    Example:
        >>> s = Sample()
        >>> s.add(np.linspace(0, 1, 101))
        >>> s.range().high
        0.99
    """

    __slots__ = ("dtypes", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.dtypes: list[str] = []
        self.size = 0

    def add(self, array: Any, limit: int = MAX_VALUES) -> None:
        """Sample ``array`` (one batch or all the rows), up to what is left of
        :data:`MAX_VALUES`."""
        room = MAX_VALUES - self.size
        if room <= 0:
            return
        values = sample_values(array, min(limit, room))
        if values is None:
            return
        self.parts.append(values)
        self.size += values.size
        dtype = getattr(array, "dtype", values.dtype)
        name = str(getattr(dtype, "name", dtype))
        if name not in self.dtypes:
            self.dtypes.append(name)

    def range(self) -> Range | None:
        """The range of what was sampled, or ``None`` when nothing (finite) was."""
        if not self.parts:
            return None
        values = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        if values.size == 0:
            return None
        low, inner_low, inner_high, high = np.percentile(values, PERCENTILES)
        integral = bool(np.all(values == np.round(values)))
        return Range(
            "/".join(self.dtypes),
            int(values.size),
            float(low),
            float(high),
            float(values.min()),
            float(values.max()),
            integral,
            float(inner_low),
            float(inner_high),
        )


def compare(trained: Range, seen: Range) -> str | None:
    """``"wide"`` or ``"narrow"`` when ``seen`` is on another scale than ``trained``
    (the rule of the module's docstring), else ``None``.

    Example:
        >>> unit = Range("float32", 10_000, 0.0, 1.0, 0.0, 1.0, False)
        >>> pixels = Range("uint8", 784, 0.0, 255.0, 0.0, 255.0, True)
        >>> twice = Range("float64", 784, 0.0, 1 / 255, 0.0, 1 / 255, False)
        >>> compare(unit, pixels), compare(unit, twice), compare(unit, unit)
        ('wide', 'narrow', None)
    """
    width = trained.width
    if width <= 0 or trained.max <= trained.min:
        return None  # a constant input in training: no scale to compare with
    if seen.max <= seen.min:
        return None  # all equal: a blank image, one value
    above = seen.upper - max(trained.high + WIDE * width, trained.max)
    below = min(trained.low - WIDE * width, trained.min) - seen.lower
    if above > 0 or below > 0:
        return "wide"
    if (
        seen.count >= MIN_NARROW
        and seen.width > 0
        and seen.width * NARROW < width
        and seen.magnitude * NARROW < max(trained.magnitude, width)
        and not (trained.integral and seen.integral)
    ):
        return "narrow"
    return None


def beyond(trained: Range, seen: Range) -> float:
    """How many training widths the bulk of ``seen`` reaches beyond that of ``trained``
    (0 when inside, or when ``trained`` is constant).

    Example:
        >>> unit = Range("float32", 100, 0.0, 1.0, 0.0, 1.0, False)
        >>> beyond(unit, Range("uint8", 100, 0.0, 255.0, 0.0, 255.0, True))
        254.0
    """
    width = trained.width
    if width <= 0:
        return 0.0
    return max(seen.upper - trained.high, trained.low - seen.lower, 0.0) / width


def narrower(trained: Range, seen: Range) -> float:
    """How many times narrower the bulk of ``seen`` is than that of ``trained`` (``inf``
    for a constant ``seen``)."""
    return trained.width / seen.width if seen.width > 0 else float("inf")


def likely_fix(trained: Range, seen: Range, verdict: str) -> str:
    """The likely fix, in words, for a ``verdict`` of :func:`compare`."""
    unit = -0.01 <= trained.low and trained.high <= 1.01
    pixels = seen.max <= 255.5 and seen.high > 2 and seen.min >= -0.5
    if verdict == "wide" and unit and pixels:
        return (
            "the model was trained on values in [0, 1]: divide by 255 as in fit "
            "(x / 255, or x.astype('float32') / 255)"
        )
    if verdict == "narrow" and trained.high > 2 and -0.01 <= seen.low and seen.high <= 1.01:
        return (
            "the inputs look scaled to [0, 1] while the model was trained on raw values "
            "(or scales them itself, with a Rescaling layer): pass them as in fit"
        )
    if verdict == "narrow" and unit and seen.high <= 1.01 / 200:
        return "the inputs look divided by 255 twice (x / 255 / 255): divide them once, as in fit"
    if trained.low < 0 < trained.high:
        return (
            "the model was trained on standardized (centred) values: apply the same "
            "normalization as in fit (the training mean and standard deviation, the "
            "same fitted scaler or Normalization layer)"
        )
    return "scale the inputs as they were scaled in fit (the same preprocessing)"


@dataclasses.dataclass(frozen=True)
class InputScaleReport:
    """An input given to ``predict``/``evaluate`` on another scale than at ``fit``.

    Attributes:
        source: what the session counts it under (``"inputs of model 'classifier'"``).
        location: ``""`` (a model has no line; the message names the call's).
        model: the model in messages (``"model 'classifier'"``).
        method: ``"predict"``, ``"evaluate"``, or ``"fit"`` (its ``validation_data``).
        call_line: ``"script.py:14"``, the user's line of the call, or ``""``.
        input: the input's name in messages (``"x"``, ``"x['image']"``).
        trained: the range ``fit`` trained on.
        seen: the range of the inputs given.
        verdict: ``"wide"`` or ``"narrow"``.

    Example:
        >>> unit = Range("float32", 10_000, 0.0, 1.0, 0.0, 1.0, False)
        >>> raw = Range("uint8", 784, 0.0, 255.0, 0.0, 255.0, True)
        >>> r = InputScaleReport(
        ...     "inputs of model 'm'", "", "model 'm'", "predict", "a.py:3", "x", unit, raw, "wide"
        ... )
        >>> r.message.split(":")[0]
        "model 'm'.predict() at a.py"
    """

    source: str
    location: str
    model: str
    method: str
    call_line: str
    input: str
    trained: Range
    seen: Range
    verdict: str

    finding_kind: ClassVar[Kind] = Kind.INPUT_SCALE

    @property
    def message(self) -> str:
        """The full message (first line: what, where, when)."""
        where = f"{self.model}.{self.method}()"
        if self.call_line:
            where += f" at {self.call_line}"
        given = "validation input" if self.method == "fit" else "input"
        trained, seen = self.trained, self.seen
        if self.verdict == "wide":
            if seen.upper - trained.high >= trained.low - seen.lower:
                side = f"its 95th percentile, {_num(seen.upper)}, lies"
                where_ = "above the top (99th percentile) of"
            else:
                side = f"its 5th percentile, {_num(seen.lower)}, lies"
                where_ = "below the bottom (1st percentile) of"
            how = f"{side} {beyond(trained, seen):.3g} training widths {where_} what fit trained on"
        else:
            how = (
                f"the bulk of its values is {narrower(trained, seen):.3g} times narrower "
                "than what fit trained on"
            )
        return (
            f"{where}: {given} {self.input} is on another scale than at fit: {how}.\n"
            f"  given: {seen.text()} ({seen.count} values sampled)\n"
            f"  fit:   {trained.text()} ({trained.count} values sampled)\n"
            "The model computes its outputs on inputs unlike any it learned from, and "
            "they mean little. Likely fix: "
            f"{likely_fix(trained, seen, self.verdict)}."
        )

    def __str__(self) -> str:
        return self.message


InputScaleReport.__module__ = "safegen"
