"""A model learning the mean of two numbers with its own Loss subclass. No safegen here.

The targets have shape (batch,), the model's output (batch, 1). Keras reconciles the two
for "mse" or a plain function, but not for a `keras.losses.Loss` subclass: `y_true -
y_pred` broadcasts to (batch, batch), every prediction is compared with every target, and
the model trains on that without a word (the loss stays in the hundreds). Run it plainly,
then under safegen, which stops it with a ShapeError at the first batch:

    python examples/unmodified/loss_subclass.py
    python -m safegen run examples/unmodified/loss_subclass.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from keras import ops


class MeanSquares(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


rng = np.random.default_rng(0)
x = rng.integers(0, 100, size=(1024, 2)).astype("float32")
y = x.mean(axis=1)  # shape (1024,): one rank short of the model's output

model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss=MeanSquares())
history = model.fit(x, y, batch_size=64, epochs=5, verbose=0)
print("loss per epoch:", [round(v, 1) for v in history.history["loss"]])
print("predict([[73, 57]]):", model.predict(np.array([[73.0, 57.0]]), verbose=0), "wanted 65")
