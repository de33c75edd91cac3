"""The Functional API guide's three trained models, ported with synthetic data.

Source: keras-team/keras-io, guides/functional_api.py (fchollet).
Kept: the MNIST MLP with a linear Dense(10) head and
SparseCategoricalCrossentropy(from_logits=True), fit with validation_split=0.2 and
evaluate; the multi-input, multi-output ticket model (two linear heads, a dict of
from_logits=True losses and loss weights, fit on the guide's own dummy random data);
the toy ResNet with CategoricalCrossentropy(from_logits=True) and validation_split=0.2.
Changed: MNIST and CIFAR-10 are replaced by random uint8 images, fewer samples,
shorter sequences, 2 epochs.
"""

import numpy as np
from tensorflow import keras
from tensorflow.keras import layers

rng = np.random.default_rng(1)

# The MNIST MLP.
inputs = keras.Input(shape=(784,))
x = layers.Dense(64, activation="relu")(inputs)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")

x_train = rng.integers(0, 256, size=(320, 28, 28)).astype("uint8")
y_train = rng.integers(0, 10, size=320).astype("uint8")
x_test = rng.integers(0, 256, size=(100, 28, 28)).astype("uint8")
y_test = rng.integers(0, 10, size=100).astype("uint8")

x_train = x_train.reshape(320, 784).astype("float32") / 255
x_test = x_test.reshape(100, 784).astype("float32") / 255

model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer=keras.optimizers.RMSprop(),
    metrics=["accuracy"],
)
history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_split=0.2, verbose=0)
test_scores = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", test_scores[0])

# The ticket model: three inputs, two outputs.
num_tags = 12
num_words = 1000
num_departments = 4

title_input = keras.Input(shape=(None,), name="title")
body_input = keras.Input(shape=(None,), name="body")
tags_input = keras.Input(shape=(num_tags,), name="tags")
title_features = layers.Embedding(num_words, 16)(title_input)
body_features = layers.Embedding(num_words, 16)(body_input)
title_features = layers.LSTM(16)(title_features)
body_features = layers.LSTM(8)(body_features)
x = layers.concatenate([title_features, body_features, tags_input])
priority_pred = layers.Dense(1, name="priority")(x)
department_pred = layers.Dense(num_departments, name="department")(x)
model = keras.Model(
    inputs=[title_input, body_input, tags_input],
    outputs=[priority_pred, department_pred],
)
model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss={
        "priority": keras.losses.BinaryCrossentropy(from_logits=True),
        "department": keras.losses.CategoricalCrossentropy(from_logits=True),
    },
    loss_weights={"priority": 1.0, "department": 0.2},
)

# Dummy input data (the guide's own)
title_data = rng.integers(num_words, size=(128, 10))
body_data = rng.integers(num_words, size=(128, 20))
tags_data = rng.integers(2, size=(128, num_tags)).astype("float32")
# Dummy target data
priority_targets = rng.random(size=(128, 1))
dept_targets = rng.integers(2, size=(128, num_departments))

model.fit(
    {"title": title_data, "body": body_data, "tags": tags_data},
    {"priority": priority_targets, "department": dept_targets},
    epochs=2,
    batch_size=32,
    verbose=0,
)

# The toy ResNet.
inputs = keras.Input(shape=(32, 32, 3), name="img")
x = layers.Conv2D(32, 3, activation="relu")(inputs)
x = layers.Conv2D(64, 3, activation="relu")(x)
block_1_output = layers.MaxPooling2D(3)(x)
x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
block_2_output = layers.add([x, block_1_output])
x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
block_3_output = layers.add([x, block_2_output])
x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dense(256, activation="relu")(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs, outputs, name="toy_resnet")

x_train = rng.integers(0, 256, size=(96, 32, 32, 3)).astype("uint8")
y_train = rng.integers(0, 10, size=(96, 1))
x_train = x_train.astype("float32") / 255.0
y_train = keras.utils.to_categorical(y_train, 10)

model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    metrics=["acc"],
)
# The guide restricts the data to its first samples (1000 there).
model.fit(x_train[:96], y_train[:96], batch_size=64, epochs=2, validation_split=0.2, verbose=0)
