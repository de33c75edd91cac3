"""Pitfalls 1 and 2 of the README, ported to Keras 3, without and with safegen.

They come from a short article about training a Keras network to predict the mean of two
numbers. Its generator refills one buffer on every step, so batches that Keras still
holds are overwritten: inputs drift from their targets. Every guard below pins its mode,
so the SAFEGEN_MODE environment variable does not change what this shows.

Run: python examples/seed_pitfalls.py
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402


def train_iterator(batch_size=64):
    """The article's generator: `x` is allocated once, outside the loop."""
    x = np.zeros((batch_size, 2), np.float32)
    while True:
        for i in range(batch_size):
            x[i][0] = np.random.randint(0, 100)
            x[i][1] = np.random.randint(0, 100)
        x_mean = (x[::, 0] + x[::, 1]) / 2
        yield x, np.expand_dims(x_mean, -1)  # Keras 3 wants (x, y), not [x], [y]


def mean_model():
    """A Lambda computing the mean: its loss is 0 exactly when x and y agree."""
    inputs = keras.Input(shape=(2,))
    mean = keras.layers.Lambda(
        lambda x: keras.ops.expand_dims((x[:, 0] + x[:, 1]) / 2, -1), output_shape=(1,)
    )
    model = keras.Model(inputs, mean(inputs))
    model.compile(loss="mse", optimizer="rmsprop")
    return model


def fit(batches):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no trainable weights": the model is one Lambda
        history = mean_model().fit(batches, steps_per_epoch=30, epochs=2, verbose=0)
    return [round(loss, 2) for loss in history.history["loss"]]


def main():
    np.random.seed(0)
    print("Pitfall 1, model.fit on the generator:")
    plain = fit(train_iterator())
    verdict = "(not 0: inputs drifted from their targets)" if any(plain) else "(0 only by luck)"
    print("  plain loss per epoch:       ", plain, verdict)
    print("  guard(copy) loss per epoch: ", fit(safegen.guard(train_iterator, mode="copy")()))
    try:
        fit(safegen.guard(train_iterator, mode="check")())
        print("  guard(check): found nothing")
    except safegen.AliasingError as error:
        print("  guard(check): AliasingError:", str(error).split(". ")[0] + ".")

    print("Pitfall 2, print(next(it), next(it)):")
    it = train_iterator(batch_size=1)
    print("  plain:      ", next(it), next(it), " <- first mean does not match its x")
    it = safegen.guard(train_iterator, mode="copy")(batch_size=1)
    print("  guard(copy):", next(it), next(it))


if __name__ == "__main__":
    main()
