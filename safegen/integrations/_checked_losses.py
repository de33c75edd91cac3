"""What the Keras 3 and ``tf_keras`` loss checks share (this module imports no framework).

A compiled model keeps its losses in a container (Keras 3's ``CompileLoss``, tf_keras's
``LossesContainer``) that calls each one with the ``y_true`` and ``y_pred`` of its output.
Once the container is built, each loss of the user's own code is replaced in it by a
:class:`CheckedLoss`: the same loss, called the same way, that first looks at the static
shapes of the two tensors. The integrations say how their Keras builds the container,
reads shapes, reconciles ranks for built-in losses and evaluates a loss on test values.

The verdict for a pair of static shapes (and dtypes) is cached on the checked loss, so
in graph mode (``tf.function``, ``jit_compile``, JAX's ``jit``) it is paid once per
trace, and eagerly it costs a dictionary look-up per step. When the shapes broadcast to
a shape larger than both (``(B,)`` with ``(B, 1)``), the loss is run once more on small
random values, outside the trace: with the shapes as they are, then with ``y_true``
reshaped to ``y_pred``'s shape and the other way round. If one of those gives the same
result, the loss reconciles the shapes itself (it reshapes, squeezes or reduces) and
nothing is reported; otherwise it raises :class:`safegen.ShapeError`.
"""

from __future__ import annotations

import abc
import functools
import threading
from collections.abc import Callable
from typing import Any

from safegen import _config, _session
from safegen._errors import ShapeError
from safegen._losses import enlarges_both, loss_message, where_defined
from safegen._shapes import Shape
from safegen.integrations._patching import Wrapper

__all__ = ["CheckedLoss", "LossChecks", "UserCode", "check_when_built", "checking_build"]

_CACHE_LIMIT = 64
_PROBE_LIMIT = 1 << 20  # elements per tensor: above this, no test run (static verdict)
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
    def reconcile(self, y_true: Shape, y_pred: Shape) -> tuple[Shape, Shape]:
        """The shapes a plain function gets after Keras's own rank reconciliation."""

    @abc.abstractmethod
    def evaluate(self, loss: Any, y_true: Any, y_pred: Any) -> Any:
        """``loss.call`` on two NumPy arrays, outside any trace; a NumPy array."""

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
        _session.record_loss(id(state), state.user.label, state.location, state.output, verdict)
        if verdict is not None:
            error = ShapeError(verdict)
            _session.record_error(error)
            raise error

    def _verdict(self, state: _State, st: Shape, sp: Shape, dt: str, dp: str) -> str | None:
        if state.user.reconciled:
            st, sp = self.reconcile(st, sp)
        result = enlarges_both(st, sp)
        if result is None:
            return None
        details: list[str] = []
        outcome = self._probe(state, st, sp, dt, dp)
        if outcome is True:
            return None  # the loss reconciles the shapes itself
        if isinstance(outcome, str):
            details.append(outcome)
        return loss_message(
            state.user.label, state.location, state.output, st, sp, result, details=details
        )

    def _probe(self, state: _State, st: Shape, sp: Shape, dt: str, dp: str) -> bool | str:
        """Whether the loss computes the same as on same-shaped inputs (``True``), does
        not (``False``), or a note saying why that could not be found out."""
        import numpy as np

        known = [d for d in (*st[:1], *sp[:1]) if d is not None]
        fill = known[0] if known else 3
        t_shape = tuple(fill if d is None else d for d in st)
        p_shape = tuple(fill if d is None else d for d in sp)
        if max(int(np.prod(t_shape)), int(np.prod(p_shape))) > _PROBE_LIMIT:
            return "(too large for safegen to run the loss on test values)"
        rng = np.random.default_rng(17)

        def values(shape: tuple[int, ...], dtype: str) -> Any:
            try:
                kind = np.dtype(dtype).kind
            except TypeError:  # bfloat16 and the like: NumPy's float32 stands in
                kind, dtype = "f", "float32"
            if kind in "iub":
                return rng.integers(0, 2, size=shape).astype(dtype)
            return rng.standard_normal(shape).astype(dtype if kind == "f" else "float32")

        t, p = values(t_shape, dt), values(p_shape, dp)
        self.probing.depth += 1
        try:
            try:
                actual = np.asarray(self.evaluate(state.loss, t, p))
            except Exception as e:  # noqa: BLE001 - reported in the message instead
                first = (str(e).strip().splitlines() or [""])[0]
                return (
                    "safegen could not run the loss on test values to see whether it "
                    f"reconciles the shapes itself ({type(e).__name__}: {first[:200]})."
                )
            variants: list[Callable[[], Any]] = []
            if t.size == p.size:
                variants = [
                    lambda: self.evaluate(state.loss, t.reshape(p_shape), p),
                    lambda: self.evaluate(state.loss, t, p.reshape(t_shape)),
                ]
            for variant in variants:
                try:
                    same = np.asarray(variant())
                except Exception:  # noqa: BLE001, S112 - that variant does not apply
                    continue
                if same.shape == actual.shape and np.allclose(
                    same, actual, rtol=1e-4, atol=1e-6, equal_nan=True
                ):
                    return True
            return False
        finally:
            self.probing.depth -= 1

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
