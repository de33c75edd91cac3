"""What the Keras 3 and ``tf_keras`` loss checks share (this module imports no framework).

A compiled model keeps its losses in a container (Keras 3's ``CompileLoss``, tf_keras's
``LossesContainer``) that calls each one with the ``y_true`` and ``y_pred`` of its output.
Once the container is built, each loss of the user's own code is replaced in it by a
:class:`CheckedLoss`: the same loss, called the same way, that first looks at the static
shapes of the two tensors. The integrations say how their Keras builds the container,
reads shapes and traces a loss.

The verdict for a pair of static shapes (and dtypes) is cached on the checked loss, so
in graph mode (``tf.function``, ``jit_compile``, JAX's ``jit``) it is paid once per
trace, and eagerly it costs a dictionary look-up per step. To reach it, the loss's
``call`` is traced once more, outside the enclosing trace, on symbolic inputs of those
shapes and dtypes (:mod:`safegen.integrations._loss_graphs`: a TensorFlow graph or a
jaxpr), and its operations are read (:func:`safegen._losses.first_meeting`): the first
elementwise operation where a value computed from ``y_true`` meets one computed from
``y_pred`` and broadcasting enlarges both raises :class:`safegen.ShapeError`, naming the
operation and its line. A loss that cannot be traced (or a backend that cannot: Keras 3
on PyTorch, NumPy or OpenVINO) is not reported.
"""

from __future__ import annotations

import abc
import functools
import threading
from collections.abc import Callable
from typing import Any

from safegen import _config, _session
from safegen._finding import Finding, Kind
from safegen._handling import Handling, report
from safegen._losses import first_meeting, loss_message, where_defined
from safegen._shapes import Shape
from safegen.integrations._loss_graphs import Traced
from safegen.integrations._patching import Wrapper

__all__ = ["CheckedLoss", "LossChecks", "UserCode", "check_when_built", "checking_build"]

_CACHE_LIMIT = 64
_MISSING = object()


class UserCode:
    """The user's code a loss runs: its name in messages, its code object, and whether
    Keras reconciles ranks before calling it (a plain function in a wrapper)."""

    __slots__ = ("code", "label", "reconciled")

    def __init__(self, label: str, code: Any, reconciled: bool) -> None:
        self.label = label
        self.code = code
        self.reconciled = reconciled


