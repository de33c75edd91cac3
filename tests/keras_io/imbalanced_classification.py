"""Imbalanced classification: credit card fraud detection, ported with a synthetic CSV.

Source: keras-team/keras-io, examples/structured_data/imbalanced_classification.py
(fchollet).
Kept: a CSV of 30 float features (Time, V1..V28, Amount) and a quoted 0/1 class read line
by line; the last 20% of the rows (in time order) as validation data; class weights from
the training counts; standardization with the training mean and std applied to both;
the Dense(256) x3 / Dropout model with a sigmoid head, "binary_crossentropy",
Adam(1e-2) and the confusion-matrix metrics; a ModelCheckpoint callback; fit with
batch_size=2048, validation_data=(val_features, val_targets) and class_weight.
Changed: the Kaggle file is replaced by synthetic transactions (Time increasing over two
days, heavy-tailed V features, a log-normal Amount, 0.5% frauds shifted in a few V
features) in a temporary folder, 6000 rows, 2 epochs.
"""

import os
import tempfile

import numpy as np

rng = np.random.default_rng(7)
folder = tempfile.mkdtemp()
fname = os.path.join(folder, "creditcard.csv")
rows = 6000
time = np.sort(rng.uniform(0, 172_792, rows))
v = rng.standard_t(df=4, size=(rows, 28))
amount = np.round(rng.lognormal(3.0, 1.5, rows), 2)
fraud = rng.random(rows) < 0.005
v[fraud, :5] -= 4.0
with open(fname, "w") as f:
    header = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
    f.write(",".join(f'"{h}"' for h in header) + "\n")
    for t, vs, a, c in zip(time, v, amount, fraud, strict=True):
        f.write(",".join([f"{t:.0f}", *(f"{x:.6f}" for x in vs), f"{a:.2f}", f'"{int(c)}"']))
        f.write("\n")

all_features = []
all_targets = []
with open(fname) as f:
    for i, line in enumerate(f):
        if i == 0:
            print("HEADER:", line.strip())
            continue  # Skip header
        fields = line.strip().split(",")
        all_features.append([float(v.replace('"', "")) for v in fields[:-1]])
        all_targets.append([int(fields[-1].replace('"', ""))])

features = np.array(all_features, dtype="float32")
targets = np.array(all_targets, dtype="uint8")
print("features.shape:", features.shape)

num_val_samples = int(len(features) * 0.2)
train_features = features[:-num_val_samples]
train_targets = targets[:-num_val_samples]
val_features = features[-num_val_samples:]
val_targets = targets[-num_val_samples:]

counts = np.bincount(train_targets[:, 0])
print(f"Number of positive samples in training data: {counts[1]}")

weight_for_0 = 1.0 / counts[0]
weight_for_1 = 1.0 / counts[1]

mean = np.mean(train_features, axis=0)
train_features -= mean
val_features -= mean
std = np.std(train_features, axis=0)
train_features /= std
val_features /= std

import keras  # noqa: E402 - imported where the example imports it

model = keras.Sequential(
    [
        keras.Input(shape=train_features.shape[1:]),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)

metrics = [
    keras.metrics.FalseNegatives(name="fn"),
    keras.metrics.FalsePositives(name="fp"),
    keras.metrics.TrueNegatives(name="tn"),
    keras.metrics.TruePositives(name="tp"),
    keras.metrics.Precision(name="precision"),
    keras.metrics.Recall(name="recall"),
]

model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics)

callbacks = [
    keras.callbacks.ModelCheckpoint(os.path.join(folder, "fraud_model_at_epoch_{epoch}.keras"))
]
class_weight = {0: weight_for_0, 1: weight_for_1}

model.fit(
    train_features,
    train_targets,
    batch_size=2048,
    epochs=2,
    verbose=0,
    callbacks=callbacks,
    validation_data=(val_features, val_targets),
    class_weight=class_weight,
)
