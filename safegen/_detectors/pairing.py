"""Inputs shuffled apart from their targets: an input row met again, in a later epoch,
with another target row.

A dataset whose ``on_epoch_end`` shuffles ``x`` and ``y`` with two permutations, or a
generator doing ``np.random.shuffle(x); np.random.shuffle(y)`` before each pass, pairs
every input with a random target from the second pass on: the network learns noise, and
the loss curve only says it learns slowly.

The detector keys each (sampled, see :mod:`~safegen._detectors.rows`) input row of a
batch, and its target row, and remembers the target a key came with in the *window*
(epoch) where it was first met. A key met again in a later window is **compared**:
its target is the same, or it **changed**. At each checkpoint (32, 64, 128, ... rows
compared, up to :data:`MAX_COMPARED`) it reports when at least :data:`CHANGED_SHARE` of
the compared rows changed target: a random re-pairing over ``k`` balanced classes
changes ``1 - 1/k`` of them (half, for binary labels).

What is not reported:

* augmented inputs: a row with noise added is never met again, so nothing is compared
  (the detector retires after :data:`IDLE_WINDOWS` windows without a row met again);
* a few duplicate inputs with other labels: a key met twice within its first window
  is left out of the comparison (it is a duplicate, not a re-pairing), and a few that
  slip through stay far below the share;
* data made mostly of duplicate rows (low-cardinality tabular features, where one input
  legitimately comes with many targets): the detector stays silent while more rows were
  duplicates within their first window than not.

Windows are the epochs a dataset's epoch methods mark, or ``steps`` yields of a
generator (``steps_per_epoch``). They need not match the data's passes: a row is
compared only against the target it had in the window where it was first met, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from safegen._detectors.rows import BatchFeed, leaves, row_digests, row_keys, split_batch
from safegen._finding import Finding, Kind

__all__ = ["CHANGED_SHARE", "MAX_COMPARED", "Pairing", "PairingReport"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

MIN_COMPARED = 32
MAX_COMPARED = 1024
CHANGED_SHARE = 0.25
IDLE_WINDOWS = 3
# Keys remembered at most (about 100 bytes each).
MAX_KEYS = 1 << 17

_UNIQUE, _DUPLICATE, _COMPARED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class PairingReport:
    """Input rows met again with another target than the first time.

    Attributes:
        source: the dataset's ``__getitem__`` or the generator (``"batches()"``).
        location: ``"file.py:12"`` where it is defined, or ``""``.
        epoch: the epoch (from 1) in which the rows were compared.
        changed: rows met again whose target row changed.
        compared: rows met again (each compared once).

    Example:
        >>> r = PairingReport("batches()", "data.py:3", 2, 30, 32)
        >>> r.message.split(":")[0]
        'batches() at data.py'
    """

    source: str
    location: str
    epoch: int
    changed: int
    compared: int

    finding_kind: ClassVar[Kind] = Kind.SHUFFLED_APART

    @property
    def message(self) -> str:
        """The full message (first line: what, where, when)."""
        where = f"{self.source} at {self.location}" if self.location else self.source
        return (
            f"{where}: by epoch {self.epoch}, {self.changed} of {self.compared} input "
            f"rows met again from an earlier epoch came with a different target row than "
            f"the first time ({self.changed / self.compared:.0%}). The inputs and the "
            "targets are shuffled apart: two permutations (x = x[p1]; y = y[p2], or "
            "np.random.shuffle(x); np.random.shuffle(y)) pair every input with a random "
            "target from the second pass on, and the network learns noise. Fix: shuffle "
            "both with one permutation: p = np.random.permutation(len(x)); "
            "x, y = x[p], y[p]."
        )

    def __str__(self) -> str:
        return self.message


PairingReport.__module__ = "safegen"


class Pairing(BatchFeed):
    """Compare the targets of input rows met again in later windows (see the module).

    Args:
        source: the source's name and ``location``, for the report.
        emit: hands the finding to the one path (``_handling.report`` with the source's
            handling).
        steps: a generator's yields per window (``None``: a dataset, whose windows
            :meth:`epoch_passed` advances).
        epoch: the epoch to name in the report (from 1); by default the window's.
    """

    def __init__(
        self,
        source: str,
        location: str,
        emit: Callable[[Finding], None],
        steps: int | None = None,
        epoch: Callable[[], int] | None = None,
    ) -> None:
        self.source = source
        self.location = location
        self.emit = emit
        self.steps = steps
        self.epoch = epoch
        self.window = 0
        self.first: dict[int, list[int]] = {}  # key: [target, window, state]
        self.fresh = 0  # keys met the first time
        self.duplicates = 0  # keys met again within their first window
        self.compared = 0
        self.changed = 0
        self.checkpoint = MIN_COMPARED
        self.idle = 0  # windows passed with nothing compared
        self.done = False

    def epoch_passed(self) -> None:
        self.window += 1
        self.idle += 1

    def seen(self, batch: Any, index: Any) -> bool:
        if self.done:
            return False
        if self.steps is not None:
            window = index // self.steps
            if window != self.window:
                self.idle += window - self.window
                self.window = window
        if self.idle > IDLE_WINDOWS and self.compared == 0:
            return self._retire()  # augmented or endless: nothing comes back
        inputs, targets = split_batch(batch)
        if targets is None:
            return self._retire()
        x, y = leaves(inputs), leaves(targets)
        if x is None or y is None or x[0].shape[0] != y[0].shape[0]:
            return self._retire()
        found = row_keys(x)
        if found is None:
            return self._retire()
        positions, keys = found
        target_keys = row_digests(y, positions)
        if target_keys is None:
            return self._retire()
        self._compare(keys.tolist(), target_keys.tolist())
        if self.compared >= self.checkpoint:
            self._judge()
        return not self.done

    def _compare(self, keys: list[int], targets: list[int]) -> None:
        first, window = self.first, self.window
        for key, target in zip(keys, targets, strict=True):
            entry = first.get(key)
            if entry is None:
                if len(first) < MAX_KEYS:
                    first[key] = [target, window, _UNIQUE]
                    self.fresh += 1
                continue
            state = entry[2]
            if state != _UNIQUE:
                continue
            if entry[1] == window:
                entry[2] = _DUPLICATE
                self.duplicates += 1
                continue
            entry[2] = _COMPARED
            self.compared += 1
            self.idle = 0
            if entry[0] != target:
                self.changed += 1

    def _judge(self) -> None:
        self.checkpoint *= 2
        if self.duplicates <= self.fresh - self.duplicates and (
            self.changed >= CHANGED_SHARE * self.compared
        ):
            self.done = True
            epoch = self.epoch() if self.epoch is not None else self.window + 1
            found = PairingReport(self.source, self.location, epoch, self.changed, self.compared)
            self.first.clear()
            self.emit(Finding.of(found, group=f"{Kind.SHUFFLED_APART.key}:{self.source}"))
            return
        if self.compared >= MAX_COMPARED:
            self._retire()

    def _retire(self) -> bool:
        self.done = True
        self.first.clear()
        return False
