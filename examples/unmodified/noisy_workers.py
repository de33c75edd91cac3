"""An augmentation PyDataset in 2 worker processes, drawing its noise from NumPy's global
state: every worker starts from a copy of one state, so batches share their noise and
the second epoch replays the first. No safegen here:

    python -m safegen run examples/unmodified/noisy_workers.py              # reports it
    python -m safegen run --mode copy examples/unmodified/noisy_workers.py  # reseeds workers

With NOISE_DIR set, every batch's noise is also saved there (the tests count them). The
points are drawn in [0, 1), as a careful user scales inputs, so that the small model
visibly learns (it prints its loss per epoch).
"""

import os
import uuid

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np


class NoisyPoints(keras.utils.PyDataset):
    def __init__(self, batches=8, batch_size=32, **kwargs):
        super().__init__(**kwargs)
        self.batches, self.batch_size = batches, batch_size
        self.x = np.random.default_rng(0).uniform(0, 1, (batches * batch_size, 2))
        self.folder = os.environ.get("NOISE_DIR")

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        x = self.x[index * self.batch_size : (index + 1) * self.batch_size]
        noise = np.random.normal(0, 0.01, x.shape)  # augmentation: jitter every point
        if self.folder:
            np.save(os.path.join(self.folder, f"{uuid.uuid4().hex}.npy"), noise)
        x = (x + noise).astype("float32")
        return x, x.mean(axis=1, keepdims=True)


if __name__ == "__main__":
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.1))
    data = NoisyPoints(workers=2, use_multiprocessing=True)
    history = model.fit(data, epochs=3, verbose=0)
    print("trained; loss per epoch:", [f"{loss:.2g}" for loss in history.history["loss"]])
