"""Simple MNIST convnet, ported with synthetic data.

Source: keras-team/keras-io, examples/vision/mnist_convnet.py (fchollet).
Kept: uint8 images scaled by 1/255, expand_dims, to_categorical, the Sequential convnet
with a softmax head, "categorical_crossentropy", fit with validation_split=0.1, evaluate.
Changed: MNIST is replaced by random uint8 digits-like images (class-dependent blobs),
fewer samples, 2 epochs.
"""

import numpy as np
from tensorflow import keras
from tensorflow.keras import layers

rng = np.random.default_rng(0)

num_classes = 10
input_shape = (28, 28, 1)


def load_data(n):
    """Random 28x28 uint8 images whose bright square's position depends on the label."""
    y = rng.integers(0, num_classes, size=n)
    x = rng.integers(0, 60, size=(n, 28, 28)).astype("uint8")
    for i, label in enumerate(y):
        row, col = divmod(int(label), 4)
        x[i, 2 + 7 * row : 8 + 7 * row, 2 + 6 * col : 8 + 6 * col] = 255
    return x, y


(x_train, y_train), (x_test, y_test) = load_data(600), load_data(100)

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

batch_size = 128
epochs = 2

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1, verbose=0)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
