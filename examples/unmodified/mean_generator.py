"""The article's first program, ported to Keras 3, with its bug left in. No safegen here.

A one-layer network should learn the mean of two numbers. `train_iterator` allocates
`x` once and refills it in place on every step, so the batches Keras still holds (it
peeks 2 batches ahead to infer shapes, and tf.data prefetches) are overwritten: inputs
drift away from their targets. Run it plainly, then under safegen:

    python examples/unmodified/mean_generator.py
    python -m safegen run examples/unmodified/mean_generator.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from keras.layers import Dense, Input
from keras.models import Model


def train_iterator(batch_size=64):
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = np.random.randint(0, 100)
            x[i][1] = np.random.randint(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        x_mean_ex = np.expand_dims(x_mean, -1)
        yield x, x_mean_ex


def create_model():
    x = Input(name="x", shape=(2,))
    x_mean = Dense(1)(x)
    model = Model(inputs=x, outputs=x_mean)
    return model


model = create_model()
model.compile(loss=["mse"], optimizer="rmsprop")
model.fit(train_iterator(), steps_per_epoch=100, epochs=3, verbose=2)

x, x_mean = next(train_iterator(1))
print(x, x_mean, model.predict(x, verbose=0))
