"""The one framework registry: which Keras an object belongs to, and where safegen's
integration for it lives (framework-free: it imports an integration only when asked).

Each Keras that safegen integrates with has a package under ``safegen/integrations/``
with one module per part (``layers``, ``losses``, ``training``). A user's own class is
told apart by the first Keras class in its method resolution order.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

__all__ = [
    "FRAMEWORKS",
    "KERASES",
    "default_keras",
    "framework_of",
    "integration",
    "loaded",
    "torch_data_kind",
]

# The Keras packages safegen integrates with, by top-level module name: each has a
# package of the same name under safegen.integrations.
KERASES = ("keras", "tf_keras")
# Every framework that may hold batches ahead of the consumer (Keras peeks, tf.data
# prefetches, worker threads run ahead).
FRAMEWORKS = ("keras", "tensorflow", "tf_keras", "jax", "torch")


def loaded() -> bool:
    """Whether any of :data:`FRAMEWORKS` has been imported."""
    return any(name in sys.modules for name in FRAMEWORKS)


def framework_of(obj: Any) -> str | None:
    """``"keras"`` or ``"tf_keras"`` for an object (a layer, a model, a loss) of that
    Keras, else ``None``.

    Example:
        >>> framework_of(3) is None
        True
    """
    for klass in type(obj).__mro__:
        root = (getattr(klass, "__module__", None) or "").split(".", 1)[0]
        if root in KERASES:
            return root
    return None


# PyTorch's data classes, by (module, class name): what torch_data_kind calls them.
_TORCH_DATA = {
    ("torch.utils.data.dataset", "IterableDataset"): "iterable",
    ("torch.utils.data.dataset", "Dataset"): "map",
    ("torch.utils.data.dataloader", "DataLoader"): "loader",
}


def torch_data_kind(obj: Any) -> str | None:
    """``"map"`` for a ``torch.utils.data.Dataset`` (class or instance), ``"iterable"``
    for an ``IterableDataset``, ``"loader"`` for a ``DataLoader``, else ``None``.

    Told by the names of the classes in its method resolution order: torch is never
    imported (an object of torch's exists only once the program imported it).

    Example:
        >>> torch_data_kind([]) is None
        True
    """
    cls = obj if isinstance(obj, type) else type(obj)
    if "torch" not in sys.modules:
        return None
    for klass in getattr(cls, "__mro__", ()):
        found = _TORCH_DATA.get((getattr(klass, "__module__", ""), klass.__name__))
        if found is not None:
            return found
    return None


def module_name(framework: str, part: str) -> str:
    """``"safegen.integrations.keras.layers"``: the module of safegen's integration for
    ``framework`` that handles ``part``."""
    return f"safegen.integrations.{framework}.{part}"


def integration(obj: Any, part: str, who: str, what: str) -> ModuleType:
    """The integration module handling ``part`` for ``obj``'s Keras.

    Raises:
        TypeError: ``obj`` is of no Keras; the message names ``who`` was given it and
            what was expected (``"check_losses(model): model must be ..."``).
    """
    framework = framework_of(obj)
    if framework is None:
        raise TypeError(
            f"{who}: {what} must be a Keras 3 (keras) or Keras 2 (tf_keras) {what}; "
            f"got {obj!r} of type {type(obj).__name__}."
        )
    return importlib.import_module(module_name(framework, part))


def default_keras() -> str:
    """The Keras that new layers are made with: ``tf_keras`` when ``TF_USE_LEGACY_KERAS``
    is set (as ``tf.keras`` decides), else ``keras``."""
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() in ("1", "true", "yes")
    return "tf_keras" if legacy else "keras"
