"""A Lambda that forgot `expand_dims`: Keras trusts its `output_shape`, ShapeChecked does not.

Run: python examples/shape_checked_lambda.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402


def build(wrap):
    inputs = keras.Input((2,))
    mean = keras.layers.Lambda(
        lambda x: (x[:, 0] + x[:, 1]) / 2,
        output_shape=(1,),
        name="mean",  # no expand_dims
    )
    if wrap:
        mean = safegen.ShapeChecked(mean)
    dense = keras.layers.Dense(1)(inputs)
    return keras.Model(inputs, keras.layers.Add()([mean(inputs), dense]))


def main():
    x = np.random.default_rng(0).integers(0, 100, (5, 2)).astype("float32")
    plain = build(wrap=False)
    print(
        "plain: declares",
        plain.output_shape,
        "but predict returns",
        plain.predict(x, verbose=0).shape,
    )
    try:
        build(wrap=True).predict(x, verbose=0)
    except safegen.ShapeError as error:
        text = str(error).replace("\x1b[1m", "").replace("\x1b[0m", "")  # Keras's bold
        lines = [line.strip() for line in text.splitlines()]
        print("ShapeChecked:", next(line for line in lines if "returned rank" in line))
        print("             ", next(line for line in lines if line.startswith("hint:")))


if __name__ == "__main__":
    main()
