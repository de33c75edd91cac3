"""Text classification from scratch (IMDB), ported with synthetic reviews.

Source: keras-team/keras-io, examples/nlp/text_classification_from_scratch.py
(Mark Omernick, Francois Chollet).
Kept: text files in pos/neg folders read by text_dataset_from_directory (training and
validation subsets of one folder with validation_split=0.2 and one seed, a separate test
folder); a custom standardization stripping "<br />" and punctuation; TextVectorization
adapted on the text-only dataset; the vectorizing map, then cache().prefetch(); the
Embedding / Conv1D / GlobalMaxPooling1D model with a sigmoid Dense(1);
"binary_crossentropy"; fit with validation_data; evaluate; the end-to-end model taking
raw strings, evaluated on the raw test dataset.
Changed: short random reviews from two word lists written to a temporary folder,
smaller vocabulary, sequence length and layers, 2 epochs.
"""

import os
import re
import string
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

rng = np.random.default_rng(4)
GOOD = "great wonderful superb moving brilliant loved fun charming".split()
BAD = "awful boring dull terrible waste hated weak clumsy".split()
COMMON = "the movie film actor plot scene story was and a it this".split()

dataset_dir = os.path.join(tempfile.mkdtemp(), "aclImdb")
for split, n in (("train", 60), ("test", 20)):
    for label, words in (("pos", GOOD), ("neg", BAD)):
        folder = os.path.join(dataset_dir, split, label)
        os.makedirs(folder)
        for i in range(n):
            tokens = rng.choice(COMMON + words, size=int(rng.integers(8, 30)))
            text = " ".join(tokens).capitalize() + ".<br /><br />" + " ".join(tokens[:5]) + "!"
            with open(os.path.join(folder, f"{i}_7.txt"), "w") as file:
                file.write(text)

batch_size = 16
train_dir = os.path.join(dataset_dir, "train")
test_dir = os.path.join(dataset_dir, "test")

raw_train_ds = keras.utils.text_dataset_from_directory(
    train_dir,
    batch_size=batch_size,
    validation_split=0.2,
    subset="training",
    seed=1337,
    class_names=["pos", "neg"],
)
raw_val_ds = keras.utils.text_dataset_from_directory(
    train_dir,
    batch_size=batch_size,
    validation_split=0.2,
    subset="validation",
    seed=1337,
    class_names=["pos", "neg"],
)
raw_test_ds = keras.utils.text_dataset_from_directory(test_dir, batch_size=batch_size)


def custom_standardization(input_data):
    lowercase = tf.strings.lower(input_data)
    stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    return tf.strings.regex_replace(stripped_html, f"[{re.escape(string.punctuation)}]", "")


max_features = 200
embedding_dim = 16
sequence_length = 40

vectorize_layer = keras.layers.TextVectorization(
    standardize=custom_standardization,
    max_tokens=max_features,
    output_mode="int",
    output_sequence_length=sequence_length,
)
text_ds = raw_train_ds.map(lambda x, y: x)
vectorize_layer.adapt(text_ds)


def vectorize_text(text, label):
    text = tf.expand_dims(text, -1)
    return vectorize_layer(text), label


train_ds = raw_train_ds.map(vectorize_text)
val_ds = raw_val_ds.map(vectorize_text)
test_ds = raw_test_ds.map(vectorize_text)

train_ds = train_ds.cache().prefetch(buffer_size=10)
val_ds = val_ds.cache().prefetch(buffer_size=10)
test_ds = test_ds.cache().prefetch(buffer_size=10)

inputs = keras.Input(shape=(None,), dtype="int64")
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(0.5)(x)
x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)
x = layers.Dense(16, activation="relu")(x)
x = layers.Dropout(0.5)(x)
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)

model = keras.Model(inputs, predictions)
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

epochs = 2
model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0)
model.evaluate(test_ds, verbose=0)

# A string input
inputs = keras.Input(shape=(1,), dtype="string")
indices = vectorize_layer(inputs)
outputs = model(indices)
end_to_end_model = keras.Model(inputs, outputs)
end_to_end_model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
print(end_to_end_model.evaluate(raw_test_ds, verbose=0))
