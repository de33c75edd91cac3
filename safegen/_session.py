"""What safegen saw while switched on from outside the code (``safegen.enable()``).

The run summary of ``python -m safegen run`` and ``pytest --safegen`` is read from here:
the data sources that were guarded, the layers whose output shape was checked, and the
errors safegen raised. The guards and the layer checks report into it; it never imports a
framework.

Recording is a no-op unless a session is active (:func:`start` was called), so code that
records pays one global read when nothing listens.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from safegen._stats import Stats

__all__ = [
    "KINDS",
    "Kind",
    "LayerRecord",
    "LossRecord",
    "Session",
    "SourceRecord",
    "current",
    "kind_of",
    "record_error",
    "record_findings",
    "record_layer",
    "record_loss",
    "record_remote",
    "record_shape_error",
    "record_source",
]


class Kind(NamedTuple):
    """A kind of finding on a data source.

    Attributes:
        key: its key in ``as_dict()`` (``"changed_arrays"``).
        name: its name in summaries (``"changed array(s)"``).
        error: the name of the safegen error raised for it (``"AliasingError"``).
        shown: what the user sees of it when safegen only warned (``"AliasingWarning"``).
    """

    key: str
    name: str
    error: str
    shown: str


# Every kind of finding on a data source. A source's (and the totals') "violations" is
# their sum.
KINDS: tuple[Kind, ...] = (
    Kind("changed_arrays", "changed array(s)", "AliasingError", "AliasingWarning"),
    Kind("reused_containers", "reused container(s)", "AliasingError", "AliasingWarning"),
    Kind(
        "stopped_writes",
        "write(s) stopped",
        "AliasingError",
        "read-only ValueError the test caught",
    ),
    Kind("random_streams", "repeated random stream(s)", "RandomStreamError", "RandomStreamWarning"),
    Kind("repeated_batches", "repeated batch(es)", "RepeatedBatchError", "RepeatedBatchWarning"),
)


def named_counts(counts: dict[str, int]) -> str:
    """``"1 changed array(s), 2 repeated batch(es)"``: the kinds found, with their counts."""
    return ", ".join(f"{counts[kind.key]} {kind.name}" for kind in KINDS if counts.get(kind.key))


def kind_of(error: BaseException) -> str | None:
    """The key of the kind of finding that safegen raised ``error`` for, or ``None`` (a
    ``ShapeError``, or not safegen's)."""
    name = type(error).__name__
    if name == "AliasingError":
        # A rebuilt error has no report: counted as a changed array, as the totals do.
        report = getattr(error, "report", None)
        return "reused_containers" if getattr(report, "container", "") else "changed_arrays"
    return next((kind.key for kind in KINDS if kind.error == name), None)


def _violations(counts: dict[str, int], details: tuple[str, ...] = ()) -> str:
    """``"3 violation(s) (1 changed array(s), 2 repeated batch(es))"``, or ``"0 violation(s)"``;
    ``details`` follow the kinds, after a semicolon."""
    parts = [part for part in (named_counts(counts), *details) if part]
    return f"{counts['violations']} violation(s)" + (f" ({'; '.join(parts)})" if parts else "")


@dataclasses.dataclass
class SourceRecord:
    """One data source safegen guarded: every generator one function made is one source.

    Attributes:
        name: the source's name, as in messages (``"train_iterator()"``).
        location: ``"file.py:12"`` where it is defined, or ``""``.
        mode: the mode it was guarded in.
        stats: the live statistics of each generator (or dataset) it made.
    """

    name: str
    location: str
    mode: str
    stats: list[Stats] = dataclasses.field(default_factory=list)
    # What the detectors (safegen._detectors) found: functions returning a list of
    # {"kind": ..., "message": ...}, read when the session is summarized.
    findings: list[Callable[[], list[dict[str, Any]]]] = dataclasses.field(default_factory=list)

    def total(self) -> Stats:
        """The sum of the statistics of every generator of this source."""
        return sum(self.stats, Stats())

    def found(self) -> list[dict[str, Any]]:
        """Every finding of the detectors on this source."""
        return [entry for read in self.findings for entry in read()]


@dataclasses.dataclass
class LayerRecord:
    """One layer whose output safegen checked.

    Attributes:
        name: the layer's name (``"mean"``).
        kind: the layer's class name (``"Lambda"``).
        checks: how many times its output was checked (in graph mode, once per trace).
        shape_errors: how many of those checks raised ``ShapeError``.
    """

    name: str
    kind: str
    checks: int = 0
    shape_errors: int = 0


@dataclasses.dataclass
class LossRecord:
    """One loss of a compiled model whose ``y_true``/``y_pred`` shapes safegen checked.

    Attributes:
        name: the loss, as in messages (``"MeanSquares.call()"``).
        location: ``"file.py:12"`` where that code is defined, or ``""``.
        output: the model output it belongs to (``""`` for a model with one loss).
        checks: how many times its shapes were checked (in graph mode, once per trace).
        shape_errors: how many of those checks raised ``ShapeError``.
    """

    name: str
    location: str
    output: str
    checks: int = 0
    shape_errors: int = 0


class Session:
    """What one enabled period saw. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sources: dict[tuple[str, str, str], SourceRecord] = {}
        self.layers: dict[int, LayerRecord] = {}
        self.losses: dict[int, LossRecord] = {}
        self.shape_errors: list[str] = []
        self.errors: list[BaseException] = []
        # What enable() left off, and why: {"sources": ..., "layers": ...}.
        self.off: dict[str, str] = {}
        # Errors raised in worker processes (whose statistics stay there), by kind.
        self.remote: dict[str, int] = {}
        # The findings safegen raised an error for (here or in a worker), by kind (KINDS'
        # keys): the rest of the findings were only warned about.
        self.raised: dict[str, int] = {}

    def record_source(self, name: str, location: str, mode: str, stats: Stats) -> None:
        key = (name, location, mode)
        with self.lock:
            record = self.sources.get(key)
            if record is None:
                record = self.sources[key] = SourceRecord(name, location, mode)
            record.stats.append(stats)

    def record_findings(
        self, name: str, location: str, mode: str, read: Callable[[], list[dict[str, Any]]]
    ) -> None:
        key = (name, location, mode)
        with self.lock:
            record = self.sources.get(key)
            if record is None:
                record = self.sources[key] = SourceRecord(name, location, mode)
            record.findings.append(read)

    def record_layer(self, layer: Any, error: str | None = None) -> None:
        key = id(layer)
        with self.lock:
            record = self.layers.get(key)
            if record is None:
                record = self.layers[key] = LayerRecord(
                    str(getattr(layer, "name", "?")), type(layer).__name__
                )
            record.checks += 1
            if error is not None:
                record.shape_errors += 1
                self.shape_errors.append(error)

    def record_loss(
        self, key: int, name: str, location: str, output: str, error: str | None = None
    ) -> None:
        with self.lock:
            record = self.losses.get(key)
            if record is None:
                record = self.losses[key] = LossRecord(name, location, output)
            record.checks += 1
            if error is not None:
                record.shape_errors += 1
                self.shape_errors.append(error)

    def record_error(self, error: BaseException) -> None:
        with self.lock:
            self.errors.append(error)
            del self.errors[:-16]  # the latest few are all a re-raise needs
            self._count_raised(error)

    def record_remote(self, error: BaseException) -> None:
        with self.lock:
            kind = type(error).__name__
            self.remote[kind] = self.remote.get(kind, 0) + 1
            self._count_raised(error)

    def _count_raised(self, error: BaseException) -> None:
        key = kind_of(error)
        if key is not None:
            self.raised[key] = self.raised.get(key, 0) + 1

    # -- Reading it -------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Everything in plain JSON-able types (what ``--report`` writes)."""
        with self.lock:
            sources = list(self.sources.values())
            layers = list(self.layers.values())
            losses = list(self.losses.values())
            shape_errors = list(self.shape_errors)
            remote = dict(self.remote)
        rows = []
        for record in sources:
            total = record.total()
            found = record.found()
            frozen = record.mode == "freeze"  # its violations are writes it stopped
            kinds = {
                "changed_arrays": 0 if frozen else total.violations - total.containers,
                "reused_containers": total.containers,
                "stopped_writes": total.violations if frozen else 0,
                "random_streams": sum(f["kind"] == "random_stream" for f in found),
                "repeated_batches": sum(f["kind"] == "repeated_batch" for f in found),
            }
            rows.append(
                {
                    "name": record.name,
                    "location": record.location,
                    "mode": record.mode,
                    "generators": len(record.stats),
                    **dataclasses.asdict(total),
                    # Every kind of finding, the detectors' included (Stats counts only
                    # changed arrays, rebound containers and stopped writes).
                    "violations": sum(kinds.values()),
                    **kinds,
                    "findings": found,
                }
            )
        total = sum((r.total() for r in sources), Stats())
        totals = {kind.key: sum(row[kind.key] for row in rows) for kind in KINDS}
        # Changes found in worker processes, whose statistics stay there.
        totals["changed_arrays"] += remote.get("AliasingError", 0)
        return {
            "sources": rows,
            "layers": [dataclasses.asdict(layer) for layer in layers],
            "losses": [dataclasses.asdict(loss) for loss in losses],
            "totals": {
                "sources": len(rows),
                "batches": total.yields,
                "arrays": total.arrays,
                "bytes_fingerprinted": total.bytes_fingerprinted,
                "bytes_copied": total.bytes_copied,
                "violations": sum(totals.values()),
                **totals,
                "unattributed": total.unattributed,
                "unwarned": total.unwarned,
                "layers_checked": len(layers),
                "losses_checked": len(losses),
                "shape_errors": len(shape_errors) + remote.get("ShapeError", 0),
                "seconds": total.seconds,
            },
            "shape_errors": shape_errors,
            "in_worker_processes": remote,
        }

    def warned(self) -> dict[str, int]:
        """The findings so far that safegen only warned about, by kind (KINDS' keys): those
        counted in ``as_dict()``'s totals, less those it raised an error for."""
        totals = self.as_dict()["totals"]
        with self.lock:
            raised = dict(self.raised)
        return {kind.key: totals[kind.key] - raised.get(kind.key, 0) for kind in KINDS}

    def summary(self, outcome: str = "") -> str:
        """A short human-readable summary, one line per source and per checked layer."""
        data = self.as_dict()
        totals = data["totals"]
        lines = [
            f"safegen: {totals['sources']} data source(s) guarded, {totals['batches']} "
            f"batch(es), {_bytes(totals['bytes_fingerprinted'])} checked, "
            f"{_bytes(totals['bytes_copied'])} copied, {_violations(totals)}; "
            f"{totals['layers_checked']} layer(s) checked, {totals['shape_errors']} shape "
            f"error(s); {totals['seconds'] * 1e3:.1f} ms in safegen"
            + (f" ({outcome})" if outcome else "")
        ]
        for row in data["sources"]:
            where = f" at {row['location']}" if row["location"] else ""
            made = f", {row['generators']} generators" if row["generators"] > 1 else ""
            lines.append(
                f"  source {row['name']}{where} [{row['mode']}{made}]: {row['yields']} batch(es), "
                f"{_bytes(row['bytes_fingerprinted'] + row['bytes_copied'])} "
                f"{'copied' if row['mode'] == 'copy' else 'checked'}, "
                f"{_violations(row, _details(row))}"
            )
            for finding in row["findings"]:
                first = finding["message"].split(". ", 1)[0]
                lines.append(f"    {finding['kind'].replace('_', ' ')}: {first}.")
        for kind, count in data["in_worker_processes"].items():
            lines.append(
                f"  {count} {kind}(s) raised in worker processes (counted above; their "
                "batches are counted in the workers, not here)"
            )
        for layer in data["layers"]:
            lines.append(
                f"  layer {layer['name']!r} ({layer['kind']}): output checked "
                f"{layer['checks']} time(s), {layer['shape_errors']} shape error(s)"
            )
        for loss in data["losses"]:
            where = f" at {loss['location']}" if loss["location"] else ""
            output = f" (output {loss['output']!r})" if loss["output"] else ""
            lines.append(
                f"  loss {loss['name']}{where}{output}: shapes checked "
                f"{loss['checks']} time(s), {loss['shape_errors']} shape error(s)"
            )
        if totals["losses_checked"]:
            lines.append(f"  {totals['losses_checked']} loss(es) checked")
        off = self.off
        if not data["sources"] and not data["layers"] and not data["losses"] and not off:
            lines.append(
                "  nothing was guarded: no generator, PyDataset or from_generator source "
                "reached Keras or tf.data, and no Lambda layer ran"
            )
        else:
            if not data["sources"]:
                why = off.get("sources") or (
                    "no generator, PyDataset or from_generator source reached Keras or tf.data"
                )
                lines.append(f"  no data source guarded: {why}")
            if not data["layers"] and "layers" in off:
                lines.append(f"  no layer checked: {off['layers']}")
        return "\n".join(lines)

    def to_json(self, outcome: str = "", exit_status: int | None = None) -> str:
        data = self.as_dict()
        data["outcome"] = outcome
        data["exit_status"] = exit_status
        return json.dumps(data, indent=2)


def _details(row: dict[str, Any]) -> tuple[str, ...]:
    """``("3 unattributed", "2 repeated warning(s) not shown")``, or ``()``."""
    parts = []
    if row["unattributed"]:
        parts.append(f"{row['unattributed']} unattributed")
    if row["unwarned"]:
        parts.append(f"{row['unwarned']} repeated warning(s) not shown")
    return tuple(parts)


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


_current: Session | None = None


def current() -> Session | None:
    """The active session, or ``None`` when safegen is not enabled."""
    return _current


def start() -> Session:
    """Begin a new session (called by ``safegen.enable()``), or return the active one."""
    global _current
    if _current is None:
        _current = Session()
    return _current


def stop() -> Session | None:
    """End the active session and return it (called by ``safegen.disable()``)."""
    global _current
    session, _current = _current, None
    return session


def record_source(name: str, location: str, mode: str, stats: Stats) -> None:
    """Note a newly guarded generator or dataset (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_source(name, location, mode, stats)


def record_layer(layer: Any) -> None:
    """Note that ``layer``'s output was checked (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_layer(layer)


def record_shape_error(layer: Any, message: str) -> None:
    """Note that ``layer``'s output check raised ``ShapeError`` (no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_layer(layer, error=message)


def record_remote(error: BaseException) -> None:
    """Note an error a worker process raised, rebuilt here (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_remote(error)


def record_loss(key: int, name: str, location: str, output: str, error: str | None = None) -> None:
    """Note that a loss's input shapes were checked, and the ``ShapeError`` text if the
    check raised one (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_loss(key, name, location, output, error)


def record_error(error: BaseException) -> None:
    """Note an error safegen raised, so that an integration can re-raise it from
    wherever a framework wrapped it (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_error(error)


def record_findings(
    name: str, location: str, mode: str, read: Callable[[], list[dict[str, Any]]]
) -> None:
    """Note where the detectors' findings on a source are read (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_findings(name, location, mode, read)
