"""What the Keras 3 and ``tf_keras`` layer checks share (this module imports no framework).

* :class:`~safegen.integrations._output_check.OutputCheck` (a module of its own):
  compares what a layer returned with the shape it declares, and raises
  :class:`safegen.ShapeError` with the same text for both Kerases.
* :class:`LayerChecks`: a checked layer is the layer itself, its class switched to a
  cached per-class subclass whose ``call`` runs the original, then the check;
  ``ShapeChecked``, ``ShapeCheckedLambda``, ``check_layers``, ``unwrap`` and
  ``install_lambda_checks`` (a patched ``Lambda.call``) on top of that.

Each integration (``safegen.integrations.keras`` for Keras 3,
``safegen.integrations.tf_keras`` for Keras 2) subclasses both with what its Keras does
its own way: the Layer/Lambda/Model classes, how structures are flattened and static
shapes read, how the declared output is inferred, which run-time assertions exist, and
what the checked subclass and the patched ``Lambda.call`` look like.
"""

from __future__ import annotations

import abc
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from safegen import _config
from safegen._errors import SafegenWarning
from safegen._frames import user_line, user_stacklevel
from safegen._shapes import SHAPE_HELP, CheckMode, normalize_output_shape, validate_check
from safegen.integrations._output_check import STATE_ATTR, CheckState, OutputCheck

__all__ = ["LayerChecks", "subclass"]


# --------------------------------------------------------------------------------------
# Checked layers
# --------------------------------------------------------------------------------------


