"""Keras layers that assert their real output matches the shape they declare.

Keras 3 never compares what a layer *returns* with what it *declares*: a ``Lambda``
computing ``(x[:, 0] + x[:, 1]) / 2`` returns ``(batch,)`` while ``output_shape=(1,)``
declares ``(batch, 1)``, the model reports ``(None, 1)``, and broadcasting or the losses
hide the difference. :class:`ShapeChecked` wraps a layer and raises
:class:`safegen.ShapeError` the first time the two disagree.

When the check runs:

* **Static checks** (every rank check, and every dimension whose size is known while the
  graph is traced) are decided in Python: eagerly on every call, and inside
  ``tf.function`` (``fit``/``predict``/``evaluate`` in graph mode, ``jit_compile=True``,
  JAX's ``jit``) once, while tracing. They add no op to the graph and cost nothing per
  step. A failing static check raises :class:`safegen.ShapeError`.
* **Run-time checks** are needed only with ``check="shape"`` for a dimension that is
  ``None`` at trace time (typically the batch dimension inside ``fit``). With the
  TensorFlow backend they become a ``tf.debugging.assert_equal`` op; a failure raises
  ``tf.errors.InvalidArgumentError`` whose message starts with ``ShapeError:`` (an op
  cannot raise a Python exception type). **XLA drops these assertions**: under
  ``jit_compile=True`` TensorFlow compiles ``Assert`` ops to no-ops, so a dimension that
  is only known at run time is *not* checked there (ranks and every statically known
  dimension still are, at trace time). The JAX backend always traces with concrete
  shapes, so every check is static there; other backends run eagerly.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import keras
from keras import tree

from safegen._errors import ShapeError

__all__ = ["ShapeChecked", "ShapeCheckedLambda", "check_layers", "unwrap"]

Dim: TypeAlias = int | None
Shape: TypeAlias = tuple[Dim, ...]
CheckMode: TypeAlias = Literal["rank", "shape"]

_CHECKS: tuple[str, ...] = ("rank", "shape")
_CACHE_LIMIT = 64
_SHAPE_HELP = (
    "a shape without the batch dimension, such as (1,) or (None, 3): a tuple of ints "
    "or None, or a list, tuple or dict of such shapes for a layer with several outputs"
)


# --------------------------------------------------------------------------------------
# Shapes: validation, flattening, formatting
# --------------------------------------------------------------------------------------


def _is_dim(value: Any) -> bool:
    return value is None or (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0
    )


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(_is_dim(d) for d in value)


def _normalize_output_shape(value: Any, where: str) -> Any:
    """Validates a declared ``output_shape`` and turns every shape into a tuple."""
    if isinstance(value, (tuple, list)) and _is_shape(value):
        return tuple(None if d is None else int(d) for d in value)
    if isinstance(value, Mapping):
        if not value:
            raise TypeError(f"{where}: output_shape is an empty dict; expected {_SHAPE_HELP}.")
        return {str(k): _normalize_output_shape(v, where) for k, v in value.items()}
    if (
        isinstance(value, (tuple, list))
        and value
        and all(isinstance(v, (tuple, list, Mapping)) for v in value)
    ):
        return type(value)(_normalize_output_shape(v, where) for v in value)
    hint = ""
    if _is_dim(value) and value is not None:
        hint = f" (did you mean ({value},)?)"
    elif isinstance(value, (tuple, list)) and any(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and int(d) < 0 for d in value
    ):
        hint = " (dimensions must be >= 0 or None)"
    raise TypeError(
        f"{where}: output_shape must be {_SHAPE_HELP}; got {value!r} "
        f"of type {type(value).__name__}{hint}."
    )


def _flatten_shapes(value: Any) -> list[Shape]:
    """Flattens a normalized shape structure in ``keras.tree`` order (dict keys sorted)."""
    if isinstance(value, tuple) and _is_shape(value):
        return [value]
    if isinstance(value, Mapping):
        return [s for k in sorted(value) for s in _flatten_shapes(value[k])]
    return [s for v in value for s in _flatten_shapes(v)]


def _static_shape(x: Any) -> Shape | None:
    """Returns the static shape of a tensor, or ``None`` if its rank is unknown."""
    shape = x.shape
    if getattr(shape, "rank", 0) is None:  # tf.TensorShape of unknown rank
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _fmt(shape: Sequence[Dim] | None) -> str:
    if shape is None:
        return "<unknown>"
    dims = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _fmt_path(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p!r}]" for p in path)


def _is_tensor(x: Any) -> bool:
    return bool(keras.ops.is_tensor(x)) or isinstance(x, keras.KerasTensor)


def _describe(layer: Any) -> str:
    return f"{layer.name!r} ({type(layer).__name__})"


# --------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------


def _validate_check(check: object, source: str) -> None:
    """Raise a ValueError naming ``source`` unless ``check`` is a valid check mode."""
    if not isinstance(check, str) or check not in _CHECKS:
        raise ValueError(
            f"{source}: check must be one of {', '.join(repr(c) for c in _CHECKS)}; got {check!r}."
        )


@keras.saving.register_keras_serializable(package="safegen")
class ShapeChecked(keras.layers.Wrapper):  # type: ignore[misc]
    """Wraps a Keras layer and asserts that its real output matches its declared shape.

    The wrapper behaves exactly like the wrapped layer (same outputs, weights, training
    flag, masks, dtype policy and declared output shape) but, on every call, compares
    the real output with the declared one and raises :class:`safegen.ShapeError` on a
    mismatch. The declared shape is, in order of preference: the ``output_shape`` given
    here; else a ``Lambda``'s own ``output_shape``; else what the layer's
    ``compute_output_shape`` (or, failing that, Keras's symbolic shape inference)
    declares for the input it actually gets.

    Checks that the static shape decides are made in Python (eagerly, or once while a
    ``tf.function`` is traced) and add no op to the graph. See the module documentation
    for run-time checks and where XLA drops them.

    Args:
        layer: the Keras 3 layer to wrap (any ``keras.layers.Layer``).
        output_shape: the declared output shape *without* the batch dimension, like
            ``Lambda``'s ``output_shape`` (``(1,)`` declares ``(batch, 1)``), or a list,
            tuple or dict of such shapes for several outputs. ``None`` (default) uses
            the layer's own declaration.
        check: ``"rank"`` (default) compares ranks only; ``"shape"`` also compares
            every declared dimension (a declared ``None`` matches anything) and the
            batch dimension against the input's.
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ...).

    Raises:
        TypeError: ``layer`` is not a Keras layer or ``output_shape`` is not a shape.
        ValueError: ``check`` is not one of ``"rank"``, ``"shape"``.

    Example:
        >>> import keras, safegen
        >>> mean = keras.layers.Lambda(
        ...     lambda x: (x[:, 0] + x[:, 1]) / 2, output_shape=(1,), name="mean")
        >>> inputs = keras.Input((2,))
        >>> model = keras.Model(inputs, safegen.ShapeChecked(mean)(inputs))
        >>> model.predict(keras.ops.ones((4, 2)), verbose=0)
        Traceback (most recent call last):
        ...
        safegen.ShapeError: ...layer 'mean' (Lambda) returned rank 1, shape (4,); \
