"""A shuffling sampler that gives the same order in two epochs.

PyTorch's ``DistributedSampler`` shuffles with a generator seeded from ``seed + epoch``,
and its ``epoch`` changes only through ``set_epoch()``: a training loop that never calls
it iterates the data in one order every epoch (pytorch#31771, #11324; the fixes in
tacotron2#241, SimCLR#26, stylegan2-pytorch#319). Nothing is wrong with any one epoch;
the network just never sees the samples in another order, and each rank always sees
the same part of the data.

:class:`OrderWatch` keeps, per sampler instance, a digest of every order the sampler
gave (the indices, hashed), under the ``epoch`` it had then. It decides from the signal
that defines the bug: the *same order* again, at the *same epoch*, with shuffling on.
What is not reported:

* ``shuffle=False`` (one order is the point), and orders of fewer than 2 indices;
* a new epoch (``set_epoch(e)`` with another ``e``) that happens to give the same order;
* two samplers (two ranks, a training and a validation sampler): each has its own watch;
* a sampler whose ``set_epoch`` was called, iterated twice at one epoch: a learning-rate
  finder or a sanity pass may replay an epoch's order on purpose (Lightning's tuner runs
  epoch 0 before the real epoch 0). It is reported at the third iteration with one
  epoch and one order (``set_epoch`` called once, before the loop, with a constant).

Framework-free: the integration (``safegen.integrations.torch.sampler``) hands in the
indices and the sampler's ``epoch`` and ``shuffle``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import xxhash

from safegen._finding import Kind

__all__ = ["OrderWatch", "RepeatedOrderReport"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# Iterations of one order at one epoch before it is reported: without a set_epoch()
# call (the classic bug), and with one (an epoch replayed on purpose once, see above).
REPEATS_WITHOUT_SET_EPOCH = 2
REPEATS_WITH_SET_EPOCH = 3
SHOWN = 6  # indices quoted in the message


@dataclasses.dataclass(frozen=True)
class RepeatedOrderReport:
    """A shuffling sampler gave the same order in two (or more) of its iterations.

    Attributes:
        source: the sampler, as ``"DistributedSampler"`` (its class's name).
        location: ``"train.py:12"`` where it was made, or ``""``.
        iterations: which of its iterations (numbered from 1) gave the order.
        epoch: the ``epoch`` attribute at each of them (the same).
        set_epoch_calls: how many times ``set_epoch`` had been called.
        length: how many indices the order has.
        first: its first indices.
        where: ``"train.py:40"``, the user's line that iterated it the last time, or ``""``.
        rank: the sampler's ``rank`` and ``num_replicas`` (``"rank 0 of 2"``), or ``""``.

    Example:
        >>> r = RepeatedOrderReport("DistributedSampler", "t.py:3", (1, 2), 0, 0, 8, (3, 1))
        >>> r.message.split(":")[0]
        'DistributedSampler made at t.py'
    """

    source: str
    location: str
    iterations: tuple[int, ...]
    epoch: Any
    set_epoch_calls: int
    length: int
    first: tuple[int, ...]
    where: str = ""
    rank: str = ""

    finding_kind: ClassVar[Kind] = Kind.REPEATED_ORDER  # what safegen._handling.report counts it as

    @property
    def message(self) -> str:
        """The full message (first line: what, where, when)."""
        made = f"{self.source} made at {self.location}" if self.location else self.source
        rank = f" ({self.rank})" if self.rank else ""
        at = f" (iterated at {self.where})" if self.where else ""
        runs = ", ".join(f"#{i}" for i in self.iterations)
        shown = ", ".join(str(i) for i in self.first[:SHOWN])
        more = ", ..." if self.length > SHOWN else ""
        if self.set_epoch_calls:
            why = (
                f"set_epoch() was called {self.set_epoch_calls} time(s), but the epoch "
                f"stayed {self.epoch!r}: it is called with the same value (outside the "
                "epoch loop, or with a variable that does not change)"
            )
        else:
            why = f"set_epoch() was never called, so `epoch` stayed {self.epoch!r}"
        return (
            f"{made}{rank}: iterations {runs}{at} gave the same shuffled order of "
            f"{self.length} indices ([{shown}{more}]) with shuffle=True; {why}. "
            "DistributedSampler shuffles with a generator seeded from seed + epoch, so "
            "every epoch visits the samples in one order, and each rank sees the same "
            "part of the data every epoch. Fix: call sampler.set_epoch(epoch) at the "
            "start of each epoch, before iterating the DataLoader."
        )

    def __str__(self) -> str:
        return self.message


def order_digest(order: Sequence[int] | np.ndarray) -> int:
    """A fingerprint of a sequence of indices."""
    array = np.ascontiguousarray(np.asarray(order, dtype=np.int64))
    return int(xxhash.xxh3_64_intdigest(array.view(np.uint8).tobytes()))


class OrderWatch:
    """The orders one sampler gave, by epoch; decides when one repeats.

    Attributes:
        source: the sampler's class name, for messages.
        location: where it was made, or ``""``.
        iterations: how many orders it gave.
        set_epoch_calls: how many times its ``set_epoch`` was called.
    """

    __slots__ = ("iterations", "location", "reported", "seen", "set_epoch_calls", "source")

    def __init__(self, source: str, location: str = "") -> None:
        self.source = source
        self.location = location
        self.iterations = 0
        self.set_epoch_calls = 0
        self.seen: dict[tuple[str, int], list[int]] = {}
        self.reported = False

    def saw(
        self,
        order: Sequence[int] | np.ndarray,
        epoch: Any,
        shuffle: bool,
        where: str = "",
        rank: str = "",
    ) -> RepeatedOrderReport | None:
        """Note one iteration's ``order``; the report when it repeats an earlier one at
        the same ``epoch`` (once per sampler), else ``None``."""
        self.iterations += 1
        if not shuffle or len(order) < 2 or self.reported:
            return None
        key = (repr(epoch), order_digest(order))
        runs = self.seen.setdefault(key, [])
        runs.append(self.iterations)
        needed = REPEATS_WITH_SET_EPOCH if self.set_epoch_calls else REPEATS_WITHOUT_SET_EPOCH
        if len(runs) < needed:
            return None
        self.reported = True
        first = tuple(int(i) for i in np.asarray(order[:SHOWN], dtype=np.int64))
        return RepeatedOrderReport(
            self.source,
            self.location,
            tuple(runs),
            epoch,
            self.set_epoch_calls,
            len(order),
            first,
            where,
            rank,
        )
