"""Random augmentation that repeats every epoch, decided from a tf.data pipeline's graph.

The integration (``safegen.integrations._augmentation``) walks the dataset given to
``fit`` and describes it here as :class:`Stage` s (a ``map`` with the random ops of its
function, a ``cache()``, a ``Dataset.random()``, anything else), each with its inputs. This
room decides, without a framework, which maps repeat their draws:

Only maps given data to transform count (an argument that is an array, a float or a
string): a map that draws samples from integer scalars alone (``Dataset.range(n).map(
sample)``) generates a data set, which is meant to stay the same across epochs.

* **Before a cache.** A map that draws random numbers, upstream of a ``cache()`` (in
  memory or in a file): the cache keeps the first epoch's elements, and every later pass
  replays them. Any random op counts, whatever feeds its seed; a stateless op with a
  constant seed does not (it is a deterministic transformation).
* **A seeded stream that restarts.** A map, not before a cache, whose stateful random ops
  have fixed seed attributes (a global seed, ``tf.random.set_seed`` or
  ``keras.utils.set_random_seed``, was set when the map was traced, or the op was given a
  seed). Each epoch's new iterator restarts the op's stream: measured on TensorFlow 2.21,
  every epoch repeats the first epoch's draws. Reported only when the call restarts the
  iterator (more than one epoch without ``steps_per_epoch``, or the same dataset fit
  again). Not reported either when a ``shuffle()`` that reshuffles each iteration lies
  upstream of the map with no cache between them: the draws repeat position by position,
  but each element comes to another position, and so meets another draw, every epoch
  (measured on TensorFlow 2.21 with a global seed: a row's noise differs between epochs;
  keras-io's CutMix example is built this way). Ops whose state lives outside the iterator
  are not reported: a
  ``tf.random.Generator``, Keras preprocessing layers, ``keras.random`` with a
  ``SeedGenerator`` (measured: their draws change every epoch, global seed or not).
* **Seeds from Dataset.random() that restart.** A map whose stateless random ops are
  seeded from the element, over a ``Dataset.random()`` made without
  ``rerandomize_each_iteration=True``: measured on TensorFlow 2.21, its sequence is the
  same in every epoch, with or without a global seed.

Framework-free and free of NumPy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar

from safegen._finding import Finding, Kind

__all__ = [
    "CONSTANT",
    "ELEMENT",
    "SEEDED",
    "STATE",
    "AugmentationReport",
    "RandomOp",
    "Stage",
    "findings",
    "frozen",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# How a random op gets its randomness.
STATE = "state"  # a state that lives across iterators: an unseeded stateful op, a variable
SEEDED = "seeded"  # a stateful op with fixed seed attributes: restarts with each iterator
ELEMENT = "element"  # a stateless op seeded from the dataset's element
CONSTANT = "constant"  # a stateless op seeded from constants: a fixed transformation

CACHE = "cache"
SHUFFLE = "shuffle"
SEED = "seed"
DATASET_RANDOM = "dataset_random"


@dataclasses.dataclass(frozen=True)
class RandomOp:
    """A random op in a map function.

    Attributes:
        type: the op's type (``"RandomUniform"``, ``"StatelessRandomUniformV2"``).
        draws: how it gets its randomness: :data:`STATE`, :data:`SEEDED`,
            :data:`ELEMENT` or :data:`CONSTANT`.
        seed: the ``(seed, seed2)`` attributes of a stateful op, else ``(0, 0)``.
    """

    type: str
    draws: str
    seed: tuple[int, int] = (0, 0)

    @property
    def random(self) -> bool:
        """Whether it draws something else for each element (not a constant seed)."""
        return self.draws != CONSTANT


@dataclasses.dataclass(frozen=True, eq=False)
class Stage:
    """One dataset of a pipeline, with the datasets it reads.

    Attributes:
        kind: ``"map"``, ``"cache"``, ``"random"`` (``Dataset.random()``), ``"shuffle"``
            or ``"other"``.
        name: how messages name it (``"map(augment)"``, ``"cache()"``, ``"batch"``).
        inputs: the stages it reads.
        function: a map's function name (``"augment"``, ``"<lambda>"``).
        location: ``"file.py:12"`` where the map's function is defined, or ``""``.
        ops: the random ops of a map's function (nested functions included).
        rerandomize: a ``Dataset.random()``'s ``rerandomize_each_iteration``, a
            ``shuffle()``'s ``reshuffle_each_iteration``.
        transforms: whether a map is given data to transform (an argument that is an
            array, a float or a string), rather than only integer scalars: a map over
            ``Dataset.range(n)`` that draws samples from nothing generates a data set,
            and its repeating every epoch (cached or seeded) is a fixed data set, not a
            frozen augmentation.
    """

    kind: str
    name: str
    inputs: tuple[Stage, ...] = ()
    function: str = ""
    location: str = ""
    ops: tuple[RandomOp, ...] = ()
    rerandomize: bool = False
    transforms: bool = True

    def upstream(self) -> Iterator[Stage]:
        """Every stage this one reads, directly or not (each once)."""
        seen: set[int] = set()
        todo = list(self.inputs)
        while todo:
            stage = todo.pop()
            if id(stage) in seen:
                continue
            seen.add(id(stage))
            yield stage
            todo.extend(stage.inputs)

    def stages(self) -> Iterator[Stage]:
        """This stage, then every stage upstream."""
        yield self
        yield from self.upstream()


@dataclasses.dataclass(frozen=True)
class AugmentationReport:
    """A map in a tf.data pipeline whose random draws repeat every epoch.

    Attributes:
        source: what the pipeline feeds (``"tf.data input of model 'cnn'"``).
        location: ``""`` (the map's own place is ``function_location``).
        function: the map's function (``"augment"``).
        function_location: ``"file.py:12"`` where it is defined, or ``""``.
        cause: ``"cache"`` (the map is upstream of ``cache()``), ``"seed"`` (its stateful
            random ops have fixed seeds and restart with each epoch's iterator) or
            ``"dataset_random"`` (its seeds come from a ``Dataset.random()`` that repeats
            its sequence every epoch).
        ops: the random op types that repeat (``("RandomUniform",)``).
        seeds: their ``(seed, seed2)`` attributes, for ``"seed"``.
        cache: the cache's name (``"cache()"``, ``"cache('/tmp/c')"``), for ``"cache"``.
        pipeline: the stages from the source to the model (``"map(augment) -> cache()"``).

    Example:
        >>> r = AugmentationReport("tf.data input", "", "augment", "a.py:3", "cache",
        ...                        ("RandomUniform",), cache="cache()")
        >>> r.message.split(",")[0]
        'augment() at a.py:3'
    """

    source: str
    location: str
    function: str
    function_location: str
    cause: str
    ops: tuple[str, ...]
    seeds: tuple[tuple[int, int], ...] = ()
    cache: str = ""
    pipeline: str = ""

    finding_kind: ClassVar[Kind] = Kind.FROZEN_AUGMENTATION

    @property
    def message(self) -> str:
        """The full message (first line: what, where; then the ops; then the fix)."""
        name = f"{self.function}()" if self.function else "a map function"
        where = f"{name} at {self.function_location}" if self.function_location else name
        ops = ", ".join(self.ops)
        pipeline = f" Pipeline: {self.pipeline}." if self.pipeline else ""
        if self.cause == CACHE:
            return (
                f"{where}, a map in the {self.source}, draws random numbers ({ops}) "
                f"upstream of {self.cache}: the cache keeps the first epoch's augmented "
                "elements and every later epoch replays them, so the augmentation is "
                f"the same in every epoch.{pipeline} Fix: cache first, then augment "
                f"(ds.cache().map({_identifier(self.function)}))."
            )
        if self.cause == SEED:
            seeds = "; ".join(
                f"{op} seed={s} seed2={s2}"
                for op, (s, s2) in zip(self.ops, self.seeds, strict=True)
            )
            return (
                f"{where}, a map in the {self.source}, draws from random ops with fixed "
                f"seeds ({seeds}): a global seed (tf.random.set_seed, "
                "keras.utils.set_random_seed) or an op seed was set when the map was "
                "traced, and each epoch's new iterator restarts the op's seeded stream, so "
                f"every epoch repeats the first epoch's draws.{pipeline} Fix: draw from a "
                "state that lives across epochs: Keras preprocessing layers "
                "(keras.layers.RandomFlip, ...), a tf.random.Generator "
                "(g = tf.random.Generator.from_seed(1); g.uniform(...)), or stateless ops "
                "seeded from tf.data.Dataset.random(seed=1, "
                "rerandomize_each_iteration=True) zipped in."
            )
        return (
            f"{where}, a map in the {self.source}, seeds its stateless random ops ({ops}) "
            "from a tf.data.Dataset.random() made without rerandomize_each_iteration=True, "
            "whose sequence is the same in every epoch: every epoch repeats the first "
            f"epoch's draws.{pipeline} Fix: tf.data.Dataset.random(seed=..., "
            "rerandomize_each_iteration=True)."
        )


AugmentationReport.__module__ = "safegen"


def frozen(pipeline: Stage, *, restarts: bool, source: str) -> list[AugmentationReport]:
    """The maps of ``pipeline`` whose random draws repeat every epoch.

    Args:
        pipeline: the dataset given to ``fit``, as a :class:`Stage`.
        restarts: whether the call iterates the dataset afresh more than once (more than
            one epoch, each with a new iterator; or the dataset was fit before).
        source: what the pipeline feeds, for the messages.

    Returns:
        One report per map found, the maps upstream of a cache first.

    Example:
        >>> src = Stage("other", "from_tensor_slices")
        >>> aug = Stage("map", "map(augment)", (src,), "augment", "a.py:3",
        ...             (RandomOp("RandomUniform", STATE),))
        >>> [r.cause for r in frozen(Stage("cache", "cache()", (aug,)), restarts=False,
        ...                          source="tf.data input")]
        ['cache']
        >>> frozen(aug, restarts=True, source="tf.data input")
        []
    """
    reports: list[AugmentationReport] = []
    done: set[int] = set()
    path = _path(pipeline)
    for cache in pipeline.stages():
        if cache.kind != CACHE:
            continue
        for stage in cache.upstream():
            ops = tuple(op for op in stage.ops if op.random)
            if stage.kind != "map" or not ops or not stage.transforms or id(stage) in done:
                continue
            done.add(id(stage))
            reports.append(_report(stage, source, CACHE, ops, path, cache=cache.name))
    if not restarts:
        return reports
    for stage in pipeline.stages():
        if stage.kind != "map" or not stage.transforms or id(stage) in done:
            continue
        seeded = tuple(op for op in stage.ops if op.draws == SEEDED)
        if seeded and not _reshuffled(stage):
            done.add(id(stage))
            reports.append(_report(stage, source, SEED, seeded, path))
            continue
        from_element = tuple(op for op in stage.ops if op.draws == ELEMENT)
        randoms = [s for s in stage.upstream() if s.kind == "random"]
        if from_element and randoms and not any(s.rerandomize for s in randoms):
            done.add(id(stage))
            reports.append(_report(stage, source, DATASET_RANDOM, from_element, path))
    return reports


def _reshuffled(stage: Stage) -> bool:
    """Whether a ``shuffle()`` that reshuffles each iteration lies upstream of ``stage``
    with no cache between them (a cache replays its first pass's order)."""
    seen: set[int] = set()
    todo = list(stage.inputs)
    while todo:
        found = todo.pop()
        if id(found) in seen or found.kind == CACHE:
            continue
        seen.add(id(found))
        if found.kind == SHUFFLE and found.rerandomize:
            return True
        todo.extend(found.inputs)
    return False


def findings(pipeline: Stage, *, restarts: bool, source: str) -> list[Finding]:
    """:func:`frozen`'s reports as findings, each warned about once per map and cause."""
    return [
        Finding.of(report, group=f"{report.function}@{report.function_location}:{report.cause}")
        for report in frozen(pipeline, restarts=restarts, source=source)
    ]


def _report(
    stage: Stage,
    source: str,
    cause: str,
    ops: tuple[RandomOp, ...],
    path: str,
    cache: str = "",
) -> AugmentationReport:
    unique: dict[tuple[str, tuple[int, int]], None] = {}
    for op in ops:
        unique[op.type, op.seed if cause == SEED else (0, 0)] = None
    return AugmentationReport(
        source,
        "",
        stage.function,
        stage.location,
        cause,
        tuple(kind for kind, _ in unique),
        tuple(seed for _, seed in unique) if cause == SEED else (),
        cache,
        path,
    )


def _identifier(function: str) -> str:
    """The map function's name as code would write it (``"augment"`` for a lambda)."""
    return function if function.isidentifier() else "augment"


def _path(pipeline: Stage) -> str:
    """The stages from the source to the model along each stage's first input
    (``"from_tensor_slices -> map(augment) -> cache() -> batch"``)."""
    names: list[str] = []
    stage: Stage | None = pipeline
    while stage is not None and len(names) < 32:
        names.append(stage.name)
        stage = stage.inputs[0] if stage.inputs else None
    return " -> ".join(reversed(names))
