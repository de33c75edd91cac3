"""``safegen.enable()`` for Keras 3: guard what reaches ``fit``, ``evaluate`` and ``predict``.

Keras 3 takes Python generators and ``PyDataset`` instances (any backend); both are
guarded for the duration of the call, ``validation_data`` included. Other iterators are
left alone: Keras 3 refuses them, and guarding would turn them into generators it accepts.
"""

from __future__ import annotations

from collections.abc import Callable

from safegen.integrations._patching import patch_training_methods

__all__ = ["install"]

__tracebackhide__ = True  # pytest: safegen's frames are not the user's

_METHODS = {
    "fit": ("x", "validation_data"),
    "evaluate": ("x",),
    "predict": ("x",),
}

# The call checks (safegen.integrations._calls) run on each call, "module:function".
CHECKS: tuple[str, ...] = (
    "safegen.integrations._logits:check",
    "safegen.integrations._input_scale:check",
    "safegen.integrations._augmentation:check",
    "safegen.integrations._splits:check",
)  # fmt: skip


def install() -> Callable[[], None]:
    """Patch ``keras.Model``'s training methods; returns the function that undoes it."""
    import keras

    return patch_training_methods(keras.Model, _METHODS, framework="keras", checks=CHECKS)
