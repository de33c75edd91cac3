"""Timeseries anomaly detection using an Autoencoder, ported with a synthetic series.

Source: keras-team/keras-io, examples/timeseries/timeseries_anomaly_detection.py
(pavithrasv).
Kept: a pandas DataFrame of one value every 5 minutes, standardized with the training
mean and std (the test series with the training statistics); windows of TIME_STEPS=288
values; the Conv1D / Conv1DTranspose reconstruction autoencoder with "mse"; fit with
x_train as input and target and validation_split=0.1 with EarlyStopping; predict on the
training windows to set the threshold; predict on the test windows, which hold a jump up
(the anomaly the example finds).
Changed: the NAB files (art_daily_small_noise.csv, art_daily_jumpsup.csv) are replaced
by a daily pattern with noise (4 days instead of 14) and the same pattern with a jump
up; 2 epochs.
"""

import numpy as np
import pandas as pd
from tensorflow import keras
from tensorflow.keras import layers

rng = np.random.default_rng(5)


def daily_series(days, jump=False):
    """A NAB-like daily pattern: low at night, high by day, with small noise."""
    n = 288 * days
    index = pd.date_range("2014-04-01", periods=n, freq="5min", name="timestamp")
    step = np.arange(n) % 288
    value = np.where((step > 100) & (step < 200), 80.0, 20.0) + rng.normal(0, 2, size=n)
    if jump:
        value[int(n * 0.6) : int(n * 0.6) + 20] += 80  # the jump up
    return pd.DataFrame({"value": value}, index=index)


df_small_noise = daily_series(4)
df_daily_jumpsup = daily_series(4, jump=True)

training_mean = df_small_noise.mean()
training_std = df_small_noise.std()
df_training_value = (df_small_noise - training_mean) / training_std

TIME_STEPS = 288


def create_sequences(values, time_steps=TIME_STEPS):
    output = []
    for i in range(len(values) - time_steps + 1):
        output.append(values[i : (i + time_steps)])
    return np.stack(output)


x_train = create_sequences(df_training_value.values)
print("Training input shape: ", x_train.shape)

model = keras.Sequential(
    [
        layers.Input(shape=(x_train.shape[1], x_train.shape[2])),
        layers.Conv1D(filters=32, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Dropout(rate=0.2),
        layers.Conv1D(filters=16, kernel_size=7, padding="same", strides=2, activation="relu"),
        layers.Conv1DTranspose(
            filters=16, kernel_size=7, padding="same", strides=2, activation="relu"
        ),
        layers.Dropout(rate=0.2),
        layers.Conv1DTranspose(
            filters=32, kernel_size=7, padding="same", strides=2, activation="relu"
        ),
        layers.Conv1DTranspose(filters=1, kernel_size=7, padding="same"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")

history = model.fit(
    x_train,
    x_train,
    epochs=2,
    batch_size=128,
    validation_split=0.1,
    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, mode="min")],
    verbose=0,
)

# Get train MAE loss.
x_train_pred = model.predict(x_train, verbose=0)
train_mae_loss = np.mean(np.abs(x_train_pred - x_train), axis=1)
threshold = np.max(train_mae_loss)
print("Reconstruction error threshold: ", threshold)

df_test_value = (df_daily_jumpsup - training_mean) / training_std
x_test = create_sequences(df_test_value.values)
x_test_pred = model.predict(x_test, verbose=0)
test_mae_loss = np.mean(np.abs(x_test_pred - x_test), axis=1).reshape(-1)
anomalies = test_mae_loss > threshold
print("Number of anomaly samples: ", np.sum(anomalies))
