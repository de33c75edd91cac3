"""The output check that the Keras 3 and ``tf_keras`` layer checks share (this module
imports no framework).

:class:`OutputCheck` compares what a layer returned with the shape it declares
(declared shapes cached per call signature, static checks in Python, run-time assertions
where a rank or dimension is unknown at trace time) and raises
:class:`safegen.ShapeError` with the same text for both Kerases; :class:`CheckState` is
a checked layer's settings and cache. Each integration subclasses :class:`OutputCheck`
with how its Keras flattens structures, reads static shapes and infers the declared
output (:mod:`safegen.integrations.keras._check`, :mod:`safegen.integrations.tf_keras.layers`).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Any

from safegen import _session
from safegen._errors import SafegenError
from safegen._finding import Finding, Kind
from safegen._frames import hide_safegen_frames, relative_filename
from safegen._handling import Handling, report
from safegen._shapes import (
    CheckMode,
    Shape,
    flatten_shapes,
    fmt,
    fmt_path,
    message,
    rank_hint,
)

__all__ = ["STATE_ATTR", "CheckState", "Inferring", "OutputCheck"]

STATE_ATTR = "_safegen_check"  # the instance attribute holding a layer's CheckState
_CACHE_LIMIT = 64

Declared = tuple[list[Shape | None], str]  # every output leaf's declared shape, and who said so


class CheckState:
    """A checked layer's settings and declared-shape cache (a plain, untracked object)."""

    __slots__ = ("cache", "check", "created", "output_shape", "__weakref__")

    def __init__(self, check: CheckMode, output_shape: Any, created: str = "") -> None:
        self.check: CheckMode = check
        self.output_shape: Any = output_shape
        self.cache: dict[Any, Declared] = {}
        # "model.py:12": the user's line that asked for the check (ShapeChecked(...)).
        self.created = created


def _created_at(layer: Any, state: CheckState) -> str:
    """Where to find ``layer`` in the user's code: the line that wrapped it, else where a
    Lambda's function is defined (an auto-named ``lambda_4`` is hard to find otherwise)."""
    if state.created:
        return state.created
    code = getattr(getattr(layer, "function", None), "__code__", None)
    if code is None:
        return ""
    where = f"{relative_filename(code.co_filename)}:{code.co_firstlineno}"
    return f"{where} (where its function is defined)"


class Inferring(threading.local):
    """How deep this thread is in a declared-shape inference (checks are off meanwhile)."""

    depth = 0


def _describe(layer: Any) -> str:
    return f"{layer.name!r} ({type(layer).__name__})"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _shape_error(layer: Any, text: str) -> SafegenError:
    """A ShapeError that Keras passes through as is (no re-raise with its own context),
    its finding counted first (the one path, counting only: the caller raises it)."""
    _session.record_layer(layer)
    finding = Finding(Kind.LAYER_SHAPE, _session.layer_source(layer), "", text)
    report(finding, Handling(None))
    hide_safegen_frames()
    error = finding.error()  # a ShapeError, built from the text alone
    # Keras's call wrapper re-raises a layer's exception as type(e)(message + the call's
    # arguments, in ANSI bold) unless this attribute is set: keep the message clean.
    vars(error)["_keras_call_info_injected"] = True
    return error


# --------------------------------------------------------------------------------------
# The output check
# --------------------------------------------------------------------------------------


