"""safegen's hand-written structure walk against optree's, per call, and optree's import.

Issue 20, part 3: would `optree <https://github.com/metaopt/optree>`_ (a C++ pytree
library that Keras 3 installs) walk the yielded batches faster than
``safegen/_structure.py``? Each mode walks every yield once:

* check mode: an inline pass over a flat tuple or list of at most ``_FLAT`` (64) plain
  ndarrays (no walk), else ``leaves(value)``: every array with its path, foreign leaves
  (pandas, buffers, DLPack) as NumPy views;
* freeze mode: ``leaves(value, foreign=False)`` (which has a fast path of its own for a
  flat tuple or list of plain ndarrays);
* copy mode: an inline pass copying a flat tuple or list of small plain ndarrays, else
  ``map_arrays(value, copy_one, copy_other)``, which rebuilds the containers.

Each is timed as the mode runs it (``current, as the mode runs it``: the inline pass
where it applies, else the walk; the inline passes are copied from ``safegen/_modes/``)
and as the walk function alone (``current, leaves()`` / ``current, map_arrays()``),
against optree variants that give the same result (the same arrays, in the same order,
with paths that format to the same strings):

* ``optree, flatten_with_path``: ``tree_flatten_with_path`` and a filter keeping the
  ndarrays (foreign leaves expanded as ``leaves`` does); paths are tuples of keys, but a
  namedtuple field comes as its index (``[0]``, not ``.x``), so messages would change;
* ``optree, flatten_with_accessor``: ``tree_flatten_with_accessor`` and the same
  filter; ``accessor.codify('')`` gives exactly ``format_path``'s strings;
* ``optree, flatten, paths deferred``: ``tree_flatten`` and the filter, keeping the leaf
  index and the treespec, whose ``accessors()`` give the paths only when a message
  needs them;
* ``optree, tree_leaves (floor)``: the bare call, no filter, no paths: optree's own cost;
* copy: ``optree, tree_map``: ``tree_map`` with a function that applies ``fn`` to
  ndarrays, ``other`` to foreign leaves and leaves everything else as it is; ``optree,
  tree_map (floor)``: ``tree_map(fn, ...)`` with no dispatch.

Every optree call passes ``namespace`` and runs inside
``optree.dict_insertion_ordered(True, namespace=...)``: optree sorts dict keys
otherwise, and leaves would come in another order than safegen's. In copy mode ``fn``
is ``np.ndarray.view`` (a new array object, no bytes copied), so that containers are
rebuilt as in copy mode while the figure stays the walk's.

Batches (each a pool of 16 distinct batches, cycled): the seed's ``(x, y)`` (x (64, 2)
float64, y ``np.expand_dims`` of its row means), a nested dict
``{'inputs': {'a', 'b', 'c': [., .]}, 'targets', 'weights'}`` of 6 small arrays, and
lists of 128 and 1024 row views ((32, 8) float32) of one array, as in
``many_leaves.py``. Variants are interleaved in random order within each round; figures
are the median over rounds with min and max of the CPU time per call
(``time.process_time``, steadier than wall time on a shared machine), in µs; each ratio
optree / current is taken per round, paired, and summarized as median [min, max].

Import cost: each round starts ``python -I -c ...`` for ``pass``, ``import numpy``,
``import optree``, ``import safegen`` and ``import safegen, optree`` in random order and
times each process from start to exit (as ``import_time.py`` does); the marginal cost of
optree is ``import safegen, optree`` minus ``import safegen``, per round.

Before timing, every optree variant's result is compared with safegen's on every batch
(same arrays, same order, same formatted paths); a mismatch stops the run.

Run: ``python benchmarks/structure_walk.py`` (about a minute; ``--quick`` for a smoke run
of a few seconds). Writes ``structure_walk.json`` and ``structure_walk.md`` into
``--out`` (default ``benchmarks/results/``; quick runs write ``structure_walk_quick.*``).
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, environment, load_average, spread, write_results

import safegen
from safegen._copying import ALIGN_ABOVE
from safegen._modes._flat import FLAT as _FLAT
from safegen._structure import foreign_views, format_path, is_foreign, leaves, map_arrays

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "safegen-bench"
POOL = 16
ROW = (32, 8)  # one leaf of the many-leaves batches, as in many_leaves.py
_ndarray = np.ndarray
_view = np.ndarray.view

IMPORTS = {
    "python -I -c pass": "pass",
    "import numpy": "import numpy",
    "import optree": "import optree",
    "import safegen": "import safegen",
    "import safegen, optree": "import safegen, optree",
}


# -- the batches -------------------------------------------------------------------------


def _seed(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The seed batch, as per_yield.py makes it: x, and y the row means (a view)."""
    x = rng.integers(0, 100, (64, 2)).astype(np.float64)
    return x, np.expand_dims((x[:, 0] + x[:, 1]) / 2, -1)


