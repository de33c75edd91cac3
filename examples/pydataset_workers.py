"""A Keras PyDataset that writes every batch into `self.x`, read by 4 worker threads.

Workers run ahead of training and share the instance: a batch is overwritten by another
worker, sometimes before `__getitem__` even returns. safegen's copy mode serializes the
calls and copies each batch; check mode reports the race. Every guard below pins its
mode, so the SAFEGEN_MODE environment variable does not change what this shows.

Run: python examples/pydataset_workers.py
"""

from __future__ import annotations

import os
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import safegen  # noqa: E402


class MeanBatches(keras.utils.PyDataset):
    def __init__(self, batches=60, batch_size=32, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches
        self.x = np.zeros((batch_size, 2), np.float32)  # one buffer for every batch
        self.y = np.zeros((batch_size, 1), np.float32)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        values = np.random.default_rng(index).integers(0, 100, self.x.shape)
        self.x[:] = values
        time.sleep(0.001)  # some real work: reading, augmenting...
        self.y[:, 0] = values.mean(axis=1)
        return self.x, self.y


def mismatched_fraction(dataset):
    """Fraction of the batches fit trained on whose inputs did not match their targets."""
    inputs = keras.Input((2,))
    mean = keras.layers.Lambda(
        lambda t: keras.ops.expand_dims((t[:, 0] + t[:, 1]) / 2, -1), output_shape=(1,)
    )
    model = keras.Model(inputs, mean(inputs))

    def mismatched(y_true, y_pred):
        return keras.ops.cast(keras.ops.any(keras.ops.abs(y_true - y_pred) > 1e-3), "float32")

    model.compile(loss="mse", optimizer="rmsprop", metrics=[mismatched])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(dataset, epochs=1, verbose=0).history["mismatched"][0]


def main():
    plain = mismatched_fraction(MeanBatches(workers=4))
    print(f"plain, workers=4:        {plain:.0%} of batches mismatched")
    copied = mismatched_fraction(safegen.guard(MeanBatches(workers=4), mode="copy"))
    print(f"guard(copy), workers=4:  {copied:.0%} of batches mismatched")
    try:
        mismatched_fraction(safegen.guard(MeanBatches(workers=4), mode="check"))
        print("guard(check), workers=4: found nothing")
    except Exception as error:  # AliasingError, or TensorFlow's error carrying its message
        text = str(error)
        print("guard(check), workers=4:", text[text.find("MeanBatches") :].split(". ")[0] + ".")


if __name__ == "__main__":
    main()
