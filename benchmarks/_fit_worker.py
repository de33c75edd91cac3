"""The seed model trained by ``model.fit`` on the seed's (fixed) generator: no safegen here.

Run by ``benchmarks/run_overhead.py`` as ``python _fit_worker.py STEPS EPOCHS`` and as
``python -m safegen run _fit_worker.py STEPS EPOCHS``; prints one JSON line with the
steps per second of each epoch after the first (which traces the graph).
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def train_iterator(batch_size=64):
    while True:
        x = np.random.randint(0, 100, size=(batch_size, 2)).astype(np.float64)
        yield x, np.expand_dims((x[:, 0] + x[:, 1]) / 2, -1)


class Timer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


steps, epochs = int(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(0)
inputs = keras.Input(shape=(2,))
model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
model.compile(loss="mse", optimizer="rmsprop")
timer = Timer()
model.fit(train_iterator(), steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[timer])
print(json.dumps({"steps_per_second": [steps / t for t in timer.times[1:]]}))
