"""The article's program with both fixes: a new array per batch, and `expand_dims`.
No safegen here. Under safegen it runs to the end and the summary says no violations:

    python -m safegen run examples/unmodified/mean_fixed.py

As a careful user would, it trains on numbers scaled to [0, 1) with Adam (the article's
numbers up to 100 and RMSprop's default rate need thousands of steps to get near), and
it prints the loss before and after training, and one prediction next to its target.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from keras import ops
from keras.layers import Dense, Input, Lambda
from keras.models import Model

SCALE = 100  # the numbers are drawn below SCALE, and trained on divided by it


def train_iterator(batch_size=64):
    while True:
        x = np.zeros((batch_size, 2))
        for i in range(batch_size):
            x[i][0] = np.random.randint(0, 100) / SCALE
            x[i][1] = np.random.randint(0, 100) / SCALE
        x_mean = (x[::, 0] + x[::, 1]) / 2
        x_mean_ex = np.expand_dims(x_mean, -1)
        yield x, x_mean_ex


def calc_mean(x):
    res = (x[::, 0] + x[::, 1]) / 2
    res = ops.expand_dims(res, -1)
    return res


def create_model():
    x = Input(name="x", shape=(2,))
    mean = Lambda(lambda x: calc_mean(x), output_shape=(1,), name="mean")(x)
    x_mean = Dense(1)(mean)
    model = Model(inputs=x, outputs=x_mean)
    return model


test_x, test_y = next(train_iterator(1000))  # a fixed test set

model = create_model()
model.compile(loss=["mse"], optimizer=keras.optimizers.Adam(learning_rate=0.1))
untrained = model.evaluate(test_x, test_y, verbose=0)
model.fit(
    train_iterator(),
    steps_per_epoch=100,
    epochs=3,
    validation_data=train_iterator(),
    validation_steps=5,
    verbose=2,
)
trained = model.evaluate(test_x, test_y, verbose=0)
print(f"test loss: untrained {untrained:.4g}, trained {trained:.4g}")

x, x_mean = next(train_iterator(1))
prediction = model.predict(x, verbose=0)
a, b = (x[0] * SCALE).round().astype(int)
target, predicted = x_mean[0, 0] * SCALE, prediction[0, 0] * SCALE
print(f"mean of {a} and {b}: target {target:.2f}, predicted {predicted:.2f}")
