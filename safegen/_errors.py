"""Exceptions and warnings raised by safegen.

Every exception derives from :class:`SafegenError` and also from the builtin it behaves
like, so ``except ValueError`` and ``except RuntimeError`` keep working in code that does
not know about safegen.

All of them can be rebuilt from one message string, because Keras re-raises a layer's
exception as ``type(e)(new_message)`` to add context, and they pickle with their report,
because worker processes send them back to the parent.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

__all__ = [
    "AliasingError",
    "AliasingWarning",
    "AugmentationError",
    "AugmentationWarning",
    "InputScaleError",
    "InputScaleWarning",
    "LogitsError",
    "LogitsWarning",
    "OrderError",
    "OrderWarning",
    "PairingError",
    "PairingWarning",
    "RandomStreamError",
    "RandomStreamWarning",
    "RepeatedBatchError",
    "RepeatedBatchWarning",
    "SafegenError",
    "SafegenWarning",
    "ShapeError",
    "SplitError",
    "SplitWarning",
]


class SafegenError(Exception):
    """Base class of every error safegen raises.

    Example:
        >>> import safegen
        >>> issubclass(safegen.AliasingError, safegen.SafegenError)
        True
    """


class _Reported(SafegenError):
    """A safegen error that carries its report, and pickles with it (worker processes
    send their errors to the parent pickled)."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.report))


class AliasingError(_Reported, RuntimeError):
    """An array already handed out by a generator changed afterwards.

    A ``RuntimeError`` because it is a fault found while the program runs, in code that
    was valid to write: the generator reused a buffer that a consumer still holds.

    Attributes:
        report: the :class:`safegen.AliasingReport` describing the change, or ``None``
            when the exception was rebuilt from its message alone (Keras does that).

    Example:
        >>> import numpy as np, safegen
        >>> @safegen.guard
        ... def batches():
        ...     x = np.zeros(3)
        ...     while True:
        ...         x += 1
        ...         yield x
        >>> it = batches()
        >>> _ = next(it)
        >>> next(it)
        Traceback (most recent call last):
        ...
        safegen.AliasingError: batches() at ...
    """


class RandomStreamError(_Reported, RuntimeError):
    """Two worker processes (or two epochs) drew the same "random" numbers.

    A ``RuntimeError`` because, like :class:`AliasingError`, it is a fault found while
    the program runs in code that was valid to write: each worker process started from
    a copy of one random state and drew from it.

    Attributes:
        report: the :class:`safegen.RandomStreamReport`, or ``None`` when the exception
            was rebuilt from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.RandomStreamError("same draws"), RuntimeError)
        True
    """


class RepeatedBatchError(_Reported, RuntimeError):
    """A dataset returned, within one epoch, the same batch for two different indices; or
    two worker processes' copies of a generator yielded the same batch.

    A ``RuntimeError`` for the same reason as :class:`AliasingError`: valid code, wrong
    data, found while the program runs.

    Attributes:
        report: the :class:`safegen.RepeatedBatchReport`, or ``None`` when the exception
            was rebuilt from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.RepeatedBatchError("same batch"), RuntimeError)
        True
    """


class LogitsError(_Reported, ValueError):
    """A loss that expects probabilities is given logits, or one that expects logits
    (``from_logits=True``) is given probabilities: the model trains, badly, and nothing
    says why.

    A ``ValueError``: the loss's setting does not fit the values the model produces.

    Attributes:
        report: the report of what was found, or ``None`` when the exception was rebuilt
            from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.LogitsError("..."), ValueError)
        True
    """


class InputScaleError(_Reported, ValueError):
    """A model is evaluated or asked to predict on inputs whose range is off by a large
    factor from what it was trained on (raw 0-255 pixels against 0-1, say).

    A ``ValueError``: the values given are not of the kind the model was fit on.

    Attributes:
        report: the report of what was found, or ``None`` when the exception was rebuilt
            from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.InputScaleError("..."), ValueError)
        True
    """


class SplitError(_Reported, ValueError):
    """The validation data does not measure what it should: its rows are training rows (a
    leak), or a ``validation_split`` slice misses classes that a shuffled split would
    hold (rows sorted by class: one class, or a few, in the slice).

    A ``ValueError``: the data given to ``fit`` is split wrongly.

    Attributes:
        report: the report of what was found, or ``None`` when the exception was rebuilt
            from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.SplitError("..."), ValueError)
        True
    """


class AugmentationError(_Reported, RuntimeError):
    """Random augmentation that repeats every epoch: a random ``map`` upstream of
    ``cache()``, or random ops whose seeded stream restarts with each epoch's iterator
    (a global seed), in the ``tf.data`` pipeline given to ``fit``.

    A ``RuntimeError``: valid code, wrong data, found before training runs on it.

    Attributes:
        report: the :class:`safegen.AugmentationReport` (the map, its random ops, the
            cause), or ``None`` when the exception was rebuilt from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.AugmentationError("..."), RuntimeError)
        True
    """