def _nested(rng: np.random.Generator) -> dict[str, Any]:
    def arr(*shape: int) -> np.ndarray:
        return rng.random(shape)

    return {
        "inputs": {"a": arr(64, 2), "b": arr(64, 4), "c": [arr(64, 3), arr(64, 1)]},
        "targets": arr(64, 1),
        "weights": arr(64),
    }


def _rows(count: int) -> list[list[np.ndarray]]:
    data = np.random.default_rng(0).random((POOL * count, *ROW), dtype=np.float32)
    return [[data[b * count + i] for i in range(count)] for b in range(POOL)]


def batches(quick: bool) -> dict[str, list[Any]]:
    """name -> a pool of 16 distinct batches."""
    rng = np.random.default_rng(0)
    out = {
        "seed (x, y)": [_seed(rng) for _ in range(POOL)],
        "nested dict, 6 leaves": [_nested(rng) for _ in range(POOL)],
        "list of 128 row views": _rows(128),
    }
    if not quick:
        out["list of 1024 row views"] = _rows(1024)
    return out


# -- safegen, as the modes run it --------------------------------------------------------


def mode_check(value: Any) -> Any:
    """Check mode's pass before its hashing (``Watch.process`` in safegen/_modes/check.py)."""
    kind = type(value)
    if (kind is tuple or kind is list) and len(value) <= _FLAT:
        for array in value:
            if type(array) is not _ndarray:
                break
        else:
            return value
    found = leaves(value)
    return [path for path, _ in found], [array for _, array in found]


def mode_copy(value: Any, fn: Any, other: Any) -> Any:
    """Copy mode's pass (``Copy.process``), with ``fn`` in place of ``array.copy``."""
    kind = type(value)
    if kind is tuple or kind is list:
        copies = []
        for array in value:
            if type(array) is not _ndarray or array.nbytes >= ALIGN_ABOVE:
                break
            copies.append(fn(array))
        else:
            return tuple(copies) if kind is tuple else copies
    return map_arrays(value, fn, other)


def _other(leaf: Any) -> Any:  # copy mode's copy_foreign stand-in: never called here
    return leaf


# -- optree, giving the same result --------------------------------------------------------


def _pair(path: Any, sub: Any) -> Any:
    return (path, sub)


def _concat(path: Any, sub: Any) -> Any:
    return path + sub


def _filter(
    nodes: list[Any], paths: Any, foreign: bool, join: Any = _pair
) -> list[tuple[Any, Any]]:
    """Keep the ndarrays (and the foreign leaves as views, their path ``join(path,
    sub-path)``), as ``leaves`` does."""
    out = []
    for path, node in zip(paths, nodes, strict=True):
        if isinstance(node, _ndarray):
            out.append((path, node))
        elif foreign and is_foreign(node):
            out.extend((join(path, sub), view) for sub, view in foreign_views(node))
    return out


def make_optree(optree: Any) -> dict[str, Any]:
    """The optree variants: name -> (function(value, foreign) -> result)."""
    flatten = optree.tree_flatten
    with_path = optree.tree_flatten_with_path
    with_accessor = optree.tree_flatten_with_accessor
    tree_leaves = optree.tree_leaves
    ns = NAMESPACE

    def by_path(value: Any, foreign: bool = True) -> Any:
        paths, nodes, _ = with_path(value, namespace=ns)
        return _filter(nodes, paths, foreign, _concat)

    def by_accessor(value: Any, foreign: bool = True) -> Any:
        accessors, nodes, _ = with_accessor(value, namespace=ns)
        return _filter(nodes, accessors, foreign)

    def deferred(value: Any, foreign: bool = True) -> Any:
        nodes, spec = flatten(value, namespace=ns)
        return spec, _filter(nodes, range(len(nodes)), foreign)

    def floor(value: Any, foreign: bool = True) -> Any:
        return tree_leaves(value, namespace=ns)

    return {
        "optree, flatten_with_path": by_path,
        "optree, flatten_with_accessor": by_accessor,
        "optree, flatten, paths deferred": deferred,
        "optree, tree_leaves (floor)": floor,
    }


