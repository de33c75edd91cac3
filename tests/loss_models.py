"""Tiny Keras 3 models and losses for the loss shape checks (any backend; test_losses.py
and jax_losses_run.py). Each fit is a real ``model.fit`` of a few steps."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

import safegen

N, BATCH = 64, 16


class MeanSquares(keras.losses.Loss):
    """The issue's loss: compares y_true and y_pred as they come."""

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


class Reshaping(keras.losses.Loss):
    """A loss that gives y_true y_pred's shape itself before comparing."""

    def call(self, y_true, y_pred):
        y_true = ops.reshape(y_true, ops.shape(y_pred))
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


class SparseLogits(keras.losses.Loss):
    """Sparse integer labels against logits, in a Loss subclass."""

    def call(self, y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


def mean_squares(y_true, y_pred):
    """The same computation as a plain function (Keras reconciles its inputs)."""
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class Squeeze(keras.layers.Layer):
    """Drops the last dimension: the model's output becomes (batch,)."""

    def call(self, x):
        return ops.squeeze(x, -1)

    def compute_output_shape(self, shape):
        return shape[:-1]


def data(target_rank=1):
    """Inputs (N, 2) and their means, of shape (N,) or (N, 1)."""
    x = np.random.default_rng(0).uniform(0, 10, (N, 2)).astype("float32")
    y = x.mean(axis=1)
    return x, (y if target_rank == 1 else y[:, None])


def regression(squeeze=False):
    """Dense(1): output (batch, 1), or (batch,) with ``squeeze``."""
    layers = [keras.Input((2,)), keras.layers.Dense(1, name="dense")]
    return keras.Sequential(layers + ([Squeeze(name="squeeze")] if squeeze else []))


def fit(model, loss, x, y, *, check=True, execution="graph", sample_weight=None):
    """Compile and fit one epoch; ``"ok"`` or the ShapeError's message."""
    model.compile(
        optimizer="sgd",
        loss=loss,
        run_eagerly=execution == "eager",
        jit_compile=execution == "jit",
    )
    if check:
        safegen.check_losses(model)
    try:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, sample_weight=sample_weight)
    except safegen.ShapeError as error:
        return str(error)
    return "ok"


def fit_after_fit(loss, execution):
    """Fit with matching shapes first (the loss is built), then check_losses, then fit
    with (batch,) targets: the check runs inside the traced (or eager) train step."""
    model = regression()
    x, y1 = data(target_rank=2)
    model.compile(
        optimizer="sgd", loss=loss, run_eagerly=execution == "eager",
        jit_compile=execution == "jit",
    )  # fmt: skip
    model.fit(x, y1, batch_size=BATCH, epochs=1, verbose=0)
    safegen.check_losses(model)
    try:
        model.fit(x, y1[:, 0], batch_size=BATCH, epochs=1, verbose=0)
    except safegen.ShapeError as error:
        return str(error)
    return "ok"


def scenarios(executions=("graph", "eager", "jit")):
    """Every loss/shape combination the issue names; name -> "ok" or the message."""
    out = {}
    for execution in executions:
        x, y1 = data(1)
        _, y2 = data(2)
        out[f"subclass pred (B,1) true (B,) {execution}"] = fit(
            regression(), MeanSquares(), x, y1, execution=execution
        )
        out[f"subclass pred (B,) true (B,1) {execution}"] = fit(
            regression(squeeze=True), MeanSquares(), x, y2, execution=execution
        )
        out[f"in the train step {execution}"] = fit_after_fit(MeanSquares(), execution)
    x, y1 = data(1)
    _, y2 = data(2)
    labels = np.arange(N) % 3
    logits = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    out.update(
        {
            "mse pred (B,1) true (B,)": fit(regression(), "mse", x, y1),
            "mse pred (B,) true (B,1)": fit(regression(squeeze=True), "mse", x, y2),
            "function pred (B,1) true (B,)": fit(regression(), mean_squares, x, y1),
            "subclass same shapes": fit(regression(), MeanSquares(), x, y2),
            "subclass reshaping itself": fit(regression(), Reshaping(), x, y1),
            "sparse labels (B,)": fit(logits, SparseLogits(), x, labels),
            "sparse labels (B,1)": fit(logits, SparseLogits(), x, labels[:, None]),
            "sample weights": fit(
                regression(), MeanSquares(), x, y2, sample_weight=np.ones(N, "float32")
            ),
            "unchecked subclass (B,)": fit(regression(), MeanSquares(), x, y1, check=False),
        }
    )
    return out