def subclass(base: Any, methods: dict[str, Any]) -> Any:
    """A subclass of ``base`` with ``methods`` and ``base``'s name, module and docstring."""
    namespace = {
        **methods,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    return type(base)(base.__name__, (base,), namespace)


class LayerChecks(abc.ABC):
    """``ShapeChecked`` and friends for one Keras; one instance per integration.

    Subclasses set the class attributes and make the checked subclass of a layer class
    (:meth:`make_checked_class`) and the checking ``Lambda.call``
    (:meth:`checking_lambda_call`); both end in :meth:`after_call` /
    :meth:`check_lambda`.
    """

    framework: str  # as error messages name it: "Keras 3", "tf_keras"
    layer_class: Any
    lambda_class: Any
    model_class: Any
    layer_class_name: str  # "keras.layers.Layer"
    lambda_class_name: str  # "keras.layers.Lambda"

    def __init__(self, output_check: OutputCheck) -> None:
        self.output_check = output_check
        self._checked_classes: dict[type, type] = {}
        self._bases: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()
        self._classes_lock = threading.Lock()
        self._install_lock = threading.Lock()
        self._installed: list[tuple[object, CheckMode]] = []  # one per install, newest last
        self._original_lambda_call: Any = None
        self._lambda_states: weakref.WeakKeyDictionary[Any, CheckState] = (
            weakref.WeakKeyDictionary()
        )

    # What each Keras does its own way -------------------------------------------------

    @abc.abstractmethod
    def make_checked_class(self, base: Any) -> Any:
        """The checked subclass of ``base`` (its ``call`` ends in :meth:`after_call`)."""

    @abc.abstractmethod
    def checking_lambda_call(self, original: Any) -> Callable[..., Any]:
        """``Lambda.call`` running ``original``, then :meth:`check_lambda`."""

    def validate_layer(self, layer: Any, name: str) -> None:
        """Raises where ``layer`` cannot be checked (after the generic validation)."""
        return None

    def on_check(self, layer: Any) -> None:
        """Called when ``layer`` has just been switched to its checked class."""
        return None

    def on_unwrap(self, layer: Any) -> None:
        """Called when ``layer`` has just been switched back to its plain class."""
        return None

    # Classes ---------------------------------------------------------------------------

    def base_of(self, cls: type) -> type | None:
        """The plain class of a checked class, else ``None``."""
        return self._bases.get(cls)

    def is_checked(self, layer: Any) -> bool:
        return type(layer) in self._bases and STATE_ATTR in vars(layer)

    def checked_class(self, base: type) -> Any:
        with self._classes_lock:
            cls = self._checked_classes.get(base)
            if cls is not None:
                return cls
            checked = self.make_checked_class(base)
            self._checked_classes[base] = checked
            self._bases[checked] = base
            return checked

    def after_call(
        self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
    ) -> Any:
        """What a checked class's ``call`` returns: ``outputs``, checked if ``layer`` is."""
        state = layer.__dict__.get(STATE_ATTR)
        # SAFEGEN_DISABLE=1 switches every check off, layers' included.
        if state is not None and not self.output_check.inferring.depth and not _config.disabled():
            outputs = self.output_check.run(layer, state, args, kwargs, outputs)
        return outputs

    # Public functions ------------------------------------------------------------------

    def shape_checked(self, layer: Any, output_shape: Any, check: CheckMode) -> Any:
        if not isinstance(layer, self.layer_class):
            raise TypeError(
                f"ShapeChecked(layer): layer must be a {self.framework} layer "
                f"({self.layer_class_name}); got {layer!r} of type {type(layer).__name__}."
            )
        name = getattr(layer, "name", None) or type(layer).__name__
        validate_check(check, f"ShapeChecked({name!r})")
        if output_shape is not None:
            output_shape = normalize_output_shape(output_shape, f"ShapeChecked({name!r})")
        self.validate_layer(layer, name)
        checked = self.checked_class(self._bases.get(type(layer), type(layer)))
        object.__setattr__(layer, STATE_ATTR, CheckState(check, output_shape, user_line()))
        if type(layer) is not checked:
            object.__setattr__(layer, "__class__", checked)
        self.on_check(layer)
        return layer

    def shape_checked_lambda(
        self,
        function: Callable[..., Any],
        output_shape: Any,
        check: CheckMode,
        lambda_kwargs: dict[str, Any],
    ) -> Any:
        if not callable(function):
            raise TypeError(
                f"ShapeCheckedLambda(function): function must be callable; got {function!r} "
                f"of type {type(function).__name__}."
            )
        if output_shape is None:
            raise TypeError(
                f"ShapeCheckedLambda: output_shape is required; expected {SHAPE_HELP}, "
                "or a function of the input shape."
            )
        if not callable(output_shape):
            output_shape = normalize_output_shape(output_shape, "ShapeCheckedLambda")
        layer = self.lambda_class(function, output_shape=output_shape, **lambda_kwargs)
        return self.shape_checked(layer, None, check)

    def _sublayers(self, model: Any, who: str) -> list[Any]:
        if not isinstance(model, self.layer_class):
            raise TypeError(
                f"{who}(model): model must be a {self.framework} model or layer; "
                f"got {model!r} of type {type(model).__name__}."
            )
        return list(model._flatten_layers(include_self=True, recursive=True))

    def check_layers(
        self,
        model: Any,
        layer_types: type | tuple[type, ...] | None,
        check: CheckMode,
    ) -> list[Any]:
        """See :func:`safegen.check_layers`; called by an integration's ``check_layers``."""
        if layer_types is None:
            layer_types = (self.lambda_class,)
        if isinstance(layer_types, type):
            layer_types = (layer_types,)
        if not (
            isinstance(layer_types, tuple)
            and layer_types
            and all(isinstance(t, type) for t in layer_types)
        ):
            raise TypeError(
                "check_layers(layer_types): expected a layer class or a non-empty tuple of "
                f"layer classes, e.g. ({self.lambda_class_name},); got {layer_types!r}."
            )
        validate_check(check, "check_layers")
        matched = [
            layer
            for layer in self._sublayers(model, "check_layers")
            if isinstance(layer, layer_types) and not isinstance(layer, self.model_class)
        ]
        for layer in matched:
            if not self.is_checked(layer):
                self.shape_checked(layer, None, check)
        if not matched:
            names = ", ".join(t.__name__ for t in layer_types)
            warnings.warn(
                f"check_layers: model {model.name!r} has no layer of type {names}; "
                "nothing is checked.",
                SafegenWarning,
                stacklevel=user_stacklevel(),  # the user's code, above safegen.check_layers
            )
        _retrace(model)
        return matched

    def unwrap(self, model: Any) -> Any:
        for layer in self._sublayers(model, "unwrap"):
            if type(layer) in self._bases:
                object.__setattr__(layer, "__class__", self._bases[type(layer)])
            layer.__dict__.pop(STATE_ATTR, None)
            self.on_unwrap(layer)
        _retrace(model)
        return model

    # Every Lambda, for safegen.enable() ------------------------------------------------

    def check_lambda(
        self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
    ) -> Any:
        """What the patched ``Lambda.call`` returns: ``outputs``, checked while installed."""
        installs = self._installed
        if (
            installs
            and not self.output_check.inferring.depth
            and STATE_ATTR not in layer.__dict__  # ShapeChecked checks it itself
            and getattr(layer, "_output_shape", None) is not None
            and not _config.disabled()  # SAFEGEN_DISABLE=1: every check is off
        ):
            check = installs[-1][1]
            state = self._lambda_states.get(layer)
            if state is None or state.check != check:
                state = self._lambda_states[layer] = CheckState(check, None)
            outputs = self.output_check.run(layer, state, args, kwargs, outputs)
        return outputs

    def install_lambda_checks(self, check: CheckMode) -> Callable[[], None]:
        """See :func:`safegen.integrations.keras.layers.install_lambda_checks`."""
        validate_check(check, "install_lambda_checks")
        token = object()
        with self._install_lock:
            if not self._installed:
                original = self.lambda_class.__dict__["call"]
                call = self.checking_lambda_call(original)
                self._original_lambda_call = original
                self.lambda_class.call = call
            self._installed.append((token, check))

        def undo() -> None:
            with self._install_lock:
                for i, (t, _) in enumerate(self._installed):
                    if t is token:
                        del self._installed[i]
                        break
                else:
                    return
                if not self._installed and self._original_lambda_call is not None:
                    self.lambda_class.call = self._original_lambda_call
                    self._original_lambda_call = None
                    self._lambda_states.clear()

        return undo


def _retrace(model: Any) -> None:
    """Drops a model's compiled train/test/predict functions so they trace again."""
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)
