"""The frozen-augmentation check: a ``tf.data`` pipeline given to ``fit``, read as a graph.

A call check (:mod:`safegen.integrations._calls`) of Keras 3 (any backend: the dataset is
TensorFlow's, and TensorFlow is imported when the user made one) and of tf_keras. It walks
the dataset ``fit`` was given from the model back to its sources (``Dataset._inputs()``),
reads each ``map``'s traced function (``StructuredFunctionWrapper.function.graph``, and
the functions it calls: ``tf.cond`` branches, nested ``tf.function`` s), sorts its random
ops by where their randomness comes from, and hands the description to
:mod:`safegen._detectors.augmentation`, which decides. Nothing runs: no element is
produced, and the graph of a dataset is read once (kept per dataset object).

Where a random op gets its randomness:

* a stateful op with ``seed``/``seed2`` attributes (``RandomUniform``, ``RandomShuffle``,
  what ``tf.image.random_*`` and ``tf.nn.dropout`` build): fixed seeds when either is
  non-zero (a global seed was set when the map was traced, or the op was given one),
  else a fresh seed per iterator;
* a ``tf.random.Generator`` (``RngReadAndSkip``, ``Stateful*``) or a variable (Keras 3's
  ``SeedGenerator``): a state that advances across iterators;
* a stateless op (``StatelessRandom*``): whatever its ``seed``/``key``/``counter`` inputs
  are computed from, followed back through the graph (into ``tf.cond`` branches and
  nested functions' arguments): a variable or a stateful op, the map's arguments (the
  element), or constants.

``validation_data`` is not checked: validation data that is the same in every epoch is
what makes validation scores comparable.
"""

from __future__ import annotations

import inspect
import os
import sys
import weakref
from typing import Any

from safegen._detectors import augmentation
from safegen._detectors.augmentation import CONSTANT, ELEMENT, SEEDED, STATE, RandomOp, Stage
from safegen.integrations._calls import Call, Finish

