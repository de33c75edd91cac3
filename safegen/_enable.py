"""``safegen.enable()``: guard every data source and check every Lambda, from outside the code.

While enabled, the framework integrations patch the places where data and layers meet the
framework (``Model.fit``/``evaluate``/``predict``, ``tf.data.Dataset.from_generator``,
``keras.layers.Lambda``). This module is the switch; it never imports a framework. An
integration is installed at once when its framework is already imported, and otherwise
the moment the program imports it (a finder on ``sys.meta_path`` runs the installer after
the framework's module has finished executing; the finder stays from ``import safegen``
on, so that saved checked layers load too). ``disable()`` undoes exactly what was
installed.

Thread safety: ``enable``, ``disable`` and the installers run under one lock, so they are
safe to call from any thread; a call into Keras already running on another thread keeps
the function it started with.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from safegen import _session
from safegen._config import Mode, OnViolation, Options
from safegen._frames import user_frame

if TYPE_CHECKING:  # pragma: no cover
    from importlib.machinery import ModuleSpec

__all__ = ["disable", "enable", "enabled", "is_enabled"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

Undo = Callable[[], None]

# Framework module -> the installers to run once it is imported: "module:function", each
# called with no argument (the patches read the options in force when they run) and
# returning a function that undoes what it did.
_INTEGRATIONS: dict[str, tuple[str, ...]] = {
    "keras": ("safegen.integrations.keras.training:install",),
    "tf_keras": ("safegen.integrations.tf_keras.training:install",),
    "tensorflow": ("safegen.integrations.tf_data:install",),
    "torch": (
        "safegen.integrations.torch.data:install",
        "safegen.integrations.torch.sampler:install",
        "safegen.integrations.torch.workers:install",
    ),
}
_SHAPE_INTEGRATIONS: dict[str, tuple[str, ...]] = {
    "keras": (
        "safegen.integrations.keras.layers:install_lambda_checks",
        "safegen.integrations.keras.losses:install_loss_checks",
    ),
    "tf_keras": (
        "safegen.integrations.tf_keras.layers:install_lambda_checks",
        "safegen.integrations.tf_keras.losses:install_loss_checks",
    ),
}


class Enabled:
    """What ``enable()`` was given: the guard options and whether to check layers."""

    __slots__ = ("options", "shapes")

    def __init__(self, options: Options, shapes: bool) -> None:
        self.options = options
        self.shapes = shapes


_lock = threading.RLock()
_options: Enabled | None = None
_undo: dict[str, list[Undo]] = {}  # framework -> undo functions, in install order


def options() -> Enabled | None:
    """The active options, or ``None`` when safegen is not enabled."""
    return _options


def is_enabled() -> bool:
    """Whether :func:`safegen.enable` is in force.

    Example:
        >>> import safegen
        >>> safegen.is_enabled()
        False
    """
    return _options is not None


def enable(
    mode: Mode | None = None,
    *,
    shapes: bool = True,
    on_violation: OnViolation | None = None,
    window: int | None = None,
) -> None:
    """Guard every data source that reaches Keras or tf.data, and check every Lambda.

    While enabled:

    * every generator and Keras ``PyDataset``/``Sequence`` instance given to
      ``Model.fit`` (``validation_data`` too), ``evaluate`` or ``predict`` is guarded
      (Keras 3 on any backend, and ``tf_keras``, whose ``fit_generator`` and iterators
      too); a source already guarded with :func:`safegen.guard` keeps its own options;
    * every callable given to ``tf.data.Dataset.from_generator`` is guarded;
    * every PyTorch ``DataLoader`` guards the user's datasets behind it when it is
      iterated (torch's own, such as ``TensorDataset``, are left alone), and an error
      safegen raised in one of its worker processes comes out as itself;
    * with ``shapes=True``, every ``keras.layers.Lambda`` checks its real output against
      its declared ``output_shape`` (rank only, as ``ShapeChecked(check="rank")``),
      whether built before or after this call, without changing its weights, variable
      paths, name or what ``model.save`` writes;
    * with ``shapes=True``, each loss of every compiled model checks the shapes of
      ``y_true`` and ``y_pred`` it receives, as :func:`safegen.check_losses` does;
    * ``fit`` records the range of each model input, and ``predict``/``evaluate`` (and
      ``fit``'s ``validation_data``) report inputs on another scale, as
      :func:`safegen.check_inputs` does;
    * an ``AliasingError`` that TensorFlow wrapped in one of its own errors (raised in a
      data thread) is re-raised as itself, chained from TensorFlow's error.

    It may be called before or after Keras or TensorFlow is imported, and imports
    neither: an integration is installed when its framework is imported. Calling it
    again changes the options; :func:`safegen.disable` undoes everything.

    Args:
        mode: ``"check"``, ``"copy"``, ``"freeze"`` or ``"off"``; ``None`` takes it from
            :func:`safegen.mode`, :func:`safegen.configure` or ``SAFEGEN_MODE`` when each
            source is guarded.
        shapes: check Lambda layers' output ranks and losses' input shapes.
        on_violation: ``"raise"``, ``"warn"`` or a callable given each report.
        window: how many recent batches check mode watches.

    Raises:
        ValueError: an option has an invalid value (the valid ones are listed).
        TypeError: an option has the wrong type.

    Example:
        >>> import safegen
        >>> safegen.enable(mode="copy")
        >>> safegen.is_enabled()
        True
        >>> safegen.disable()
    """
    given = Options.parse("safegen.enable()", mode=mode, on_violation=on_violation, window=window)
    if not isinstance(shapes, bool):
        raise TypeError(f"safegen.enable(): shapes must be True or False, got {shapes!r}")
    global _options
    with _lock:
        previous = _options
        _options = Enabled(given, shapes)
        _session.start().off = _what_is_off(given, shapes)
        if previous is not None and previous.shapes != shapes:
            _uninstall_all()  # the set of installers changed: start over
        _add_finder()
        for framework in _INTEGRATIONS:
            if _imported(framework):
                _install_or_warn(framework, "at safegen.enable()")


def disable() -> None:
    """Undo :func:`safegen.enable`: put back exactly what it patched.

    Sources guarded while enabled stay guarded until they are exhausted or collected;
    nothing new is guarded. Calling it when not enabled does nothing.

    Example:
        >>> import safegen
        >>> safegen.disable()
        >>> safegen.is_enabled()
        False
    """
    global _options
    with _lock:
        _uninstall_all()
        _options = None
        _session.stop()


@contextlib.contextmanager
def enabled(
    mode: Mode | None = None,
    *,
    shapes: bool = True,
    on_violation: OnViolation | None = None,
    window: int | None = None,
) -> Iterator[_session.Session]:
    """:func:`safegen.enable` for the duration of a ``with`` block.

    Yields the session, whose ``summary()`` says what was guarded and checked. On exit,
    the state before the block comes back: disabled, or enabled with the options it had.
    Blocks nest; the setting is process-wide, not per thread.

    Example:
        >>> import safegen
        >>> with safegen.enabled(mode="check") as session:
        ...     safegen.is_enabled()
        True
        >>> safegen.is_enabled()
        False
    """
    with _lock:
        before = _options
        session_before = _session.current()
        enable(mode, shapes=shapes, on_violation=on_violation, window=window)
        session = _session.current()
        assert session is not None
    try:
        yield session
    finally:
        with _lock:
            if before is None:
                disable()
            else:
                enable(
                    before.options.mode,
                    shapes=before.shapes,
                    on_violation=before.options.on_violation,
                    window=before.options.window,
                )
                if session_before is not None:
                    _session._current = session_before


def _what_is_off(given: Options, shapes: bool) -> dict[str, str]:
    """What ``enable()`` leaves off, and why, for the run summary."""
    from safegen import _config

    off: dict[str, str] = {}
    try:
        mode = given.mode or _config.settings().mode
        disabled = _config.disabled()
    except ValueError:  # an invalid environment variable: reported where it is used
        return off
    if mode == "off":
        if given.mode is not None:
            why = "mode 'off' was asked for (--mode off, --safegen=off or enable('off'))"
        elif os.environ.get(_config.ENV_VAR, "").strip():
            why = f"{_config.ENV_VAR}={os.environ[_config.ENV_VAR].strip()}"
        else:
            why = "safegen.configure(mode='off') or safegen.mode('off')"
        off["sources"] = why
    elif disabled and mode in ("check", "freeze"):
        off["sources"] = f"{_config.DISABLE_VAR}=1 turns check and freeze mode off"
    if disabled:
        off["layers"] = f"{_config.DISABLE_VAR}=1 turns layer checks off"
    elif not shapes:
        off["layers"] = "layer checks were switched off (--no-shapes, --safegen-no-shapes)"
    return off


# -- Installing integrations --------------------------------------------------------------


def _installers(framework: str) -> Sequence[str]:
    options = _options
    shapes = _SHAPE_INTEGRATIONS.get(framework, ()) if options and options.shapes else ()
    return (*_INTEGRATIONS.get(framework, ()), *shapes)


def _imported(framework: str) -> bool:
    """Whether ``framework`` has finished importing (not merely started)."""
    module = sys.modules.get(framework)
    if module is None:
        return False
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


def _install(framework: str) -> None:
    """Run ``framework``'s installers, once while enabled; all or nothing."""
    with _lock:
        if _options is None or framework in _undo:
            return
        undo: list[Undo] = []
        try:
            for target in _installers(framework):
                module_name, _, function = target.partition(":")
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError as error:
                    if error.name == module_name:  # that integration is not shipped
                        continue
                    raise
                undo.append(getattr(module, function)())
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        _undo[framework] = undo


def _uninstall_all() -> None:
    for framework in list(_undo):
        for undo in reversed(_undo.pop(framework)):
            undo()


# A framework whose saved models may hold checked layers: once it is imported, safegen's
# layer integration for it is loaded, so that ``load_model`` finds them (enabled or not).
_LAYER_FRAMEWORKS = ("keras", "tf_keras")


def _on_import(framework: str) -> None:
    """``framework`` has just finished importing (its import statement has not returned).

    A failure here must not break the program's ``import``: it becomes a warning, and
    whatever was installed of that framework's integration is undone.
    """
    try:
        if framework in _LAYER_FRAMEWORKS:
            from safegen._layers import register_loaded

            register_loaded(finished=framework)
    except Exception as error:  # noqa: BLE001 - reported, never raised into `import`
        _warn_failed(framework, error, f"as {framework} was imported")
    if _options is not None:
        _install_or_warn(framework, f"as {framework} was imported")


def _install_or_warn(framework: str, when: str) -> None:
    """:func:`_install`, with a failure turned into a warning (the program goes on);
    ``when`` says where it happened (``"as keras was imported"``)."""
    try:
        _install(framework)
    except Exception as error:  # noqa: BLE001 - reported, never raised into the program
        _warn_failed(framework, error, when)


def _caller_level() -> int:
    """The ``stacklevel`` (for a warning issued by the caller's caller) of the user's
    code: the import statement that imported a framework, or the call of ``enable()``;
    past installed packages' frames (a framework importing another) unless only those
    are left."""
    return user_frame(2, libraries=True)[0]


def _warn_failed(framework: str, error: Exception, when: str) -> None:
    import warnings

    from safegen._errors import SafegenWarning

    warnings.warn(
        f"safegen could not install its {framework} integration {when} "
        f"({type(error).__name__}: {error}); {framework} works as usual, without "
        "safegen's checks",
        SafegenWarning,
        stacklevel=_caller_level(),
    )


def _add_finder() -> None:
    """Put the import hook first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PostImportFinder())


class _PostImportFinder:
    """Calls :func:`_on_import` right after a framework's top module has been imported.

    It is on ``sys.meta_path`` from ``import safegen`` on, and answers ``None`` at once
    for every other module. A meta path finder by protocol (``find_spec``); not derived
    from ``importlib.abc``, whose import would cost ``import safegen`` several
    milliseconds."""

    def __init__(self) -> None:
        self._looking = threading.local()  # names this thread is finding the spec of

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        # Every framework import is wrapped, enabled or not: enable() may come while
        # another thread is importing it, and _on_import decides what to do then.
        if fullname not in _INTEGRATIONS:
            return None
        looking: set[str] = self._looking.__dict__.setdefault("names", set())
        if fullname in looking:  # another hook of this kind asked us back: step aside
            return None
        looking.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            looking.discard(fullname)
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return None
        exec_module = loader.exec_module

        def exec_then_install(module: ModuleType) -> None:
            exec_module(module)
            # The module is complete now (its import statement has not returned yet).
            _on_import(fullname)

        spec.loader = _LoaderProxy(loader, exec_then_install)  # type: ignore[assignment]
        return spec


class _LoaderProxy:
    """The framework's own loader, whose ``exec_module`` also runs our installers."""

    def __init__(self, loader: Any, exec_module: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._exec_module = exec_module

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._exec_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_add_finder()
