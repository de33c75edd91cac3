"""safegen: catch the silent data bugs that make a neural network learn nothing.

* :func:`guard` checks, copies or freezes what generators, iterators and datasets yield,
  so a generator that writes into a buffer it already handed out is caught.
* :func:`ShapeChecked` switches a check on for a Keras layer (a ``Lambda`` above all): its
  real output must have the rank and shape it declares.

``import safegen`` never imports TensorFlow, Keras, JAX or PyTorch: the layer functions
load the integration for the layer's Keras on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from safegen._config import Settings, configure, mode, settings
from safegen._errors import (
    AliasingError,
    AliasingWarning,
    SafegenError,
    SafegenWarning,
    ShapeError,
)
from safegen._guard import guard, stats
from safegen._layers import (
    ShapeChecked,
    ShapeCheckedLambda,
    check_layers,
    register_loaded,
    unwrap,
)
from safegen._report import AliasingReport
from safegen._stats import Stats

__version__ = "0.1.0"

__all__ = [
    "AliasingError",
    "AliasingReport",
    "AliasingWarning",
    "SafegenError",
    "SafegenWarning",
    "Settings",
    "ShapeChecked",
    "ShapeCheckedLambda",
    "ShapeError",
    "Stats",
    "check_layers",
    "configure",
    "guard",
    "mode",
    "settings",
    "stats",
    "unwrap",
]

# With Keras already imported, make saved checked layers loadable (imports no framework).
register_loaded()
del register_loaded

# Names served on first use, so that `import safegen` stays free of frameworks. (The layer
# functions need no entry: they are framework-free and load their integration on use.)
_LAZY: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