__all__ = ["check", "describe"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

# Stateful ops of tf.random.Generator: a state that lives across iterators.
_GENERATOR_OPS = frozenset(
    {
        "RngReadAndSkip",
        "RngSkip",
        "StatefulUniform",
        "StatefulUniformInt",
        "StatefulUniformFullInt",
        "StatefulStandardNormal",
        "StatefulStandardNormalV2",
        "StatefulTruncatedNormal",
        "StatefulRandomBinomial",
    }
)
# Stateless random ops beside the StatelessRandom* family.
_STATELESS_OPS = frozenset(
    {
        "StatelessTruncatedNormal",
        "StatelessTruncatedNormalV2",
        "StatelessMultinomial",
        "StatelessParameterizedTruncatedNormal",
        "StatelessSampleDistortedBoundingBox",
        "StatelessShuffle",
    }
)
# Helpers of the stateless family that draw nothing themselves.
_STATELESS_HELPERS = frozenset(
    {"StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg", "StatelessRandomGetAlg"}
)
# The inputs of a stateless op that carry its seed.
_SEED_INPUTS = frozenset({"seed", "key", "counter"})
# Ops that call functions: the offset of the callee's first argument among the inputs.
_CALL_OFFSETS = {"If": 1, "StatelessIf": 1, "Case": 1, "StatelessCase": 1}
_CALLS = frozenset(
    {
        *_CALL_OFFSETS,
        "PartitionedCall",
        "StatefulPartitionedCall",
        "While",
        "StatelessWhile",
        "For",
        "RemoteCall",
    }
)
_MAX_DEPTH = 8
_MAX_STAGES = 10_000

_MAPS = ("_MapDataset", "_ParallelMapDataset", "MapDataset", "ParallelMapDataset")

# The description of each dataset already read, and the datasets already fit.
_DESCRIBED: weakref.WeakKeyDictionary[Any, Stage] = weakref.WeakKeyDictionary()
_FIT: weakref.WeakSet[Any] = weakref.WeakSet()


def check(call: Call) -> Finish | None:
    """The call check: report the maps of ``fit``'s tf.data input whose random draws
    repeat every epoch."""
    if call.method != "fit":
        return None
    dataset = _dataset(call.arguments.get("x"))
    if dataset is None:
        return None
    name = getattr(call.model, "name", None)
    source = f"tf.data input of model {name!r}" if name else "tf.data input of fit"
    call.checked(source)
    pipeline = _described(dataset)
    try:
        fit_before = dataset in _FIT
        _FIT.add(dataset)
    except TypeError:  # not weakly referable
        fit_before = False
    for finding in augmentation.findings(
        pipeline, restarts=fit_before or _restarts(call.arguments), source=source
    ):
        call.report(finding)
    return None


def describe(dataset: Any) -> Stage:
    """``dataset`` (a ``tf.data.Dataset``) as the :class:`Stage` the detector reads."""
    stages: dict[int, Stage] = {}
    keep: list[Any] = []  # the datasets walked, alive while their ids are keys

    def visit(ds: Any) -> Stage:
        known = stages.get(id(ds))
        if known is not None:
            return known
        keep.append(ds)
        try:
            inputs = list(ds._inputs()) if len(stages) < _MAX_STAGES else []
        except Exception:  # noqa: BLE001 - a dataset class of its own
            inputs = []
        stage = _stage(ds, tuple(visit(i) for i in inputs))
        stages[id(ds)] = stage
        return stage

    return visit(dataset)


def _described(dataset: Any) -> Stage:
    try:
        stage = _DESCRIBED.get(dataset)
    except TypeError:
        return describe(dataset)
    if stage is None:
        stage = describe(dataset)
        _DESCRIBED[dataset] = stage
    return stage


def _dataset(x: Any) -> Any:
    """``x`` if it is a ``tf.data.Dataset`` (or the dataset behind a distributed one)."""
    if x is None or "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.data.ops import dataset_ops

    if isinstance(x, dataset_ops.DatasetV2):
        return x
    original = getattr(x, "_original_dataset", None)  # tf.distribute's DistributedDataset
    return original if isinstance(original, dataset_ops.DatasetV2) else None


def _restarts(arguments: dict[str, Any]) -> bool:
    """Whether ``fit`` makes a new iterator for more than one epoch: Keras 3 and tf_keras
    do each epoch when ``steps_per_epoch`` is not given (with it, one iterator runs on)."""
    if arguments.get("steps_per_epoch") is not None:
        return False
    try:
        epochs = int(arguments.get("epochs", 1)) - int(arguments.get("initial_epoch", 0))
    except (TypeError, ValueError):
        return False
    return epochs > 1


def _stage(ds: Any, inputs: tuple[Stage, ...]) -> Stage:
    kind = type(ds).__name__
    if kind in _MAPS or kind.endswith("MapDataset") and hasattr(ds, "_map_func"):
        wrapper = getattr(ds, "_map_func", None)
        function = getattr(wrapper, "_func", None)
        name = _name(function)
        return Stage(
            "map",
            f"map({name})",
            inputs,
            name,
            _location(function),
            _ops(wrapper),
            transforms=_transforms(wrapper),
        )
    if kind == "CacheDataset":
        filename = _filename(ds)
        return Stage("cache", f"cache({filename!r})" if filename else "cache()", inputs)
    if kind in ("_ShuffleDataset", "ShuffleDataset"):
        reshuffle = bool(getattr(ds, "_reshuffle_each_iteration", False))
        return Stage("shuffle", "shuffle", inputs, rerandomize=reshuffle)
    if kind in ("_RandomDataset", "RandomDataset"):
        rerandomize = bool(getattr(ds, "_rerandomize", False))
        label = "rerandomize_each_iteration=True" if rerandomize else ""
        return Stage("random", f"Dataset.random({label})", inputs, rerandomize=rerandomize)
    return Stage("other", _short(kind), inputs)


def _short(kind: str) -> str:
    """``"_TensorSliceDataset"`` -> ``"tensor_slice"``."""
    kind = kind.lstrip("_").removesuffix("Dataset").removesuffix("V2") or kind
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")


def _filename(ds: Any) -> str:
    value: Any = getattr(ds, "_filename", None)
    try:
        raw = value.numpy() if hasattr(value, "numpy") else value
    except Exception:  # noqa: BLE001 - a symbolic filename
        return "?"
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    return raw if isinstance(raw, str) else ""


def _name(function: Any) -> str:
    if function is None:
        return "?"
    name = getattr(function, "__name__", None)
    if isinstance(name, str):
        return name
    return type(function).__name__  # a callable object: a Keras layer, say


def _location(function: Any) -> str:
    target = inspect.unwrap(function) if callable(function) else function
    code = getattr(target, "__code__", None)
    if code is None and callable(target):  # a callable object: its class's __call__
        code = getattr(type(target).__call__, "__code__", None)
    if code is None:
        return ""
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"


def _transforms(wrapper: Any) -> bool:
    """Whether a map's function is given data (an array, a float, a string), not only
    integer scalars (the counters of ``Dataset.range``)."""
    graph = getattr(getattr(wrapper, "function", None), "graph", None)
    if graph is None:
        return True
    captured = {id(t) for t in getattr(graph, "internal_captures", ())}
    for tensor in graph.inputs:
        if id(tensor) in captured:
            continue
        dtype = tensor.dtype
        if tensor.shape.rank != 0 or not (dtype.is_integer or dtype.is_bool):
            return True
    return False


def _ops(wrapper: Any) -> tuple[RandomOp, ...]:
    """The random ops of a map's function, nested functions included."""
    graph = getattr(getattr(wrapper, "function", None), "graph", None)
    if graph is None:
        return ()
    return tuple(_Graphs().random_ops(graph))


class _Graphs:
    """Reads a function graph and the functions it calls, following seeds back."""

    def __init__(self) -> None:
        # How a nested graph's arguments are fed: graph -> (the calling op, offset, caller).
        self.callers: dict[int, tuple[Any, int, Any]] = {}
        self.keep: list[Any] = []
        self.seen: set[int] = set()

    def random_ops(self, graph: Any, depth: int = 0) -> list[RandomOp]:
        out: list[RandomOp] = []
        if id(graph) in self.seen or depth > _MAX_DEPTH:
            return out
        self.seen.add(id(graph))
        self.keep.append(graph)
        for op in graph.get_operations():
            found = self._random(op, graph)
            if found is not None:
                out.append(found)
            if op.type not in _CALLS:
                continue
            for callee, offset in self._callees(op, graph):
                self.callers.setdefault(id(callee), (op, offset, graph))
                out.extend(self.random_ops(callee, depth + 1))
        return out

    def _random(self, op: Any, graph: Any) -> RandomOp | None:
        kind = op.type
        if kind in _GENERATOR_OPS:
            return RandomOp(kind, STATE)
        if kind in _STATELESS_HELPERS:
            return None
        if (kind.startswith("StatelessRandom") or kind in _STATELESS_OPS) and not kind.endswith(
            ("If", "Case", "While")
        ):
            return RandomOp(kind, self._seed_source(op, graph))
        if not op.op_def.is_stateful:
            return None
        attrs = op.node_def.attr
        if "seed" in attrs and "seed2" in attrs:
            seed = (int(attrs["seed"].i), int(attrs["seed2"].i))
            return RandomOp(kind, SEEDED if any(seed) else STATE, seed)
        return None

    def _callees(self, op: Any, graph: Any) -> list[tuple[Any, int]]:
        out = []
        for attr in op.node_def.attr.values():
            names = [attr.func.name] if attr.HasField("func") else []
            if attr.HasField("list"):
                names += [f.name for f in attr.list.func]
            for name in names:
                if not name:
                    continue
                try:
                    callee = graph._get_function(name)
                except Exception:  # noqa: BLE001 - not a function of this graph
                    callee = None
                sub = getattr(callee, "graph", None)
                if sub is not None:
                    out.append((sub, _CALL_OFFSETS.get(op.type, 0)))
        return out

    def _seed_source(self, op: Any, graph: Any) -> str:
        """Where a stateless op's seed comes from: STATE, SEEDED, ELEMENT or CONSTANT."""
        names = [arg.name for arg in op.op_def.input_arg]
        todo = [
            (t, graph) for t, name in zip(op.inputs, names, strict=False) if name in _SEED_INPUTS
        ]
        if not todo:
            todo = [(t, graph) for t in op.inputs]
        found: set[str] = set()
        seen: set[tuple[int, int]] = set()
        while todo and len(seen) < 10_000:
            tensor, where = todo.pop()
            source = tensor.op
            key = (id(where), id(source))
            if key in seen:
                continue
            seen.add(key)
            if source.type == "Placeholder":
                todo.extend(self._argument(tensor, where, found))
                continue
            if source.op_def.is_stateful:
                attrs = source.node_def.attr
                seeded = "seed2" in attrs and (attrs["seed"].i or attrs["seed2"].i)
                found.add(SEEDED if seeded else STATE)
                continue
            todo.extend((t, where) for t in source.inputs)
        for draws in (STATE, SEEDED, ELEMENT):
            if draws in found:
                return draws
        return CONSTANT

    def _argument(self, tensor: Any, graph: Any, found: set[str]) -> list[tuple[Any, Any]]:
        """What feeds a graph's placeholder: the caller's input for a nested function's
        argument; for the map function's own, the element (or a capture)."""
        if tensor.dtype.name == "resource":
            found.add(STATE)
            return []
        captured = {id(t) for t in getattr(graph, "internal_captures", ())}
        if id(tensor) in captured:
            found.add(CONSTANT)  # a captured tensor: the same in every call
            return []
        caller = self.callers.get(id(graph))
        if caller is None:
            found.add(ELEMENT)
            return []
        op, offset, outer = caller
        index = next((i for i, t in enumerate(graph.inputs) if t is tensor), None)
        if index is None or index + offset >= len(op.inputs):
            found.add(ELEMENT)
            return []
        return [(op.inputs[index + offset], outer)]
