"""PyTorch datasets that keep (or do not keep) a random state, for the worker tests.

The first ones are made up to show each case; the "ported" ones follow public projects'
code with synthetic data (sources in each docstring). Module level, so that spawned
workers could import them too.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

N = 16  # items per dataset


def noise_of(batches):
    """The noise column of each batch, as tuples."""
    return [tuple(b[:, 1].tolist()) for b in batches]


class _Items(Dataset):
    """Items ``[index, noise]`` (float64), the noise from ``draw()``."""

    def __len__(self):
        return N

    def __getitem__(self, index):
        return torch.tensor([index, self.draw()], dtype=torch.float64)


# -- Reported: a random state made in __init__, copied into every worker ---------------


class GeneratorNoise(_Items):
    """A numpy Generator made in ``__init__``."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def draw(self):
        return self.rng.normal()


class RandomStateNoise(_Items):
    """A legacy ``RandomState`` made in ``__init__``."""

    def __init__(self):
        self.state = np.random.RandomState(0)

    def draw(self):
        return self.state.uniform()


class PythonRandomNoise(_Items):
    """A ``random.Random`` made in ``__init__``."""

    def __init__(self):
        self.random = random.Random(0)

    def draw(self):
        return self.random.random()


class TorchGeneratorNoise(_Items):
    """A ``torch.Generator`` made in ``__init__`` (PR pytorch#107756 to reseed these in
    workers was backed out)."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(0)

    def draw(self):
        return float(torch.rand((), generator=self.generator))


class GlobalNoise(_Items):
    """NumPy's global state: PyTorch reseeds it in each worker (silent)."""

    def draw(self):
        return np.random.normal()


class PerWorkerGenerator(_Items):
    """A Generator made in each worker from PyTorch's seed for it (silent)."""

    def __init__(self):
        self.rng = None

    def draw(self):
        if self.rng is None:
            self.rng = np.random.default_rng(get_worker_info().seed)
        return self.rng.normal()


class IndexSeeded(_Items):
    """A Generator made for each item from a seed and the index (silent)."""

    def draw(self):
        return self.index_rng.normal()

    def __getitem__(self, index):
        self.index_rng = np.random.default_rng([7, index])
        return super().__getitem__(index)


class NoiseStream(IterableDataset):
    """An IterableDataset split between workers, drawing from a Generator made in
    ``__init__`` (reported: every worker's copy draws the same noise)."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for index in range(start, N, step):
            yield torch.tensor([index, self.rng.normal()], dtype=torch.float64)


def constant_seed(worker_id):
    """A worker_init_fn that seeds NumPy's global state to one value in every worker."""
    np.random.seed(0)


def seed_like_lightning(worker_id, rank=None):
    """Lightning's ``pl_worker_init_function`` (lightning_fabric/utilities/seed.py),
    ported: seeds NumPy, torch and ``random`` from the worker's PyTorch seed, the worker
    id and the rank, through a SeedSequence (silent)."""
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    base_seed = torch.initial_seed() - worker_id  # PyTorch seeds base_seed + worker_id
    sequence = np.random.SeedSequence([base_seed, worker_id, rank])
    np.random.seed(sequence.generate_state(4))
    for_torch, for_random = sequence.spawn(2)
    torch.manual_seed(int(for_torch.generate_state(1, dtype=np.uint64)[0]))
    high, low = (int(v) for v in for_random.generate_state(2, dtype=np.uint64))
    random.seed((high << 64) | low)


def reseed_dataset(worker_id):
    """A worker_init_fn that gives the worker's dataset copy a Generator of its own."""
    info = get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed)


# -- Ported from public projects, with synthetic data -----------------------------------


class SeededCompose:
    """albumentations ``Compose(..., seed=42)`` (albumentations-team/albumentations#2559,
    AlbumentationsX#266): the pipeline keeps a NumPy Generator and a ``random.Random``
    seeded once, which every worker copies."""

    def __init__(self, p=0.5, seed=42):
        self.p = p
        self.random_generator = np.random.default_rng(seed)
        self.py_random = random.Random(seed)

    def __call__(self, image):
        if self.py_random.random() < self.p:
            image = image[:, ::-1]
        shift = self.random_generator.uniform(-1, 1)
        return image + shift


class AugmentedImages(Dataset):
    """The issue's ``DeterministicDS``: a dataset holding the seeded pipeline."""

    def __init__(self):
        self.aug = SeededCompose()
        self.images = np.arange(N * 4, dtype=np.float32).reshape(N, 2, 2)

    def __len__(self):
        return N

    def __getitem__(self, index):
        return torch.from_numpy(np.ascontiguousarray(self.aug(self.images[index])))


class Seedable:
    """torchsig's ``Seedable`` (torchsig/utils/random.py): an object with a NumPy and a
    torch generator, seeded once; children share the parent's generators
    (TorchDSP/torchsig#343: "each worker generates the same sequence of random numbers")."""

    def __init__(self, seed=None, parent=None):
        self.children = []
        self.parent = None
        if parent is not None:
            self.parent = parent
            parent.children.append(self)
            self.np_rng = parent.np_rng
            self.torch_rng = parent.torch_rng
        else:
            self.np_rng = np.random.default_rng(seed)
            self.torch_rng = torch.Generator()
            self.torch_rng.manual_seed((seed or 0) + 13)
        self.random_generator = self.np_rng


class AddNoise(Seedable):
    """A torchsig-style transform drawing from the generators it shares with its parent."""

    def __call__(self, signal):
        return (
            signal + float(self.np_rng.normal()) + float(torch.randn((), generator=self.torch_rng))
        )


class SignalDataset(Seedable, Dataset):
    """A torchsig-style dataset: Seedable, with its transforms as children."""

    def __init__(self, seed=1234):
        super().__init__(seed=seed)
        self.transforms = [AddNoise(parent=self)]
        self.signals = np.zeros((N, 4), dtype=np.float32)

    def __len__(self):
        return N

    def __getitem__(self, index):
        signal = torch.from_numpy(self.signals[index])
        for transform in self.transforms:
            signal = transform(signal)
        return signal


def pytorch_docs_seed_worker(worker_id):
    """The ``seed_worker`` of PyTorch's reproducibility notes
    (docs/source/notes/randomness.rst): NumPy and ``random`` from ``torch.initial_seed()``."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class RandomCrop(Dataset):
    """The ``RandomCrop`` of PyTorch's data-loading tutorial (pytorch/tutorials#1121),
    cropping with ``np.random.randint``: NumPy's global state, reseeded per worker by
    PyTorch (silent)."""

    def __init__(self, size=2):
        self.size = size
        self.images = np.arange(N * 16, dtype=np.float32).reshape(N, 4, 4)

    def __len__(self):
        return N

    def __getitem__(self, index):
        image = self.images[index]
        top = np.random.randint(0, 4 - self.size)
        left = np.random.randint(0, 4 - self.size)
        return torch.from_numpy(image[top : top + self.size, left : left + self.size].copy())
