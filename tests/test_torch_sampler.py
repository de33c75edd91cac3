"""A DistributedSampler iterated twice with shuffling on and the same epoch (issue 28)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402

import safegen  # noqa: E402

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent
DATA = TensorDataset(torch.arange(32.0))


def _epochs(loader, epochs, sampler=None):
    """The batches of each epoch, calling set_epoch on ``sampler`` if given."""
    seen = []
    for epoch in range(epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        seen.append([batch[0].tolist() for batch in loader])
    return seen


class TestRepeatedOrder:
    """Reported: the same shuffled order at the same epoch; silent: the correct twins."""

    def test_set_epoch_never_called(self):
        """The second epoch of a loop without set_epoch raises OrderError, with the fix."""
        with safegen.enabled():
            sampler = DistributedSampler(DATA, num_replicas=2, rank=0, shuffle=True)
            loader = DataLoader(DATA, batch_size=4, sampler=sampler)
            list(loader)
            with pytest.raises(safegen.OrderError, match=r"set_epoch\(\) was never called") as info:
                list(loader)
        report = info.value.report
        assert report.iterations == (1, 2)
        assert report.epoch == 0
        assert report.rank == "rank 0 of 2"
        assert report.location == f"{os.path.relpath(__file__)}:{_line('sampler = Distributed')}"
        assert "sampler.set_epoch(epoch)" in str(info.value)

    def test_set_epoch_each_epoch_is_silent(self):
        """set_epoch(e) before each epoch: new orders, nothing reported."""
        with safegen.enabled() as session:
            sampler = DistributedSampler(DATA, num_replicas=2, rank=0, shuffle=True)
            loader = DataLoader(DATA, batch_size=4, sampler=sampler)
            seen = _epochs(loader, 4, sampler)
        assert len({str(epoch) for epoch in seen}) == 4
        assert session.failures() == {}

    def test_shuffle_off_is_silent(self):
        """shuffle=False gives one order on purpose."""
        with safegen.enabled() as session:
            sampler = DistributedSampler(DATA, num_replicas=2, rank=0, shuffle=False)
            _epochs(DataLoader(DATA, batch_size=4, sampler=sampler), 3)
        assert session.failures() == {}

    def test_two_ranks_are_silent(self):
        """Two samplers (two ranks, no set_epoch) iterated once each are not one sampler
        iterated twice."""
        with safegen.enabled() as session:
            for rank in (0, 1):
                sampler = DistributedSampler(DATA, num_replicas=2, rank=rank, seed=3)
                list(DataLoader(DATA, batch_size=4, sampler=sampler))
        assert session.failures() == {}

    def test_constant_set_epoch_reported_at_third(self):
        """set_epoch(0) once before the loop: an epoch replayed once passes (a learning-rate
        finder's pass), the third iteration at one epoch is reported."""
        with safegen.enabled():
            sampler = DistributedSampler(DATA, num_replicas=2, rank=1)
            sampler.set_epoch(0)
            loader = DataLoader(DATA, batch_size=4, sampler=sampler)
            list(loader)
            list(loader)
            with pytest.raises(safegen.OrderError, match=r"called 1 time\(s\), but the epoch"):
                list(loader)

    def test_order_unchanged(self):
        """The watched sampler hands the DataLoader the order it would have."""
        sampler = DistributedSampler(DATA, num_replicas=2, rank=0)
        bare = _epochs(DataLoader(DATA, batch_size=4, sampler=sampler), 3, sampler)
        with safegen.enabled():
            sampler = DistributedSampler(DATA, num_replicas=2, rank=0)
            watched = _epochs(DataLoader(DATA, batch_size=4, sampler=sampler), 3, sampler)
        assert watched == bare

    def test_warning_points_at_the_loop(self):
        """With on_violation="warn", the OrderWarning points at the user's for loop."""
        with safegen.enabled(on_violation="warn") as session:
            sampler = DistributedSampler(DATA, num_replicas=2, rank=0)
            loader = DataLoader(DATA, batch_size=8, sampler=sampler)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(3):
                    for _batch in loader:  # the loop
                        pass
        ours = [w for w in caught if issubclass(w.category, safegen.OrderWarning)]
        assert len(ours) == 1
        assert ours[0].filename == __file__
        assert ours[0].lineno == _line("for _batch in loader:  # the loop")
        assert session.failures() == {"repeated_orders": 1}

    def test_disable_restores(self):
        """disable() puts DistributedSampler's methods back exactly."""
        before = DistributedSampler.__dict__["__iter__"], DistributedSampler.__dict__["__init__"]
        with safegen.enabled():
            assert DistributedSampler.__dict__["__iter__"] is not before[0]
        after = DistributedSampler.__dict__["__iter__"], DistributedSampler.__dict__["__init__"]
        assert after == before


class TestExplicit:
    """sampler.watch(): what safegen.guard on a DataLoader calls, without enable()."""

    def test_watched_without_enable(self):
        """A sampler given to watch() is checked with its own settings; disable() of a
        later enable() leaves it watched."""
        from safegen._config import Settings
        from safegen.integrations.torch import sampler as watching

        sampler = DistributedSampler(DATA, num_replicas=2, rank=0)
        watching.watch(sampler, Settings(on_violation="raise"))
        try:
            with safegen.enabled():
                pass
            list(sampler)
            with pytest.raises(safegen.OrderError):
                list(sampler)
            other = DistributedSampler(DATA, num_replicas=2, rank=0)
            list(other)
            list(other)  # not watched, not enabled: silent
        finally:  # the patches watch() installed for good, taken off for the next tests
            watching._watched.release()


class Reversed(DistributedSampler):
    """A subclass with its own __iter__ that does not call DistributedSampler's."""

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        return iter(order[self.rank : self.total_size : self.num_replicas])


class Repeating(DistributedSampler):
    """A subclass whose __iter__ repeats DistributedSampler's order twice (super())."""

    def __iter__(self):
        order = list(super().__iter__())
        return iter(order + order)


class TestSubclasses:
    """Subclasses of DistributedSampler, whatever their __iter__ does."""

    @pytest.mark.parametrize("cls", [Reversed, Repeating])
    def test_subclass_reported(self, cls):
        """A subclass's own __iter__ is watched (made while enabled), counted once per
        iteration even when it calls super().__iter__()."""
        with safegen.enabled():
            sampler = cls(DATA, num_replicas=2, rank=0)
            loader = DataLoader(DATA, batch_size=4, sampler=sampler)
            list(loader)
            with pytest.raises(safegen.OrderError) as info:
                list(loader)
        assert info.value.report.iterations == (1, 2)
        assert info.value.report.source == cls.__qualname__

    @pytest.mark.parametrize("cls", [Reversed, Repeating])
    def test_subclass_with_set_epoch_silent(self, cls):
        """The same subclasses with set_epoch each epoch are silent."""
        with safegen.enabled() as session:
            sampler = cls(DATA, num_replicas=2, rank=0)
            _epochs(DataLoader(DATA, batch_size=4, sampler=sampler), 3, sampler)
        assert session.failures() == {}


def _line(text):
    """The line number of ``text`` in this file."""
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if text in line and "_line(" not in line:
            return number
    raise AssertionError(text)


# SimCLR (Spijkervet/SimCLR, PR #26 "update distributed sampler"), ported with
# synthetic data: the training loop builds a DistributedSampler and iterates epochs
# without set_epoch; its fix calls train_sampler.set_epoch(epoch) first.
SCRIPT = """
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

dataset = TensorDataset(torch.randn(64, 3), torch.randint(0, 2, (64,)))
train_sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True)
train_loader = DataLoader(dataset, batch_size=8, sampler=train_sampler, drop_last=True)
model = torch.nn.Linear(3, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    {fix}
    for x, y in train_loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
print("trained")
"""


@pytest.mark.slow
class TestRun:
    """`python -m safegen run`: the buggy loop exits 1, the fixed one 0."""

    @pytest.mark.parametrize(("fix", "code"), [("pass", 1), ("train_sampler.set_epoch(epoch)", 0)])
    def test_run(self, tmp_path, fix, code):
        """Exit 1 and the OrderError for the loop without set_epoch; 0 with it."""
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(SCRIPT).replace("{fix}", fix))
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
            assert "safegen.OrderError: DistributedSampler made at train.py:7" in result.stderr
        else:
            assert "trained" in result.stdout
