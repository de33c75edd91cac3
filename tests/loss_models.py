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


class ExpandTrue(keras.losses.Loss):
    """Reconciles by giving y_true a last axis: ``ops.expand_dims(y_true, -1)``."""

    def call(self, y_true, y_pred):
        y_true = ops.expand_dims(y_true, -1)
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


class SqueezePred(keras.losses.Loss):
    """Reconciles by squeezing y_pred: ``ops.squeeze(y_pred, -1)``."""

    def call(self, y_true, y_pred):
        y_pred = ops.squeeze(y_pred, -1)
        return ops.square(y_true - y_pred)


class SqueezePredAxis(keras.losses.Loss):
    """Reconciles by squeezing y_pred: ``ops.squeeze(y_pred, axis=-1)``."""

    def call(self, y_true, y_pred):
        y_pred = ops.squeeze(y_pred, axis=-1)
        return ops.square(y_true - y_pred)


class SqueezePredAll(keras.losses.Loss):
    """Reconciles by squeezing every axis of size 1: ``ops.squeeze(y_pred)``."""

    def call(self, y_true, y_pred):
        y_pred = ops.squeeze(y_pred)
        return ops.square(y_true - y_pred)


class IndexPred(keras.losses.Loss):
    """Reconciles by indexing y_pred: ``y_pred[:, 0]``."""

    def call(self, y_true, y_pred):
        y_pred = y_pred[:, 0]
        return ops.square(y_true - y_pred)


class NewAxisTrue(keras.losses.Loss):
    """Reconciles by indexing y_true with a new axis: ``y_true[:, None]``."""

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true[:, None] - y_pred), axis=-1)


class NewAxisBoth(keras.losses.Loss):
    """``y_true[:, None]`` against a (B,) ``y_pred``: the broadcasting version of an idiom
    (a (B,) output, reconciled on the wrong side)."""

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true[:, None] - y_pred), axis=-1)


# Losses from public projects, ported to keras.ops (backend functions K.x -> ops.x);
# synthetic data. Each is checked with consistent shapes, with shapes it reconciles
# itself, and with (B,) targets for a (B, 1) output, where it broadcasts.


class BinaryFocal(keras.losses.Loss):
    """Binary focal loss, Roosevelthsoares/project_MPC Oraculo/app/moe/src/moe/losses.py
    (after mkocabas/focal-loss-keras): ``pt`` picks y_pred where the label is 1."""

    def __init__(self, alpha=0.25, gamma=2.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.gamma = alpha, gamma

    def call(self, y_true, y_pred):
        y_pred = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        pt = ops.where(ops.equal(y_true, 1), y_pred, 1 - y_pred)
        return -ops.mean(self.alpha * ops.power(1.0 - pt, self.gamma) * ops.log(pt))


class Huber(keras.losses.Loss):
    """HuberLoss, gopalakrishna-r/Hands-on-Machine-Learning-w-scikit-tensorflow
    chapter_12/HuberLoss.py (the book's custom loss)."""

    def __init__(self, threshold=1.0, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold

    def call(self, y_true, y_pred):
        error = y_true - y_pred
        is_small_error = ops.abs(error) < self.threshold
        squared_loss = ops.square(error) / 2
        linear_loss = self.threshold * (ops.abs(error) - self.threshold * 0.5)
        return ops.where(is_small_error, squared_loss, linear_loss)


class FlatDice(keras.losses.Loss):
    """Dice loss, ZeeTsing/Carvana_challenge Dice_coeff.py: flattens both sides first, so
    it reconciles (B,) with (B, 1) itself."""

    def call(self, y_true, y_pred):
        smooth = 1.0
        y_true_f = ops.reshape(y_true, (-1,))
        y_pred_f = ops.reshape(y_pred, (-1,))
        intersection = ops.sum(y_true_f * y_pred_f)
        return 1 - (2.0 * intersection + smooth) / (ops.sum(y_true_f) + ops.sum(y_pred_f) + smooth)


class AxisDice(keras.losses.Loss):
    """Dice loss, oeminaga/gene_exp metrics.py: sums over the last axis, no flattening."""

    def call(self, y_true, y_pred):
        smooth = 1.0
        intersection = ops.sum(ops.abs(y_true * y_pred), axis=-1)
        return 1 - (2.0 * intersection + smooth) / (
            ops.sum(ops.square(y_true), -1) + ops.sum(ops.square(y_pred), -1) + smooth
        )


class Contrastive(keras.losses.Loss):
    """Contrastive loss (Hadsell et al. 2006), JoakimHaurum/DL_Projects
    dlrepo/models/utils/losses.py; y_pred is a distance, y_true 1 for similar pairs."""

    def call(self, y_true, y_pred):
        margin = 1
        return ops.mean(
            y_true * ops.square(y_pred) + (1 - y_true) * ops.square(ops.maximum(margin - y_pred, 0))
        )


class Quantile(keras.losses.Loss):
    """Pinball loss over nine quantiles, iwillbeaprogramer/Study
    keras/keras60_2_quantile_loss.py: a constant (1, 9) quantile vector broadcast against
    the error."""

    def call(self, y_true, y_pred):
        q = ops.convert_to_tensor(np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]]))
        q = ops.cast(q, "float32")
        e = y_true - y_pred
        v = ops.maximum(q * e, (q - 1) * e)
        return ops.mean(v)


