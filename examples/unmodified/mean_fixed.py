"""The article's program with both fixes: a new array per batch, and `expand_dims`.
No safegen here. Under safegen it runs to the end and the summary says no violations:

    python -m safegen run examples/unmodified/mean_fixed.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from keras import ops
from keras.layers import Dense, Input, Lambda
from keras.models import Model


def train_iterator(batch_size=64):
    while True:
        x = np.zeros((batch_size, 2))
        for i in range(batch_size):
            x[i][0] = np.random.randint(0, 100)
            x[i][1] = np.random.randint(0, 100)
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


model = create_model()
model.compile(loss=["mse"], optimizer="rmsprop")
model.fit(
    train_iterator(),
    steps_per_epoch=50,
    epochs=2,
    validation_data=train_iterator(),
    validation_steps=5,
    verbose=2,
)

x, x_mean = next(train_iterator(1))
print(x, x_mean, model.predict(x, verbose=0))
