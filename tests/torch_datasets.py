"""PyTorch datasets for tests/test_torch_data.py: small ones of our own, and dataset classes
from public PyTorch projects, ported with synthetic data (each names its source).

In a module of its own so that DataLoader worker processes find the classes by name.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset, get_worker_info

N = 16  # items per dataset
ROW = 8  # floats per item


def rows(n: int = N, width: int = ROW) -> np.ndarray:
    """Synthetic data: row i holds i, i + 0.01, ...: every row differs from the others."""
    return np.arange(n, dtype=np.float32)[:, None] + np.arange(width, dtype=np.float32) / 100


# -- Our own: the bug and its correct twin ----------------------------------------------


class ReusedBuffer(Dataset):
    """The bug: one buffer, filled by __getitem__ and returned every time."""

    def __init__(self, n: int = N) -> None:
        self.data = rows(n)
        self.buffer = np.zeros(ROW, np.float32)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        self.buffer[:] = self.data[index]
        return self.buffer, index


class FreshArrays(ReusedBuffer):
    """The correct twin: a new array per item."""

    def __getitem__(self, index: int):
        return self.data[index].copy(), index


class ReusedTensor(ReusedBuffer):
    """The bug with a torch tensor as the buffer."""

    def __init__(self, n: int = N) -> None:
        super().__init__(n)
        self.tensor = torch.zeros(ROW)

    def __getitem__(self, index: int):
        self.tensor.copy_(torch.from_numpy(self.data[index]))
        return self.tensor, index


class ReusedBfloat16(ReusedBuffer):
    """The bug with a bfloat16 tensor (a dtype NumPy lacks) that requires grad."""

    def __init__(self, n: int = N) -> None:
        super().__init__(n)
        self.tensor = torch.zeros(ROW, dtype=torch.bfloat16, requires_grad=True)

    def __getitem__(self, index: int):
        with torch.no_grad():
            self.tensor.copy_(torch.from_numpy(self.data[index]))
        return self.tensor, index


Pair = namedtuple("Pair", "x y")


class ReusedInDict(ReusedBuffer):
    """The bug inside a dict item."""

    def __getitem__(self, index: int):
        self.buffer[:] = self.data[index]
        return {"x": self.buffer, "y": index}


class ReusedInNamedtuple(ReusedBuffer):
    """The bug inside a namedtuple item."""

    def __getitem__(self, index: int):
        self.buffer[:] = self.data[index]
        return Pair(self.buffer, index)


class FreshInDict(ReusedBuffer):
    """Correct: a dict of fresh arrays."""

    def __getitem__(self, index: int):
        return {"x": self.data[index].copy(), "y": np.array(index)}


class Unsplit(IterableDataset):
    """The bug: every DataLoader worker iterates all of the items."""

    def __init__(self, n: int = N) -> None:
        self.data = rows(n)

    def __iter__(self):
        for row in self.data:
            yield row.copy()


class SplitByWorker(Unsplit):
    """The correct twin: each worker takes every num_workers-th item."""

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for row in self.data[start::step]:
            yield row.copy()


class ReusedInIterator(Unsplit):
    """An IterableDataset that refills one buffer and yields it."""

    def __iter__(self):
        buffer = np.zeros(ROW, np.float32)
        for row in self.data:
            buffer[:] = row
            yield buffer


# -- Ported from public PyTorch projects, with synthetic data ----------------------------


class NeroTorchData(Dataset):
    """saswat-s/Nero, helper_classes.py ``TorchData``: tensors indexed per item."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.X = X
        self.y = y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, idx):
        if torch.is_tensor(idx):
            idx = idx.tolist()
        x = self.X[idx]
        y = self.y[idx]
        return x, y


