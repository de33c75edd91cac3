"""What safegen saw while switched on from outside the code (``safegen.enable()``).

The run summary of ``python -m safegen run`` and ``pytest --safegen`` is read from here:
the data sources that were guarded, and the layers whose output shape was checked. The
guards and the layer checks report into it; it never imports a framework.

Recording is a no-op unless a session is active (``start()`` was called), so code that
records pays one attribute read when nothing listens.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

__all__ = ["LayerRecord", "Session", "current", "record_layer", "record_shape_error"]


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


class Session:
    """What one enabled period saw. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.layers: dict[int, LayerRecord] = {}
        self.shape_errors: list[str] = []
        self.sources: list[Any] = []  # filled by safegen._enable

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


_current: Session | None = None


def current() -> Session | None:
    """The active session, or ``None`` when safegen is not enabled."""
    return _current


def start() -> Session:
    """Begin a new session (called by ``safegen.enable()``)."""
    global _current
    _current = Session()
    return _current


def stop() -> Session | None:
    """End the active session and return it (called by ``safegen.disable()``)."""
    global _current
    session, _current = _current, None
    return session


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
