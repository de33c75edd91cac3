"""MixUp augmentation for image classification, ported with synthetic images.

Source: keras-team/keras-io, examples/vision/mixup.py (Sayak Paul).
Kept: images scaled by 1/255 and one-hot labels (tf.one_hot); the first samples set
aside for validation; two shuffled, batched copies of the training data zipped together;
the mix_up map drawing a Beta(0.2, 0.2) lambda per image from tf.random.gamma and mixing
images and labels; the convnet with a softmax head and "categorical_crossentropy";
initial weights saved and loaded for both runs; fit on the mixed dataset with
validation_data and evaluate, then fit on the plain shuffled dataset.
Changed: FashionMNIST is replaced by random uint8 images, fewer samples, 2 epochs,
weights saved in a temporary folder as .weights.h5 (Keras 3's name).
"""

import os
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

rng = np.random.default_rng(6)
x_train = rng.integers(0, 256, size=(256, 28, 28)).astype("uint8")
y_train = rng.integers(0, 10, size=256)
x_test = rng.integers(0, 256, size=(64, 28, 28)).astype("uint8")
y_test = rng.integers(0, 10, size=64)

x_train = x_train.astype("float32") / 255.0
x_train = np.reshape(x_train, (-1, 28, 28, 1))
y_train = tf.one_hot(y_train, 10)

x_test = x_test.astype("float32") / 255.0
x_test = np.reshape(x_test, (-1, 28, 28, 1))
y_test = tf.one_hot(y_test, 10)

AUTO = tf.data.AUTOTUNE
BATCH_SIZE = 64
EPOCHS = 2

val_samples = 64
x_val, y_val = x_train[:val_samples], y_train[:val_samples]
new_x_train, new_y_train = x_train[val_samples:], y_train[val_samples:]

train_ds_one = (
    tf.data.Dataset.from_tensor_slices((new_x_train, new_y_train))
    .shuffle(BATCH_SIZE * 100)
    .batch(BATCH_SIZE)
)
train_ds_two = (
    tf.data.Dataset.from_tensor_slices((new_x_train, new_y_train))
    .shuffle(BATCH_SIZE * 100)
    .batch(BATCH_SIZE)
)
train_ds = tf.data.Dataset.zip((train_ds_one, train_ds_two))
val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(BATCH_SIZE)
test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(BATCH_SIZE)


def sample_beta_distribution(size, concentration_0=0.2, concentration_1=0.2):
    gamma_1_sample = tf.random.gamma(shape=[size], alpha=concentration_1)
    gamma_2_sample = tf.random.gamma(shape=[size], alpha=concentration_0)
    return gamma_1_sample / (gamma_1_sample + gamma_2_sample)


def mix_up(ds_one, ds_two, alpha=0.2):
    images_one, labels_one = ds_one
    images_two, labels_two = ds_two
    batch_size = tf.shape(images_one)[0]

    lam = sample_beta_distribution(batch_size, alpha, alpha)
    x_l = tf.reshape(lam, (batch_size, 1, 1, 1))
    y_l = tf.reshape(lam, (batch_size, 1))

    images = images_one * x_l + images_two * (1 - x_l)
    labels = labels_one * y_l + labels_two * (1 - y_l)
    return (images, labels)


train_ds_mu = train_ds.map(
    lambda ds_one, ds_two: mix_up(ds_one, ds_two, alpha=0.2), num_parallel_calls=AUTO
)
sample_images, sample_labels = next(iter(train_ds_mu))


def get_training_model():
    model = tf.keras.Sequential(
        [
            layers.Input(shape=(28, 28, 1)),
            layers.Conv2D(16, (5, 5), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(32, (5, 5), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Dropout(0.2),
            layers.GlobalAvgPool2D(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return model


weights = os.path.join(tempfile.mkdtemp(), "initial.weights.h5")
initial_model = get_training_model()
initial_model.save_weights(weights)

model = get_training_model()
model.load_weights(weights)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(train_ds_mu, validation_data=val_ds, epochs=EPOCHS, verbose=0)
_, test_acc = model.evaluate(test_ds, verbose=0)
print(f"Test accuracy: {test_acc * 100:.2f}%")

model = get_training_model()
model.load_weights(weights)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(train_ds_one, validation_data=val_ds, epochs=EPOCHS, verbose=0)
_, test_acc = model.evaluate(test_ds, verbose=0)
print(f"Test accuracy: {test_acc * 100:.2f}%")