class PairingError(_Reported, RuntimeError):
    """Inputs and targets were shuffled apart: an input met again in a later epoch comes
    with another target, for at least a quarter of the inputs met again (two
    permutations, or ``np.random.shuffle`` on ``x`` and on ``y``).

    A ``RuntimeError``: valid code, wrong data, found while the program runs.

    Attributes:
        report: the report of what was found, or ``None`` when the exception was rebuilt
            from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.PairingError("..."), RuntimeError)
        True
    """


class OrderError(_Reported, RuntimeError):
    """A shuffling sampler gave the same order in two epochs (a ``DistributedSampler``
    whose ``set_epoch`` was never called).

    A ``RuntimeError``: valid code, wrong data, found while the program runs.

    Attributes:
        report: the report of what was found, or ``None`` when the exception was rebuilt
            from its message alone.

    Example:
        >>> import safegen
        >>> isinstance(safegen.OrderError("..."), RuntimeError)
        True
    """


class ShapeError(SafegenError, ValueError):
    """A layer's real output does not have the rank or shape it declares, or a loss
    compares ``y_true`` and ``y_pred`` whose shapes broadcast to more than both.

    A ``ValueError`` because the value a layer produced is of the wrong shape, like the
    ``ValueError`` Keras raises for incompatible shapes.

    safegen raises it so that Keras passes it through unchanged. Should Keras (or anything
    else) rebuild it from a message it wrapped in its own context (``Exception encountered
    when calling ...``, ANSI bold, ``Arguments received by ...``), only safegen's message
    is kept.

    Example:
        >>> import safegen
        >>> isinstance(safegen.ShapeError("bad"), ValueError)
        True
    """

    # TensorFlow's autograph rebuilds an exception raised in converted code (tf_keras's
    # fit) as type(e)(message) only when its __init__ is Exception.__init__; otherwise
    # it raises a StagingError instead. ValueError has its own (equivalent) __init__.
    __init__ = Exception.__init__

    def __str__(self) -> str:
        text = super().__str__()
        wrapped = _KERAS_CONTEXT.match(text)
        if wrapped:
            return wrapped.group(1)
        if text.startswith("in user code:") and "ShapeError: " in text:
            # Autograph's framing: the user's frames, then "ShapeError: <message>" indented.
            tail = text[text.rindex("ShapeError: ") + len("ShapeError: ") :]
            return textwrap.dedent("    " + tail).strip()
        return text


# What Keras's `inject_argument_info_in_traceback` makes of a layer's exception message.
_KERAS_CONTEXT = re.compile(
    r"Exception encountered when calling [^\n]*\n\n\x1b\[1m(.*?)\x1b\[0m\n\n"
    r"Arguments received by ",
    re.S,
)


class SafegenWarning(UserWarning):
    """Base class of the warnings safegen issues.

    Example:
        >>> import safegen
        >>> issubclass(safegen.AliasingWarning, safegen.SafegenWarning)
        True
    """


class AliasingWarning(SafegenWarning):
    """Issued instead of :class:`AliasingError` when ``on_violation="warn"``.

    Example:
        >>> import warnings, safegen
        >>> issubclass(safegen.AliasingWarning, UserWarning)
        True
    """


class RandomStreamWarning(SafegenWarning):
    """Issued instead of :class:`RandomStreamError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.RandomStreamWarning, UserWarning)
        True
    """


class RepeatedBatchWarning(SafegenWarning):
    """Issued instead of :class:`RepeatedBatchError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.RepeatedBatchWarning, UserWarning)
        True
    """


class LogitsWarning(SafegenWarning):
    """Issued instead of :class:`LogitsError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.LogitsWarning, safegen.SafegenWarning)
        True
    """


class InputScaleWarning(SafegenWarning):
    """Issued instead of :class:`InputScaleError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.InputScaleWarning, safegen.SafegenWarning)
        True
    """


class SplitWarning(SafegenWarning):
    """Issued instead of :class:`SplitError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.SplitWarning, safegen.SafegenWarning)
        True
    """


class AugmentationWarning(SafegenWarning):
    """Issued instead of :class:`AugmentationError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.AugmentationWarning, safegen.SafegenWarning)
        True
    """


class PairingWarning(SafegenWarning):
    """Issued instead of :class:`PairingError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.PairingWarning, safegen.SafegenWarning)
        True
    """


class OrderWarning(SafegenWarning):
    """Issued instead of :class:`OrderError` when ``on_violation="warn"``.

    Example:
        >>> import safegen
        >>> issubclass(safegen.OrderWarning, safegen.SafegenWarning)
        True
    """


for _cls in (
    SafegenError,
    AliasingError,
    RandomStreamError,
    RepeatedBatchError,
    ShapeError,
    SafegenWarning,
    AliasingWarning,
    RandomStreamWarning,
    RepeatedBatchWarning,
    LogitsError,
    InputScaleError,
    SplitError,
    AugmentationError,
    PairingError,
    OrderError,
    LogitsWarning,
    InputScaleWarning,
    SplitWarning,
    AugmentationWarning,
    PairingWarning,
    OrderWarning,
):
    _cls.__module__ = "safegen"
del _cls