def make_optree_map(optree: Any) -> dict[str, Any]:
    tree_map = optree.tree_map
    ns = NAMESPACE

    def mapped(value: Any, fn: Any, other: Any) -> Any:
        def one(node: Any) -> Any:
            if isinstance(node, _ndarray):
                return fn(node)
            if is_foreign(node):
                return other(node)
            return node

        return tree_map(one, value, namespace=ns)

    def floor(value: Any, fn: Any, other: Any) -> Any:
        return tree_map(fn, value, namespace=ns)

    return {"optree, tree_map": mapped, "optree, tree_map (floor)": floor}


def _formatted(result: Any, kind: str) -> list[tuple[str, int]]:
    """(formatted path, id of the array) for a result of ``leaves`` or an optree variant."""
    if kind == "optree, flatten, paths deferred":
        spec, found = result
        accessors = spec.accessors()  # what a message would do, when one is needed

        def codify(key: Any) -> str:
            if isinstance(key, tuple):  # a foreign leaf's view: (leaf index, sub-path)
                return accessors[key[0]].codify("") + format_path(key[1])
            return accessors[key].codify("")

        return [(codify(key), id(a)) for key, a in found]
    if kind == "optree, flatten_with_accessor":

        def codify_accessor(key: Any) -> str:
            if isinstance(key, tuple) and not isinstance(key, optree_accessor()):
                return key[0].codify("") + format_path(key[1])
            return key.codify("")

        return [(codify_accessor(p), id(a)) for p, a in result]
    return [(format_path(p), id(a)) for p, a in result]


def optree_accessor() -> type:
    import optree

    return optree.PyTreeAccessor


Pair = collections.namedtuple("Pair", "x y")


def _mixed() -> Any:
    """A batch for the check only: a namedtuple, a buffer, unsorted keys, None, a str."""
    x, y = np.zeros(3), np.ones((2, 2))
    return (bytearray(16), Pair(x, y), {"z": x, "a": [y, None, "label"]})


def verify(optree: Any, pools: dict[str, list[Any]]) -> dict[str, Any]:
    """Every optree variant gives safegen's arrays, order and path strings on every batch
    (and on a mixed one); run inside ``dict_insertion_ordered``."""
    walks, maps = make_optree(optree), make_optree_map(optree)
    checked = 0
    facts: dict[str, Any] = {}
    for name, pool in [*pools.items(), ("mixed", [_mixed()])]:
        for batch in pool:
            for foreign in (True, False):
                want = _formatted(leaves(batch, foreign), "current")
                for kind, fn in walks.items():
                    if kind.endswith("(floor)"):
                        if name != "mixed":  # all leaves are arrays
                            got_ids = [id(a) for a in fn(batch, foreign)]
                            assert got_ids == [i for _, i in want], (name, kind)
                        continue
                    got = _formatted(fn(batch, foreign), kind)
                    assert [i for _, i in got] == [i for _, i in want], (name, kind)
                    if kind == "optree, flatten_with_path" and name == "mixed":
                        facts["flatten_with_path, namedtuple field"] = got[1][0]
                        facts["safegen, namedtuple field"] = want[1][0]
                    else:
                        assert [p for p, _ in got] == [p for p, _ in want], (name, kind, got)
                    checked += 1
            want_map = map_arrays(batch, _view, _other)
            for kind, fn in maps.items():
                if kind.endswith("(floor)") and name == "mixed":
                    continue
                got_map = fn(batch, _view, _other)
                got_leaves = [a for _, a in leaves(got_map, False)]
                want_leaves = [a for _, a in leaves(want_map, False)]
                assert len(got_leaves) == len(want_leaves), (name, kind)
                assert all(
                    a.base is b.base for a, b in zip(got_leaves, want_leaves, strict=True)
                ), (name, kind)
                checked += 1
    mixed = {"z": 1, "a": 2}
    with optree.dict_insertion_ordered(False, namespace=NAMESPACE):
        facts["keys without dict_insertion_ordered"] = [
            p[0] for p in optree.tree_flatten_with_path(mixed, namespace=NAMESPACE)[0]
        ]
    facts["keys with dict_insertion_ordered"] = [
        p[0] for p in optree.tree_flatten_with_path(mixed, namespace=NAMESPACE)[0]
    ]
    return {"comparisons": checked, "all_equal": True, **facts}


