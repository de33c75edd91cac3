"""Where a guarded generator's options come from.

From strongest to weakest: the arguments given to :func:`safegen.guard`, the innermost
:func:`safegen.mode` context of the current thread, :func:`safegen.configure`, the
``SAFEGEN_MODE`` environment variable (read once, when safegen is imported), and the
defaults (``mode="check"``, ``on_violation="raise"``, ``window=12``).

Options are resolved when a generator (or iterator) is created, not when it is
decorated, so ``with safegen.mode("off"): model.fit(batches())`` switches a decorated
generator function off for that call.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import operator
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal

__all__ = ["Settings", "configure", "mode", "settings"]

Mode = Literal["check", "copy", "freeze", "off"]
OnViolation = Literal["raise", "warn"] | Callable[[Any], object]

MODES: tuple[str, ...] = ("check", "copy", "freeze", "off")
ON_VIOLATION: tuple[str, ...] = ("raise", "warn")
ENV_VAR = "SAFEGEN_MODE"

# Keras peeks 2 batches to infer the dataset's spec, and tf.data's prefetch queue commonly
# holds up to 10: a batch can still be in use 12 yields after it was produced.
DEFAULT_WINDOW = 12


@dataclasses.dataclass(frozen=True)
class Settings:
    """The options a guarded generator runs with.

    Attributes:
        mode: ``"check"``, ``"copy"``, ``"freeze"`` or ``"off"``.
        on_violation: ``"raise"``, ``"warn"``, or a callable given each
            :class:`safegen.AliasingReport`.
        window: how many recent yields check mode keeps watching.
        verify_all: check mode re-verifies every watched array on every step (costs
            window times the bytes; off by default).

    Example:
        >>> import safegen
        >>> safegen.settings().window
        12
    """

    mode: Mode = "check"
    on_violation: OnViolation = "raise"
    window: int = DEFAULT_WINDOW
    verify_all: bool = False


Settings.__module__ = "safegen"


def validate_mode(value: object, source: str) -> Mode:
    """Return ``value`` if it is a valid mode, else raise a ``ValueError`` naming ``source``."""
    if isinstance(value, str) and value in MODES:
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        raise TypeError(
            f"{source}: mode must be a string, one of {', '.join(map(repr, MODES))}; "
            f"got {type(value).__name__} {value!r}"
        )
    raise ValueError(
        f"{source}: invalid mode {value!r}; expected one of {', '.join(map(repr, MODES))}"
    )


def validate_on_violation(value: object, source: str) -> OnViolation:
    """Return ``value`` if it is a valid ``on_violation``, else raise naming ``source``."""
    if (isinstance(value, str) and value in ON_VIOLATION) or (
        callable(value) and not isinstance(value, str)
    ):
        return value  # type: ignore[return-value]
    raise ValueError(
        f"{source}: invalid on_violation {value!r}; expected 'raise', 'warn' or a callable "
        "that takes a safegen.AliasingReport"
    )


def validate_window(value: object, source: str) -> int:
    """Return ``value`` if it is a positive int, else raise naming ``source``."""
    if isinstance(value, bool):
        raise TypeError(f"{source}: window must be an int >= 1, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]  # NumPy integers too
    except TypeError:
        raise TypeError(f"{source}: window must be an int >= 1, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{source}: window must be an int >= 1, got {value!r}")
    return number


def validate_verify_all(value: object, source: str) -> bool:
    """Return ``value`` if it is a bool, else raise naming ``source``."""
    if not isinstance(value, bool):
        raise TypeError(f"{source}: verify_all must be True or False, got {value!r}")
    return value


def _from_environment() -> Settings:
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "":
        return Settings()
    return Settings(mode=validate_mode(raw.strip().lower(), f"environment variable {ENV_VAR}"))


_global: Settings = _from_environment()
_context_mode: contextvars.ContextVar[Mode | None] = contextvars.ContextVar(
    "safegen_mode", default=None
)


def configure(
    *,
    mode: Mode | None = None,
    on_violation: OnViolation | None = None,
    window: int | None = None,
    verify_all: bool | None = None,
) -> Settings:
    """Change the process-wide defaults; options left as ``None`` keep their value.

    Arguments given to :func:`safegen.guard` still win over these. Not meant to be
    called while other threads create guarded generators (the new settings replace the
    old ones in one assignment, so a thread sees either, never a mix).

    Args:
        mode: ``"check"``, ``"copy"``, ``"freeze"`` or ``"off"``.
        on_violation: ``"raise"``, ``"warn"`` or a callable given each report.
        window: how many recent yields check mode watches (at least 1).
        verify_all: re-verify every watched array on every step in check mode.

    Returns:
        The settings now in force.

    Example:
        >>> import safegen
        >>> safegen.configure(mode="copy").mode
        'copy'
        >>> _ = safegen.configure(mode="check")
    """
    global _global
    changes: dict[str, Any] = {}
    if mode is not None:
        changes["mode"] = validate_mode(mode, "safegen.configure()")
    if on_violation is not None:
        changes["on_violation"] = validate_on_violation(on_violation, "safegen.configure()")
    if window is not None:
        changes["window"] = validate_window(window, "safegen.configure()")
    if verify_all is not None:
        changes["verify_all"] = validate_verify_all(verify_all, "safegen.configure()")
    _global = dataclasses.replace(_global, **changes)
    return settings()


def reset() -> None:
    """Restore the defaults and re-read ``SAFEGEN_MODE`` (for tests)."""
    global _global
    _global = _from_environment()


@contextlib.contextmanager
def mode(value: Mode) -> Iterator[None]:
    """Set the mode of the generators created inside the ``with`` block.

    Contexts nest, and the previous mode comes back on exit, even on an exception. The
    setting lives in a :mod:`contextvars` variable, so it is thread-safe and task-safe:
    it applies to the current thread (or asyncio task) only. Worker threads started
    inside the block do not see it; a mode given to ``guard(...)`` still wins.

    Args:
        value: ``"check"``, ``"copy"``, ``"freeze"`` or ``"off"``.

    Example:
        >>> import safegen
        >>> with safegen.mode("copy"):
        ...     safegen.settings().mode
        'copy'
    """
    token = _context_mode.set(validate_mode(value, "safegen.mode()"))
    try:
        yield
    finally:
        _context_mode.reset(token)


def settings() -> Settings:
    """The settings a generator created here and now would get, before its own arguments.

    Returns:
        A frozen :class:`Settings`.

    Example:
        >>> import safegen
        >>> safegen.settings().on_violation
        'raise'
    """
    context = _context_mode.get()
    if context is None:
        return _global
    return dataclasses.replace(_global, mode=context)


def resolve(overrides: dict[str, Any]) -> Settings:
    """Settings for a new generator: ``overrides`` (already validated) over the defaults."""
    base = settings()
    return dataclasses.replace(base, **overrides) if overrides else base
