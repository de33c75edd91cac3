"""What every framework integration of ``safegen.enable()`` does the same way.

Wrapping a method (with wrapt) so that ``disable()`` can put back exactly what was there, guarding
the data arguments of a training call, and re-raising safegen's own error when a
framework wrapped it in one of its own. Framework-free: each integration passes in its
classes and argument names.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from safegen import _config, _enable, _session
from safegen._errors import (
    AliasingError,
    PairingError,
    RandomStreamError,
    RepeatedBatchError,
    SafegenError,
    ShapeError,
)
from safegen._frames import hide_safegen_frames
from safegen._sources import for_framework
from safegen.integrations import _calls

__all__ = ["patch", "patch_training_methods", "reraise_safegen_error", "training_method"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_MISSING = object()

# A wrapt wrapper function: (wrapped, instance, args, kwargs) -> result.
Wrapper: TypeAlias = Callable[[Any, Any, Any, Any], Any]


def patch(owner: Any, name: str, wrapper: Wrapper) -> Callable[[], None]:
    """Wrap ``owner.name`` in a ``wrapt.FunctionWrapper`` that calls
    ``wrapper(wrapped, instance, args, kwargs)``; the returned function restores it exactly.

    wrapt binds the wrapper as the attribute was bound (method, classmethod, staticmethod,
    special method) and keeps its name, signature and ``__wrapped__``. If ``owner`` only
    inherited the attribute, restoring deletes it again, so the inherited one shows
    through as before. (wrapt's own ``wrap_function_wrapper``/``unwrap_object`` pair does
    this from wrapt 2.4 on; safegen supports wrapt from 1.14, which TensorFlow users
    often have pinned.)
    """
    import wrapt

    saved = owner.__dict__.get(name, _MISSING)
    current = saved if saved is not _MISSING else inspect.getattr_static(owner, name)
    replacement = wrapt.FunctionWrapper(current, wrapper)
    setattr(owner, name, replacement)

    def undo() -> None:
        if owner.__dict__.get(name) is not replacement:
            return  # someone patched over us; leave theirs in place
        if saved is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, saved)

    return undo


def patch_training_methods(
    model: type,
    methods: dict[str, tuple[str, ...]],
    *,
    accept_iterators: bool = False,
    framework: str = "",
    checks: Iterable[str] = (),
) -> Callable[[], None]:
    """Patch each of ``model``'s ``methods`` (name -> data arguments) with
    :func:`training_method`; returns the function that undoes all of it.

    ``checks`` name the call checks (``"module:function"``, see
    :mod:`safegen.integrations._calls`) that run on each call of ``framework``'s model.
    """
    loaded = _calls.load(checks)
    undos = [
        patch(
            model,
            name,
            training_method(
                getattr(model, name),
                arguments,
                accept_iterators=accept_iterators,
                framework=framework,
                checks=loaded,
            ),
        )
        for name, arguments in methods.items()
        if hasattr(model, name)
    ]

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


def training_method(
    original: Callable[..., Any],
    data_arguments: Iterable[str],
    *,
    accept_iterators: bool = False,
    framework: str = "",
    checks: tuple[_calls.Check, ...] = (),
) -> Wrapper:
    """The wrapper (for :func:`patch`) of a ``fit``/``evaluate``/``predict``-like method:
    its data sources are guarded for the duration of the call, and safegen's errors come
    out as themselves.

    Args:
        original: the framework's method, as found on the class (``self`` first).
        data_arguments: the names of the parameters that may hold a data source (``x``,
            ``validation_data``, ``generator``). A ``validation_data`` tuple is left alone
            (arrays); a generator or dataset in it is guarded.
        accept_iterators: also guard plain iterators (the framework accepts them).
        framework: the framework's name, for the call checks (``"keras"``).
        checks: the call checks run on each call (:mod:`safegen.integrations._calls`).
    """
    signature = inspect.signature(original)
    # wrapt hands the wrapper the method bound to its instance: bind the rest.
    signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    names = tuple(n for n in data_arguments if n in signature.parameters)
    method_name = original.__name__

    def method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return wrapped(*args, **kwargs)  # let the framework word the error
        enabled = _enable.options()
        undos = []
        for name in names if enabled is not None else ():
            value = bound.arguments.get(name)
            if value is None or enabled is None:
                continue
            guarded, undo = for_framework(value, enabled.options, accept_iterators=accept_iterators)
            if guarded is not value:
                bound.arguments[name] = guarded
            if undo is not None:
                undos.append(undo)
        try:
            finishes: list[_calls.Finish] = []
            if checks and enabled is not None and not _config.disabled():
                call = _calls.Call(
                    framework,
                    method_name,
                    instance,
                    bound.arguments,
                    _calls.handling_for(instance, enabled.options.resolve().on_violation),
                )
                finishes = _calls.run_checks(checks, call)
            result = wrapped(*bound.args, **bound.kwargs)
            for finish in finishes:
                finish()
            return result
        except SafegenError:
            raise
        except Exception as error:
            reraise_safegen_error(error)
            raise
        finally:
            for undo in undos:
                undo()

    return method


# "AliasingError: <message>" inside a framework's error text (the name standing alone, not
# the end of another exception's name); the message ends where the framework's own text
# starts again.
_IN_TEXT = re.compile(
    r"(?<![\w.])(?:safegen\.)?"
    r"(?P<kind>AliasingError|ShapeError|RandomStreamError|RepeatedBatchError|PairingError)"
    r": (?P<message>.*?)"
    r"(?=\n\s*\[\[|\n\nTraceback|\n\s*Traceback \(most recent call last\)"
    r"|\nmultiprocessing\.pool\.RemoteTraceback|\Z)",
    re.DOTALL,
)
_KINDS: dict[str, type[SafegenError]] = {
    "AliasingError": AliasingError,
    "ShapeError": ShapeError,
    "RandomStreamError": RandomStreamError,
    "RepeatedBatchError": RepeatedBatchError,
    "PairingError": PairingError,
}
# What only safegen's own messages say, so that a user's exception of the same name is
# never taken for safegen's.
_SIGNATURES = {
    "AliasingError": (" changed after it was ", " changed while "),
    "ShapeError": ("; declared ", "declared by: "),
    "RandomStreamError": (" started from the same state in ",),
    "RepeatedBatchError": (" is the same, array for array ",),
    "PairingError": (" came with a different target row than the first time",),
}


def safegen_error_behind(error: BaseException) -> SafegenError | None:
    """The safegen error that ``error`` (a framework's) carries, if any.

    Prefer the very exception safegen raised in this process (a data thread), taken out
    of the session so that it is re-raised once; failing that (it was raised in a worker
    process), rebuild it from the text when the text is safegen's.
    """
    if isinstance(error, SafegenError):
        return error
    text = str(error)
    if not any(kind in text for kind in _KINDS):
        return None
    session = _session.current()
    if session is not None:
        with session.lock:
            for index in range(len(session.errors) - 1, -1, -1):
                candidate = session.errors[index]
                first_line = str(candidate).split("\n", 1)[0]
                if first_line and first_line in text and isinstance(candidate, SafegenError):
                    del session.errors[index]
                    return candidate
    found = _IN_TEXT.search(text)
    if found is None:
        return None
    kind, message = found["kind"], found["message"].strip()
    if not any(signature in message for signature in _SIGNATURES[kind]):
        return None
    rebuilt = _KINDS[kind](message)
    _session.record_remote(rebuilt)  # raised in a worker process: count it here
    return rebuilt


def reraise_safegen_error(error: Exception) -> None:
    """If ``error`` carries a safegen error, raise that one instead.

    The framework's error stays reachable as ``__context__`` but is not printed (its
    traceback points into the framework, and its text repeats safegen's message, with a
    worker's traceback, up to 3 times); a one-line note names it.
    """
    found = safegen_error_behind(error)
    if found is None or found is error:
        return
    framework = type(error).__module__.split(".", 1)[0]
    note = (
        f"(re-raised by safegen from the {framework} {type(error).__name__} that carried it "
        "out of the data pipeline; that error is kept as __context__, not shown)"
    )
    if note not in getattr(found, "__notes__", ()):
        found.add_note(note)
    hide_safegen_frames()
    if found.__traceback__ is None:
        # Rebuilt from the text (raised in a worker process): safegen's message names
        # the dataset, its line and the worker.
        raise found from None
    raise found.with_traceback(found.__traceback__) from None