class GansImageDataset(torch.utils.data.Dataset):
    """tony-mtz/gans_template, utils/data.py ``Image_Dataset``: reshape and astype per item
    (MNIST-sized images)."""

    def __init__(self, images, train=True, labels=None):
        self.images = images
        self.train = train
        self.labels = labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        image = self.images[idx]
        image = image.reshape((1, 28, 28)).astype(np.float32)
        if self.labels:
            label = 1
            return (image, label)
        return image


class GansImageDatasetBuffered(GansImageDataset):
    """The same, changed by us to save the allocation per item: it preprocesses into one
    preallocated array (the bug; no public instance of this exact code was found)."""

    def __init__(self, images, train=True, labels=None):
        super().__init__(images, train, labels)
        self.image = np.empty((1, 28, 28), np.float32)

    def __getitem__(self, idx):
        self.image[...] = self.images[idx].reshape((1, 28, 28))
        if self.labels:
            label = 1
            return (self.image, label)
        return self.image


class FedAvgTorchDataset(torch.utils.data.Dataset):
    """KindEmily/Using-Torch-FedAvg-on-MNIST-dataset, src/torch_dataset.py
    ``TorchDataset``: a new tensor per item, one-hot labels."""

    def __init__(self, data_from_opener, is_inference: bool):
        self.x = data_from_opener["images"]
        self.y = data_from_opener["labels"]
        self.is_inference = is_inference

    def __getitem__(self, idx):
        if self.is_inference:
            x = torch.FloatTensor(self.x[idx][None, ...]) / 255
            return x
        else:
            x = torch.FloatTensor(self.x[idx][None, ...]) / 255
            y = torch.tensor(self.y[idx]).type(torch.int64)
            y = F.one_hot(y, 10)
            y = y.type(torch.float32)
            return x, y

    def __len__(self):
        return len(self.x)


class ReplayBuffer(Dataset):
    """An RL replay buffer as a Dataset (public, e.g. the ``ReplayBuffer(Dataset)`` found by
    the search tool): preallocated NumPy memory, one view of a row per field and item."""

    def __init__(self, mem_size):
        self.memory = []
        self.mem_size = int(mem_size)
        self.counter = 0

    def __len__(self):
        return min(self.mem_size, self.counter)

    def __getitem__(self, idx):
        data = []
        for item in self.memory:
            data.append(item[idx])
        return (*data,)

    def push(self, data):
        if self.counter == 0:
            self.memory = []
            for i in range(len(data)):
                self.memory.append(np.zeros((self.mem_size, *data[i].shape), data[i].dtype))
        for i in range(len(data)):
            self.memory[i][self.counter % self.mem_size] = data[i]
        self.counter += 1


class DocsIterableDataset(torch.utils.data.IterableDataset):
    """PyTorch's own example of splitting with get_worker_info() (the IterableDataset
    docstring; also curtkim/pytorch-first, pytorch/13_iteratable_dataset.py), yielding
    rows of synthetic data instead of ints."""

    def __init__(self, start, end):
        super().__init__()
        assert end > start, "this example code only works with end >= start"
        self.start = start
        self.end = end
        self.data = rows(end)

    def __iter__(self):
        worker_info = torch.utils.data.get_worker_info()
        if worker_info is None:  # single-process data loading, return the full iterator
            iter_start = self.start
            iter_end = self.end
        else:  # in a worker process
            per_worker = int(math.ceil((self.end - self.start) / float(worker_info.num_workers)))
            worker_id = worker_info.id
            iter_start = self.start + worker_id * per_worker
            iter_end = min(iter_start + per_worker, self.end)
        return iter(self.data[iter_start:iter_end])


class AugTrieverIterableDataset(torch.utils.data.IterableDataset):
    """salesforce/AugTriever, src/adhoc/data/reproduce_datasets_nextepochhang.py
    ``MyIterableDataset``: not split between workers (rows of synthetic data instead of
    ints)."""

    def __init__(self, start, end):
        super().__init__()
        self.start = start
        self.end = end
        self.data = rows(end)

    def __iter__(self):
        return iter(self.data[self.start : self.end])
