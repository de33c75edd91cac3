"""Pull N items from a data source under safegen and collect what it finds.

Shared by ``python -m safegen check`` and :func:`safegen.testing.assert_no_aliasing`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from safegen._config import validate_mode, validate_window
from safegen._dataset import is_dataset, is_dataset_class
from safegen._guard import _refuse, _wrap_callable, guard
from safegen._report import AliasingReport

__all__ = ["DEFAULT_STEPS", "ProbeResult", "probe"]

# Items pulled from a generator or iterator when ``steps`` is not given.
DEFAULT_STEPS = 20


@dataclasses.dataclass
class ProbeResult:
    """What a probe saw.

    Attributes:
        name: what was probed, for messages.
        mode: ``"check"`` or ``"freeze"``.
        items: how many items (yields or batches) were pulled, over all epochs.
        epochs: how many epochs of a dataset were read (0 for other sources).
        exhausted: whether the source ended before ``steps`` items.
        reports: the changes check mode found.
        frozen_write: in freeze mode, the message (with safegen's note) of the write
            into a frozen array, or ``""``.
    """

    name: str
    mode: str
    items: int = 0
    epochs: int = 0
    exhausted: bool = False
    reports: list[AliasingReport] = dataclasses.field(default_factory=list)
    frozen_write: str = ""

    @property
    def clean(self) -> bool:
        """Whether nothing was found."""
        return not self.reports and not self.frozen_write

    def summary(self) -> str:
        """A short, readable report; the first line says clean or not."""
        pulled = f"{self.items} item(s) pulled in mode {self.mode!r}"
        if self.epochs:
            pulled += f" over {self.epochs} epoch(s), on_epoch_end called after each"
        if self.frozen_write:
            pulled += " (stopped by a write into a frozen array)"
        elif self.exhausted:
            pulled += " (the source ended)"
        if self.clean:
            return f"{self.name}: clean, {pulled}."
        lines = [f"{self.name}: NOT clean, {pulled}."]
        # The first report in full, a few more by their first sentence, then a count.
        for index, report in enumerate(self.reports[:4]):
            text = report.message if index == 0 else report.message.split(". ")[0] + "."
            lines.append(f"- {text}")
        if len(self.reports) > 4:
            lines.append(f"- ... and {len(self.reports) - 4} more changed array(s).")
        if self.frozen_write:
            lines.append(f"- {self.frozen_write}")
        return "\n".join(lines)


def _describe(obj: Any) -> str:
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    return f"{type(obj).__qualname__} object"


def probe(
    obj: Any,
    *,
    steps: int | None = None,
    epochs: int = 2,
    mode: str = "check",
    window: int | None = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    caller: str = "safegen.testing.assert_no_aliasing()",
) -> ProbeResult:
    """Pull items from ``obj`` under ``mode`` and return what safegen found.

    ``caller`` names who asked, in the error raised when calling ``obj`` gives nothing
    iterable.

    ``obj`` may be a generator function or a function returning an iterable (called with
    ``args`` and ``kwargs``), a ``PyDataset`` class (instantiated with them), a
    ``PyDataset`` instance, or a generator, iterator or iterable object. Generators and
    iterators are read for ``steps`` items (default 20). Datasets are read as Keras
    reads them, for ``epochs`` epochs: ``on_epoch_begin()`` if defined, ``dataset[i]``
    for every index in order (at most ``steps`` of them, if given), then
    ``on_epoch_end()``; so a dataset that rewrites in place, between epochs, the arrays
    its batches view is found.

    Raises:
        TypeError: ``obj`` is none of those, or calling it gave nothing iterable.
        ValueError: ``steps``, ``epochs``, ``mode`` or ``window`` is invalid.
    """
    __tracebackhide__ = True  # pytest: safegen's frames are not the user's problem
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if validate_mode(mode, "probe") not in ("check", "freeze"):
        raise ValueError(f"mode must be 'check' or 'freeze' to find aliasing, got {mode!r}")
    options: dict[str, Any] = {"mode": mode}
    if window is not None:
        options["window"] = validate_window(window, "probe")
    result = ProbeResult(name=name or _describe(obj), mode=mode)
    if inspect.isasyncgenfunction(obj) or inspect.isasyncgen(obj):
        raise TypeError(
            f"{result.name} is an async generator: pulling from it needs an event loop, which "
            "this check does not run; iterate it under asyncio with safegen.guard instead"
        )
    options["on_violation"] = result.reports.append
    kwargs = kwargs or {}

    if is_dataset_class(obj):
        obj = guard(obj, **options)(*args, **kwargs)
    elif is_dataset(obj):
        saved_class, saved = obj.__class__, dict(obj.__dict__)
        try:
            return _pull_dataset(guard(obj, **options), steps, epochs, result)
        finally:
            obj.__class__ = saved_class
            obj.__dict__.clear()
            obj.__dict__.update(saved)
    elif callable(obj) and not hasattr(obj, "__next__"):
        if isinstance(obj, type):
            made = guard(obj, **options)
        else:
            _refuse(obj)
            made = _wrap_callable(obj, options, f"was given to {caller} as the data source")
        return _pull_iterator(made(*args, **kwargs), steps, result)
    if is_dataset(obj):
        return _pull_dataset(obj, steps, epochs, result)
    if hasattr(obj, "__next__") or hasattr(obj, "__iter__"):
        return _pull_iterator(guard(obj, **options), steps, result)
    raise TypeError(
        f"{result.name}: expected a generator function, a function returning an iterable, a "
        f"PyDataset class or instance, or an iterable; got {type(obj).__qualname__}"
    )


def _pull_iterator(made: Any, steps: int | None, result: ProbeResult) -> ProbeResult:
    __tracebackhide__ = True
    iterator = iter(made)
    try:
        for _ in range(DEFAULT_STEPS if steps is None else steps):
            try:
                next(iterator)
            except StopIteration:
                result.exhausted = True
                break
            result.items += 1
    except ValueError as error:
        if not _is_frozen_write(error):
            raise
        result.frozen_write = _with_notes(error)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return result


def _pull_dataset(dataset: Any, steps: int | None, epochs: int, result: ProbeResult) -> ProbeResult:
    __tracebackhide__ = True
    try:
        length = len(dataset)
    except TypeError:
        length = None
    if length is None:
        count = DEFAULT_STEPS if steps is None else steps
    else:
        count = length if steps is None else min(steps, length)
    result.exhausted = length is not None and steps is not None and length < steps
    begin = getattr(dataset, "on_epoch_begin", None)
    end = getattr(dataset, "on_epoch_end", None)
    try:
        for _ in range(epochs):
            if callable(begin):
                begin()
            for index in range(count):
                dataset[index]
                result.items += 1
            if callable(end):
                end()
            result.epochs += 1
    except ValueError as error:
        if not _is_frozen_write(error):
            raise
        result.frozen_write = _with_notes(error)
    return result


def _is_frozen_write(error: ValueError) -> bool:
    return any(note.startswith("safegen:") for note in getattr(error, "__notes__", ()))


def _with_notes(error: BaseException) -> str:
    return "\n".join([f"{type(error).__name__}: {error}", *getattr(error, "__notes__", ())])
