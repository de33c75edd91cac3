"""What safegen found: one :class:`Finding` type, of one of the :class:`Kind` s.

Every detector (check mode's aliasing check, freeze mode's stopped writes, the random
stream and repeated batch detectors) turns what it saw into a :class:`Finding` and hands
it to :func:`safegen._handling.report`, the one path that counts it in the session, then
raises, warns once or calls ``on_violation``. The public report objects
(:class:`safegen.AliasingReport`, :class:`safegen.RandomStreamReport`,
:class:`safegen.RepeatedBatchReport`) are a finding's ``details``: what ``on_violation``
gets and what the errors carry.

Framework-free, and free of NumPy: the session and the command line read it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from safegen._errors import (
    AliasingError,
    AliasingWarning,
    AugmentationError,
    AugmentationWarning,
    InputScaleError,
    InputScaleWarning,
    LogitsError,
    LogitsWarning,
    OrderError,
    OrderWarning,
    PairingError,
    PairingWarning,
    RandomStreamError,
    RandomStreamWarning,
    RepeatedBatchError,
    RepeatedBatchWarning,
    SafegenError,
    SafegenWarning,
    ShapeError,
    SplitError,
    SplitWarning,
)

__all__ = ["KINDS", "SHAPE_KINDS", "Finding", "Kind", "failing", "kind_of", "named_counts"]


class Kind(enum.Enum):
    """A kind of finding (on a data source, a training call, a layer or a loss); each is
    counted under its ``key``.

    Attributes:
        key: its key in the session's counts and ``--report``'s JSON (``"changed_arrays"``).
        label: its name in summaries (``"changed array(s)"``).
        entry: its name in the JSON list of a source's findings (``"random_stream"``).
        error: the safegen error raised for it.
        warning: the warning issued for it when it is only warned about.
        shown: what the user sees of it when safegen only warned (``"AliasingWarning"``).
        listed: whether the summary lists each finding of the kind under its source
            (the detectors' findings) rather than only counting them.
    """

    CHANGED_ARRAY = (
        "changed_arrays", "changed array(s)", "changed_array", AliasingError, AliasingWarning,
        "AliasingWarning", False,
    )  # fmt: skip
    REUSED_CONTAINER = (
        "reused_containers", "reused container(s)", "reused_container", AliasingError,
        AliasingWarning, "AliasingWarning", False,
    )  # fmt: skip
    STOPPED_WRITE = (
        "stopped_writes", "write(s) stopped", "stopped_write", AliasingError, SafegenWarning,
        "read-only ValueError the test caught", False,
    )  # fmt: skip
    RANDOM_STREAM = (
        "random_streams", "repeated random stream(s)", "random_stream", RandomStreamError,
        RandomStreamWarning, "RandomStreamWarning", True,
    )  # fmt: skip
    REPEATED_BATCH = (
        "repeated_batches", "repeated batch(es)", "repeated_batch", RepeatedBatchError,
        RepeatedBatchWarning, "RepeatedBatchWarning", True,
    )  # fmt: skip
    # The model's contract with its data (issue 26), found at fit/evaluate/predict.
    LOGITS = (
        "logits", "logits/probabilities mix-up(s)", "logits", LogitsError, LogitsWarning,
        "LogitsWarning", True,
    )  # fmt: skip
    INPUT_SCALE = (
        "input_scales", "input(s) on another scale", "input_scale", InputScaleError,
        InputScaleWarning, "InputScaleWarning", True,
    )  # fmt: skip
    # Splits and streams (issue 27).
    VALIDATION_OVERLAP = (
        "validation_overlaps", "validation/training overlap(s)", "validation_overlap",
        SplitError, SplitWarning, "SplitWarning", True,
    )  # fmt: skip
    ONE_CLASS_SPLIT = (
        "one_class_splits", "one-class validation split(s)", "one_class_split", SplitError,
        SplitWarning, "SplitWarning", True,
    )  # fmt: skip
    FROZEN_AUGMENTATION = (
        "frozen_augmentations", "augmentation(s) repeated every epoch", "frozen_augmentation",
        AugmentationError, AugmentationWarning, "AugmentationWarning", True,
    )  # fmt: skip
    SHUFFLED_APART = (
        "shuffled_apart", "input(s) shuffled apart from targets", "shuffled_apart",
        PairingError, PairingWarning, "PairingWarning", True,
    )  # fmt: skip
    # PyTorch's samplers (issue 28).
    REPEATED_ORDER = (
        "repeated_orders", "sampler order(s) repeated", "repeated_order", OrderError,
        OrderWarning, "OrderWarning", True,
    )  # fmt: skip
    # The shape checks of layers and losses: always raised (never only warned about),
    # by the integration that found them, with the finding counted first.
    LAYER_SHAPE = (
        "layer_shapes", "layer shape error(s)", "layer_shape", ShapeError, SafegenWarning,
        "ShapeError", True,
    )  # fmt: skip
    LOSS_BROADCAST = (
        "loss_broadcasts", "loss broadcast(s)", "loss_broadcast", ShapeError, SafegenWarning,
        "ShapeError", True,
    )  # fmt: skip

    def __init__(
        self,
        key: str,
        label: str,
        entry: str,
        error: type[SafegenError],
        warning: type[Warning],
        shown: str,
        listed: bool,
    ) -> None:
        self.key = key
        self.label = label
        self.entry = entry
        self.error = error
        self.warning = warning
        self.shown = shown
        self.listed = listed

    @classmethod
    def named(cls, name: str) -> Kind:
        """The kind whose ``key`` or ``entry`` is ``name`` (what a worker process wrote)."""
        for kind in cls:
            if name in (kind.key, kind.entry):
                return kind
        raise ValueError(
            f"unknown kind of finding {name!r}; expected one of "
            + ", ".join(repr(kind.key) for kind in cls)
        )


# Every kind, in the order summaries name them. A source's (and the totals') "violations"
# is the sum of their counts.
KINDS: tuple[Kind, ...] = tuple(Kind)

# The kinds found by checking shapes (a layer's output, a loss's inputs): counted under the
# session's layers and losses, not under a data source, and always raised.
SHAPE_KINDS: frozenset[Kind] = frozenset({Kind.LAYER_SHAPE, Kind.LOSS_BROADCAST})


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing safegen found, of one kind, on one source.

    Attributes:
        kind: what was found.
        source: the source's name as in messages (``"batches()"``,
            ``"Noisy.__getitem__()"``).
        location: ``"file.py:12"`` where the source is defined, or ``""``.
        message: the full message (first line: what, where, when).
        details: the public report object (:class:`safegen.AliasingReport`, ...) that
            ``on_violation`` gets and the error carries, or ``None``.
        pinned: whether ``on_violation="raise"`` raises it; ``False`` for a change that
            safegen cannot pin on the source (it is warned about instead).
        group: what "warned once" is counted by (two findings of one group and one
            handling are warned about once), or ``""`` for a warning every time.
    """

    kind: Kind
    source: str
    location: str
    message: str
    details: Any = None
    pinned: bool = True
    group: str = ""

    @classmethod
    def of(cls, report: Any, *, pinned: bool = True, group: str = "") -> Finding:
        """The finding that ``report`` (a public report object, which knows its
        ``finding_kind``) describes."""
        kind = report.finding_kind
        return cls(kind, report.source, report.location, report.message, report, pinned, group)

    @property
    def entry(self) -> dict[str, str]:
        """``{"kind": ..., "message": ...}``: the finding in ``--report``'s JSON."""
        return {"kind": self.kind.entry, "message": self.message}

    def error(self) -> SafegenError:
        """The safegen error raised for it (carrying ``details`` as its report); built
        from the message alone when there are no details (a ``ShapeError``: autograph
        rebuilds an error with one argument)."""
        if self.details is None:
            return self.kind.error(self.message)
        return self.kind.error(self.message, self.details)


def kind_of(error: BaseException) -> Kind | None:
    """The kind of finding that safegen raised ``error`` for, or ``None`` (a
    ``ShapeError``, or not safegen's). An error rebuilt from its message alone (Keras
    does that) has no report: an ``AliasingError`` then counts as a changed array.

    A ``ShapeError`` is ``None`` here: its finding (``LAYER_SHAPE`` or ``LOSS_BROADCAST``)
    is counted, and counted as raised, where it is found (a shape finding is always
    raised), so the error itself counts for nothing more."""
    report = getattr(error, "report", None)
    if isinstance(error, AliasingError):
        return Kind.REUSED_CONTAINER if getattr(report, "container", "") else Kind.CHANGED_ARRAY
    for kind in KINDS:
        if kind in SHAPE_KINDS:
            continue
        if kind.error is not AliasingError and isinstance(error, kind.error):
            # Kinds that share an error class (SplitError) are told apart by the report.
            reported = getattr(report, "finding_kind", None)
            return reported if isinstance(reported, Kind) else kind
    return None


def failing(counts: dict[str, int], errors: int = 0) -> dict[str, int]:
    """The one rule that decides whether ``safegen run``, ``pytest --safegen``, ``safegen
    check`` and :func:`safegen.testing.assert_no_aliasing` fail: every finding of every
    kind (``counts``, by kind key: a layer's or a loss's ``ShapeError`` too) fails, and so
    does a safegen error that a probed source raised itself (``errors``, counted under
    ``"errors"``).

    Returns what fails, by kind key: empty when nothing does.

    Example:
        >>> failing({"changed_arrays": 0, "repeated_batches": 2})
        {'repeated_batches': 2}
    """
    out = {kind.key: counts[kind.key] for kind in KINDS if counts.get(kind.key, 0) > 0}
    if errors > 0:
        out["errors"] = errors
    return out


def count(findings: Any) -> dict[str, int]:
    """``{"changed_arrays": 2, ...}``: ``findings`` (Findings, or the public reports that
    ``on_violation`` got) counted by kind."""
    counts = dict.fromkeys((kind.key for kind in KINDS), 0)
    for finding in findings:
        kind = finding.kind if isinstance(finding, Finding) else finding.finding_kind
        counts[kind.key] += 1
    return counts


def named_counts(counts: dict[str, int]) -> str:
    """``"1 changed array(s), 2 repeated batch(es)"``: the kinds found, with their counts."""
    return ", ".join(f"{counts[kind.key]} {kind.label}" for kind in KINDS if counts.get(kind.key))
