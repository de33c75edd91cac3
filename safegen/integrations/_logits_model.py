"""The model's side of the logits check (:mod:`safegen.integrations._logits`), for Keras 3
(any backend) and tf_keras: which of a compiled model's losses are probabilistic and what
``from_logits`` they were given, the model's outputs on some rows (inference only), and
the activations of its output layers.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np

from safegen._detectors.logits import ACTIVATIONS, FUNCTIONS, LossSpec
from safegen._frameworks import KERASES, framework_of
from safegen.integrations._checked_losses import CheckedLoss

__all__ = [
    "activation_of",
    "output_activations",
    "compiled_loss",
    "has_probabilistic_loss",
    "loss_spec",
    "loss_specs",
    "model_outputs",
    "root",
]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_FRAMEWORK_ROOTS = (*KERASES, "tensorflow", "jax", "jaxlib")


def root(obj: Any) -> str:
    return (getattr(obj, "__module__", None) or "").split(".", 1)[0]


def defined_in_framework(klass: type, name: str) -> bool:
    """Whether ``klass``'s ``name`` is the framework's own (not the user's override)."""
    for base in klass.__mro__:
        if name in base.__dict__:
            return root(base) in _FRAMEWORK_ROOTS
    return False


def unwrap_loss(loss: Any) -> Any:
    """The loss behind safegen's shape check (``CheckedLoss``), if any."""
    if isinstance(loss, CheckedLoss):
        inner: Any = loss._safegen.loss
        return inner
    return loss


def loss_spec(loss: Any, framework: str) -> LossSpec | None:
    """What ``loss`` (as given to ``compile``) expects, or ``None`` when it is not one of
    Keras's probabilistic losses (the user's own loss is not judged)."""
    loss = unwrap_loss(loss)
    if isinstance(loss, str):
        try:
            resolved = importlib.import_module(framework).losses.get(loss)
        except Exception:  # noqa: BLE001 - a name Keras does not know: Keras will say so
            return None
        spec = loss_spec(resolved, framework) if not isinstance(resolved, str) else None
        return None if spec is None else spec._replace(name=repr(loss))
    function, kwargs, label = loss, {}, ""
    if isinstance(loss, functools.partial):
        function, kwargs = loss.func, dict(loss.keywords)
    elif hasattr(loss, "fn") and isinstance(getattr(loss, "_fn_kwargs", None), dict):
        if not defined_in_framework(type(loss), "call"):
            return None  # a subclass with its own call(): the user's loss
        function, kwargs = loss.fn, dict(loss._fn_kwargs)
        label = type(loss).__name__
    name = getattr(function, "__name__", "")
    if name not in FUNCTIONS or root(function) not in _FRAMEWORK_ROOTS:
        return None
    from_logits = bool(kwargs.get("from_logits", False))
    try:
        axis = int(kwargs.get("axis", -1))
    except (TypeError, ValueError):
        axis = -1
    if label:
        label = f"{label}(from_logits={from_logits})"
    elif isinstance(loss, functools.partial):
        label = f"partial({name}, from_logits={from_logits})"
    else:
        label = name
    return LossSpec(label, FUNCTIONS[name], from_logits, axis, name)


def user_loss(model: Any) -> Any:
    return getattr(model, "loss", None)


def compiled_loss(model: Any) -> Any:
    """The object that holds the model's compiled losses (new at each ``compile``):
    Keras 3's ``_compile_loss``, tf_keras's ``compiled_loss``; or ``None``."""
    name = "compiled_loss" if framework_of(model) == "tf_keras" else "_compile_loss"
    return getattr(model, name, None)


def loss_specs(model: Any, names: list[str]) -> list[LossSpec | None]:
    """The probabilistic loss of each of the outputs ``names`` (``None`` where there is
    none), as ``compile`` assigned them: one loss for every output, a list in output
    order, or a dict by output name."""
    framework = framework_of(model) or "keras"
    user = user_loss(model)
    if isinstance(user, dict):
        per_output = [user.get(name) for name in names]
    elif isinstance(user, (list, tuple)):
        per_output = list(user) if len(user) == len(names) else [None] * len(names)
    else:
        per_output = [user] * len(names)
    return [None if loss is None else loss_spec(loss, framework) for loss in per_output]


def model_outputs(model: Any, x: Any) -> tuple[list[str], list[np.ndarray]] | None:
    """The model's outputs on ``x`` (inference), flat, with their names."""
    y = model(x, training=False)
    if isinstance(y, dict):
        keys = list(y)
        return [str(k) for k in keys], [as_numpy(y[k]) for k in keys]
    flat = list(y) if isinstance(y, (list, tuple)) else [y]
    if any(isinstance(item, (list, tuple, dict)) for item in flat):
        return None  # nested outputs: not judged
    names = [str(n) for n in (getattr(model, "output_names", None) or [])]
    if len(names) != len(flat):
        names = [str(getattr(layer_of(t), "name", "")) for t in symbolic_outputs(model)]
    if len(names) != len(flat):
        names = [""] * len(flat)
    return names, [as_numpy(item) for item in flat]


def as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor (Keras 3 on PyTorch)
        value = value.detach().cpu()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def symbolic_outputs(model: Any) -> list[Any]:
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):  # a subclassed model
        return []
    return list(outputs or [])


def layer_of(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    layer = getattr(history, "operation", None) or getattr(history, "layer", None)
    return layer


def function_name(function: Any) -> str | None:
    name = getattr(function, "__name__", None)
    if isinstance(name, str) and name in ACTIVATIONS and root(function) in _FRAMEWORK_ROOTS:
        return name
    return None


def activation_of(layer: Any) -> str | None:
    """``"sigmoid"`` or ``"softmax"`` when ``layer`` ends in one (its ``activation``, a
    ``Softmax`` layer, a ``Lambda`` of the framework's function), else ``None``."""
    if layer is None:
        return None
    if type(layer).__name__ == "Softmax" and root(type(layer)) in KERASES:
        return "softmax"
    for attribute in ("activation", "function"):
        found = function_name(getattr(layer, attribute, None))
        if found is not None:
            return found
    return None


def output_activations(model: Any, count: int) -> list[str | None]:
    outputs = symbolic_outputs(model)
    if len(outputs) != count:
        return [None] * count
    return [activation_of(layer_of(t)) for t in outputs]


def has_probabilistic_loss(model: Any) -> bool:
    """Whether any loss given to ``compile`` is one this check judges (cheap: no call)."""
    user = user_loss(model)
    if user is None:
        return False
    framework = framework_of(model) or "keras"
    losses = list(user.values()) if isinstance(user, dict) else user
    if not isinstance(losses, (list, tuple)):
        losses = [losses]
    return any(loss is not None and loss_spec(loss, framework) for loss in losses)
