"""``safegen.enable()`` for tf_keras (Keras 2): guard what reaches the training methods.

tf_keras takes generators, other iterators and ``tf_keras.utils.Sequence`` instances in
``fit``, ``evaluate`` and ``predict``; all are guarded for the duration of the call,
``validation_data`` included. The deprecated ``fit_generator``, ``evaluate_generator`` and
``predict_generator`` call those three, so they are covered without being patched (and
their deprecation warnings still point at the caller's line).
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
    """Patch ``tf_keras.Model``'s training methods; returns the function that undoes it."""
    import tf_keras

    return patch_training_methods(
        tf_keras.Model, _METHODS, accept_iterators=True, framework="tf_keras", checks=CHECKS
    )
