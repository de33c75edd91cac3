"""The interface every detector offers to a guarded dataset's ``__getitem__`` (and to a
guarded generator's ``next()`` in a worker process: ``dataset`` is then the generator,
``index`` the number of its yield).

A detector produces findings and nothing else: it hands each one to
:func:`safegen._handling.report`, which counts it, then raises, warns or passes it on.
"""

from __future__ import annotations

from types import CodeType
from typing import Any

from safegen._modes.source import getitem_code

__all__ = ["Detector", "definition"]

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
