"""The article's Keras 2 program under safegen.enable(), with tf_keras (run in a subprocess).

Prints one line per call: the method and what happened. Run by tests/test_enable_tf_keras.py.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import safegen  # noqa: E402

safegen.enable(mode=sys.argv[1] if len(sys.argv) > 1 else None)

import tf_keras as keras  # noqa: E402  - imported after enable(), as a user may
from tf_keras.layers import Dense, Input  # noqa: E402
from tf_keras.models import Model  # noqa: E402


def train_iterator(batch_size=64):
    x = np.zeros((batch_size, 2))
    while True:
        for i in range(batch_size):
            x[i][0] = np.random.randint(0, 100)
            x[i][1] = np.random.randint(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        x_mean_ex = np.expand_dims(x_mean, -1)
        yield [x], [x_mean_ex]


class SharedBuffer(keras.utils.Sequence):
    def __init__(self):
        self.x = np.zeros((8, 2))

    def __len__(self):
        return 5

    def __getitem__(self, index):
        self.x[:] = index
        return self.x, self.x[:, :1].copy()


def create_model():
    x = Input(name="x", shape=(2,))
    x_mean = Dense(1)(x)
    return Model(inputs=x, outputs=x_mean)


model = create_model()
model.compile(loss=["mse"], optimizer="rmsprop")
calls = {
    "fit_generator": lambda: model.fit_generator(train_iterator(), steps_per_epoch=5, verbose=0),
    "fit": lambda: model.fit(train_iterator(), steps_per_epoch=5, verbose=0),
    "evaluate": lambda: model.evaluate(train_iterator(), steps=5, verbose=0),
    "predict": lambda: model.predict(iter([np.zeros((4, 2))] * 3), verbose=0),
    "sequence": lambda: model.fit(SharedBuffer(), epochs=1, verbose=0, workers=2),
}
for name, call in calls.items():
    try:
        call()
        print(name, "ran")
    except safegen.AliasingError as error:
        print(name, "AliasingError", str(error).split(":")[0])
print(safegen.session().summary(), file=sys.stderr)
