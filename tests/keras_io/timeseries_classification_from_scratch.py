"""Timeseries classification from scratch (FordA), ported with synthetic series.

Source: keras-team/keras-io, examples/timeseries/timeseries_classification_from_scratch.py
(hfawaz).
Kept: z-normalized univariate series reshaped to (n, length, 1), labels -1/1 mapped to
0/1, the training set shuffled with one np.random.permutation for inputs and labels
before validation_split=0.2, the fully convolutional network (Conv1D, BatchNormalization,
ReLU x3, GlobalAveragePooling1D, softmax), "sparse_categorical_crossentropy", the
ModelCheckpoint / ReduceLROnPlateau / EarlyStopping callbacks on val_loss, load_model of
the best checkpoint and predict(...).argmax(axis=1) on the test set.
Changed: FordA is replaced by z-normalized noisy sines whose frequency depends on the
class, written as the UCR files are (sorted by label, label first), fewer series, 2
epochs, the checkpoint in a temporary folder as .keras.
"""

import os
import tempfile

import numpy as np
from tensorflow import keras

rng = np.random.default_rng(3)
length = 176


def readucr(n):
    """Synthetic rows of a UCR file: label (-1 or 1) then the z-normalized series."""
    y = np.repeat([-1, 1], n // 2)
    t = np.linspace(0, 1, length)
    freq = np.where(y == 1, 9.0, 5.0)[:, None]
    x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3, size=(n, 1)))
    x = x + rng.normal(0, 0.5, size=x.shape)
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return x, y.astype(int)


x_train, y_train = readucr(320)
x_test, y_test = readucr(80)

x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
x_test = x_test.reshape((x_test.shape[0], x_test.shape[1], 1))

num_classes = len(np.unique(y_train))

idx = np.random.permutation(len(x_train))
x_train = x_train[idx]
y_train = y_train[idx]

y_train[y_train == -1] = 0
y_test[y_test == -1] = 0


def make_model(input_shape):
    input_layer = keras.layers.Input(input_shape)

    conv1 = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(input_layer)
    conv1 = keras.layers.BatchNormalization()(conv1)
    conv1 = keras.layers.ReLU()(conv1)

    conv2 = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(conv1)
    conv2 = keras.layers.BatchNormalization()(conv2)
    conv2 = keras.layers.ReLU()(conv2)

    conv3 = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(conv2)
    conv3 = keras.layers.BatchNormalization()(conv3)
    conv3 = keras.layers.ReLU()(conv3)

    gap = keras.layers.GlobalAveragePooling1D()(conv3)

    output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)

    return keras.models.Model(inputs=input_layer, outputs=output_layer)


model = make_model(input_shape=x_train.shape[1:])

epochs = 2
batch_size = 32
best = os.path.join(tempfile.mkdtemp(), "best_model.keras")

callbacks = [
    keras.callbacks.ModelCheckpoint(best, save_best_only=True, monitor="val_loss"),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=20, min_lr=0.0001),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=50, verbose=1),
]
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    callbacks=callbacks,
    validation_split=0.2,
    verbose=0,
)

model = keras.models.load_model(best)
y_pred = model.predict(x_test, verbose=0).argmax(axis=1)
print("Test accuracy", float(np.mean(y_pred == y_test)))