# -- semantics: what optree does differently, run, not read --------------------------------


def _describe(fn: Any) -> str:
    """What ``fn()`` returns (leaf paths and types), or the exception it raises."""
    try:
        found = fn()
    except Exception as error:  # noqa: BLE001 - recorded, not raised
        return f"raises {type(error).__name__}"
    text = ", ".join(f"{p or '(root)'}: {t}" for p, t in found) or "no leaves"
    return re.sub(r"(?:\[0\]){5,}", lambda m: f"[0]×{len(m.group()) // 3}", text)


def semantics(optree: Any) -> list[dict[str, str]]:
    """Each case: the leaves safegen's walk finds and the leaves optree finds (with the
    namespace and insertion-ordered dicts this benchmark uses, unless the case says)."""
    import array
    import dataclasses
    import os

    x, y = np.zeros(3), np.ones(2)

    def ours(value: Any, **_: Any) -> Any:
        return [(format_path(p), type(a).__name__) for p, a in leaves(value)]

    def theirs(value: Any, **kwargs: Any) -> Any:
        accessors, nodes, _ = optree.tree_flatten_with_accessor(
            value, namespace=NAMESPACE, **kwargs
        )
        return [(a.codify(""), type(n).__name__) for a, n in zip(accessors, nodes, strict=True)]

    def filtered(value: Any, **kwargs: Any) -> Any:
        """optree plus the filter the timed variants use: what safegen would see."""
        accessors, nodes, _ = optree.tree_flatten_with_accessor(
            value, namespace=NAMESPACE, **kwargs
        )
        out = []
        for path, node in _filter(nodes, accessors, True):
            if isinstance(path, optree.PyTreeAccessor):
                out.append((path.codify(""), type(node).__name__))
            else:
                out.append((path[0].codify("") + format_path(path[1]), type(node).__name__))
        return out

    class ListSub(list):  # type: ignore[type-arg]
        pass

    class DictSub(dict):  # type: ignore[type-arg]
        pass

    class TupleSub(tuple):  # type: ignore[type-arg]
        __slots__ = ()

    class Fields(tuple):  # type: ignore[type-arg]
        __slots__ = ()
        _fields = ("p", "q")

    @dataclasses.dataclass
    class Holder:
        a: np.ndarray

    class DLPack:
        def __init__(self, a: np.ndarray) -> None:
            self._a = a

        def __dlpack__(self, **kwargs: Any) -> Any:
            return self._a.__dlpack__(**kwargs)

        def __dlpack_device__(self) -> Any:
            return self._a.__dlpack_device__()

    class GloballyRegistered:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

    class OtherLibrarys:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

    # Registered for everyone (optree's private global sentinel: public calls must name a
    # namespace), and in another library's namespace (as Keras registers its TrackedList).
    optree.register_pytree_node(
        GloballyRegistered,
        lambda g: ((g.a,), None, None),
        lambda _, c: GloballyRegistered(*c),
        namespace=optree.registry.__dict__["__GLOBAL_NAMESPACE"],
    )
    optree.register_pytree_node(
        OtherLibrarys,
        lambda g: ((g.a,), None, None),
        lambda _, c: OtherLibrarys(*c),
        namespace="other-library",
    )
    cycle: list[Any] = [x]
    cycle.append(cycle)

    def nest(depth: int) -> Any:
        value: Any = x
        for _ in range(depth):
            value = [value]
        return value

    unsorted = {"z": x, "a": y}
    buffers = (bytearray(4), memoryview(bytearray(4)), array.array("f", [1.0]))
    cases: list[tuple[str, Any, dict[str, Any]]] = [
        ("dict {'z', 'a'}, optree's default (sorted)", unsorted, {}),
        ("dict {'z', 'a'}, dict_insertion_ordered", unsorted, {}),
        ("dict {'z': x, 1: y}", {"z": x, 1: y}, {}),
        ("OrderedDict", collections.OrderedDict(z=x, a=y), {}),
        ("defaultdict", collections.defaultdict(list, z=x, a=y), {}),
        ("list subclass", ListSub([x, y]), {}),
        ("dict subclass", DictSub(z=x), {}),
        ("tuple subclass", TupleSub([x, y]), {}),
        ("tuple with _fields, not a namedtuple", Fields([x, y]), {}),
        ("namedtuple", Pair(x, y), {}),
        ("structseq (os.stat_result of 10 arrays)", os.stat_result((x,) * 10), {}),
        ("collections.deque", collections.deque([x, y]), {}),
        ("(x, None)", (x, None), {}),
        ("(x, None), none_is_leaf=True", (x, None), {"none_is_leaf": True}),
        ("bytearray, memoryview, array.array", buffers, {}),
        ("DLPack producer", (DLPack(x),), {}),
        ("dataclass holding an array", (Holder(x),), {}),
        ("type registered in optree's global namespace", (GloballyRegistered(x),), {}),
        ("type registered in another namespace", (OtherLibrarys(x),), {}),
        ("list that contains itself", cycle, {}),
        ("nesting depth 1000", nest(1000), {}),
        ("nesting depth 1001", nest(1001), {}),
    ]
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is a test extra
        pandas = None
    if pandas is not None:
        frame = pandas.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
        cases.append(("pandas DataFrame, Series", (frame, frame["a"]), {}))
    out = []
    for name, value, kwargs in cases:
        row = {"case": name, "safegen": _describe(lambda v=value: ours(v))}
        ordered = not name.endswith("(sorted)")
        with optree.dict_insertion_ordered(ordered, namespace=NAMESPACE):
            row["optree"] = _describe(lambda v=value, k=kwargs: theirs(v, **k))
            row["optree + filter"] = _describe(lambda v=value, k=kwargs: filtered(v, **k))
        out.append(row)
    # tree_map: containers that hold no array, and copies through a list subclass
    labels = (x, ("a", "b"))
    mapped = optree.tree_map(lambda n: n, labels, namespace=NAMESPACE)
    kept = map_arrays(labels, _view, _other)
    out.append(
        {
            "case": "map: a tuple holding no array comes back as the same object",
            "safegen": str(kept[1] is labels[1]),
            "optree": str(mapped[1] is labels[1]),
            "optree + filter": str(mapped[1] is labels[1]),
        }
    )
    sub = ListSub([x])
    mine_sub = map_arrays(sub, _view, _other)
    their_sub = optree.tree_map(
        lambda n: _view(n) if isinstance(n, _ndarray) else n, sub, namespace=NAMESPACE
    )
    out.append(
        {
            "case": "map through a list subclass: the array is replaced (copied)",
            "safegen": str(mine_sub[0] is not x),
            "optree": str(their_sub[0] is not x),
            "optree + filter": str(their_sub[0] is not x),
        }
    )
    return out


