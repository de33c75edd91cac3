"""Image classification from scratch (Cats vs Dogs), ported with synthetic images.

Source: keras-team/keras-io, examples/vision/image_classification_from_scratch.py
(fchollet).
Kept: JPEG files in one folder per class read by image_dataset_from_directory with
validation_split=0.2, subset="both" and a seed (float32 pixels 0-255); an augmentation
Sequential (RandomFlip, RandomRotation) applied in a tf.data map; prefetch; the small
Xception-like model starting with Rescaling(1/255) and ending with Dropout and a sigmoid
Dense(1); "binary_crossentropy"; a ModelCheckpoint callback; fit with validation_data;
predict on one image loaded with load_img / img_to_array and expand_dims.
Changed: random images (cats darker than dogs) written to a temporary folder, 32x32
instead of 180x180, narrower blocks, 2 epochs, no XLA.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

rng = np.random.default_rng(2)
root = tempfile.mkdtemp()
for folder_name, base in (("Cat", 40), ("Dog", 150)):
    os.makedirs(os.path.join(root, "PetImages", folder_name))
    for i in range(40):
        pixels = np.clip(base + rng.normal(0, 40, size=(40, 40, 3)), 0, 255).astype("uint8")
        keras.utils.save_img(os.path.join(root, "PetImages", folder_name, f"{i}.jpg"), pixels)

image_size = (32, 32)
batch_size = 16

train_ds, val_ds = keras.utils.image_dataset_from_directory(
    os.path.join(root, "PetImages"),
    validation_split=0.2,
    subset="both",
    seed=1337,
    image_size=image_size,
    batch_size=batch_size,
)

data_augmentation = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
    ]
)

train_ds = train_ds.prefetch(buffer_size=32)
val_ds = val_ds.prefetch(buffer_size=32)


def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)

    # Entry block
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.Conv2D(16, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x  # Set aside residual

    for size in [16, 32]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        # Project residual
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    x = layers.SeparableConv2D(64, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    if num_classes == 2:
        activation = "sigmoid"
        units = 1
    else:
        activation = "softmax"
        units = num_classes

    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, outputs)


model = make_model(input_shape=image_size + (3,), num_classes=2)

# Apply `data_augmentation` to the training images.
train_ds = train_ds.map(
    lambda img, label: (data_augmentation(img), label),
    num_parallel_calls=tf.data.AUTOTUNE,
)
train_ds = train_ds.prefetch(tf.data.AUTOTUNE)

epochs = 2
callbacks = [
    keras.callbacks.ModelCheckpoint(os.path.join(root, "save_at_{epoch}.keras")),
]
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss="binary_crossentropy",
    metrics=["accuracy"],
)
model.fit(train_ds, epochs=epochs, callbacks=callbacks, validation_data=val_ds, verbose=0)

# Run inference on new data
img = keras.utils.load_img(os.path.join(root, "PetImages", "Cat", "6.jpg"), target_size=image_size)
img_array = keras.utils.img_to_array(img)
img_array = tf.expand_dims(img_array, 0)  # Create batch axis

predictions = model.predict(img_array, verbose=0)
score = float(predictions[0][0])
print(f"This image is {100 * (1 - score):.2f}% cat and {100 * score:.2f}% dog.")
