"""Pull N items from a data source under safegen and collect what it finds.

Shared by ``python -m safegen check`` and :func:`safegen.testing.assert_no_aliasing`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from safegen._config import Options
from safegen._config import mode as config_mode
from safegen._errors import SafegenError
from safegen._handle import Handle, handle_of
from safegen._report import AliasingReport
from safegen._sources import guard_source
from safegen._sources.datasets import is_dataset, is_dataset_class, lent, own_mode

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
        stopped_by: the name of the safegen error the source itself raised, which ended
            the read (its own ``@safegen.guard``'s ``AliasingError``, say), or ``""``.
            It is a finding: an ``AliasingError``'s report is in ``reports``, the
            message of any other is in ``raised``.
        raised: the message of that error when it is not in ``reports``, or ``""``.
        source_copies: whether the generator or iterator read is the output of the
            source's own guard in copy mode (a ``@safegen.guard(mode="copy")`` on the
            source itself, not on a helper it uses): what was checked are the copies
            that guard hands out, not the source's own arrays. A dataset class that
            guards itself is read under the check's guard in place of its own, so this
            stays false for it (see ``own_copies_set_aside``).
        own_copies_set_aside: whether the source is a dataset whose own guard copies,
            set aside while it was read: what was found is what those copies keep from
            the program that uses it.
    """

    name: str
    mode: str
    items: int = 0
    epochs: int = 0
    exhausted: bool = False
    reports: list[AliasingReport] = dataclasses.field(default_factory=list)
    frozen_write: str = ""
    stopped_by: str = ""
    raised: str = ""
    source_copies: bool = False
    own_copies_set_aside: bool = False

    @property
    def clean(self) -> bool:
        """Whether nothing was found."""
        return not self.reports and not self.frozen_write and not self.stopped_by

    def summary(self) -> str:
        """A short, readable report; the first line says clean or not."""
        pulled = f"{self.items} item(s) pulled in mode {self.mode!r}"
        if self.epochs:
            pulled += f" over {self.epochs} epoch(s), on_epoch_end called after each"
        if self.frozen_write:
            pulled += " (stopped by a write into a frozen array)"
        elif self.stopped_by:
            pulled += f" (stopped by the {self.stopped_by} it raised)"
        elif self.exhausted:
            pulled += " (the source ended)"
        note = []
        if self.source_copies:
            note.append(
                '- note: the source guards itself with safegen.guard(mode="copy"), so what '
                "was checked are the copies that guard hands out, not the source's own "
                'arrays. Remove mode="copy" there to check the source itself '
                "(SAFEGEN_MODE=copy needs no change: check reads the source in its own mode)."
            )
        if self.own_copies_set_aside and not self.clean:
            note.append(
                '- note: the source guards itself with safegen.guard(mode="copy"), which '
                "the check set aside to read the source's own arrays: the program that "
                "uses it gets copies, which nothing found here changes. Keep that guard "
                "until the source is fixed."
            )
        if self.clean:
            if self.source_copies:
                return "\n".join([f"{self.name}: clean as copied, {pulled}.", *note])
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
        if self.raised:
            lines.append(f"- {self.raised}")
        return "\n".join([*lines, *note])


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

    The source is read inside ``safegen.mode(mode)``: a ``@safegen.guard`` of its own
    that takes its mode from ``SAFEGEN_MODE``, :func:`safegen.configure` or
    :func:`safegen.mode` checks (or freezes) too, and a safegen error it raises (its
    ``AliasingError``) is a finding, not a failure of the source. A generator's or
    iterator's own guard that pins ``mode="copy"`` keeps copying: ``source_copies`` says
    so. A dataset class's or instance's own guard is set aside while it is read (the
    check's guard takes over), and given back afterwards.

    Raises:
        TypeError: ``obj`` is none of those, or calling it gave nothing iterable.
        ValueError: ``steps``, ``epochs``, ``mode`` or ``window`` is invalid.
    """
    __tracebackhide__ = True  # pytest: safegen's frames are not the user's problem
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    options = Options.parse("probe", mode=mode, window=window)
    if options.mode not in ("check", "freeze"):
        raise ValueError(f"mode must be 'check' or 'freeze' to find aliasing, got {mode!r}")
    result = ProbeResult(name=name or _describe(obj), mode=mode)
    if inspect.isasyncgenfunction(obj) or inspect.isasyncgen(obj):
        raise TypeError(
            f"{result.name} is an async generator: pulling from it needs an event loop, which "
            "this check does not run; iterate it under asyncio with safegen.guard instead"
        )
    options = options.but(on_violation=result.reports.append)
    with config_mode(mode):  # type: ignore[arg-type]
        _read(obj, steps, epochs, options, args, kwargs or {}, caller, result)
    return result


def _read(
    obj: Any,
    steps: int | None,
    epochs: int,
    options: Options,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    caller: str,
    result: ProbeResult,
) -> ProbeResult:
    """Guard ``obj`` with ``options`` and pull from it into ``result`` (see :func:`probe`)."""
    __tracebackhide__ = True
    if is_dataset_class(obj) or is_dataset(obj):
        result.own_copies_set_aside = own_mode(obj) == "copy"
    if is_dataset_class(obj):
        obj = guard_source(obj, options)(*args, **kwargs)
    elif is_dataset(obj):
        with lent(obj):  # its class, attributes and own guard (if any) are given back
            return _pull_dataset(guard_source(obj, options), steps, epochs, result)
    elif callable(obj) and not hasattr(obj, "__next__"):
        role = f"was given to {caller} as the data source"
        made = guard_source(obj, options, role=role)
        return _pull_iterator(made(*args, **kwargs), steps, result)
    if is_dataset(obj):
        return _pull_dataset(obj, steps, epochs, result)
    if hasattr(obj, "__next__") or hasattr(obj, "__iter__"):
        return _pull_iterator(guard_source(obj, options), steps, result)
    raise TypeError(
        f"{result.name}: expected a generator function, a function returning an iterable, a "
        f"PyDataset class or instance, or an iterable; got {type(obj).__qualname__}"
    )


def _pull_iterator(made: Any, steps: int | None, result: ProbeResult) -> ProbeResult:
    __tracebackhide__ = True
    iterator = iter(made)
    result.source_copies = _reads_copies(iterator)
    try:
        for _ in range(DEFAULT_STEPS if steps is None else steps):
            try:
                next(iterator)
            except StopIteration:
                result.exhausted = True
                break
            result.items += 1
    except SafegenError as error:
        _stopped(error, result)
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
    except SafegenError as error:
        _stopped(error, result)
    except ValueError as error:
        if not _is_frozen_write(error):
            raise
        result.frozen_write = _with_notes(error)
    return result


def _reads_copies(iterator: Any) -> bool:
    """Whether the probe's guarded ``iterator`` reads what the source's own guard hands
    out in copy mode: the object the probe's guard wraps is a guarded generator whose
    state copies. A guard the source merely uses inside (on a helper) is not that one."""
    handle = handle_of(iterator)
    inner = handle_of(handle.producer) if isinstance(handle, Handle) else None
    return isinstance(inner, Handle) and inner.settings.mode == "copy"


def _stopped(error: SafegenError, result: ProbeResult) -> None:
    """The source raised a safegen error (its own guard's, or a detector's): a finding.

    The probe's own guard reports into ``result`` and never raises, so the error comes
    from the source's code: a ``@safegen.guard`` of its own, say.
    """
    result.stopped_by = type(error).__name__
    report = getattr(error, "report", None)
    if isinstance(report, AliasingReport):
        result.reports.append(report)
    else:
        result.raised = _with_notes(error)


def _is_frozen_write(error: ValueError) -> bool:
    return any(note.startswith("safegen:") for note in getattr(error, "__notes__", ()))


def _with_notes(error: BaseException) -> str:
    return "\n".join([f"{type(error).__name__}: {error}", *getattr(error, "__notes__", ())])
