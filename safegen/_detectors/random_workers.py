"""The random-stream detectors in a worker process: check mode records and compares,
copy mode reseeds.

Check mode, in each worker process, for its first :data:`CALLS` calls: fingerprints each
watched random state right before and after the dataset's ``__getitem__`` and notes
whether the call re-created or reseeded it (``np.random.seed``/``set_state`` called, or
the attribute now holds another object). It writes that to the dataset's channel, reads
what the other workers wrote, and reports when two worker processes drew from the same
starting state:

* NumPy's global state: same state before the call, moved by it, not reseeded in it;
* an object on the dataset (or a module global of its code, or a local of a generator
  object the dataset holds): also the same state after the call, for two different
  indices (an object reseeded in place from the index, ``self.rs.seed(index)``, cannot be
  told from a copied stream otherwise);
* a state the call reseeded (or an object it made anew): the same state after the call,
  drawn from after the reseed, for two different indices, in processes whose own calls
  reseeded it to different states. A seed computed from a counter each worker copied
  (``ImageDataGenerator.flow(seed=...)``: ``seed + total_batches_seen``) repeats so; a
  seed from the index or the worker, or a constant one (a fixed augmentation), does not.

Whichever of two workers writes second sees the first's record, so a repeat is found
without relying on timing. Threads share one state and are never compared.

Copy mode reseeds instead, in each worker process before its first call: NumPy's global
state and the ``random`` module, from a ``SeedSequence`` whose entropy is the state the
worker inherited (so ``keras.utils.set_random_seed`` keeps runs reproducible) and whose
spawn key is the process's ``multiprocessing`` identity (distinct for each worker of each
epoch's pool, and the same from run to run). Generator objects held by the dataset are
left alone: reseeding a user's object changes what it means (a generator seeded on
purpose to replay a fixed augmentation, say); check mode reports them, and copy mode
warns about them (``RandomStreamWarning``, listed in the session summary too). So it does
about a dataset that reseeds NumPy's global state to one state in every worker: that
reseed runs after copy mode's, and making it per-worker would change a seed chosen from
the index into one that depends on the worker.

The states watched are those :mod:`safegen._detectors.random_states` finds; the
comparison of the workers' records, and the report, are in
:mod:`safegen._detectors.random_streams`.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from typing import Any

import numpy as np

from safegen._config import Settings
from safegen._detectors._base import Detector, definition
from safegen._detectors._sink import Channel, read_files, write_file
from safegen._detectors.random_states import (
    GLOBAL,
    Candidates,
    Resolver,
    dataset_candidates,
    state_digest,
)
from safegen._detectors.random_streams import shared_streams
from safegen._finding import Finding
from safegen._handling import Handling, report

__all__ = ["CALLS", "RandomStreams", "Reseed", "reseed_worker", "stream_detectors"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# The calls of each worker process that are watched (the first ones: those start from
# the state the worker inherited).
CALLS = 2

# Calls of np.random.seed / set_state in this process (patched in worker processes),
# and, while a call is watched, the digest of NumPy's global state right after the last
# of them (to tell whether the call drew from the state it reseeded).
_reseeds = [0]
_after_reseed: list[int | None] = [None]
_watching = [False]
_patched_in: list[int] = []


def _watch_reseeds() -> None:
    """Count ``np.random.seed``/``set_state`` calls in this (worker) process."""
    if os.getpid() in _patched_in:
        return
    _patched_in.append(os.getpid())
    for name in ("seed", "set_state"):
        original = getattr(np.random, name)

        def counting(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            _reseeds[0] += 1
            result = __original(*args, **kwargs)
            if _watching[0]:
                _after_reseed[0] = state_digest(None)
            return result

        counting.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(np.random, name, counting)


# -- Check mode -----------------------------------------------------------------------


class RandomStreams(Detector):
    """Check mode in a worker process: record the first calls' states, compare them."""

    def __init__(
        self,
        dataset: Any,
        settings: Settings,
        channel: Channel,
        objects_only: bool = False,
        candidates: Candidates = dataset_candidates,
        reseeds: bool = False,
    ) -> None:
        self.settings = settings
        self.channel = channel
        # Copy mode reseeds the global state: it watches only the objects, and warns;
        # with ``reseeds``, also NumPy's global state, for the calls that reseed it
        # themselves (copy mode's reseeding cannot undo those).
        self.reseeds_only = objects_only and reseeds
        watch_global = not objects_only or reseeds
        self.watched: list[tuple[str, Resolver | None]] = [(GLOBAL, None)] if watch_global else []
        self.on_violation: Any = settings.on_violation
        if objects_only and not callable(self.on_violation):
            self.on_violation = "warn"
        seen = {id(np.random.mtrand._rand)}
        for label, resolve, value in candidates(dataset):
            if id(value) not in seen:
                seen.add(id(value))
                try:
                    state_digest(value)
                except Exception:  # noqa: BLE001 - a subclass without a readable state
                    continue
                self.watched.append((label, resolve))
        self.calls: list[dict[str, Any]] = []
        self.pending: list[tuple[Any, int]] = []
        self.reseeds = 0
        self.reported: set[str] = set()
        process = multiprocessing.current_process()
        self.record: dict[str, Any] = {
            "pid": os.getpid(),
            "name": process.name,
            "epoch": channel.epoch,
            "calls": self.calls,
        }
        if watch_global:
            _watch_reseeds()

    def before(self, dataset: Any, index: Any) -> None:
        self.pending = []
        for _, resolve in self.watched:
            if resolve is None:
                self.pending.append((None, state_digest(None)))
            else:
                rng = resolve(dataset)
                self.pending.append((rng, 0 if rng is None else state_digest(rng)))
        self.reseeds = _reseeds[0]
        _after_reseed[0] = None
        _watching[0] = True

    def after(self, dataset: Any, index: Any, state: Any) -> bool:
        _watching[0] = False
        states = {}
        for (label, resolve), (rng, before) in zip(self.watched, self.pending, strict=True):
            if resolve is None:
                after = state_digest(None)
                replaced = _reseeds[0] != self.reseeds
                if self.reseeds_only and not replaced:
                    continue
                # Reseeded: whether the call drew from the state after its last reseed.
                drew = after != (_after_reseed[0] if replaced else before)
            else:
                now = resolve(dataset)
                if rng is None or now is None:
                    continue
                after = state_digest(now)
                replaced = now is not rng
                drew = replaced or after != before  # a new object's first state is unknown
            states[label] = [str(before), str(after), replaced, drew]
        try:
            key: Any = int(index)
        except (TypeError, ValueError):
            key = repr(index)
        self.calls.append({"index": key, "states": states})
        write_file(self.channel.folder, f"streams-{os.getpid()}", self.record)
        # Counted by the parent, which compares every worker's record anew; a warning is
        # printed by the first worker process that finds the shared state, not by every
        # one (claimed through the channel).
        handling = Handling(
            self.on_violation,
            definition(dataset),
            record=_counted_by_parent,
            claim=self.channel.claim,
        )
        for found, pids in shared_streams(
            read_files(self.channel.folder, "streams-"), self.channel
        ):
            if os.getpid() in pids and found.state not in self.reported:
                self.reported.add(found.state)
                report(Finding.of(found, group=found.state), handling)
        return len(self.calls) < CALLS


