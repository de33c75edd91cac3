"""The interface every detector offers to a guarded dataset's ``__getitem__`` (and to a
guarded generator's ``next()`` in a worker process: ``dataset`` is then the generator,
``index`` the number of its yield)."""

from __future__ import annotations

from types import CodeType
from typing import Any

from safegen import _session
from safegen._frames import hide_safegen_frames
from safegen._modes.source import getitem_code, warn_at_user

__all__ = ["Detector", "definition", "dispatch"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class Detector:
    """Called around each guarded call; ``after`` returns whether to keep calling it.

    ``before`` runs right before the dataset's own ``__getitem__``, ``after`` right after
    the mode processed the batch (check mode's fingerprints are then in ``state``), both
    under the guard's lock. ``epoch_passed`` runs after an epoch method.
    """

    def before(self, dataset: Any, index: Any) -> None:
        """The dataset is about to make the batch at ``index``."""

    def after(self, dataset: Any, index: Any, state: Any) -> bool:
        """The batch at ``index`` was made and processed; return ``False`` to retire."""
        return False

    def epoch_passed(self) -> None:
        """An epoch ended (or began)."""


def definition(source: Any) -> CodeType | None:
    """The code of a generator, or of a dataset's own ``__getitem__`` (``None`` if none)."""
    code = getattr(source, "gi_code", None)
    if isinstance(code, CodeType):
        return code
    return getitem_code(type(source))


def dispatch(
    report: Any,
    handler: Any,
    error: type[BaseException],
    warning: type[Warning],
    source: Any = None,
) -> None:
    """Hand ``report`` to ``on_violation``: raise ``error``, warn ``warning``, or call it.

    The warning points at the caller's line; when the caller is a framework's (Keras's
    data adapter, in a worker process), at the definition of ``source``'s ``__getitem__``
    (a dataset) or of ``source`` (a generator) instead, which is the user's code.
    """
    if handler == "raise":
        exc = error(report.message, report)
        _session.record_error(exc)
        hide_safegen_frames()
        raise exc
    if handler == "warn":
        code = definition(source) if source is not None else None
        warn_at_user(report.message, warning, code, whole_package=True)
    elif callable(handler):
        handler(report)
