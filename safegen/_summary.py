"""The run summary's text: what ``safegen run`` prints at exit and ``pytest --safegen``
in its terminal summary, made from a session's :meth:`~safegen._session.Session.as_dict`
(framework-free)."""

from __future__ import annotations

from typing import Any

from safegen._finding import named_counts

__all__ = ["render"]


def render(data: dict[str, Any], off: dict[str, str], outcome: str = "") -> str:
    """A short human-readable summary of ``data`` (a session's ``as_dict()``), one line per
    source and per checked layer; ``off`` says what ``enable()`` left off, and why."""
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
    for check in data.get("checks", ()):
        where = f" at {check['location']}" if check["location"] else ""
        lines.append(
            f"  check {check['name']}{where}: {check['checks']} time(s), {_violations(check)}"
        )
        for finding in check["findings"]:
            first = finding["message"].split(". ", 1)[0]
            lines.append(f"    {finding['kind'].replace('_', ' ')}: {first}.")
    if totals["losses_checked"]:
        lines.append(f"  {totals['losses_checked']} loss(es) checked")
    checked = data["sources"] or data["layers"] or data["losses"] or data.get("checks")
    if not checked and not off:
        lines.append(
            "  nothing was guarded: no generator, PyDataset or from_generator source "
            "reached Keras or tf.data, no DataLoader was iterated, and no Lambda layer ran"
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


def _violations(counts: dict[str, int], details: tuple[str, ...] = ()) -> str:
    """``"3 violation(s) (1 changed array(s), 2 repeated batch(es))"``, or ``"0 violation(s)"``;
    ``details`` follow the kinds, after a semicolon."""
    parts = [part for part in (named_counts(counts), *details) if part]
    return f"{counts['violations']} violation(s)" + (f" ({'; '.join(parts)})" if parts else "")


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
