"""Worker processes that repeat one random stream, and copy mode's reseeding.

Keras starts its worker processes (``use_multiprocessing=True``) without reseeding them
(``OrderedEnqueuer`` passes ``random_seed=None`` to ``init_pool_generator``), and starts a
new pool every epoch, forked from an unchanged parent. Every worker therefore starts
from a copy of the same NumPy global state, and of every ``Generator``, ``RandomState``
and ``random.Random`` the dataset holds: two batches get the same noise, and every epoch
replays the first one's. (CPython reseeds the ``random`` module itself in a forked
child; a spawned child imports NumPy afresh: neither is watched.)

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

Generators that tf_keras copies into its worker processes get the same detectors, with
the random states of the generator's frame (:func:`frame_candidates`) and no index (see
:mod:`safegen._detectors.generators`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import xxhash

from safegen._config import Settings
from safegen._detectors._base import Detector, definition
from safegen._detectors._sink import Channel, read_files, write_file
from safegen._finding import Finding, Kind
from safegen._handling import Handling, report

__all__ = ["CALLS", "RandomStreamReport", "frame_candidates", "stream_detectors"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# The calls of each worker process that are watched (the first ones: those start from
# the state the worker inherited).
CALLS = 2
GLOBAL = "NumPy's global state"

_RNG_TYPES = (np.random.Generator, np.random.RandomState, random.Random)
# Calls of np.random.seed / set_state in this process (patched in worker processes),
# and, while a call is watched, the digest of NumPy's global state right after the last
# of them (to tell whether the call drew from the state it reseeded).
_reseeds = [0]
_after_reseed: list[int | None] = [None]
_watching = [False]
_patched_in: list[int] = []


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


# -- Fingerprints of random states --------------------------------------------------------


def _feed(hasher: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        hasher.update(np.ascontiguousarray(value).view(np.uint8).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            hasher.update(str(key).encode())
            _feed(hasher, value[key])
    elif isinstance(value, (tuple, list)):
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(repr(value).encode())
        hasher.update(b"\0")


def state_digest(rng: Any) -> int:
    """A fingerprint of ``rng``'s state (``None``: NumPy's global state)."""
    if rng is None:
        state: Any = np.random.get_state(legacy=False)
    elif isinstance(rng, np.random.Generator):
        state = rng.bit_generator.state
    elif isinstance(rng, np.random.RandomState):
        state = rng.get_state(legacy=False)
    else:
        state = rng.getstate()
    hasher = xxhash.xxh3_64()
    _feed(hasher, state)
    return int(hasher.intdigest())


def _kind(rng: Any) -> str:
    cls = type(rng)
    module = cls.__module__
    if module in ("numpy.random._generator", "numpy.random.mtrand"):
        module = "numpy.random"  # where the user finds it
    return f"{module}.{cls.__name__}"


def _is_rng(value: Any) -> bool:
    return (
        isinstance(value, _RNG_TYPES)
        and not isinstance(value, random.SystemRandom)  # no state: the OS's entropy
        and value is not getattr(random, "_inst", None)  # reseeded by CPython at fork
        and value is not getattr(np.random.mtrand, "_rand", None)  # the global state
    )


Resolver = Callable[[Any], Any]


def _attribute(name: str, inner: str | None = None) -> Resolver:
    def resolve(dataset: Any) -> Any:
        value = dataset.__dict__.get(name)
        return value if inner is None else getattr(value, "__dict__", {}).get(inner)

    return resolve


def _global(module: types.ModuleType, name: str) -> Resolver:
    return lambda dataset: module.__dict__.get(name)


def _candidates(dataset: Any) -> Iterator[tuple[str, Resolver, Any]]:
    """Random states reachable from ``dataset``: its attributes, their attributes, the
    locals of the generator objects it holds (a ``RandomState`` a generator made on its
    first ``next()``, in the parent, is copied into each worker with it), and the module
    globals of its class's code."""
    for name, value in list(vars(dataset).items()):
        if _is_rng(value):
            yield f"`self.{name}` ({_kind(value)})", _attribute(name), value
        elif isinstance(value, types.GeneratorType):
            for local, get, item in _frame_locals(value):
                label = f"{local} in the generator `self.{name}` ({_kind(item)})"
                yield label, _in_generator(name, get), item
        elif not isinstance(value, (type, types.ModuleType, np.ndarray)):
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, dict):
                for key, item in list(inner.items()):
                    if _is_rng(item):
                        label = f"`self.{name}.{key}` ({_kind(item)})"
                        yield label, _attribute(name, key), item
    for cls in type(dataset).__mro__:
        module = sys.modules.get(cls.__module__)
        if module is None or cls.__module__.startswith(("keras", "tensorflow", "tf_keras")):
            continue
        for name, value in list(vars(module).items()):
            if _is_rng(value):
                yield f"`{module.__name__}.{name}` ({_kind(value)})", _global(module, name), value
        break  # the dataset's own module only


def _in_generator(name: str, get: Resolver) -> Resolver:
    return lambda dataset: get(dataset.__dict__.get(name))


def _local(name: str, inner: str | None = None) -> Resolver:
    def resolve(generator: Any) -> Any:
        frame = getattr(generator, "gi_frame", None)
        value = None if frame is None else frame.f_locals.get(name)
        return value if inner is None else getattr(value, "__dict__", {}).get(inner)

    return resolve


def _frame_locals(generator: Any) -> Iterator[tuple[str, Resolver, Any]]:
    """Random states among a suspended generator's locals and their attributes, as
    (label, getter from the generator, state); none once it has finished."""
    frame = getattr(generator, "gi_frame", None)
    if frame is None:
        return
    for name, value in list(frame.f_locals.items()):
        if _is_rng(value):
            yield f"`{name}`", _local(name), value
        elif not isinstance(value, (type, types.ModuleType, np.ndarray)):
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, dict):
                for key, item in list(inner.items()):
                    if _is_rng(item):
                        yield f"`{name}.{key}`", _local(name, key), item


def frame_candidates(generator: Any) -> Iterator[tuple[str, Resolver, Any]]:
    """Random states reachable from a suspended generator: its frame's locals, their
    attributes (``self.rng`` in a generator method), and the module globals of its code.
    None for an iterator that is not a generator."""
    frame = getattr(generator, "gi_frame", None)
    if frame is None:
        return
    for label, get, value in _frame_locals(generator):
        yield f"{label} ({_kind(value)})", get, value
    module = sys.modules.get(frame.f_globals.get("__name__", ""))
    if module is not None and not module.__name__.startswith(("keras", "tensorflow", "tf_keras")):
        for name, value in list(vars(module).items()):
            if _is_rng(value):
                yield f"`{module.__name__}.{name}` ({_kind(value)})", _global(module, name), value


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
        candidates: Callable[[Any], Iterator[tuple[str, Resolver, Any]]] = _candidates,
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
    candidates: Callable[[Any], Iterator[tuple[str, Resolver, Any]]] = _candidates,
) -> list[Detector]:
    """The random-stream detectors for ``dataset`` in this process (none in its own);
    ``candidates`` lists the random states it can reach (for a generator, see
    :func:`frame_candidates`)."""
    if not channel.in_worker:
        return []
    if settings.mode == "copy":
        # Reseed runs first: the states watched after it are each worker's own.
        return [Reseed(), RandomStreams(dataset, settings, channel, True, candidates, True)]
    return [RandomStreams(dataset, settings, channel, candidates=candidates)]
