"""Augmentation datasets from public code that repeat random streams in Keras's worker
processes, and their correct twins (module level, so that worker processes find them).

* Keras's own legacy ``ImageDataGenerator.flow(seed=...)``, used as installed: its
  ``Iterator.__getitem__`` reseeds NumPy's global state with ``seed +
  total_batches_seen``, a counter each forked worker has a copy of.
* keras-retinanet's ``Generator``, which keeps a ``RandomState`` inside a Python generator
  object (``self.transform_generator``), made in the parent on the first ``next()``.

Every image of a dataset here is the same synthetic image, so that an augmented image
shows only the random draws that made it: two equal augmented images are one draw
repeated. With ``folder``, each augmented image (or transform) is saved there.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
from keras.src.legacy.preprocessing.image import (  # noqa: E402
    ImageDataGenerator,
    NumpyArrayIterator,
)

SIZE = 8


def _image():
    """One 8x8 grey-scale image with structure in both directions (a rotation shows)."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return (rows * SIZE + cols * cols)[..., None] / (SIZE * SIZE)


def _save(folder, array):
    if folder is not None:
        np.save(os.path.join(folder, f"{uuid.uuid4().hex}.npy"), np.asarray(array))


class FirstCallBarrier:
    """Makes each worker process's first call wait for the other worker's first call (a
    barrier shared by fork, as in tests/random_datasets.py), so that both workers of every
    epoch draw: the interleaving is forced, not hoped for. Saves what it is given."""

    def __init__(self, processes, folder=None):
        self.home = self.started_in = os.getpid()
        self.barrier = multiprocessing.Barrier(2) if processes else None
        self.folder = folder

    def __call__(self, array):
        if self.barrier is not None and os.getpid() not in (self.home, self.started_in):
            self.started_in = os.getpid()
            self.barrier.wait(timeout=600)
        _save(self.folder, array)
        return array


# -- Keras's ImageDataGenerator ---------------------------------------------------------


def _datagen(processes, folder):
    return ImageDataGenerator(
        rotation_range=30,
        width_shift_range=0.2,
        height_shift_range=0.2,
        zoom_range=0.2,
        preprocessing_function=FirstCallBarrier(processes, folder),
    )


def _arrays(count):
    x = np.repeat(_image()[None], count, axis=0)
    y = np.arange(count, dtype=np.float32)[:, None] / count
    return x, y


def _set_workers(flow, workers):
    # Keras 3's PyDataset reads these attributes; flow() does not take them.
    for name, value in workers.items():
        setattr(flow, name, value)
    return flow


def image_flow(seed=None, folder=None, count=16, batch_size=4, **workers):
    """``ImageDataGenerator(...).flow(x, y, seed=seed)`` on identical images, with
    ``workers``/``use_multiprocessing`` set as attributes. The barrier is its
    ``preprocessing_function``, called per image in the process that makes the batch."""
    datagen = _datagen(bool(workers.get("use_multiprocessing")), folder)
    flow = datagen.flow(*_arrays(count), batch_size=batch_size, seed=seed)
    return _set_workers(flow, workers)


def tf_keras_image_flow(seed=None, folder=None, count=16, batch_size=4):
    """``image_flow`` with tf_keras's own ImageDataGenerator (the same Iterator code), for
    ``fit(..., workers=2, use_multiprocessing=True)``; imports tf_keras."""
    import tf_keras

    datagen = tf_keras.preprocessing.image.ImageDataGenerator(
        rotation_range=30,
        width_shift_range=0.2,
        height_shift_range=0.2,
        zoom_range=0.2,
        preprocessing_function=FirstCallBarrier(True, folder),
    )
    return datagen.flow(*_arrays(count), batch_size=batch_size, seed=seed)


class PerWorkerFlow(NumpyArrayIterator):
    """Correct: Keras's NumpyArrayIterator whose first call in each process moves
    ``self.seed`` to a seed of its own (from a SeedSequence of the seed and the process),
    so that ``seed + total_batches_seen`` differs from worker to worker."""

    def __getitem__(self, idx):
        if getattr(self, "seeded_in", None) != os.getpid():
            self.seeded_in = os.getpid()
            sequence = np.random.SeedSequence([self.base_seed, os.getpid()])
            self.seed = int(sequence.generate_state(1)[0] >> 2)
        return super().__getitem__(idx)


def image_flow_per_worker(seed=1, folder=None, count=16, batch_size=4, **workers):
    """The twin of ``image_flow(seed=seed)``, made as ``flow()`` makes its iterator."""
    datagen = _datagen(bool(workers.get("use_multiprocessing")), folder)
    flow = PerWorkerFlow(*_arrays(count), datagen, batch_size=batch_size, shuffle=True, seed=seed)
    flow.base_seed = seed
    return _set_workers(flow, workers)


# -- keras-retinanet's Generator ----------------------------------------------------------
# Reduced from fizyr/keras-retinanet (Apache License 2.0, Copyright 2017-2018 Fizyr):
# keras_retinanet/utils/transform.py (random_transform, random_transform_generator) and
# keras_retinanet/preprocessing/generator.py (Generator.__getitem__,
# random_transform_group_entry), with synthetic images and boxes, a nearest-neighbour
# warp instead of cv2.warpAffine, and the anchors left out.

DEFAULT_PRNG = np.random


def _random_vector(low, high, prng=DEFAULT_PRNG):
    return prng.uniform(np.array(low), np.array(high))


def _rotation(angle):
    return np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )


def _translation(vector):
    return np.array([[1, 0, vector[0]], [0, 1, vector[1]], [0, 0, 1]])


def _shear(angle):
    return np.array([[1, -np.sin(angle), 0], [0, np.cos(angle), 0], [0, 0, 1]])