class OutputCheck(abc.ABC):
    """Checks a layer's outputs against its declared shapes, for one Keras.

    ``args``/``kwargs`` are the arguments ``call`` got (``tf_keras`` passes ``inputs`` as
    ``args[0]``). Subclasses say how their Keras reads tensors and declared shapes.
    """

    # Whether run-time assertion messages repeat the static and declared shapes
    # (Keras 3's do; tf_keras's have always been the short form).
    detailed_runtime_messages = True
    # Whether the batch check is skipped when the first input tensor has no known
    # batch dimension (unknown rank or a scalar): Keras 3 skips, tf_keras asserts.
    skip_batch_without_input_batch = True

    def __init__(self) -> None:
        self.inferring = Inferring()

    # What each Keras does its own way -------------------------------------------------

    @abc.abstractmethod
    def is_tensor(self, x: Any) -> bool:
        """Whether ``x`` is a tensor (concrete or symbolic)."""

    @abc.abstractmethod
    def static_shape(self, x: Any) -> Shape | None:
        """The static shape of a tensor, or ``None`` if its rank is unknown."""

    @abc.abstractmethod
    def flatten(self, structure: Any) -> list[Any]:
        """The leaves of a nested structure."""

    @abc.abstractmethod
    def flatten_with_path(self, structure: Any) -> list[tuple[tuple[Any, ...], Any]]:
        """(path, leaf) pairs of a nested structure, in :meth:`flatten`'s order."""

    @abc.abstractmethod
    def pack_sequence_as(self, structure: Any, flat: list[Any]) -> Any:
        """``structure`` with its leaves replaced by ``flat``."""

    @abc.abstractmethod
    def inference(
        self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Callable[[], Any], str]:
        """A function returning what ``layer`` declares for this call, and who declares it.

        Errors raised here propagate as they are; errors of the returned function become
        a ShapeError saying the declared shape could not be determined.
        """

    @abc.abstractmethod
    def declared_shapes(self, declared: Any) -> list[Shape | None]:
        """The declared shape of every output leaf, from what the inference returned."""

    def output_details(self, outputs: Any) -> tuple[str, ...]:
        """Detail lines for an error about the number of outputs."""
        return ()

    @abc.abstractmethod
    def assert_rank(self, x: Any, want: Shape, text: str) -> Any:
        """Asserts ``x``'s rank at run time; returns ``x`` or the tensor to use instead."""

    @abc.abstractmethod
    def assert_dim(self, x: Any, axis: int, expected: Any, text: str) -> None:
        """Asserts ``x.shape[axis] == expected`` at run time.

        ``expected`` is an int, or ``("dynamic", tensor)`` for that tensor's batch size.
        """

    # The check -------------------------------------------------------------------------

    def _tensor_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The tensors a layer was called with, masks left out."""
        leaves = list(self.flatten(args))
        for key, value in kwargs.items():
            if key != "mask" and not key.endswith("_mask"):
                leaves.extend(self.flatten(value))
        return [x for x in leaves if self.is_tensor(x)]

    def _input_shapes(self, tensors: list[Any]) -> str:
        shapes = [fmt(self.static_shape(x)) for x in tensors]
        return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"

    def _cache_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Every call argument: tensors by static shape and dtype, the rest by value."""
        parts: list[Any] = []
        for path, x in self.flatten_with_path((args, kwargs)):
            if self.is_tensor(x):
                parts.append((path, "T", self.static_shape(x), str(x.dtype)))
                continue
            try:
                hash(x)
                parts.append((path, "V", type(x).__name__, x))
            except TypeError:
                parts.append((path, "R", repr(x)))
        return tuple(parts)

    def _declared(
        self, layer: Any, state: CheckState, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Declared:
        """The declared shape of every output leaf, and who declared it (cached per call)."""
        key = self._cache_key(args, kwargs)
        cached = state.cache.get(key)
        if cached is not None:
            return cached
        tensors = self._tensor_args(args, kwargs)
        if state.output_shape is not None:
            first = self.static_shape(tensors[0]) if tensors else None
            batch = first[0] if first else None
            result: Declared = (
                [(batch, *s) for s in flatten_shapes(state.output_shape)],
                f"output_shape={state.output_shape!r} given to ShapeChecked",
            )
        else:
            infer, source = self.inference(layer, args, kwargs)
            self.inferring.depth += 1
            try:
                declared = infer()
            except Exception as e:
                raise _shape_error(
                    layer,
                    f"layer {_describe(layer)}: safegen could not determine its declared "
                    f"output shape for input shape {self._input_shapes(tensors)}: "
                    f"{type(e).__name__}: {_first_line(e)}\n"
                    "  Pass output_shape= to safegen.ShapeChecked.",
                ) from e
            finally:
                self.inferring.depth -= 1
            result = (self.declared_shapes(declared), source)
        if len(state.cache) >= _CACHE_LIMIT:
            state.cache.clear()
        state.cache[key] = result
        return result

    def run(
        self,
        layer: Any,
        state: CheckState,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outputs: Any,
    ) -> Any:
        """Raises ShapeError (or adds run-time assertions) where ``outputs`` break the declaration.

        Returns ``outputs``, where a leaf of rank unknown at trace time is replaced by what
        :meth:`assert_rank` returned for it (the only case that can change the graph), and
        records the layer as checked.
        """
        declared, source = self._declared(layer, state, args, kwargs)
        tensors = self._tensor_args(args, kwargs)
        inputs = self._input_shapes(tensors)

        def text(what: str, *, hint: str | None = None, details: tuple[str, ...] = ()) -> str:
            return message(_describe(layer), what, source, inputs, state.check, hint=hint,
                           details=details, created=_created_at(layer, state))  # fmt: skip

        actual = [(p, x) for p, x in self.flatten_with_path(outputs) if x is not None]
        several = len(actual) > 1 or len(declared) > 1
        if len(actual) != len(declared):
            raise _shape_error(
                layer,
                text(
                    f"returned {len(actual)} output tensor(s); declared {len(declared)}",
                    details=self.output_details(outputs),
                ),
            )
        batch_ref = tensors[0] if tensors else None
        replaced: dict[int, Any] = {}
        for (path, x), want in zip(actual, declared, strict=True):
            if want is None or not hasattr(x, "shape"):
                continue
            where = f"output {fmt_path(path)} " if several else ""
            got = self.static_shape(x)
            if got is None:  # rank unknown at trace time: only a run-time check can tell
                what = f"{where}rank is not {len(want)} (declared shape {fmt(want)})"
                replaced[id(x)] = self.assert_rank(x, want, "ShapeError: " + text(what))
                continue
            if len(got) != len(want):
                raise _shape_error(
                    layer,
                    text(
                        f"{where}returned rank {len(got)}, shape {fmt(got)}; "
                        f"declared rank {len(want)}, shape {fmt(want)}",
                        hint=rank_hint(got, want),
                    ),
                )
            if state.check == "shape":
                self._check_dims(layer, x, got, want, where, batch_ref, text)
        if replaced:
            flat = [replaced.get(id(x), x) for x in self.flatten(outputs)]
            outputs = self.pack_sequence_as(outputs, flat)
        _session.record_layer(layer)
        return outputs

    def _check_dims(
        self,
        layer: Any,
        x: Any,
        got: Shape,
        want: Shape,
        where: str,
        batch_ref: Any,
        text: Callable[..., str],
    ) -> None:
        static = f" (static shape {fmt(got)}, declared {fmt(want)})"

        def runtime(axis: int, expected: Any, what: str) -> None:
            if self.detailed_runtime_messages:
                what += static
            self.assert_dim(x, axis, expected, "ShapeError: " + text(what))

        for axis, (g, w) in enumerate(zip(got, want, strict=True)):
            if axis == 0 and batch_ref is not None:
                ref_shape = self.static_shape(batch_ref)
                if not ref_shape and self.skip_batch_without_input_batch:
                    continue
                ref = w if w is not None else (ref_shape[0] if ref_shape else None)
                if g is not None and ref is not None:
                    if g != ref:
                        raise _shape_error(
                            layer,
                            text(
                                f"{where}returned batch dimension {g}, shape {fmt(got)}; the "
                                f"input's batch dimension is {ref} (declared shape {fmt(want)})"
                            ),
                        )
                else:
                    runtime(
                        0,
                        ref if ref is not None else ("dynamic", batch_ref),
                        f"{where}batch dimension differs from the input's",
                    )
                continue
            if w is None:
                continue
            if g is None:
                runtime(axis, w, f"{where}dimension {axis} is not {w}")
            elif g != w:
                raise _shape_error(
                    layer,
                    text(
                        f"{where}returned shape {fmt(got)}; declared shape {fmt(want)} "
                        f"(dimension {axis}: {g} != {w})"
                    ),
                )
