"""Random streams in DataLoader worker processes (issue 28): real DataLoaders,
num_workers=2, each bug with its correct twin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

import safegen  # noqa: E402
from tests import torch_random_datasets as data  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _load(dataset, epochs=1, mode=None, **options):
    """Every epoch's batches of ``dataset`` through a DataLoader (batch_size 4,
    num_workers 2 unless given), with safegen enabled; returns (epochs, session)."""
    options.setdefault("num_workers", 2)
    with safegen.enabled(mode=mode) as session:
        loader = DataLoader(dataset, batch_size=4, **options)
        seen = [list(loader) for _ in range(epochs)]
    return seen, session


class TestReported:
    """A random state the dataset keeps, copied into every worker, is reported."""

    @pytest.mark.parametrize(
        ("dataset", "label"),
        [
            (data.GeneratorNoise, "`self.rng` (numpy.random.Generator)"),
            (data.TorchGeneratorNoise, "`self.generator` (torch.Generator)"),
        ],
    )
    def test_state_on_the_dataset(self, dataset, label):
        """Two workers start from one copy: RandomStreamError in the main process, with
        safegen's message (not PyTorch's traceback text) and the worker named."""
        with pytest.raises(safegen.RandomStreamError) as info:
            _load(dataset())
        message = str(info.value)
        assert message.startswith(f"{dataset.__name__}.__getitem__() at tests")
        shared = f"{label} started from the same state in 2 worker processes (DataLoader worker 0"
        assert shared in message
        assert "PyTorch seeds NumPy's global state" in message
        assert "Caught RandomStreamError" not in message
        assert "raised in DataLoader worker process" in info.value.__notes__[0]

    def test_spawned_workers(self):
        """Workers started with "spawn" (Python 3.14's default on Linux is forkserver):
        the watch travels pickled with the worker_init_fn, and finds the copied state."""
        with pytest.raises(safegen.RandomStreamError, match="`self.rng`"):
            _load(data.GeneratorNoise(), multiprocessing_context="spawn")

    def test_global_state_seeded_to_one_value(self):
        """A worker_init_fn that seeds NumPy's global state to a constant is reported."""
        with pytest.raises(safegen.RandomStreamError, match="NumPy's global state started"):
            _load(data.GlobalNoise(), worker_init_fn=data.constant_seed)

    def test_epochs_replay(self):
        """One worker per epoch, without persistent workers: the second epoch's worker
        starts from the first one's copy (shuffled: one index twice could be a state
        reseeded from the index)."""
        shuffled = {"shuffle": True, "generator": torch.Generator().manual_seed(0)}
        with pytest.raises(safegen.RandomStreamError, match="workers of different epochs"):
            _load(data.RandomStateNoise(), epochs=2, num_workers=1, **shuffled)

    def test_iterable_dataset(self):
        """An IterableDataset split with get_worker_info(), drawing from a Generator made
        in __init__: each worker's copy draws the same noise."""
        with pytest.raises(safegen.RandomStreamError, match=r"NoiseStream.__iter__\(\)"):
            _load(data.NoiseStream())

    def test_warn_counts_in_the_session(self):
        """With on_violation="warn", the batches arrive and the parent's session lists
        the repeated stream once (read from the workers' records)."""
        with safegen.enabled(on_violation="warn") as session, warnings.catch_warnings():
            # The warning is issued in a worker (pytest's "error" filter reaches it there).
            warnings.simplefilter("ignore", safegen.RandomStreamWarning)
            batches = list(DataLoader(data.PythonRandomNoise(), batch_size=4, num_workers=2))
            assert session.failures() == {"random_streams": 1}
        noise = data.noise_of(batches)
        assert noise[0] == noise[1]  # what was reported: the two workers' first batches


class TestSilent:
    """The correct twins: nothing reported, and the data is what it would be."""

    @pytest.mark.parametrize(
        ("dataset", "options", "epochs_differ"),
        [
            (data.GlobalNoise, {}, True),
            (data.PerWorkerGenerator, {}, True),
            (data.IndexSeeded, {}, False),
            (data.GeneratorNoise, {"worker_init_fn": data.reseed_dataset}, True),
            (data.GlobalNoise, {"worker_init_fn": data.seed_like_lightning}, True),
        ],
        ids=["global-numpy", "per-worker", "per-index", "reseeded-in-init", "lightning"],
    )
    def test_twin(self, dataset, options, epochs_differ):
        """Two epochs, two workers: no finding, and the batches drew different numbers
        (and the epochs too, but for noise seeded from the index, the same each epoch)."""
        seen, session = _load(dataset(), epochs=2, **options)
        assert session.failures() == {}
        noise = data.noise_of(seen[0] + seen[1] if epochs_differ else seen[0])
        assert len(set(noise)) == len(noise)

    def test_persistent_single_worker(self):
        """persistent_workers=True, one worker: its stream goes on across epochs."""
        seen, session = _load(
            data.GeneratorNoise(), epochs=2, num_workers=1, persistent_workers=True
        )
        assert session.failures() == {}
        noise = data.noise_of(seen[0] + seen[1])
        assert len(set(noise)) == len(noise)

    def test_user_worker_init_fn_kept(self):
        """The loader's worker_init_fn runs in each worker and is the user's again after
        the workers started."""
        loader = DataLoader(
            data.GeneratorNoise(), batch_size=4, num_workers=2, worker_init_fn=data.reseed_dataset
        )
        with safegen.enabled() as session:
            batches = list(loader)
        assert loader.worker_init_fn is data.reseed_dataset
        assert session.failures() == {}
        assert len(set(data.noise_of(batches))) == len(batches)


class TestCopyMode:
    """Copy mode reseeds each worker's random states: the bug's data is fixed."""

    @pytest.mark.parametrize("dataset", [data.GeneratorNoise, data.TorchGeneratorNoise])
    def test_each_worker_its_own_stream(self, dataset):
        """Every batch of two epochs gets different noise; nothing is reported."""
        seen, session = _load(dataset(), epochs=2, mode="copy")
        assert session.failures() == {}
        noise = data.noise_of(seen[0] + seen[1])
        assert len(set(noise)) == len(noise)


class TestPorted:
    """Dataset code from public projects, ported with synthetic data."""

    def test_albumentations_seeded_compose(self):
        """albumentations#2559: Compose(seed=42) kept on the dataset repeats per worker."""
        with pytest.raises(safegen.RandomStreamError, match=r"`self.aug.\w+`"):
            _load(data.AugmentedImages())

    def test_torchsig_seedable(self):
        """torchsig#343: a Seedable dataset's generators repeat per worker."""
        with pytest.raises(safegen.RandomStreamError, match="`self.np_rng`|`self.torch_rng`"):
            _load(data.SignalDataset())

    def test_pytorch_tutorial_random_crop(self):
        """PyTorch's tutorial RandomCrop (np.random) with the docs' seed_worker: silent."""
        _, session = _load(
            data.RandomCrop(), epochs=2, worker_init_fn=data.pytorch_docs_seed_worker
        )
        assert session.failures() == {}


BUGGY = """
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

class Jitter(Dataset):
    def __init__(self):
        self.x = torch.arange(32.0).reshape(16, 2)
        self.rng = {rng}

    def __len__(self):
        return 16

    def __getitem__(self, index):
        return self.x[index] + float(self.rng.normal())

if __name__ == "__main__":
    for epoch in range(2):
        for batch in DataLoader(Jitter(), batch_size=4, num_workers=2{extra}):
            pass
    print("trained")
"""


class TestRun:
    """`python -m safegen run`: exit 1 on the buggy script, 0 on its fixed twin."""

    @pytest.mark.parametrize(
        ("rng", "extra", "code"),
        [
            ("np.random.default_rng(0)", "", 1),
            ("None", ", worker_init_fn=seed", 0),
        ],
        ids=["generator-on-dataset", "per-worker"],
    )
    def test_run(self, tmp_path, rng, extra, code):
        """The buggy script exits 1 with RandomStreamError; the per-worker one 0."""
        text = textwrap.dedent(BUGGY).replace("{rng}", rng).replace("{extra}", extra)
        if code == 0:
            text = text.replace(
                'if __name__ == "__main__":',
                "def seed(worker_id):\n"
                "    info = torch.utils.data.get_worker_info()\n"
                "    info.dataset.rng = np.random.default_rng(info.seed)\n\n\n"
                'if __name__ == "__main__":',
            )
        script = tmp_path / "train.py"
        script.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "safegen", "run", str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == code, result.stderr
        if code:
            assert "safegen.RandomStreamError: Jitter.__getitem__() at train.py:14" in result.stderr
        else:
            assert "trained" in result.stdout


PORTED = """
import sys
sys.path.insert(0, {root!r})
from torch.utils.data import DataLoader
from tests import torch_random_datasets as data

if __name__ == "__main__":
    for epoch in range(2):
        for batch in DataLoader(data.{dataset}(), batch_size=4, num_workers=2{extra}):
            pass
    print("trained")
"""


class TestPortedRun:
    """The ported public datasets under `python -m safegen run`."""

    @pytest.mark.parametrize(
        ("dataset", "extra", "code"),
        [
            ("AugmentedImages", "", 1),
            ("SignalDataset", "", 1),
            ("RandomCrop", ", worker_init_fn=data.pytorch_docs_seed_worker", 0),
        ],
        ids=["albumentations-2559", "torchsig-343", "pytorch-tutorial-crop"],
    )
    def test_run(self, tmp_path, dataset, extra, code):
        """albumentations' seeded Compose and torchsig's Seedable exit 1 with
        RandomStreamError; the tutorial's RandomCrop with seed_worker exits 0."""
        script = tmp_path / "train.py"
        script.write_text(
            textwrap.dedent(PORTED).format(root=str(ROOT), dataset=dataset, extra=extra)
        )
        result = subprocess.run(
            [sys.executable, "-m", "safegen", "run", str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == code, result.stderr
        if code:
            assert f"safegen.RandomStreamError: {dataset}.__getitem__()" in result.stderr
        else:
            assert "trained" in result.stdout
