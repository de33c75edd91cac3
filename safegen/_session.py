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
from typing import Any

from safegen._errors import ShapeError
from safegen._finding import KINDS, SHAPE_KINDS, Finding, Kind, failing, kind_of
from safegen._stats import Stats
from safegen._summary import render

__all__ = [
    "KINDS",
    "CheckRecord",
    "Kind",
    "LayerRecord",
    "LossRecord",
    "Session",
    "SourceRecord",
    "current",
    "kind_of",
    "layer_source",
    "record_check",
    "record_error",
    "record_finding",
    "record_findings",
    "record_layer",
    "record_loss",
    "record_remote",
    "record_source",
    "session",
]


Reader = Callable[[], list[Any]]  # returns Findings (or {"kind": ..., "message": ...})


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
    # The findings on it that went through safegen._handling.report in this process.
    reported: list[Finding] = dataclasses.field(default_factory=list)
    # Where the findings made elsewhere are read (worker processes, through the source's
    # channel: safegen._detectors.findings), when the session is summarized.
    findings: list[Reader] = dataclasses.field(default_factory=list)

    def total(self) -> Stats:
        """The sum of the statistics of every generator of this source."""
        return sum(self.stats, Stats())

    def found(self) -> list[Finding]:
        """Every finding on this source: those reported in this process, then those read
        from elsewhere (each reader lists a finding once)."""
        out = list(self.reported)
        for entry in self._read():
            if isinstance(entry, Finding):
                out.append(entry)
            elif entry["kind"] in _KEYS:
                kind = Kind.named(entry["kind"])
                out.append(Finding(kind, self.name, self.location, entry["message"]))
        return out

    def notes(self) -> list[dict[str, str]]:
        """What the readers said that is no finding (what copy mode did in worker
        processes, say): ``{"kind": ..., "message": ...}`` each, listed after the
        findings in the summary and counted as none."""
        return [e for e in self._read() if not isinstance(e, Finding) and e["kind"] not in _KEYS]

    def _read(self) -> list[Any]:
        return [entry for reader in self.findings for entry in reader()]


# Every name a kind of finding goes by in a reader's entries.
_KEYS = frozenset(name for kind in KINDS for name in (kind.key, kind.entry))


