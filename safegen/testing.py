"""Helpers for your own test suite.

Example:
    >>> import numpy as np
    >>> from safegen.testing import assert_no_aliasing
    >>> def batches():
    ...     while True:
    ...         yield np.zeros(3)
    >>> assert_no_aliasing(batches, steps=5).items
    5
"""

from __future__ import annotations

from typing import Any

from safegen._config import checking_anyway
from safegen._finding import count, failing
from safegen._probe import ProbeResult, probe

__all__ = ["ProbeResult", "assert_no_aliasing", "failures"]


def assert_no_aliasing(
    obj: Any,
    *,
    steps: int | None = None,
    epochs: int = 2,
    mode: str = "check",
    window: int | None = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
) -> ProbeResult:
    """Assert that ``obj`` never changes an array after handing it out.

    Args:
        obj: a generator function or a function returning an iterable (called with
            ``args`` and ``kwargs``), a Keras ``PyDataset`` class (instantiated with them)
            or instance (read as ``obj[0]``, ``obj[1]``, ...; its class and attributes are
            restored afterwards), or a generator, iterator or iterable object.
        steps: how many items to pull from a generator or iterator (default 20; fewer
            if it ends first); for a dataset, at most this many indices per epoch
            (default: all of them).
        epochs: how many epochs to read a dataset for (default 2): ``on_epoch_begin()``
            if defined, every index, then ``on_epoch_end()``, so that a dataset that
            shuffles or refills in place, between epochs, the arrays its batches view
            is found. Other sources are read once.
        mode: ``"check"`` (fingerprints, reports every change) or ``"freeze"`` (makes
            yielded arrays read-only and stops at the first write into one; the arrays
            stay read-only).
        window: how many recent items check mode watches (default 12).
        args: positional arguments for calling ``obj``.
        kwargs: keyword arguments for calling ``obj``.

    It checks even under ``SAFEGEN_DISABLE=1``, the production switch: a test that asks
    for the check gets it. In a pytest failure, safegen's own frames are hidden
    (``__tracebackhide__``): the traceback ends at your call.

    Returns:
        The :class:`ProbeResult`, when nothing was found.

    Raises:
        AssertionError: an array changed after it was handed out; the message is
            safegen's report of each change.
        TypeError: ``obj`` cannot be iterated.
        ValueError: an invalid ``steps``, ``epochs``, ``mode`` or ``window``.

    Example:
        >>> import numpy as np
        >>> def reused():
        ...     x = np.zeros(2)
        ...     while True:
        ...         x += 1
        ...         yield x
        >>> assert_no_aliasing(reused, steps=3)
        Traceback (most recent call last):
        ...
        AssertionError: ...reused: NOT clean, 3 item(s) pulled in mode 'check'...
    """
    __tracebackhide__ = True
    with checking_anyway():
        result = probe(
            obj, steps=steps, epochs=epochs, mode=mode, window=window, args=args, kwargs=kwargs
        )
    if failures(result):
        raise AssertionError(result.summary())
    return result


def failures(result: ProbeResult) -> dict[str, int]:
    """What fails a probe, by kind: the one rule of ``safegen run`` and ``pytest
    --safegen`` too (every finding of every kind, and a safegen error the source raised
    itself, under ``"errors"``); empty when it is clean.

    Example:
        >>> import numpy as np
        >>> failures(assert_no_aliasing(lambda: iter([np.zeros(2)] * 3)))
        {}
        >>> failures(ProbeResult("batches", "freeze", frozen_write="ValueError: read-only"))
        {'stopped_writes': 1}
    """
    counts = count(result.reports)  # the findings the probe's guard passed on
    if result.frozen_write:
        counts["stopped_writes"] += 1
    # A safegen error the source raised, whose report is not among the reports.
    return failing(counts, errors=int(bool(result.raised)))
