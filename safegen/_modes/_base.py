"""What the guard calls on every mode: the per-generator state (:class:`_State`).

One object per guarded generator holds that generator's state. ``process(value)`` runs
after every yield and returns what the consumer gets; ``finish()`` runs when the
generator is exhausted; ``annotate(exc)`` sees every exception the generator raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safegen._config import Settings
from safegen._hasher import Job
from safegen._modes.source import Source
from safegen._stats import Stats

__all__ = ["_State"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


class _State:
    """Shared by every mode: settings, statistics, and the generator's name.

    ``inflight`` is not ``None`` while work started by the last ``process`` still runs
    elsewhere; the driver calls ``settle()`` before it resumes the generator.
    """

    inflight: Job | None = None
    # Where the findings are counted instead of this process's session (a worker
    # process's channel to its parent, set by the source's handle), or None.
    record: Callable[[Any], None] | None = None

    def __init__(self, settings: Settings, source: Source) -> None:
        self.settings = settings
        self.source = source
        self.stats = Stats()
        self.count = 0
        # An instance attribute, not only the class's: read on every step, and a miss in
        # the instance's dict costs a look-up in the class too.
        self.inflight = None
        # The guarded generator itself, to tell the line of its current yield.
        self.producer: Any = None

    def process(self, value: Any) -> Any:
        raise NotImplementedError

    def last_batch(self) -> tuple[list[Any], list[int]] | None:
        """Check mode: the arrays of the last yield and their digests (see Handle)."""
        return None

    def settle(self) -> None:
        """Finish the work ``process`` left running (before the generator resumes)."""

    def finish(self) -> None:
        """The generator is exhausted."""

    def annotate(self, exc: BaseException, writer: Source | None = None) -> None:
        """The generator raised ``exc`` (or, with ``writer``, a dataset's epoch method)."""

    def before_epoch_method(self) -> Any:
        """A dataset's ``on_epoch_end`` (or ``on_epoch_begin``) is about to run."""
        return None

    def undo_epoch_method(self, token: Any) -> None:
        """The method returned or raised: undo what ``before_epoch_method`` did."""

    def after_epoch_method(self, writer: Source) -> None:
        """The method ``writer`` returned."""