# -- timing --------------------------------------------------------------------------------


def _timer(op: Any, pool: list[Any], *args: Any) -> Any:
    n = len(pool)

    def run(count: int) -> float:
        start = time.process_time()
        for i in range(count):
            op(pool[i % n], *args)
        return (time.process_time() - start) / count

    return run


def variants_for(optree: Any, pool: list[Any]) -> dict[str, dict[str, Any]]:
    """mode -> {variant name -> timer}."""
    walks, maps = make_optree(optree), make_optree_map(optree)
    check = {
        "current, as the mode runs it": _timer(mode_check, pool),
        "current, leaves()": _timer(leaves, pool),
        **{name: _timer(fn, pool) for name, fn in walks.items()},
    }
    freeze = {
        "current, leaves(foreign=False)": _timer(leaves, pool, False),
        **{name: _timer(fn, pool, False) for name, fn in walks.items()},
    }
    copy = {
        "current, as the mode runs it": _timer(mode_copy, pool, _view, _other),
        "current, map_arrays()": _timer(map_arrays, pool, _view, _other),
        **{name: _timer(fn, pool, _view, _other) for name, fn in maps.items()},
    }
    return {"check": check, "freeze": freeze, "copy": copy}


BASELINE = {
    "check": "current, leaves()",
    "freeze": "current, leaves(foreign=False)",
    "copy": "current, map_arrays()",
}


