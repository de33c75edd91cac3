"""The article's Lambda program, ported to Keras 3, with its bug left in. No safegen here.

`calc_mean` forgot `expand_dims`: the Lambda returns shape (batch,) while it declares
`output_shape=(1,)`, i.e. (batch, 1). Keras never compares the two, so this trains
without a word (Keras 3 losses even reconcile (batch,) with the (batch, 1) targets).
Run it plainly, then under safegen:

    python examples/unmodified/mean_lambda.py
    python -m safegen run examples/unmodified/mean_lambda.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from keras.layers import Input, Lambda
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
    return res


def create_model():
    x = Input(name="x", shape=(2,))
    x_mean = Lambda(lambda x: calc_mean(x), output_shape=(1,))(x)
    model = Model(inputs=x, outputs=x_mean)
    return model


model = create_model()
model.compile(loss=["mse"], optimizer="rmsprop")
model.fit(train_iterator(), steps_per_epoch=20, epochs=2, verbose=2)

x, x_mean = next(train_iterator(1))
print(x, x_mean, model.predict(x, verbose=0))
