"""Counters kept by each guarded generator, read with :func:`safegen.stats`."""

from __future__ import annotations

import dataclasses
import threading
import weakref
from typing import Any

__all__ = ["Stats", "Totals"]


@dataclasses.dataclass
class Stats:
    """What safegen did for one guarded generator (or, summed, for a guarded function).

    Attributes:
        yields: values that passed through the guard.
        arrays: NumPy array leaves among them.
        bytes_fingerprinted: bytes hashed in check mode (first hashes and re-checks).
        bytes_copied: bytes copied in copy mode.
        violations: arrays found changed after they were yielded, and containers
            yielded again after a key or index in them was rebound (check mode); writes
            into a frozen array stopped (freeze mode).
        unattributed: those of them that the generator had not handed out again, so
            that safegen could not tell who changed them (warned about, not raised).
        unwarned: violations not warned about because one of the same kind from the
            same generator was (``on_violation="warn"`` warns once per kind).
        seconds: time spent inside safegen, not counting the generator's own work.
        containers: of ``violations``, the rebound containers (the last field, so that
            positional ``Stats(...)`` calls written before it was added keep their
            meaning).

    The detectors' findings (repeated random streams, repeated batches) are not counted
    here: they are found mostly in worker processes, whose counters stay there, and are
    read from the session summary (``safegen run``, ``pytest --safegen``,
    ``session.as_dict()``), ``on_violation``, or the errors and warnings they raise.

    Example:
        >>> import numpy as np, safegen
        >>> it = safegen.guard(iter([np.zeros(4)]), mode="copy")
        >>> _ = list(it)
        >>> safegen.stats(it).bytes_copied
        32
    """

    yields: int = 0
    arrays: int = 0
    bytes_fingerprinted: int = 0
    bytes_copied: int = 0
    violations: int = 0
    unattributed: int = 0
    unwarned: int = 0
    seconds: float = 0.0
    containers: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(
            *(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self))
        )

    @property
    def seconds_per_yield(self) -> float:
        """Mean time inside safegen per yield (0.0 before the first yield)."""
        return self.seconds / self.yields if self.yields else 0.0


Stats.__module__ = "safegen"


class Totals:
    """The sum of the stats of every generator a guarded function (or class) has made.

    Live generators are summed on demand; a finished one is folded into a running sum
    when its state is collected, so memory does not grow with the number of generators.
    """

    def __init__(self) -> None:
        self._done = Stats()
        self._live: dict[int, Stats] = {}
        self._lock = threading.Lock()

    def track(self, owner: Any, stats: Stats) -> None:
        """Count ``stats`` until ``owner`` (the generator's state) is collected."""
        key = id(owner)
        with self._lock:
            self._live[key] = stats
        weakref.finalize(owner, self._fold, key)

    def _fold(self, key: int) -> None:
        with self._lock:
            stats = self._live.pop(key, None)
            if stats is not None:
                self._done = self._done + stats

    def total(self) -> Stats:
        """A snapshot of the sum."""
        with self._lock:
            return sum(self._live.values(), self._done)