def _counted_by_parent(finding: Finding) -> None:
    """A random stream found in a worker process: the parent's session counts it when it
    compares every worker's record (:mod:`safegen._detectors.findings`)."""


# -- Copy mode ------------------------------------------------------------------------

_reseeded_in: list[int] = []


class Reseed(Detector):
    """Copy mode in a worker process: reseed the global states before the first call."""

    def before(self, dataset: Any, index: Any) -> None:
        reseed_worker()

    def after(self, dataset: Any, index: Any, state: Any) -> bool:
        return False


def reseed_worker() -> None:
    """Reseed NumPy's global state and ``random`` in this worker process, once."""
    pid = os.getpid()
    if pid in _reseeded_in:
        return
    _reseeded_in.append(pid)
    inherited = state_digest(None)
    identity = tuple(multiprocessing.current_process()._identity) or (pid,)
    sequence = np.random.SeedSequence(inherited, spawn_key=identity)
    np.random.seed(sequence.generate_state(4))
    random.seed(int(sequence.generate_state(2, np.uint64)[0]))


def stream_detectors(
    dataset: Any,
    settings: Settings,
    channel: Channel,
    candidates: Candidates = dataset_candidates,
) -> list[Detector]:
    """The random-stream detectors for ``dataset`` in this process (none in its own);
    ``candidates`` lists the random states it can reach (for a generator, see
    :func:`~safegen._detectors.random_states.frame_candidates`)."""
    if not channel.in_worker:
        return []
    if settings.mode == "copy":
        # Reseed runs first: the states watched after it are each worker's own.
        return [Reseed(), RandomStreams(dataset, settings, channel, True, candidates, True)]
    return [RandomStreams(dataset, settings, channel, candidates=candidates)]
