"""The report of one array that changed after it was yielded."""

from __future__ import annotations

import dataclasses

__all__ = ["AliasingReport"]

FIX = (
    "Allocate the array inside the loop, yield a copy (np.copy(x)), "
    'or use @safegen.guard(mode="copy").'
)


@dataclasses.dataclass(frozen=True)
class AliasingReport:
    """What changed, where, and when; given to an ``on_violation`` callable.

    Attributes:
        source: the guarded generator's qualified name with ``()``, e.g. ``"batches()"``.
        location: ``"file.py:12"`` where the generator is defined, or ``""`` if unknown.
        path: the leaf's place in the yielded structure, e.g. ``"[0]"`` or ``"['image']"``
            (``""`` when the yielded value is the array itself).
        dtype: the array's dtype, as a string.
        shape: the array's shape.
        changed_yield: the number (from 1) of the yield whose array changed.
        last_seen_unchanged: the number of the latest yield after which it was still
            unchanged (equal to ``changed_yield`` when it was not verified since).
        detected_at: the number of the yield after which the change was found.

    Example:
        >>> import safegen
        >>> found = []
        >>> @safegen.guard(on_violation=found.append)
        ... def batches():
        ...     x = np.zeros(2)
        ...     while True:
        ...         x += 1
        ...         yield x
        >>> import numpy as np
        >>> it = batches(); _ = next(it); _ = next(it)
        >>> found[0].changed_yield, found[0].detected_at
        (1, 2)
    """

    source: str
    location: str
    path: str
    dtype: str
    shape: tuple[int, ...]
    changed_yield: int
    last_seen_unchanged: int
    detected_at: int

    @property
    def message(self) -> str:
        """The full, human-readable message (first line: what, where, when)."""
        where = f"{self.source} at {self.location}" if self.location else self.source
        leaf = f"leaf {self.path} " if self.path else "array "
        if self.last_seen_unchanged == self.detected_at - 1:
            when = f"while yield #{self.detected_at} was being produced"
        elif self.last_seen_unchanged == self.changed_yield:
            when = f"before yield #{self.detected_at} was produced"
        else:
            when = (
                f"after yield #{self.last_seen_unchanged} and before yield "
                f"#{self.detected_at} was produced"
            )
        return (
            f"{where}: yield #{self.changed_yield} {leaf}({self.dtype}, shape "
            f"{self.shape}) changed after it was yielded, {when}. "
            "The generator writes into a buffer it already handed out, and every consumer "
            "still holding that batch (Keras peeks batches ahead, tf.data prefetches, "
            f"worker threads run ahead) now sees other data. {FIX}\n"
            "If your own code modifies the batches it receives in place, that is "
            "reported too: copy the batch before changing it."
        )

    def __str__(self) -> str:
        return self.message


AliasingReport.__module__ = "safegen"
