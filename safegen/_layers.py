"""Layer shape checks, dispatched to the Keras the layer belongs to (framework-free).

``safegen.ShapeChecked`` and friends are plain functions defined here, so ``import
safegen`` and ``help(safegen)`` import no framework. Each call looks at the layer's (or
model's) class: a class from the ``keras`` package (Keras 3) goes to
``safegen.integrations.keras.layers``, one from ``tf_keras`` (Keras 2) to
``safegen.integrations.tf_keras.layers``. A user's own layer class is told apart by the
first Keras class in its method resolution order.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from safegen._frameworks import KERASES, default_keras, integration, module_name
from safegen._shapes import CheckMode

__all__ = ["ShapeChecked", "ShapeCheckedLambda", "check_layers", "unwrap"]


def register_loaded(finished: str | None = None) -> None:
    """Loads the integration of every Keras already imported, so that ``load_model``
    finds the name checked layers are saved under (``safegen>ShapeChecked``).

    Called by ``import safegen`` and after each Keras finishes importing; it imports
    nothing that was not imported already, nor anything of a Keras still importing (when
    ``keras`` finishes inside ``import tf_keras``, tf_keras's turn comes when it is done).

    Args:
        finished: a framework whose module has just run to its end, while its import
            statement has not returned (Python still marks it as initializing).
    """
    for framework in KERASES:
        module = module_name(framework, "layers")
        loaded = sys.modules.get(framework)
        if loaded is None or (
            framework != finished and getattr(loaded.__spec__, "_initializing", False)
        ):
            continue
        if module not in sys.modules:
            try:
                importlib.import_module(module)
            except ImportError:  # an integration not written yet, or a partial install
                pass


def _checks(obj: Any, who: str, what: str) -> Any:
    """The layer checks of ``obj``'s Keras (its integration's ``CHECKS``)."""
    return integration(obj, "layers", who, what).CHECKS


def ShapeChecked(  # noqa: N802 - reads like the class it used to be
    layer: Any, output_shape: Any = None, *, check: CheckMode = "rank"
) -> Any:
    """Switches the output check on for ``layer`` and returns that same layer.

    From then on, every call of the layer compares its real output with the shape it
    declares, and raises :class:`safegen.ShapeError` on a mismatch. Nothing else about the
    layer changes: it is the same object, of a class with the same name (a subclass of its
    own class that only adds the check), with the same call signature, build, weights and
    variable paths, name, summary, dtype policy and ``get_config()``.

    The declared shape is, in order of preference: the ``output_shape`` given here; else a
    ``Lambda``'s own ``output_shape``; else what the layer's ``compute_output_shape`` (or,
    failing that, Keras's symbolic shape inference) declares for the arguments it gets.

    Rank checks and every dimension known while a graph is traced are decided in Python
    (eagerly, or once per trace) and add no op to the graph. See the README for run-time
    checks and what XLA drops.

    Args:
        layer: a Keras 3 (``keras``) or Keras 2 (``tf_keras``) layer.
        output_shape: the declared output shape *without* the batch dimension, like
            ``Lambda``'s (``(1,)`` declares ``(batch, 1)``), or a list, tuple or dict of
            such shapes for several outputs. ``None`` (default): the layer's own.
        check: ``"rank"`` (default) compares ranks; ``"shape"`` also compares every
            declared dimension (a declared ``None`` matches anything) and the batch
            dimension against the input's.

    Returns:
        ``layer`` itself. Calling ``ShapeChecked`` again on it replaces its settings.

    Raises:
        TypeError: ``layer`` is not a Keras layer, or ``output_shape`` is not a shape.
        ValueError: ``check`` is not one of ``"rank"``, ``"shape"``.

    Example:
        >>> import keras, safegen
        >>> mean = keras.layers.Lambda(
        ...     lambda x: (x[:, 0] + x[:, 1]) / 2, output_shape=(1,), name="mean")
        >>> safegen.ShapeChecked(mean) is mean
        True
        >>> mean(keras.ops.ones((4, 2)))
        Traceback (most recent call last):
        ...
        safegen.ShapeError: layer 'mean' (Lambda) returned rank 1, shape (4,); \
declared rank 2, shape (4, 1)...
    """
    return _checks(layer, "ShapeChecked(layer)", "layer").shape_checked(layer, output_shape, check)


def ShapeCheckedLambda(  # noqa: N802 - reads like the layer class it returns
    function: Callable[..., Any],
    output_shape: Any,
    *,
    check: CheckMode = "rank",
    **lambda_kwargs: Any,
) -> Any:
    """Returns ``ShapeChecked(keras.layers.Lambda(function, output_shape, ...))``.

    The short form for the common case: a ``Lambda`` whose real output must match the
    ``output_shape`` it declares. It builds a Keras 3 ``Lambda``, or a ``tf_keras`` one when
    ``TF_USE_LEGACY_KERAS=1`` is set (as ``tf.keras`` does).

    Args:
        function: the Lambda's function.
        output_shape: the Lambda's ``output_shape``: a shape without the batch
            dimension (``(1,)`` declares ``(batch, 1)``), a structure of such shapes, or
            a function of the input shape, exactly as ``keras.layers.Lambda`` takes it.
        check: ``"rank"`` or ``"shape"``, as for :func:`ShapeChecked`.
        **lambda_kwargs: passed to ``Lambda`` (``name``, ``arguments``, ``mask``, ...).

    Returns:
        The checked Lambda layer.

    Raises:
        TypeError: ``function`` is not callable or ``output_shape`` is not a shape.

    Example:
        >>> import keras, safegen
        >>> mean = safegen.ShapeCheckedLambda(
        ...     lambda x: keras.ops.mean(x, axis=-1, keepdims=True), output_shape=(1,))
        >>> tuple(mean(keras.ops.ones((3, 2))).shape)
        (3, 1)
    """
    module = importlib.import_module(module_name(default_keras(), "layers"))
    return module.CHECKS.shape_checked_lambda(function, output_shape, check, lambda_kwargs)


def check_layers(
    model: Any,
    *,
    layer_types: type | tuple[type, ...] | None = None,
    check: CheckMode = "rank",
) -> list[Any]:
    """Switches the check on, in place, for every Lambda (or chosen type) of ``model``.

    Every matching layer, in nested models too, gets :func:`ShapeChecked`. The model is
    not copied, rebuilt or recompiled: its layers, weights and compile settings stay;
    only the compiled ``fit``/``evaluate``/``predict`` functions are dropped so that the
    next call traces again, with the checks. Layers already checked keep their settings.

    Args:
        model: a Keras model (Sequential, functional or subclassed), or a layer that
            holds other layers.
        layer_types: the layer classes to check; default: ``Lambda`` of the model's Keras.
        check: ``"rank"`` or ``"shape"``, as for :func:`ShapeChecked`.

    Returns:
        The layers it checked (newly or already), in the order the model lists them.
            When none matched, it issues a :class:`safegen.SafegenWarning` saying so.

    Raises:
        TypeError: ``model`` is not a Keras model or layer, or ``layer_types`` is not a
            class or tuple of classes.
        ValueError: ``check`` is not valid.

    Example:
        >>> import keras, safegen
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(
        ...     lambda x: keras.ops.mean(x, axis=-1, keepdims=True), output_shape=(1,),
        ...     name="mean")])
        >>> [layer.name for layer in safegen.check_layers(model)]
        ['mean']
    """
    checks = _checks(model, "check_layers(model)", "model")
    result: list[Any] = checks.check_layers(model, layer_types, check)
    return result


def unwrap(model: Any) -> Any:
    """Switches the checks off, in place, and returns ``model``.

    Every layer of ``model`` (nested models too) checked by :func:`ShapeChecked`,
    :func:`check_layers` or a ``.keras`` file that kept the check, becomes a plain layer
    of its own class again (``type(layer) is keras.layers.Lambda``): saving it then
    writes a file that any Keras loads, without safegen. The compiled
    ``fit``/``evaluate``/``predict`` functions are dropped so that the next call traces
    without the checks.

    Args:
        model: a Keras model or layer.

    Returns:
        ``model`` itself.

    Raises:
        TypeError: ``model`` is not a Keras model or layer.

    Example:
        >>> import keras, safegen
        >>> dense = safegen.ShapeChecked(keras.layers.Dense(1))
        >>> safegen.unwrap(dense) is dense, type(dense) is keras.layers.Dense
        (True, True)
    """
    return _checks(model, "unwrap(model)", "model").unwrap(model)


for _f in (ShapeChecked, ShapeCheckedLambda, check_layers, unwrap):
    _f.__module__ = "safegen"
del _f
