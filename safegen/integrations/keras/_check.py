"""How a Keras 3 layer's output is checked: tensors, declared shapes, run-time assertions.

The Keras 3 side of ``safegen.integrations._checked_layers.OutputCheck`` (which holds the
comparison and the error texts), used by ``safegen.integrations.keras.layers``. See that
module for when each check runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import tree

from safegen._shapes import Shape, fmt
from safegen.integrations._output_check import OutputCheck

__all__ = ["Keras3Check"]


class _Shown(str):
    """A shape's text, shown unquoted inside its container: ``((5, 2), (5, 2))``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class Keras3Check(OutputCheck):
    """The output check for Keras 3 layers (any backend; run-time checks on TensorFlow)."""

    def is_tensor(self, x: Any) -> bool:
        return bool(keras.ops.is_tensor(x)) or isinstance(x, keras.KerasTensor)

    def static_shape(self, x: Any) -> Shape | None:
        shape = x.shape
        if getattr(shape, "rank", 0) is None:  # tf.TensorShape of unknown rank
            return None
        return tuple(None if d is None else int(d) for d in shape)

    def flatten(self, structure: Any) -> list[Any]:
        leaves: list[Any] = tree.flatten(structure)
        return leaves

    def flatten_with_path(self, structure: Any) -> list[tuple[tuple[Any, ...], Any]]:
        pairs: list[tuple[tuple[Any, ...], Any]] = tree.flatten_with_path(structure)
        return pairs

    def pack_sequence_as(self, structure: Any, flat: list[Any]) -> Any:
        return tree.pack_sequence_as(structure, flat)

    def inference(
        self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Callable[[], Any], str]:
        """Keras's ``compute_output_spec`` on symbolic copies of the call's tensors."""

        def spec(x: Any) -> Any:
            if self.is_tensor(x):
                return keras.KerasTensor(self.static_shape(x), dtype=x.dtype)
            return x

        def infer() -> Any:
            return layer.compute_output_spec(
                *tree.map_structure(spec, args),
                **{k: tree.map_structure(spec, v) for k, v in kwargs.items()},
            )

        return infer, _declared_source(layer)

    def declared_shapes(self, declared: Any) -> list[Shape | None]:
        return [
            self.static_shape(s) if hasattr(s, "shape") else None for s in tree.flatten(declared)
        ]

    def output_details(self, outputs: Any) -> tuple[str, ...]:
        structure = tree.map_structure(
            lambda x: _Shown(fmt(self.static_shape(x))) if hasattr(x, "shape") else x, outputs
        )
        return (f"output structure: {structure}",)

    def assert_rank(self, x: Any, want: Shape, text: str) -> Any:
        """Asserts ``x``'s rank at run time (TensorFlow); returns ``x`` or, under XLA, a copy."""
        if keras.backend.backend() != "tensorflow":
            return x
        import tensorflow as tf

        tf.debugging.assert_equal(tf.rank(x), len(want), message=text)
        if _in_xla_context():
            # XLA compiles Assert ops to no-ops, but it knows every shape when it compiles:
            # an EnsureShape op fails there (with TensorFlow's message, not ours).
            return tf.ensure_shape(x, [None] * len(want))
        return x

    def assert_dim(self, x: Any, axis: int, expected: Any, text: str) -> None:
        if keras.backend.backend() != "tensorflow":
            return  # other backends trace with concrete shapes; nothing left to check
        import tensorflow as tf

        if isinstance(expected, tuple):  # ("dynamic", tensor): that tensor's batch size
            expected = tf.shape(expected[1])[0]
        tf.debugging.assert_equal(tf.shape(x)[axis], tf.cast(expected, tf.int32), message=text)


def _declared_source(layer: Any) -> str:
    lambda_shape = getattr(layer, "_output_shape", None)
    if isinstance(layer, keras.layers.Lambda) and lambda_shape is not None:
        if callable(lambda_shape):
            return "the Lambda's output_shape function"
        return f"the Lambda's output_shape={lambda_shape!r}"
    if type(layer).compute_output_spec is not keras.layers.Layer.compute_output_spec:
        return f"{type(layer).__name__}.compute_output_spec()"
    if type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
        return f"{type(layer).__name__}.compute_output_shape()"
    return "Keras's symbolic shape inference of the layer"


def _in_xla_context() -> bool:
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow that moved it
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))
