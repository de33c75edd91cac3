"""Tiny models for the logits check, each bug with its correct twin (test_logits.py on
Keras 3 with TensorFlow and on tf_keras, jax_logits_run.py on JAX).

Every scenario compiles a fresh model and runs a real ``fit`` of a few steps under
``safegen.enabled()``; it returns ``"ok"``, or the first line of the ``LogitsError``
raised. ``keras`` is the Keras module to build with (``keras`` or ``tf_keras``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import safegen

N, BATCH, FEATURES, CLASSES = 64, 16, 4, 3


def data(kind: str = "binary") -> tuple[np.ndarray, np.ndarray]:
    """Standardized inputs (N, 4) and labels: (N, 1) 0/1, (N,) class ids or one-hot rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    ids = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    if kind == "binary":
        return x, (x[:, :1] > 0).astype("float32")
    if kind == "sparse":
        return x, ids
    return x, np.eye(CLASSES, dtype="float32")[ids]


def model(keras: Any, *heads: Any) -> Any:
    """A Sequential of a hidden layer and ``heads`` (built: it knows its input)."""
    layers = keras.layers
    if keras.__name__ == "tf_keras":
        first = layers.Dense(8, activation="relu", input_shape=(FEATURES,))
        return keras.Sequential([first, *heads])
    return keras.Sequential([keras.Input((FEATURES,)), layers.Dense(8, activation="relu"), *heads])


def sigmoid_lambda(keras: Any) -> Any:
    """A ``Lambda`` computing a sigmoid: probabilities from a layer that is not named so."""
    if keras.__name__ == "tf_keras":
        import tensorflow as tf

        return keras.layers.Lambda(lambda t: tf.math.sigmoid(t))
    return keras.layers.Lambda(lambda t: keras.ops.sigmoid(t))


def cases(keras: Any) -> dict[str, tuple[Any, Any, str, bool]]:
    """name -> (model, loss, data kind, whether the check must report it)."""
    Dense = keras.layers.Dense  # noqa: N806
    losses = keras.losses
    return {
        "linear + binary_crossentropy": (
            model(keras, Dense(1)), "binary_crossentropy", "binary", True,
        ),
        "sigmoid + binary_crossentropy": (
            model(keras, Dense(1, activation="sigmoid")), "binary_crossentropy", "binary", False,
        ),
        "linear + BinaryCrossentropy(from_logits=True)": (
            model(keras, Dense(1)), losses.BinaryCrossentropy(from_logits=True), "binary", False,
        ),
        "sigmoid + BinaryCrossentropy(from_logits=True)": (
            model(keras, Dense(1, activation="sigmoid")),
            losses.BinaryCrossentropy(from_logits=True), "binary", True,
        ),
        "softmax + sparse_categorical_crossentropy": (
            model(keras, Dense(CLASSES, activation="softmax")),
            "sparse_categorical_crossentropy", "sparse", False,
        ),
        "softmax + SparseCategoricalCrossentropy(from_logits=True)": (
            model(keras, Dense(CLASSES, activation="softmax")),
            losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", True,
        ),
        "linear + SparseCategoricalCrossentropy(from_logits=True)": (
            model(keras, Dense(CLASSES)),
            losses.SparseCategoricalCrossentropy(from_logits=True), "sparse", False,
        ),
        "linear + categorical_crossentropy": (
            model(keras, Dense(CLASSES)), losses.categorical_crossentropy, "onehot", True,
        ),
        "Lambda(sigmoid) + binary_crossentropy": (
            model(keras, Dense(1), sigmoid_lambda(keras)), "binary_crossentropy", "binary", False,
        ),
    }  # fmt: skip


def fit(keras: Any, net: Any, loss: Any, kind: str, **options: Any) -> str:
    """Compile ``net`` with ``loss`` and fit it 1 epoch under ``safegen.enabled()``."""
    x, y = data(kind)
    net.compile(optimizer="sgd", loss=loss)
    try:
        with safegen.enabled(**options):
            net.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    except safegen.LogitsError as error:
        return str(error).splitlines()[0]
    return "ok"


def outcomes(keras: Any) -> dict[str, str]:
    """Every case of :func:`cases` fitted: name -> ``"ok"`` or the error's first line."""
    return {
        name: fit(keras, net, loss, kind) for name, (net, loss, kind, _) in cases(keras).items()
    }


def expected(keras: Any) -> dict[str, bool]:
    """name -> whether the case must be reported."""
    return {name: case[3] for name, case in cases(keras).items()}