@dataclasses.dataclass
class CheckRecord:
    """One check of a model's calls that is no data source's: the logits or input-scale
    check of a model, the validation split of a ``fit``.

    Attributes:
        name: what was checked, as in its findings' ``source`` (``"model 'classifier'"``).
        location: ``"file.py:12"`` where it is defined, or ``""``.
        checks: how many times it was checked.
        reported: its findings.
    """

    name: str
    location: str
    checks: int = 0
    reported: list[Finding] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class LayerRecord:
    """One layer whose output safegen checked.

    Attributes:
        name: the layer's name (``"mean"``).
        kind: the layer's class name (``"Lambda"``).
        checks: how many times its output was checked (in graph mode, once per trace).
        shape_errors: how many of those checks raised ``ShapeError`` (its findings of
            kind ``LAYER_SHAPE``).
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
        shape_errors: how many of those checks raised ``ShapeError`` (its findings of
            kind ``LOSS_BROADCAST``).
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
        # The model-level checks (no data source's), by (name, location).
        self.checks: dict[tuple[str, str], CheckRecord] = {}
        # The findings of the shape checks (LAYER_SHAPE, LOSS_BROADCAST), in order, and the
        # latest layer or loss record of each (source, location): where they are counted.
        self.shape_findings: list[Finding] = []
        self.shape_places: dict[tuple[str, str], LayerRecord | LossRecord] = {}
        self.errors: list[BaseException] = []
        # What enable() left off, and why: {"sources": ..., "layers": ...}.
        self.off: dict[str, str] = {}
        # Errors raised in worker processes (whose statistics stay there), by error name,
        # and by the kind of finding they stand for.
        self.remote: dict[str, int] = {}
        self.remote_kinds: dict[Kind, int] = {}
        self.remote_shape_errors = 0
        # The findings safegen raised an error for (here or in a worker), by kind: the
        # rest of the findings were only warned about (or passed to on_violation).
        self.raised: dict[Kind, int] = {}
        # The latest source record of each (name, location): where findings are counted.
        self.places: dict[tuple[str, str], SourceRecord] = {}

    def _source(self, name: str, location: str, mode: str) -> SourceRecord:
        """The record of a source (made on first use); called under the lock."""
        key = (name, location, mode)
        record = self.sources.get(key)
        if record is None:
            record = self.sources[key] = SourceRecord(name, location, mode)
            self.places[name, location] = record
        return record

    def record_source(self, name: str, location: str, mode: str, stats: Stats) -> None:
        with self.lock:
            self._source(name, location, mode).stats.append(stats)

    def record_findings(self, name: str, location: str, mode: str, read: Reader) -> None:
        with self.lock:
            self._source(name, location, mode).findings.append(read)

    def record_finding(self, finding: Finding) -> None:
        """Count ``finding`` under its source (one this session guarded: a source guarded
        before the session began is not part of it), or under the model-level check
        that :meth:`record_check` noted under the same name and location; a shape
        check's under the layer or loss last checked under that name and location (a
        shape finding is always raised: it counts as raised too)."""
        with self.lock:
            key = (finding.source, finding.location)
            if finding.kind in SHAPE_KINDS:
                self.shape_findings.append(finding)
                self.raised[finding.kind] = self.raised.get(finding.kind, 0) + 1
                place = self.shape_places.get(key)
                if place is not None:
                    place.shape_errors += 1
                return
            record = self.places.get(key)
            if record is not None:
                record.reported.append(finding)
                return
            check = self.checks.get(key)
            if check is not None:
                check.reported.append(finding)

    def record_check(self, name: str, location: str) -> None:
        """Note that a model-level check ran once under ``name`` (its findings' ``source``)
        and ``location``."""
        with self.lock:
            record = self.checks.get((name, location))
            if record is None:
                record = self.checks[name, location] = CheckRecord(name, location)
            record.checks += 1

    def record_layer(self, layer: Any) -> None:
        """Note that ``layer``'s output was checked once; its findings' ``source`` is
        :func:`layer_source` and their location ``""``."""
        key = id(layer)
        with self.lock:
            record = self.layers.get(key)
            if record is None:
                record = self.layers[key] = LayerRecord(
                    str(getattr(layer, "name", "?")), type(layer).__name__
                )
            record.checks += 1
            self.shape_places[layer_source(layer), ""] = record

    def record_loss(self, key: int, name: str, location: str, output: str) -> None:
        """Note that a loss's input shapes were checked once; its findings' ``source``
        and ``location`` are ``name`` and ``location``."""
        with self.lock:
            record = self.losses.get(key)
            if record is None:
                record = self.losses[key] = LossRecord(name, location, output)
            record.checks += 1
            self.shape_places[name, location] = record

    def record_error(self, error: BaseException) -> None:
        with self.lock:
            self.errors.append(error)
            del self.errors[:-16]  # the latest few are all a re-raise needs
            self._count_raised(error)

    def record_remote(self, error: BaseException) -> None:
        with self.lock:
            name = type(error).__name__
            self.remote[name] = self.remote.get(name, 0) + 1
            kind = kind_of(error)
            if kind is not None:
                self.remote_kinds[kind] = self.remote_kinds.get(kind, 0) + 1
            elif isinstance(error, ShapeError):
                self.remote_shape_errors += 1
            self._count_raised(error)

    def _count_raised(self, error: BaseException) -> None:
        kind = kind_of(error)
        if kind is not None:
            self.raised[kind] = self.raised.get(kind, 0) + 1

    # -- Reading it -------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Everything in plain JSON-able types (what ``--report`` writes)."""
        with self.lock:
            sources = list(self.sources.values())
            layers = list(self.layers.values())
            losses = list(self.losses.values())
            checks = [
                (c.name, c.location, c.checks, list(c.reported)) for c in self.checks.values()
            ]
            shape_findings = list(self.shape_findings)
            remote = dict(self.remote)
            remote_kinds = dict(self.remote_kinds)
            remote_shape_errors = self.remote_shape_errors
        rows = []
        for record in sources:
            total = record.total()
            found = record.found()
            kinds = {kind.key: sum(f.kind is kind for f in found) for kind in KINDS}
            rows.append(
                {
                    "name": record.name,
                    "location": record.location,
                    "mode": record.mode,
                    "generators": len(record.stats),
                    **dataclasses.asdict(total),
                    # Every kind of finding, counted by its kind.
                    "violations": sum(kinds.values()),
                    **kinds,
                    # The detectors' findings, each listed (the summary names them),
                    # then what the readers noted that is no finding.
                    "findings": [f.entry for f in found if f.kind.listed] + record.notes(),
                }
            )
        check_rows: list[dict[str, Any]] = []
        for name, location, times, found in checks:
            kinds = {kind.key: sum(f.kind is kind for f in found) for kind in KINDS}
            check_rows.append(
                {
                    "name": name,
                    "location": location,
                    "checks": times,
                    "violations": sum(kinds.values()),
                    **kinds,
                    "findings": [f.entry for f in found],
                }
            )
        total = sum((r.total() for r in sources), Stats())
        totals = {
            kind.key: sum(int(row[kind.key]) for row in (*rows, *check_rows)) for kind in KINDS
        }
        # Changes found in worker processes, whose statistics stay there (the detectors'
        # findings there reach the rows through the sources' channels).
        for kind, count in remote_kinds.items():
            if not kind.listed:
                totals[kind.key] += count
        # The shape checks' findings, counted under their layers and losses.
        for kind in SHAPE_KINDS:
            totals[kind.key] = sum(f.kind is kind for f in shape_findings)
        return {
            "sources": rows,
            "layers": [dataclasses.asdict(layer) for layer in layers],
            "losses": [dataclasses.asdict(loss) for loss in losses],
            "checks": check_rows,
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
                "shape_errors": len(shape_findings) + remote_shape_errors,
                "seconds": total.seconds,
            },
            "shape_errors": [f.message for f in shape_findings],
            "in_worker_processes": remote,
        }

    def counts(self) -> dict[str, int]:
        """Every finding so far, by kind (``KINDS``' keys), in worker processes too.

        Example:
            >>> import safegen
            >>> with safegen.enabled() as session:
            ...     pass
            >>> session.counts()["changed_arrays"]
            0
        """
        totals = self.as_dict()["totals"]
        return {kind.key: totals[kind.key] for kind in KINDS}

    def warned(self) -> dict[str, int]:
        """The findings so far that safegen only warned about (or passed to
        ``on_violation``), by kind: :meth:`counts`, less those it raised an error for."""
        with self.lock:
            raised = dict(self.raised)
        counts = self.counts()
        return {key: count - raised.get(Kind.named(key), 0) for key, count in counts.items()}

    def failures(self, *, raised: bool = True) -> dict[str, int]:
        """What fails a run or a test, by kind: the one rule of ``safegen run``, ``pytest
        --safegen``, ``safegen check`` and :mod:`safegen.testing`.

        Every finding of every kind fails. ``raised=False`` leaves out the findings that
        safegen raised its error for: where that error went (a test that expected it with
        ``pytest.raises``, or a test failing with it) is the verdict.
        """
        return failing(self.counts() if raised else self.warned())

    def summary(self, outcome: str = "") -> str:
        """A short human-readable summary, one line per source and per checked layer."""
        return render(self.as_dict(), self.off, outcome)

    def to_json(self, outcome: str = "", exit_status: int | None = None) -> str:
        data = self.as_dict()
        data["outcome"] = outcome
        data["exit_status"] = exit_status
        return json.dumps(data, indent=2)


