"""Worker processes that repeat one random stream: the report, and the comparison of
the workers' records.

Keras starts its worker processes (``use_multiprocessing=True``) without reseeding them
(``OrderedEnqueuer`` passes ``random_seed=None`` to ``init_pool_generator``), and starts a
new pool every epoch, forked from an unchanged parent. Every worker therefore starts
from a copy of the same NumPy global state, and of every ``Generator``, ``RandomState``
and ``random.Random`` the dataset holds: two batches get the same noise, and every epoch
replays the first one's. (CPython reseeds the ``random`` module itself in a forked
child; a spawned child imports NumPy afresh: neither is watched.)

In each worker process, the detectors of :mod:`safegen._detectors.random_workers`
fingerprint the random states :mod:`safegen._detectors.random_states` finds, before and
after the first calls, and write them to the dataset's channel; :func:`shared_streams`
compares those records (in a worker, after each of its calls; in the parent, for the
session) and reports when two worker processes drew from the same starting state:

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

Generators that tf_keras copies into its worker processes get the same detectors, with
the random states of the generator's frame
(:func:`~safegen._detectors.random_states.frame_candidates`) and no index (see
:mod:`safegen._detectors.generators`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from safegen._detectors._sink import Channel
from safegen._detectors.random_states import GLOBAL
from safegen._finding import Kind

__all__ = ["GLOBAL", "RandomStreamReport", "shared_streams"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's


@dataclasses.dataclass(frozen=True)
class RandomStreamReport:
    """Two worker processes (or two epochs' workers) drew from one copied random state.

    Attributes:
        source: the dataset's ``__getitem__`` (``"Noisy.__getitem__()"``).
        location: ``"file.py:12"`` where it is defined, or ``""``.
        state: which random state, e.g. ``"NumPy's global state"`` or
            ``"`self.rng` (numpy.random.Generator)"``.
        processes: the worker processes that started from it, each as
            ``"Keras_worker_ForkPoolWorker-1 (pid 123, epoch 1)"``.
        epochs: the epochs (numbered from 1 in this report) those workers ran in.
        batches: the index of the batch each of them drew for first (for a generator,
            the number of its yield).
        unit: what ``batches`` counts: ``"batches"``, or ``"yields"`` for a generator.
        hint: what to do about it where the source is (a generator's), or ``""``.
        reseeded: the calls reseeded the state themselves, to one state in every worker
            (a seed computed from a counter each worker has a copy of).
        cause: why the workers share the state, where the source's framework says
            otherwise than Keras (PyTorch reseeds the global states), or ``""``.
        fix: the fix, likewise, or ``""``.

    Example:
        >>> r = RandomStreamReport("D.__getitem__()", "d.py:3", "NumPy's global state",
        ...                        ("w1 (pid 1, epoch 1)", "w2 (pid 2, epoch 1)"), (1,), (0, 1))
        >>> r.message.split(":")[0]
        'D.__getitem__() at d.py'
    """

    source: str
    location: str
    state: str
    processes: tuple[str, ...]
    epochs: tuple[int, ...]
    batches: tuple[Any, ...]
    unit: str = "batches"
    hint: str = ""
    reseeded: bool = False
    cause: str = ""
    fix: str = ""

    finding_kind: ClassVar[Kind] = Kind.RANDOM_STREAM  # what safegen._handling.report counts it as

    @property
    def message(self) -> str:
        """The full message (first line: what, where, which workers)."""
        where = f"{self.source} at {self.location}" if self.location else self.source
        across = "workers of different epochs" if len(self.epochs) > 1 else "worker processes"
        distinct = list(dict.fromkeys(self.batches))  # two workers may draw for one index
        batches = ", ".join(f"#{b}" for b in distinct)
        unit = self.unit
        if len(distinct) == 1:  # "batch #1", "yield #1"
            unit = unit[:-2] if unit.endswith("ches") else unit[:-1]
        if self.reseeded:
            return (
                f"{where}: {self.state} was reseeded in the call to the same state in "
                f"{len(self.processes)} {across} ({', '.join(self.processes)}), and each "
                f'drew from it: {unit} {batches} got the same "random" numbers. The seed '
                "comes from something every worker process has a copy of (a counter kept "
                "on the dataset, as ImageDataGenerator.flow(seed=...) reseeds with seed + "
                "total_batches_seen), not from the index or the worker: the n-th call of "
                "every worker gets the same seed, and every epoch's workers start from the "
                "same copy again. Augmentation and noise repeat across batches and epochs. "
                "Fix: seed from the index and epoch (np.random.default_rng([seed, epoch, "
                "index])), or per worker from a SeedSequence spawned per worker and epoch; "
                "with ImageDataGenerator, flow(seed=None) and safegen's copy mode, which "
                'reseeds each worker. safegen.guard(mode="copy") cannot undo a reseed made '
                "inside the call." + (f" {self.hint}" if self.hint else "")
            )
        cause = self.cause or (
            "Each worker process starts with a copy of its parent's random state (Keras "
            "does not reseed its workers, and starts a new pool every epoch from the same "
            "parent state, so every epoch replays the first epoch's draws too)"
        )
        fix = self.fix or (
            "Fix: seed each worker from a SeedSequence spawned per worker and epoch, or "
            "draw from a generator made per call from the index and epoch "
            "(np.random.default_rng([epoch, index])); "
            + (
                'safegen.guard(mode="copy") reseeds NumPy\'s global state and `random` '
                "in each worker."
                if self.state == GLOBAL
                else 'safegen.guard(mode="copy") reseeds only the global states, not this object.'
            )
        )
        return (
            f"{where}: {self.state} started from the same state in {len(self.processes)} "
            f"{across} ({', '.join(self.processes)}), and each drew from it: {unit} "
            f'{batches} got the same "random" numbers. {cause}: augmentation and noise '
            "repeat across batches and epochs, and the network sees a fraction of the "
            f"variety you meant. {fix}" + (f" {self.hint}" if self.hint else "")
        )

    def __str__(self) -> str:
        return self.message


RandomStreamReport.__module__ = "safegen"


# -- Comparing the workers' records ---------------------------------------------------


def shared_streams(
    records: list[dict[str, Any]], channel: Channel
) -> list[tuple[RandomStreamReport, set[int]]]:
    """The random states that two processes of ``records`` drew from alike."""
    epochs = sorted({record["epoch"] for record in records})
    out = []
    labels: dict[str, None] = {}
    for record in records:
        for call in record["calls"]:
            labels.update(dict.fromkeys(call["states"]))
    for label in labels:
        draws = [
            (record, call["index"], call["states"][label])
            for record in records
            for call in record["calls"]
            if label in call["states"]
        ]
        for reseeded in (False, True):
            found = _shared(label, draws, reseeded, channel, epochs)
            if found is not None:
                out.append(found)
    return out


def _drew(state: list[Any], reseeded: bool) -> bool:
    """Whether a call's ``[before, after, replaced(, drew)]`` drew from the state: without
    reseeding it (``reseeded`` False), or after reseeding it (True)."""
    if bool(state[2]) != reseeded:
        return False
    return bool(state[3]) if len(state) > 3 else state[0] != state[1]


def _shared(
    label: str,
    draws: list[tuple[dict[str, Any], Any, list[Any]]],
    reseeded: bool,
    channel: Channel,
    epochs: list[Any],
) -> tuple[RandomStreamReport, set[int]] | None:
    """The report for ``label`` if two processes drew alike: from one starting state
    (``reseeded`` False), or from one state the calls reseeded it to (True)."""
    draws = [(r, i, s) for r, i, s in draws if _drew(s, reseeded)]
    if reseeded:
        # A state reseeded to a constant, the same in every call of a process, is meant
        # to be (a fixed augmentation): only a seed that moves from call to call in each
        # process, yet meets another process's, is a copied counter.
        ends: dict[int, list[Any]] = {}
        for record, _, state in draws:
            ends.setdefault(record["pid"], []).append(state[1])
        constant = {pid for pid, seen in ends.items() if len(set(seen)) < len(seen)}
        draws = [(r, i, s) for r, i, s in draws if r["pid"] not in constant]
    # Calls that started from one state (for an object: and ended at one state; for a
    # reseeded state: ended at one state); grouped, so that the cost is linear in the
    # number of calls.
    groups: dict[Any, list[tuple[dict[str, Any], Any]]] = {}
    for record, index, state in draws:
        if reseeded:
            key = state[1]
        else:
            key = state[0] if label == GLOBAL else (state[0], state[1])
        groups.setdefault(key, []).append((record, index))
    involved: dict[int, tuple[dict[str, Any], Any]] = {}
    for members in groups.values():
        if len({record["pid"] for record, _ in members}) < 2:
            continue
        # An object, or a reseeded state: two processes and two different indices among
        # them (then two calls of different processes drew alike for different indices;
        # one index reseeded alike in two epochs is a seed made from the index).
        # (A generator has no index: each process's copy replays the same yields.)
        if (
            (label != GLOBAL or reseeded)
            and channel.indexed
            and len({repr(index) for _, index in members}) < 2
        ):
            continue
        for record, index in members:
            involved.setdefault(record["pid"], (record, index))
    if len(involved) < 2:
        return None
    members = sorted(involved.values(), key=lambda item: (item[0]["epoch"], item[0]["pid"]))
    processes = tuple(
        f"{r['name']} (pid {r['pid']}, epoch {epochs.index(r['epoch']) + 1})" for r, _ in members
    )
    report = RandomStreamReport(
        source=channel.name,
        location=channel.location,
        state=label,
        processes=processes,
        epochs=tuple(sorted({epochs.index(r["epoch"]) + 1 for r, _ in members})),
        batches=tuple(index for _, index in members),
        unit=channel.unit,
        hint=channel.hint,
        reseeded=reseeded,
        cause=getattr(channel, "cause", ""),
        fix=getattr(channel, "fix", ""),
    )
    return report, set(involved)