def _calls_walk(batch: Any) -> dict[str, bool]:
    """Whether each mode calls the walk at all for this batch (else its inline pass)."""
    kind = type(batch)
    flat = (kind is tuple or kind is list) and all(type(a) is _ndarray for a in batch)
    return {
        "check": not (flat and len(batch) <= _FLAT),
        "freeze": True,  # leaves(foreign=False), whose own fast path covers a flat batch
        "copy": not (flat and all(a.nbytes < ALIGN_ABOVE for a in batch)),
    }


def measure_walks(
    optree: Any, pools: dict[str, list[Any]], rounds: int, budget: float, progress: Any
) -> list[dict[str, Any]]:
    sections = []
    for name, pool in pools.items():
        by_mode = variants_for(optree, pool)
        timers = [(mode, variant, t) for mode, vs in by_mode.items() for variant, t in vs.items()]
        # calls per timing: about `budget` seconds of each variant
        counts = {
            (mode, variant): max(20, int(budget / max(timer(50), 1e-7)))
            for mode, variant, timer in timers
        }
        for mode, variant, timer in timers:  # warm up
            timer(max(10, counts[(mode, variant)] // 10))
        samples: dict[tuple[str, str], list[float]] = {(m, v): [] for m, v, _ in timers}
        for _ in range(rounds):
            random.shuffle(timers)
            for mode, variant, timer in timers:
                samples[(mode, variant)].append(timer(counts[(mode, variant)]))
            progress.update(1)
        modes = {}
        for mode in by_mode:
            base = samples[(mode, BASELINE[mode])]
            us = {v: spread([s * 1e6 for s in samples[(mode, v)]]) for v in by_mode[mode]}
            ratios = {
                v: spread([o / b for o, b in zip(samples[(mode, v)], base, strict=True)])
                for v in by_mode[mode]
                if v.startswith("optree")
            }
            modes[mode] = {"us_per_call": us, "optree_over_current": ratios}
        sections.append(
            {
                "name": name,
                "arrays": len(leaves(pool[0])),
                "calls_per_timing": {f"{m}: {v}": n for (m, v), n in counts.items()},
                "mode_calls_walk": _calls_walk(pool[0]),
                "modes": modes,
            }
        )
    return sections


def _time_import(code: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}"],
        check=True,
    )
    return time.perf_counter() - start


def _importtime_self(module: str) -> dict[str, float]:
    """``-X importtime``'s cumulative µs of ``module`` when imported alone and after safegen."""
    out = {}
    codes = (("alone", f"import {module}"), ("after safegen", f"import safegen; import {module}"))
    for label, code in codes:
        result = subprocess.run(
            [sys.executable, "-I", "-X", "importtime", "-c",
             f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        for line in result.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == module:
                out[label] = float(parts[1]) / 1e3
    return out


def measure_imports(rounds: int, progress: Any) -> dict[str, Any]:
    names = list(IMPORTS)
    for name in names:
        _time_import(IMPORTS[name])  # warm the file cache
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            samples[name].append(_time_import(IMPORTS[name]) * 1e3)
        progress.update(1)
    marginal = [
        a - b
        for a, b in zip(samples["import safegen, optree"], samples["import safegen"], strict=True)
    ]
    return {
        "ms": {name: spread(values) for name, values in samples.items()},
        "optree added to import safegen, ms": spread(marginal),
        "importtime_cumulative_ms": _importtime_self("optree"),
    }


# -- report --------------------------------------------------------------------------------


def _f(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def markdown(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    lines = [
        "# Structure walk: safegen's hand-written walk vs optree",
        "",
        f"Python {env['python']}, NumPy {env['numpy']}, optree {report['optree']}, "
        f"{env['cpus']} CPUs; {report['rounds']} rounds, variants interleaved; CPU time per "
        "call in µs, median [min, max] over rounds; ratio = optree / current walk per "
        f"round. Load average at start {report['load_start']}, at end {report['load_end']}."
        + (f" Note: {report['note']}." if report.get("note") else ""),
        "",
        f"Every optree variant was checked against safegen's result first "
        f"({report['verified']['comparisons']} comparisons, all equal: same arrays, same "
        "order, same path strings; `flatten_with_path` would format namedtuple fields as "
        "indices).",
        "",
    ]
    for mode in ("check", "freeze", "copy"):
        lines += [
            f"## {mode} mode",
            "",
            "| batch | variant | µs per call | optree / current |",
            "|---|---|---|---|",
        ]
        for section in report["sections"]:
            entry = section["modes"][mode]
            walk = section["mode_calls_walk"][mode]
            for variant, us in entry["us_per_call"].items():
                ratio = entry["optree_over_current"].get(variant)
                label = variant
                if variant == "current, as the mode runs it" and not walk:
                    label += " (inline pass, no walk)"
                lines.append(
                    f"| {section['name']} | {label} | {_f(us)} | {_f(ratio) if ratio else ''} |"
                )
        lines.append("")
    lines += [
        "## What optree finds, against safegen's walk",
        "",
        "Leaves found (path: type), run in this process after the timing. safegen: "
        "`leaves(value)`; optree: `tree_flatten_with_accessor` with this benchmark's "
        "namespace and insertion-ordered dicts (unless the case says otherwise), paths "
        "from `codify('')`; optree + filter: the same, then the filter the timed variants "
        "use (keep ndarrays, turn foreign leaves into views with `foreign_views`), i.e. "
        "what safegen would see. **≠**: optree + filter differs from safegen.",
        "",
        "| case | safegen | optree | optree + filter |",
        "|---|---|---|---|",
    ]
    for case in report["semantics"]:
        mark = "" if case["safegen"] == case["optree + filter"] else " **≠**"
        # Code spans: a path such as [0]['a'] would read as a Markdown link reference.
        cells = [f"`{case[key]}`" for key in ("safegen", "optree", "optree + filter")]
        lines.append(f"| {case['case']}{mark} | {' | '.join(cells)} |")
    lines.append("")
    imports = report["imports"]
    lines += [
        "## Import cost (`python -I -c ...`, whole process)",
        "",
        "| command | ms |",
        "|---|---|",
    ]
    for name, ms in imports["ms"].items():
        lines.append(f"| {name} | {_f(ms, 1)} |")
    cumulative = imports["importtime_cumulative_ms"]
    lines += [
        "",
        "optree added to `import safegen` (per round, `import safegen, optree` minus "
        f"`import safegen`): {_f(imports['optree added to import safegen, ms'], 1)} ms. "
        "`-X importtime`, cumulative for `optree`: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in cumulative.items())
        + ".",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--note", default="", help="conditions to record with the results")
    args = parser.parse_args(argv)
    import optree
    from tqdm import tqdm

    rounds = args.rounds or (3 if args.quick else 30)
    import_rounds = 3 if args.quick else 20
    budget = 0.002 if args.quick else 0.01  # seconds per timing
    pools = batches(args.quick)
    load_start = load_average()
    total = rounds * len(pools) + import_rounds
    # Without this, optree sorts dict keys: leaves would come in another order.
    with optree.dict_insertion_ordered(True, namespace=NAMESPACE):
        verified = verify(optree, pools)
        with tqdm(total=total, desc="structure_walk", file=sys.stderr) as progress:
            sections = measure_walks(optree, pools, rounds, budget, progress)
            differences = semantics(optree)  # after the timing: it may import pandas
            imports = measure_imports(import_rounds, progress)
    report = {
        "environment": environment(),
        "optree": optree.__version__,
        "safegen": safegen.__file__,
        "quick": args.quick,
        "rounds": rounds,
        "import_rounds": import_rounds,
        "note": args.note,
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in load_average()],
        "verified": verified,
        "semantics": differences,
        "sections": sections,
        "imports": imports,
    }
    lines = markdown(report)
    stem = "structure_walk_quick" if args.quick else "structure_walk"
    write_results(args.out, stem, report, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