class CheckedLoss:
    """A loss of a compiled model, checking its inputs' shapes before it runs.

    Called exactly as the loss is; every other attribute is the loss's own.
    """

    __slots__ = ("__weakref__", "_safegen")

    def __init__(self, loss: Any, state: _State) -> None:
        object.__setattr__(self, "_safegen", state)

    def __call__(self, y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
        state = self._safegen
        state.checks.check(state, y_true, y_pred)
        return state.loss(y_true, y_pred, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._safegen.loss, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._safegen.loss, name, value)

    def __repr__(self) -> str:
        return f"<safegen.CheckedLoss of {self._safegen.loss!r}>"


class _State:
    __slots__ = ("always", "cache", "checks", "location", "loss", "output", "user")

    def __init__(
        self, checks: LossChecks, loss: Any, user: UserCode, output: str, always: bool
    ) -> None:
        self.checks = checks
        self.loss = loss
        self.user = user
        self.output = output
        self.always = always  # checked on request (check_losses), not only while enabled
        self.location = where_defined(user.code)
        self.cache: dict[Any, str | None] = {}


class _Probing(threading.local):
    depth = 0


class LossChecks(abc.ABC):
    """The loss checks of one Keras; one instance per integration."""

    framework: str  # "Keras 3", "tf_keras"
    wrapper_class: Any  # the Keras's LossFunctionWrapper (built-ins, plain functions)
    loss_class: Any  # the Keras's Loss base class

    def __init__(self) -> None:
        self.probing = _Probing()
        self.installs = 0  # safegen.enable() installs in force
        self.lock = threading.Lock()

    # What each Keras does its own way -------------------------------------------------

    @staticmethod
    @abc.abstractmethod
    def is_framework(obj: Any) -> bool:
        """Whether ``obj`` (a function or method) is the framework's own code."""

    def user_code(self, loss: Any) -> UserCode | None:
        """The user's code ``loss`` runs, or ``None`` for Keras's own (not checked)."""
        call = type(loss).call
        wrapper = self.wrapper_class
        if isinstance(loss, wrapper) and call is wrapper.call:
            fn = loss.fn
            if self.is_framework(fn):
                return None
            name = getattr(fn, "__qualname__", None) or type(fn).__name__
            return UserCode(f"{name}()", getattr(fn, "__code__", None), True)
        if self.is_framework(call) or not isinstance(loss, self.loss_class):
            return None
        return UserCode(f"{type(loss).__name__}.call()", getattr(call, "__code__", None), False)

    @abc.abstractmethod
    def static_shape(self, x: Any) -> Shape | None:
        """The static shape of a tensor, or ``None`` (unknown rank, or not a tensor)."""

    @abc.abstractmethod
    def dtype_name(self, x: Any) -> str:
        """``"float32"``: the dtype of a tensor."""

    @abc.abstractmethod
    def trace(self, loss: Any, st: Shape, sp: Shape, dt: str, dp: str) -> Traced | None:
        """``loss.call`` traced on symbolic inputs of these shapes and dtypes, outside
        any enclosing trace; ``None`` where this backend cannot be traced."""

    # The check -------------------------------------------------------------------------

    def wrap(self, loss: Any, output: str, *, always: bool) -> Any:
        """``loss`` checked (a :class:`CheckedLoss`), or ``loss`` itself when it is
        Keras's own, ``None``, or already checked."""
        if loss is None:
            return loss
        if isinstance(loss, CheckedLoss):
            if always:
                loss._safegen.always = True
            return loss
        user = self.user_code(loss)
        if user is None:
            return loss
        return CheckedLoss(loss, _State(self, loss, user, output, always))

    def active(self, state: _State) -> bool:
        return state.always or self.installs > 0

    def check(self, state: _State, y_true: Any, y_pred: Any) -> None:
        """Raises ShapeError when ``y_true`` and ``y_pred`` broadcast to more than both."""
        if self.probing.depth or not self.active(state) or _config.disabled():
            return  # (SAFEGEN_DISABLE=1 switches every check off, losses' included)
        st, sp = self.static_shape(y_true), self.static_shape(y_pred)
        if st is None or sp is None:
            return  # unknown rank, or a structure: nothing can be said at trace time
        key = (st, sp, self.dtype_name(y_true), self.dtype_name(y_pred))
        verdict = state.cache.get(key, _MISSING)
        if verdict is _MISSING:
            verdict = self._verdict(state, st, sp, key[2], key[3])
            if len(state.cache) >= _CACHE_LIMIT:
                state.cache.clear()
            state.cache[key] = verdict
        assert verdict is None or isinstance(verdict, str)
        _session.record_loss(id(state), state.user.label, state.location, state.output)
        if verdict is not None:
            # The one path, counting only; raised here, and noted so that it is re-raised
            # as it is from wherever Keras wraps it.
            finding = Finding(Kind.LOSS_BROADCAST, state.user.label, state.location, verdict)
            report(finding, Handling(None))
            error = finding.error()
            _session.record_error(error)
            raise error

    def _verdict(self, state: _State, st: Shape, sp: Shape, dt: str, dp: str) -> str | None:
        self.probing.depth += 1
        try:
            traced = self.trace(state.loss, st, sp, dt, dp)
        except Exception:  # noqa: BLE001 - a loss that cannot be traced is not judged
            return None
        finally:
            self.probing.depth -= 1
        if traced is None:
            return None
        meeting = first_meeting(traced.steps, traced.y_true, traced.y_pred)
        if meeting is None:
            return None
        step = meeting.step
        meeting = meeting._replace(step=step._replace(where=traced.locate(step.origin)))
        return loss_message(
            state.user.label,
            state.location,
            state.output,
            st,
            sp,
            meeting,
            reconciled=state.user.reconciled,
        )

    # Installing ------------------------------------------------------------------------

    def install(self, patch_build: Callable[[], Callable[[], None]]) -> Callable[[], None]:
        """Counts an install of ``safegen.enable()``; the first patches the container's
        build (``patch_build`` returns its undo). Returns the function undoing this one."""
        with self.lock:
            self.installs += 1
            undo_patch = patch_build()
        done = False

        def undo() -> None:
            nonlocal done
            with self.lock:
                if done:
                    return
                done = True
                self.installs -= 1
                undo_patch()

        return undo


def retrace(model: Any) -> None:
    """Drops a model's compiled train/test functions so they trace again, with checks."""
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def checking_build(wrap_entries: Callable[..., Any], *, always: bool) -> Wrapper:
    """The wrapper (for :func:`~safegen.integrations._patching.patch`, wrapt's signature)
    of a loss container's ``build``: once it is built, ``wrap_entries(container,
    always=always)`` wraps its losses in checks."""

    def build(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        wrap_entries(instance, always=always)
        return result

    return build


def check_when_built(container: Any, wrap_entries: Callable[..., Any]) -> None:
    """Check the losses of this one (not yet built) ``container`` once it is built.

    The instance's ``build`` becomes a ``functools.partial`` of module-level functions,
    so that the container still deep-copies and pickles (a wrapt proxy would not)."""
    build = functools.partial(_build_then_check, wrap_entries, container)
    object.__setattr__(container, "build", build)


def _build_then_check(
    wrap_entries: Callable[..., Any], container: Any, *args: Any, **kwargs: Any
) -> Any:
    result = type(container).build(container, *args, **kwargs)
    wrap_entries(container, always=True)
    return result
