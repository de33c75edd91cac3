"""Where a guarded generator's options come from.

From strongest to weakest: the arguments given to :func:`safegen.guard`, the innermost
:func:`safegen.mode` context of the current thread, :func:`safegen.configure`, the
``SAFEGEN_MODE`` environment variable, and the defaults (``mode="check"``,
``on_violation="raise"``, ``window=12``).

Above all of them sits the off switch for production, ``SAFEGEN_DISABLE=1`` (like
jaxtyping's ``JAXTYPING_DISABLE``): every guard in mode ``"check"`` or ``"freeze"``
becomes a pass-through, even one written ``guard(mode="check")``, and layers' output
checks (``ShapeChecked``, the Lambda checks of ``safegen.enable()``) are off too: no
``ShapeError``. Guards in mode ``"copy"`` keep copying: copy mode is the fix for a
reused buffer, not a check, and switching it off would bring the bug back.
``SAFEGEN_MODE=off`` is weaker: it is only the default, so it turns off the guards that
do not pin a mode of their own.
``safegen check`` and :func:`safegen.testing.assert_no_aliasing` check even under
``SAFEGEN_DISABLE=1``: they were asked to.

Both variables are read once, the first time a setting is needed (the first
:func:`safegen.guard`, :func:`safegen.settings`, ...), not at import: an invalid value
raises ``ValueError`` there, listing the valid ones, and ``import safegen`` itself
never fails because of them.

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

__all__ = ["Options", "Settings", "configure", "mode", "settings"]

Mode = Literal["check", "copy", "freeze", "off"]
OnViolation = Literal["raise", "warn"] | Callable[[Any], object]

MODES: tuple[str, ...] = ("check", "copy", "freeze", "off")
ON_VIOLATION: tuple[str, ...] = ("raise", "warn")
ENV_VAR = "SAFEGEN_MODE"
DISABLE_VAR = "SAFEGEN_DISABLE"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

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


@dataclasses.dataclass(frozen=True)
class Options:
    """What one way in was given (``guard``, ``enable``, ``configure``, a check), validated
    once by :meth:`parse`; ``None`` takes the value in force when a source is guarded.

    Example:
        >>> Options.parse("safegen.guard()", mode="COPY").mode
        'copy'
    """

    mode: Mode | None = None
    on_violation: OnViolation | None = None
    window: int | None = None
    verify_all: bool | None = None

    @classmethod
    def parse(cls, caller: str, **given: Any) -> Options:
        """Validate ``given`` (``mode``, ``on_violation``, ``window``, ``verify_all``;
        ``None`` for unset); an invalid value raises naming ``caller``, with the valid ones."""
        checked: dict[str, Any] = {}
        for name, value in given.items():
            if value is not None:
                checked[name] = _VALIDATORS[name](value, caller)
        return cls(**checked) if checked else NO_OPTIONS

    def given(self) -> dict[str, Any]:
        """The options that were set."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def resolve(self) -> Settings:
        """The settings for a source guarded here and now: these options over the
        defaults in force, with ``SAFEGEN_DISABLE`` applied."""
        base = settings()
        given = self.given() if self is not NO_OPTIONS else None
        result = dataclasses.replace(base, **given) if given else base
        if result.mode in ("check", "freeze") and disabled():
            result = dataclasses.replace(result, mode="off")
        return result

    def but(self, **changes: Any) -> Options:
        """A copy with ``changes`` (already validated)."""
        return dataclasses.replace(self, **changes)


def validate_mode(value: object, source: str) -> Mode:
    """Return ``value`` in lower case if it is a valid mode in any case (``"COPY"`` is
    ``"copy"``, in arguments as in ``SAFEGEN_MODE``), else raise a ``ValueError`` naming
    ``source``."""
    if isinstance(value, str) and value.lower() in MODES:
        return value.lower()  # type: ignore[return-value]
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


_VALIDATORS: dict[str, Callable[[object, str], Any]] = {
    "mode": validate_mode,
    "on_violation": validate_on_violation,
    "window": validate_window,
    "verify_all": validate_verify_all,
}
NO_OPTIONS = Options()


def _mode_from_environment() -> Settings:
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "":
        return Settings()
    return Settings(mode=validate_mode(raw.strip().lower(), f"environment variable {ENV_VAR}"))


def _disabled_from_environment() -> bool:
    raw = os.environ.get(DISABLE_VAR, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(
        f"environment variable {DISABLE_VAR}: invalid value {os.environ[DISABLE_VAR]!r}; "
        f"expected 1, true, yes or on (checks off), or 0, false, no, off or empty"
    )


# Read from the environment on first use (see the module docstring), then kept.
_global: Settings | None = None
_disabled: bool | None = None
_context_mode: contextvars.ContextVar[Mode | None] = contextvars.ContextVar(
    "safegen_mode", default=None
)
# Set by `safegen check` and assert_no_aliasing, which check even under SAFEGEN_DISABLE.
_checking_anyway: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "safegen_checking_anyway", default=False
)


def use_mode(value: Mode) -> None:
    """Make ``value`` the process-wide mode without reading ``SAFEGEN_MODE`` (an explicit
    command-line ``--mode`` wins over the environment, even an invalid one)."""
    global _global
    _global = dataclasses.replace(_global or Settings(), mode=validate_mode(value, "--mode"))


def _base() -> Settings:
    """The process-wide settings, reading ``SAFEGEN_MODE`` the first time."""
    global _global
    if _global is None:
        _global = _mode_from_environment()
    return _global


def disabled() -> bool:
    """Whether ``SAFEGEN_DISABLE`` turns check and freeze guards into pass-throughs here."""
    global _disabled
    if _disabled is None:
        _disabled = _disabled_from_environment()
    return _disabled and not _checking_anyway.get()


def validate_environment() -> None:
    """Read ``SAFEGEN_MODE`` and ``SAFEGEN_DISABLE`` now; raise ``ValueError`` if invalid."""
    _base()
    disabled()


@contextlib.contextmanager
def checking_anyway() -> Iterator[None]:
    """Check inside the block even under ``SAFEGEN_DISABLE=1`` (for explicit checks)."""
    token = _checking_anyway.set(True)
    try:
        yield
    finally:
        _checking_anyway.reset(token)


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
    changes = Options.parse(
        "safegen.configure()",
        mode=mode,
        on_violation=on_violation,
        window=window,
        verify_all=verify_all,
    ).given()
    _global = dataclasses.replace(_base(), **changes)
    return settings()


def reset() -> None:
    """Restore the defaults; the environment is read again on next use (for tests)."""
    global _global, _disabled
    _global = None
    _disabled = None


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

    ``SAFEGEN_DISABLE=1`` is not folded in: under it, a generator that gets mode
    ``"check"`` or ``"freeze"`` runs unguarded all the same.

    Returns:
        A frozen :class:`Settings`.

    Raises:
        ValueError: the ``SAFEGEN_MODE`` or ``SAFEGEN_DISABLE`` environment variable has
            an invalid value (the valid ones are listed).

    Example:
        >>> import safegen
        >>> safegen.settings().on_violation
        'raise'
    """
    base = _base()
    context = _context_mode.get()
    if context is None:
        return base
    return dataclasses.replace(base, mode=context)
