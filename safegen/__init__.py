"""safegen: catch the silent data bugs that make a neural network learn nothing.

* :func:`guard` checks, copies or freezes what generators, iterators and datasets yield,
  so a generator that writes into a buffer it already handed out is caught.
* :func:`ShapeChecked` switches a check on for a Keras layer (a ``Lambda`` above all): its
  real output must have the rank and shape it declares.
* :func:`enable` (or ``python -m safegen run script.py``, or ``pytest --safegen``) does
  both from outside the code: every data source that reaches Keras or tf.data is guarded
  and every ``Lambda`` is checked.

``import safegen`` never imports TensorFlow, Keras, JAX or PyTorch, nor NumPy: the names
that need them are imported on first use, and the layer functions load the integration
for the layer's Keras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from safegen._config import Settings, configure, mode, settings
from safegen._enable import disable, enable, enabled, is_enabled
from safegen._errors import (
    AliasingError,
    AliasingWarning,
    AugmentationError,
    AugmentationWarning,
    InputScaleError,
    InputScaleWarning,
    LogitsError,
    LogitsWarning,
    OrderError,
    OrderWarning,
    PairingError,
    PairingWarning,
    RandomStreamError,
    RandomStreamWarning,
    RepeatedBatchError,
    RepeatedBatchWarning,
    SafegenError,
    SafegenWarning,
    ShapeError,
    SplitError,
    SplitWarning,
)
from safegen._finding import Finding, Kind
from safegen._layers import (
    ShapeChecked,
    ShapeCheckedLambda,
    check_layers,
    register_loaded,
    unwrap,
)
from safegen._losses import check_losses
from safegen._report import AliasingReport
from safegen._session import session
from safegen._stats import Stats

if TYPE_CHECKING:  # pragma: no cover
    from safegen._detectors.augmentation import AugmentationReport
    from safegen._detectors.input_scale import InputScaleReport
    from safegen._detectors.pairing import PairingReport
    from safegen._detectors.random_streams import RandomStreamReport
    from safegen._detectors.repeated_batches import RepeatedBatchReport
    from safegen._detectors.repeated_orders import RepeatedOrderReport
    from safegen._guard import guard, stats
    from safegen.integrations._input_scale import check_inputs
    from safegen.integrations._logits import check_logits

__version__ = "0.1.0"

__all__ = [
    "AliasingError",
    "AliasingReport",
    "AliasingWarning",
    "AugmentationError",
    "AugmentationReport",
    "AugmentationWarning",
    "Finding",
    "InputScaleError",
    "InputScaleReport",
    "InputScaleWarning",
    "Kind",
    "LogitsError",
    "LogitsWarning",
    "OrderError",
    "OrderWarning",
    "PairingError",
    "PairingReport",
    "PairingWarning",
    "RandomStreamError",
    "RandomStreamReport",
    "RandomStreamWarning",
    "RepeatedBatchError",
    "RepeatedBatchReport",
    "RepeatedBatchWarning",
    "RepeatedOrderReport",
    "SafegenError",
    "SafegenWarning",
    "Settings",
    "ShapeChecked",
    "ShapeCheckedLambda",
    "ShapeError",
    "SplitError",
    "SplitWarning",
    "Stats",
    "check_inputs",
    "check_layers",
    "check_logits",
    "check_losses",
    "configure",
    "disable",
    "enable",
    "enabled",
    "guard",
    "is_enabled",
    "mode",
    "session",
    "settings",
    "stats",
    "unwrap",
]

# With Keras already imported, make saved checked layers loadable (imports no framework;
# a Keras imported later is handled by safegen._enable's import hook).
register_loaded()
del register_loaded

# Names served on first use, so that `import safegen` stays free of frameworks, and of
# NumPy until a guard is made (`python -m safegen run` starts in a few milliseconds).
_LAZY = {
    "guard": "safegen._guard",
    "stats": "safegen._guard",
    "check_inputs": "safegen.integrations._input_scale",
    "InputScaleReport": "safegen._detectors.input_scale",
    "AugmentationReport": "safegen._detectors.augmentation",
    "RepeatedOrderReport": "safegen._detectors.repeated_orders",
    "PairingReport": "safegen._detectors.pairing",
    "RandomStreamReport": "safegen._detectors.random_streams",
    "RepeatedBatchReport": "safegen._detectors.repeated_batches",
    "check_logits": "safegen.integrations._logits",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