class MaskedMSE(keras.losses.Loss):
    """Masked MSE, gf712/scFv-autoencoders models/loss_functions.py (mask value -1)."""

    def call(self, y_true, y_pred):
        mask_value = -1.0
        mask = ops.all(ops.equal(y_true, mask_value), axis=-1)
        mask = ops.expand_dims(1 - ops.cast(mask, "float32"), -1)
        loss = (y_true - y_pred) ** 2 * mask
        return ops.sum(loss) / ops.sum(mask)


class WeightedBCE(keras.losses.Loss):
    """Weighted binary cross-entropy, davidchen9830/wmh_challenge_segmentation
    models/clean/losses.py, with the cross-entropy written out (Keras 3's own refuses
    shapes of different ranks)."""

    def call(self, y_true, y_pred):
        p = ops.clip(y_pred, 1e-7, 1 - 1e-7)
        b_ce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        one_weight, zero_weight = 0.99, 0.01
        weight_vector = y_true * one_weight + (1.0 - y_true) * zero_weight
        return ops.mean(weight_vector * b_ce)


class PairwiseSpread(keras.losses.Loss):
    """MSE plus a pairwise term over y_pred alone (every prediction against every other
    one: (B, 1) - (1, B)), after reconciling y_true: y_pred meets itself, not y_true."""

    def call(self, y_true, y_pred):
        y_true = ops.reshape(y_true, (-1, 1))
        pairwise = ops.mean(ops.square(y_pred - ops.transpose(y_pred)))
        return ops.mean(ops.square(y_true - y_pred)) + 0.01 * pairwise


PUBLIC = {
    "focal": BinaryFocal,
    "huber": Huber,
    "dice (axis)": AxisDice,
    "contrastive": Contrastive,
    "quantile": Quantile,
    "masked mse": MaskedMSE,
    "weighted bce": WeightedBCE,
}
RECONCILING = {
    "expand_dims": ExpandTrue,
    "squeeze(-1)": SqueezePred,
    "squeeze(axis=-1)": SqueezePredAxis,
    "squeeze()": SqueezePredAll,
    "[:, 0]": IndexPred,
    "[:, None]": NewAxisTrue,
    "ops.reshape": None,  # Reshaping, below
    "dice (flatten)": FlatDice,
    "pairwise over y_pred": PairwiseSpread,
}


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


def data(target_rank=1, binary=False):
    """Inputs (N, 2) and their means, of shape (N,) or (N, 1); with ``binary``, labels 0
    or 1 (whether the mean is above 5) instead of the means."""
    x = np.random.default_rng(0).uniform(0, 10, (N, 2)).astype("float32")
    y = x.mean(axis=1)
    if binary:
        y = (y > 5).astype("float32")
    return x, (y if target_rank == 1 else y[:, None])


def regression(squeeze=False, activation=None):
    """Dense(1): output (batch, 1), or (batch,) with ``squeeze``."""
    layers = [keras.Input((2,)), keras.layers.Dense(1, activation=activation, name="dense")]
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
    out.update(public_scenarios())
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


def public_scenarios():
    """The reconciling idioms and the public losses: ``"<name> <case>"`` -> outcome.

    Cases: ``reconciled`` (a (B, 1) output, (B,) targets, the loss reconciles them),
    ``same`` (both (B, 1)), ``broadcast`` ((B,) targets for a (B, 1) output, the loss
    does not reconcile them).
    """
    out = {}
    x, y1 = data(1, binary=True)
    _, y2 = data(2, binary=True)
    for name, loss in RECONCILING.items():
        loss = loss or Reshaping
        model = regression(squeeze=False, activation="sigmoid")
        out[f"{name} reconciled"] = fit(model, loss(), x, y1)
    # The idiom on the wrong side: y_true[:, None] against a (B,) output gives (B, B).
    out["[:, None] broadcast"] = fit(regression(squeeze=True), NewAxisBoth(), x, y1)
    for name, loss in PUBLIC.items():
        out[f"{name} same"] = fit(regression(activation="sigmoid"), loss(), x, y2)
        if name != "quantile":  # (B, B) times (1, 9): Keras raises an error of its own
            out[f"{name} broadcast"] = fit(regression(activation="sigmoid"), loss(), x, y1)
    return out