def _scaling(factor):
    return np.array([[factor[0], 0, 0], [0, factor[1], 0], [0, 0, 1]])


def _random_flip(flip_x_chance, flip_y_chance, prng=DEFAULT_PRNG):
    flip_x = prng.uniform(0, 1) < flip_x_chance
    flip_y = prng.uniform(0, 1) < flip_y_chance
    return _scaling((1 - 2 * flip_x, 1 - 2 * flip_y))


def random_transform(
    min_rotation=0,
    max_rotation=0,
    min_translation=(0, 0),
    max_translation=(0, 0),
    min_shear=0,
    max_shear=0,
    min_scaling=(1, 1),
    max_scaling=(1, 1),
    flip_x_chance=0,
    flip_y_chance=0,
    prng=DEFAULT_PRNG,
):
    """A random affine transform (3x3), as keras-retinanet's ``random_transform``."""
    return np.linalg.multi_dot(
        [
            _rotation(prng.uniform(min_rotation, max_rotation)),
            _translation(_random_vector(min_translation, max_translation, prng)),
            _shear(prng.uniform(min_shear, max_shear)),
            _scaling(_random_vector(min_scaling, max_scaling, prng)),
            _random_flip(flip_x_chance, flip_y_chance, prng),
        ]
    )


def random_transform_generator(prng=None, **kwargs):
    """keras-retinanet's ``random_transform_generator``: a dedicated ``RandomState``,
    made on the first ``next()``."""
    if prng is None:
        # RandomState automatically seeds using the best available method.
        prng = np.random.RandomState()
    while True:
        yield random_transform(prng=prng, **kwargs)


AUGMENT = {
    "min_rotation": -0.1,
    "max_rotation": 0.1,
    "min_translation": (-0.1, -0.1),
    "max_translation": (0.1, 0.1),
    "min_scaling": (0.9, 0.9),
    "max_scaling": (1.1, 1.1),
    "flip_x_chance": 0.5,
}


def _warp(image, transform):
    """Nearest-neighbour affine warp about the image centre (for cv2.warpAffine)."""
    centre = (SIZE - 1) / 2
    inverse = np.linalg.inv(transform)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    points = np.stack([cols.ravel() - centre, rows.ravel() - centre, np.ones(SIZE * SIZE)])
    source = inverse @ points
    x = np.clip(np.rint(source[0] + centre), 0, SIZE - 1).astype(int)
    y = np.clip(np.rint(source[1] + centre), 0, SIZE - 1).astype(int)
    return image[y, x].reshape(image.shape)


def _transform_aabb(transform, box):
    x1, y1, x2, y2 = box
    points = transform.dot([[x1, x2, x1, x2], [y1, y2, y2, y1], [1, 1, 1, 1]])
    low, high = points.min(axis=1), points.max(axis=1)
    return [low[0], low[1], high[0], high[1]]


class RetinaGenerator(keras.utils.PyDataset):
    """keras-retinanet's ``Generator`` (a ``keras.utils.Sequence``), reduced: groups of
    images, each transformed by ``next(self.transform_generator)`` with its box."""

    def __init__(self, transform_generator=None, count=32, batch_size=2, folder=None, **kwargs):
        super().__init__(**kwargs)
        self.transform_generator = transform_generator
        self.batch_size = batch_size
        self.groups = [list(range(i, i + batch_size)) for i in range(0, count, batch_size)]
        self.image = _image()
        self.box = np.array([2.0, 2.0, 5.0, 6.0])
        self.first_call = FirstCallBarrier(kwargs.get("use_multiprocessing", False))
        self.folder = folder

    def __len__(self):
        return len(self.groups)

    def random_transform_group_entry(self, image, annotations):
        # randomly transform both image and annotations
        if self.transform_generator:
            transform = next(self.transform_generator)
            _save(self.folder, transform)
            image = _warp(image, transform)
            annotations = np.array(_transform_aabb(transform, annotations - 3.5)) + 3.5
        return image, annotations

    def __getitem__(self, index):
        self.first_call(None)
        group = self.groups[index]
        entries = [self.random_transform_group_entry(self.image, self.box) for _ in group]
        images = np.stack([image for image, _ in entries]).astype(np.float32)
        boxes = np.stack([box for _, box in entries]).astype(np.float32) / SIZE
        return images, boxes


class RetinaPerWorker(RetinaGenerator):
    """Correct: the first call in each worker process gives the generator a RandomState of
    its own (from a SeedSequence of the process), as a worker initializer would."""

    def __getitem__(self, index):
        if getattr(self, "seeded_in", None) != os.getpid():
            self.seeded_in = os.getpid()
            seed = np.random.SeedSequence([0, os.getpid()]).generate_state(4)
            prng = np.random.RandomState(seed)
            self.transform_generator = random_transform_generator(prng=prng, **AUGMENT)
        return super().__getitem__(index)


def retina(folder=None, **workers):
    """The dataset as keras-retinanet's train.py makes it (a transform generator)."""
    return RetinaGenerator(random_transform_generator(**AUGMENT), folder=folder, **workers)


def retina_per_worker(folder=None, **workers):
    """The correct twin."""
    return RetinaPerWorker(random_transform_generator(**AUGMENT), folder=folder, **workers)


def image_model(outputs=1):
    """A Dense on flattened 8x8 images."""
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 1)), keras.layers.Flatten(), keras.layers.Dense(outputs)]
    )
    model.compile(loss="mse", optimizer="sgd")
    return model


def draws(folder):
    """What was saved in ``folder``, as bytes, one entry per draw."""
    return [np.load(os.path.join(folder, name)).tobytes() for name in sorted(os.listdir(folder))]