declared rank 2, shape (4, 1)...
    """

    def __init__(
        self,
        layer: Any,
        output_shape: Any = None,
        *,
        check: CheckMode = "rank",
        **kwargs: Any,
    ) -> None:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "ShapeChecked(layer): layer must be a Keras 3 layer "
                f"(keras.layers.Layer); got {layer!r} of type {type(layer).__name__}."
            )
        _validate_check(check, f"ShapeChecked({layer.name!r})")
        if output_shape is not None:
            output_shape = _normalize_output_shape(output_shape, f"ShapeChecked({layer.name!r})")
        kwargs.setdefault("dtype", layer.dtype_policy)
        kwargs.setdefault("trainable", layer.trainable)
        super().__init__(layer, **kwargs)
        self.declared_output_shape: Any = output_shape
        self.check: CheckMode = check
        self.supports_masking = bool(getattr(layer, "supports_masking", False))
        self._declared_cache: dict[Any, tuple[list[Shape | None], str]] = {}

    # -- Keras plumbing: behave like the wrapped layer --------------------------------

    def build(self, input_shape: Any = None) -> None:
        """Builds the wrapped layer for ``input_shape`` (called by Keras)."""
        if not self.layer.built and input_shape is not None:
            try:
                specs = tree.map_shape_structure(
                    lambda s: keras.KerasTensor(s, dtype=self.layer.compute_dtype),
                    input_shape,
                )
                self.layer(specs)  # symbolic call: builds like Keras would
            except Exception:  # noqa: BLE001 - fall back to the plain build
                if not self.layer.built:
                    self.layer.build(input_shape)
                    self.layer.built = True
        self.built = True

    def _inner_kwargs(self, training: Any, mask: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        inner = dict(kwargs)
        if training is not None and getattr(self.layer, "_call_has_training_arg", False):
            inner["training"] = training
        if mask is not None and getattr(self.layer, "_call_has_mask_arg", False):
            inner["mask"] = mask
        return inner

    def call(
        self,
        inputs: Any,
        *args: Any,
        training: Any = None,
        mask: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Calls the wrapped layer and checks its output.

        Args:
            inputs: the wrapped layer's first argument.
            *args: further positional arguments of the wrapped layer.
            training: the training flag, passed on if the wrapped layer takes one.
            mask: the input mask, passed on if the wrapped layer takes one.
            **kwargs: further keyword arguments of the wrapped layer.

        Returns:
            The wrapped layer's output, unchanged.

        Raises:
            ShapeError: the output does not match the declared shape.
        """
        outputs = self.layer(inputs, *args, **self._inner_kwargs(training, mask, kwargs))
        self._check_outputs(inputs, args, kwargs, outputs)
        return outputs

    def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
        """Returns the wrapped layer's output spec (what it declares)."""
        training = kwargs.pop("training", None)
        mask = kwargs.pop("mask", None)
        return self.layer.compute_output_spec(*args, **self._inner_kwargs(training, mask, kwargs))

    def compute_output_shape(self, *args: Any, **kwargs: Any) -> Any:
        """Returns the wrapped layer's declared output shape."""
        return self.layer.compute_output_shape(*args, **kwargs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Returns the wrapped layer's output mask."""
        return self.layer.compute_mask(inputs, mask)

    def get_config(self) -> dict[str, Any]:
        """Returns the config, with the wrapped layer serialized inside it."""
        config: dict[str, Any] = super().get_config()
        config["output_shape"] = self.declared_output_shape
        config["check"] = self.check
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> ShapeChecked:
        """Rebuilds a :class:`ShapeChecked` from :meth:`get_config` output."""
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        return cls(layer, **config)

    # -- The check --------------------------------------------------------------------

    def _declared(
        self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[Shape | None], str]:
        """Returns the declared shape of every output leaf, and who declared it."""
        leaves = [x for x in tree.flatten((inputs, args, kwargs)) if _is_tensor(x)]
        key = tuple((_static_shape(x), str(x.dtype)) for x in leaves)
        cached = self._declared_cache.get(key)
        if cached is not None:
            return cached
        if self.declared_output_shape is not None:
            batch = _batch_dim(inputs)
            result: tuple[list[Shape | None], str] = (
                [(batch, *s) for s in _flatten_shapes(self.declared_output_shape)],
                f"output_shape={self.declared_output_shape!r} given to ShapeChecked",
            )
        else:
            result = self._declared_by_layer(inputs, args, kwargs)
        if len(self._declared_cache) >= _CACHE_LIMIT:
            self._declared_cache.clear()
        self._declared_cache[key] = result
        return result

    def _declared_by_layer(
        self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[Shape | None], str]:
        layer = self.layer
        lambda_shape = getattr(layer, "_output_shape", None)
        if isinstance(layer, keras.layers.Lambda) and lambda_shape is not None:
            source = (
                "the Lambda's output_shape function"
                if callable(lambda_shape)
                else f"the Lambda's output_shape={lambda_shape!r}"
            )
        elif type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
            source = f"{type(layer).__name__}.compute_output_shape()"
        else:
            source = "Keras's symbolic shape inference of the layer"

        def spec(x: Any) -> Any:
            if _is_tensor(x):
                return keras.KerasTensor(_static_shape(x), dtype=x.dtype)
            return x

        try:
            declared = layer.compute_output_spec(
                tree.map_structure(spec, inputs),
                *tree.map_structure(spec, args),
                **{k: tree.map_structure(spec, v) for k, v in kwargs.items()},
            )
        except Exception as e:
            raise ShapeError(
                f"ShapeChecked could not determine the declared output shape of layer "
                f"{_describe(layer)} for input shape {_input_shapes(inputs)}: "
                f"{type(e).__name__}: {e}\n  Pass output_shape= to ShapeChecked."
            ) from e
        shapes: list[Shape | None] = [
            _static_shape(s) if hasattr(s, "shape") else None for s in tree.flatten(declared)
        ]
        return shapes, source

    def _check_outputs(
        self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: Any
    ) -> None:
        declared, source = self._declared(inputs, args, kwargs)
        actual = [(p, x) for p, x in tree.flatten_with_path(outputs) if x is not None]
        several = len(actual) > 1 or len(declared) > 1
        if len(actual) != len(declared):
            raise ShapeError(
                self._message(
                    f"returned {len(actual)} output tensor(s); declared {len(declared)}",
                    source,
                    inputs,
                    details=[f"output structure: {tree.map_structure(_shape_or, outputs)}"],
                )
            )
        batch_ref = _first_tensor(inputs)
        for (path, x), want in zip(actual, declared, strict=True):
            if want is None or not hasattr(x, "shape"):
                continue
            where = f"output {_fmt_path(path)} " if several else ""
            got = _static_shape(x)
            if got is None:  # unknown rank at trace time: only a run-time check can tell
                self._runtime_rank_check(x, want, where, source, inputs)
                continue
            if len(got) != len(want):
                raise ShapeError(
                    self._message(
                        f"{where}returned rank {len(got)}, shape {_fmt(got)}; "
                        f"declared rank {len(want)}, shape {_fmt(want)}",
                        source,
                        inputs,
                        hint=_rank_hint(got, want),
                    )
                )
            if self.check == "shape":
                self._check_dims(x, got, want, where, source, inputs, batch_ref)

    def _check_dims(
        self,
        x: Any,
        got: Shape,
        want: Shape,
        where: str,
        source: str,
        inputs: Any,
        batch_ref: Any,
    ) -> None:
        for axis, (g, w) in enumerate(zip(got, want, strict=True)):
            if axis == 0 and batch_ref is not None:
                ref_shape = _static_shape(batch_ref)
                if not ref_shape:
                    continue
                ref = w if w is not None else ref_shape[0]
                if g is not None and ref is not None:
                    if g != ref:
                        raise ShapeError(
                            self._message(
                                f"{where}returned batch dimension {g}, shape {_fmt(got)}; "
                                f"the input's batch dimension is {ref} "
                                f"(declared shape {_fmt(want)})",
                                source,
                                inputs,
                            )
                        )
                else:
                    self._runtime_dim_check(
                        x,
                        0,
                        ref if ref is not None else _dynamic_dim(batch_ref, 0),
                        f"{where}batch dimension differs from the input's "
                        f"(static shape {_fmt(got)}, declared {_fmt(want)})",
                        source,
                        inputs,
                    )
                continue
            if w is None:
                continue
            if g is None:
                self._runtime_dim_check(
                    x,
                    axis,
                    w,
                    f"{where}dimension {axis} is not {w} "
                    f"(static shape {_fmt(got)}, declared {_fmt(want)})",
                    source,
                    inputs,
                )
            elif g != w:
                raise ShapeError(
                    self._message(
                        f"{where}returned shape {_fmt(got)}; declared shape {_fmt(want)} "
                        f"(dimension {axis}: {g} != {w})",
                        source,
                        inputs,
                    )
                )

    def _runtime_dim_check(
        self, x: Any, axis: int, expected: Any, what: str, source: str, inputs: Any
    ) -> None:
        if keras.backend.backend() != "tensorflow":
            return  # other backends trace with concrete shapes; nothing left to check
        import tensorflow as tf

        tf.debugging.assert_equal(
            tf.shape(x)[axis],
            tf.cast(expected, tf.int32),
            message="ShapeError: " + self._message(what, source, inputs),
        )

    def _runtime_rank_check(
        self, x: Any, want: Shape, where: str, source: str, inputs: Any
    ) -> None:
        if keras.backend.backend() != "tensorflow":
            return
        import tensorflow as tf

        tf.debugging.assert_equal(
            tf.rank(x),
            len(want),
            message="ShapeError: "
            + self._message(
                f"{where}rank is not {len(want)} (declared shape {_fmt(want)})",
                source,
                inputs,
            ),
        )

    def _message(
        self,
        what: str,
        source: str,
        inputs: Any,
        *,
        hint: str | None = None,
        details: Iterable[str] = (),
    ) -> str:
        lines = [
            f"ShapeChecked({self.name!r}): layer {_describe(self.layer)} {what}.",
            f"  declared by: {source}",
            f"  input shape: {_input_shapes(inputs)}",
            f"  check: {self.check!r}",
            *(f"  {d}" for d in details),
        ]
        if hint:
            lines.append(f"  hint: {hint}")
        return "\n".join(lines)


ShapeChecked.__module__ = "safegen"


def _shape_or(x: Any) -> Any:
    return _fmt(_static_shape(x)) if hasattr(x, "shape") else x


def _first_tensor(inputs: Any) -> Any:
    for x in tree.flatten(inputs):
        if _is_tensor(x):
            return x
    return None


def _batch_dim(inputs: Any) -> Dim:
    first = _first_tensor(inputs)
    shape = None if first is None else _static_shape(first)
    return shape[0] if shape else None


def _dynamic_dim(x: Any, axis: int) -> Any:
    import tensorflow as tf

    return tf.shape(x)[axis]


def _input_shapes(inputs: Any) -> str:
    shapes = [_fmt(_static_shape(x)) for x in tree.flatten(inputs) if _is_tensor(x)]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _rank_hint(got: Shape, want: Shape) -> str | None:
    if len(got) == len(want) - 1 and want and want[-1] == 1:
        return (
            "the output is one rank short and the declared last dimension is 1: "
            "the function probably forgot `expand_dims(..., -1)`, or `keepdims=True` in a "
            "reduction such as `ops.mean(x, axis=-1, keepdims=True)`."
        )
    if len(got) == len(want) + 1 and got and got[-1] == 1:
        return (
            "the output has an extra trailing dimension of size 1: squeeze it "
            "(`ops.squeeze(x, -1)`) or declare it in output_shape."
        )
    if len(got) == len(want) + 1 and len(want) >= 1 and want[0] is None:
        return "did output_shape include the batch dimension? It must not."
    return None


# --------------------------------------------------------------------------------------
# Conveniences
# --------------------------------------------------------------------------------------


def ShapeCheckedLambda(  # noqa: N802 - reads like the layer class it returns
    function: Callable[..., Any],
    output_shape: Any,
    *,
    check: CheckMode = "rank",
    **lambda_kwargs: Any,
) -> ShapeChecked:
    """Returns ``ShapeChecked(keras.layers.Lambda(function, output_shape, ...))``.

    The short form for the common case: a ``Lambda`` whose real output must match the
    ``output_shape`` it declares.

    Args:
        function: the Lambda's function.
        output_shape: the Lambda's ``output_shape``: a shape without the batch
            dimension (``(1,)`` declares ``(batch, 1)``), a structure of such shapes, or
            a function of the input shape, exactly as ``keras.layers.Lambda`` takes it.
        check: ``"rank"`` or ``"shape"``, as for :class:`ShapeChecked`.
        **lambda_kwargs: passed to ``keras.layers.Lambda`` (``name``, ``arguments``,
            ``mask``, ...).

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
    if not callable(function):
        raise TypeError(
            f"ShapeCheckedLambda(function): function must be callable; got {function!r} "
            f"of type {type(function).__name__}."
        )
    if output_shape is None:
        raise TypeError(
            f"ShapeCheckedLambda: output_shape is required; expected {_SHAPE_HELP}, "
            "or a function of the input shape."
        )
    if not callable(output_shape):
        output_shape = _normalize_output_shape(output_shape, "ShapeCheckedLambda")
    layer = keras.layers.Lambda(function, output_shape=output_shape, **lambda_kwargs)
    return ShapeChecked(layer, check=check)


def _graph_model_kind(model: Any, who: str) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{who}(model): model must be a keras.Sequential or functional keras.Model; "
            f"got {model!r} of type {type(model).__name__}."
        )
    if not isinstance(model, keras.Sequential) and not hasattr(model, "_nodes_by_depth"):
        raise TypeError(
            f"{who}(model): model {model.name!r} is a subclassed {type(model).__name__}; "
            "only keras.Sequential and functional models can be rebuilt. Wrap its layers "
            "with safegen.ShapeChecked where they are created instead."
        )


def check_layers(
    model: Any,
    *,
    layer_types: type | tuple[type, ...] | None = None,
    check: CheckMode = "rank",
) -> Any:
    """Returns a copy of ``model`` whose Lambda layers (or chosen types) are checked.

    Every matching layer, in nested Sequential and functional models too, is wrapped in
    :class:`ShapeChecked`. The new model *shares* its layers and weights with ``model``
    (nothing is re-initialized) and is not compiled: compile it before ``fit``.
    Layers already wrapped are left as they are.

    Args:
        model: a ``keras.Sequential`` or functional ``keras.Model``.
        layer_types: the layer classes to wrap; default ``(keras.layers.Lambda,)``.
        check: ``"rank"`` or ``"shape"``, as for :class:`ShapeChecked`.

    Returns:
        The checked model, of the same kind as ``model``.

    Raises:
        TypeError: ``model`` is not a Sequential or functional model, or
            ``layer_types`` is not a class or tuple of classes.
        ValueError: ``check`` is not valid.

    Example:
        >>> import keras, safegen
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(
        ...     lambda x: keras.ops.mean(x, axis=-1, keepdims=True), output_shape=(1,))])
        >>> checked = safegen.check_layers(model)
        >>> type(checked.layers[0]).__name__
        'ShapeChecked'
    """
    _graph_model_kind(model, "check_layers")
    if layer_types is None:
        layer_types = (keras.layers.Lambda,)
    if isinstance(layer_types, type):
        layer_types = (layer_types,)
    if not (
        isinstance(layer_types, tuple)
        and layer_types
        and all(isinstance(t, type) for t in layer_types)
    ):
        raise TypeError(
            "check_layers(layer_types): expected a layer class or a non-empty tuple of "
            f"layer classes, e.g. (keras.layers.Lambda,); got {layer_types!r}."
        )
    _validate_check(check, "check_layers")
    types = layer_types

    def clone(layer: Any) -> Any:
        if isinstance(layer, types) and not isinstance(layer, ShapeChecked):
            return ShapeChecked(layer, check=check)
        return layer

    return keras.models.clone_model(model, clone_function=clone, recursive=True)


def unwrap(model: Any) -> Any:
    """Returns ``model`` with every :class:`ShapeChecked` replaced by the layer it wraps.

    Use it before exporting a model to a runtime without safegen. The result shares its
    layers and weights with ``model``.

    Args:
        model: a ``keras.Sequential`` or functional model, or a single
            :class:`ShapeChecked` layer (its wrapped layer is returned).

    Returns:
        The plain model (or layer).

    Raises:
        TypeError: ``model`` is neither a Sequential or functional model nor a
            :class:`ShapeChecked`.

    Example:
        >>> import keras, safegen
        >>> inputs = keras.Input((2,))
        >>> outputs = safegen.ShapeChecked(keras.layers.Dense(1))(inputs)
        >>> plain = safegen.unwrap(keras.Model(inputs, outputs))
        >>> type(plain.layers[-1]).__name__
        'Dense'
    """
    if isinstance(model, ShapeChecked):
        inner = model.layer
        while isinstance(inner, ShapeChecked):
            inner = inner.layer
        return inner
    _graph_model_kind(model, "unwrap")

    def clone(layer: Any) -> Any:
        while isinstance(layer, ShapeChecked):
            layer = layer.layer
        return layer

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        # The wrapper's graph nodes record `mask=`/`training=` because ShapeChecked.call
        # takes them; drop those the plain layer does not take (Keras passes them on
        # itself when the layer does).
        for name in ("mask", "training"):
            if name in kwargs and not getattr(layer, f"_call_has_{name}_arg", True):
                del kwargs[name]
        return layer(*args, **kwargs)

    if isinstance(model, keras.Sequential):  # clone_model refuses call_function here
        return keras.models.clone_model(model, clone_function=clone, recursive=True)
    return keras.models.clone_model(model, clone_function=clone, call_function=call, recursive=True)


ShapeCheckedLambda.__module__ = "safegen"
check_layers.__module__ = "safegen"
unwrap.__module__ = "safegen"