_current: Session | None = None


def current() -> Session | None:
    """The active session, or ``None`` when safegen is not enabled."""
    return _current


def session() -> Session | None:
    """What safegen has seen since :func:`safegen.enable`, or ``None`` when it is not
    enabled: the session that ``safegen run`` and ``pytest --safegen`` summarize.

    Read it with ``summary()`` (the text ``safegen run`` prints), ``as_dict()`` and
    ``to_json()`` (what ``--report`` writes), ``counts()`` (every finding by kind) and
    ``failures()`` (what fails a run or a test). Thread-safe.

    Example:
        >>> import safegen
        >>> safegen.session() is None
        True
        >>> with safegen.enabled():
        ...     safegen.session().failures()
        {}
    """
    return _current


session.__module__ = "safegen"


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


def layer_source(layer: Any) -> str:
    """``"layer 'mean' (Lambda)"``: ``layer`` as the ``source`` of its findings."""
    return f"layer {str(getattr(layer, 'name', '?'))!r} ({type(layer).__name__})"


def record_layer(layer: Any) -> None:
    """Note that ``layer``'s output was checked (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_layer(layer)


def record_remote(error: BaseException) -> None:
    """Note an error a worker process raised, rebuilt here (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_remote(error)


def record_loss(key: int, name: str, location: str, output: str) -> None:
    """Note that a loss's input shapes were checked (a no-op outside a session); a
    ``ShapeError`` it raises is a finding, counted by :func:`safegen._handling.report`."""
    session = _current
    if session is not None:
        session.record_loss(key, name, location, output)


def record_check(name: str, location: str) -> None:
    """Note that a model-level check ran (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_check(name, location)


def record_error(error: BaseException) -> None:
    """Note an error safegen raised, so that an integration can re-raise it from
    wherever a framework wrapped it (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_error(error)


def record_finding(finding: Finding) -> None:
    """Count ``finding`` (called by :func:`safegen._handling.report`; a no-op outside a
    session)."""
    session = _current
    if session is not None:
        session.record_finding(finding)


def record_findings(name: str, location: str, mode: str, read: Reader) -> None:
    """Note where the detectors' findings on a source are read (a no-op outside a session)."""
    session = _current
    if session is not None:
        session.record_findings(name, location, mode, read)
