"""PyTorch's torch.utils.data: guarded datasets and loaders, in the main process and in
DataLoader worker processes, explicit (safegen.guard) and zero-code (enable, safegen run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset  # noqa: E402

import safegen  # noqa: E402
from safegen._sources import is_guarded  # noqa: E402
from safegen._sources.torch_data import datasets_of  # noqa: E402
from tests import torch_datasets as td  # noqa: E402

pytestmark = [pytest.mark.torch]

ROOT = Path(__file__).resolve().parent.parent

# default_collate turns a read-only NumPy item into a tensor with torch.as_tensor, which
# warns once per process that torch has no read-only tensors (freeze mode's items).
NOT_WRITABLE = "ignore:The given NumPy array is not writable:UserWarning"


def rows_of(loader):
    """Every row of every batch's first tensor, as lists of floats."""
    out = []
    for batch in loader:
        first = (
            batch["x"]
            if isinstance(batch, dict)
            else batch[0]
            if isinstance(batch, (list, tuple))
            else batch
        )
        out.extend(first.reshape(len(first), -1)[:, 0].tolist())
    return out


EXPECTED = [float(i) for i in range(td.N)]


@pytest.mark.slow
class TestImport:
    """torch is optional: safegen never imports it."""

    def test_import_safegen_does_not_import_torch(self):
        """`import safegen`, guarding a generator and enable() leave torch unimported."""
        code = (
            "import sys, safegen\n"
            "g = safegen.guard(iter([1]))\n"
            "safegen.enable(); safegen.disable()\n"
            "print('torch' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert out.stdout.strip() == "False", out.stderr


class TestMapStyleMainProcess:
    """num_workers=0: __getitem__ runs in the main process."""

    def test_fresh_arrays_are_silent(self):
        """A dataset that returns a new array per item passes every mode's check."""
        ds = safegen.guard(td.FreshArrays())
        assert rows_of(DataLoader(ds, batch_size=4)) == EXPECTED
        assert safegen.stats(ds).violations == 0
        assert safegen.stats(ds).yields == td.N

    def test_unguarded_reused_buffer_gives_the_last_row_everywhere(self):
        """The bug itself, without safegen: every row of a batch is its last item."""
        rows = rows_of(DataLoader(td.ReusedBuffer(), batch_size=4))
        assert rows[:4] == [3.0, 3.0, 3.0, 3.0]

    @pytest.mark.parametrize(
        "cls",
        [
            td.ReusedBuffer,
            td.ReusedTensor,
            td.ReusedBfloat16,
            td.ReusedInDict,
            td.ReusedInNamedtuple,
        ],
    )
    def test_reused_buffer_is_reported(self, cls):
        """Check mode reports the reused buffer (NumPy or tensor, in any structure) by the
        second item, naming __getitem__ and the DataLoader's collation."""
        ds = safegen.guard(cls())
        with pytest.raises(safegen.AliasingError, match=r"__getitem__\(\) at .*item #1") as info:
            rows_of(DataLoader(ds, batch_size=4))
        assert "default_collate" in str(info.value)
        assert "Keras" not in str(info.value)

    def test_fresh_dict_items_are_silent(self):
        """Dict items of fresh arrays pass."""
        ds = safegen.guard(td.FreshInDict())
        assert rows_of(DataLoader(ds, batch_size=4)) == EXPECTED

    @pytest.mark.parametrize(
        "cls",
        [
            td.ReusedBuffer,
            td.ReusedTensor,
            td.ReusedBfloat16,
            td.ReusedInDict,
            td.ReusedInNamedtuple,
        ],
    )
    def test_copy_mode_fixes_the_rows(self, cls):
        """Copy mode hands the loader copies: every row is its own item."""
        ds = safegen.guard(cls(), mode="copy")
        assert rows_of(DataLoader(ds, batch_size=4, shuffle=False)) == EXPECTED

    @pytest.mark.filterwarnings(NOT_WRITABLE)
    def test_freeze_mode_stops_the_write_at_its_line(self):
        """Freeze mode makes the returned array read-only: the next write fails in
        __getitem__, with safegen's note."""
        ds = safegen.guard(td.ReusedBuffer(), mode="freeze")
        with pytest.raises(ValueError, match="read-only") as info:
            rows_of(DataLoader(ds, batch_size=4))
        note = "\n".join(info.value.__notes__)
        assert "ReusedBuffer.__getitem__()" in note and "item #1" in note
        assert info.traceback[-1].name == "__getitem__"

    @pytest.mark.filterwarnings(NOT_WRITABLE)
    def test_freeze_mode_passes_fresh_arrays(self):
        """Freeze mode does not stop a dataset that writes nothing it returned."""
        ds = safegen.guard(td.FreshArrays(), mode="freeze")
        assert rows_of(DataLoader(ds, batch_size=4)) == EXPECTED

    def test_freeze_mode_warns_that_a_tensor_stays_writable(self):
        """torch tensors have no read-only flag: freeze mode says so once and hands the
        tensor over as it is."""
        ds = safegen.guard(td.ReusedTensor(), mode="freeze")
        with pytest.warns(safegen.SafegenWarning, match="Tensor, which freeze mode cannot"):
            rows_of(DataLoader(ds, batch_size=4))

    def test_guarded_class(self):
        """@safegen.guard on a Dataset class guards each instance."""
        cls = safegen.guard(td.ReusedBuffer)
        with pytest.raises(safegen.AliasingError):
            rows_of(DataLoader(cls(), batch_size=4))
        assert rows_of(DataLoader(safegen.guard(td.FreshArrays)(), batch_size=4)) == EXPECTED

    def test_guarding_a_loader_guards_the_datasets_behind_it(self):
        """guard(loader) guards the user's datasets inside torch's Subset and ConcatDataset."""
        inner = td.ReusedBuffer()
        loader = DataLoader(
            ConcatDataset([Subset(inner, range(8)), td.FreshArrays()]), batch_size=4
        )
        assert safegen.guard(loader) is loader
        assert is_guarded(inner)
        with pytest.raises(safegen.AliasingError, match="ReusedBuffer"):
            rows_of(loader)

    def test_torch_datasets_are_left_to_enable_only_when_asked(self):
        """datasets_of looks through torch's wrappers; TensorDataset is the user's choice."""
        tensors = TensorDataset(torch.zeros(4, 2))
        own = td.FreshArrays()
        assert datasets_of(ConcatDataset([tensors, Subset(own, [0])]), own_only=True) == [own]
        assert datasets_of(tensors, own_only=False) == [tensors]

    def test_guarding_the_loader_class_is_refused(self):
        """guard(DataLoader) (the class) names what it takes instead."""
        with pytest.raises(TypeError, match="DataLoader instance"):
            safegen.guard(DataLoader)


@pytest.mark.slow
class TestWorkerProcesses:
    """num_workers=2: __getitem__ runs in forked worker processes."""

    def test_fresh_arrays_are_silent(self):
        """Correct items pass in the workers, and the session counts nothing."""
        with safegen.enabled() as session:
            loader = DataLoader(td.FreshArrays(), batch_size=4, num_workers=2)
            assert sorted(rows_of(loader)) == EXPECTED
        assert session.failures() == {}
        # (A generator of an earlier test that Keras's data thread still pulls from may be
        # recorded in this session too: only this test's dataset is looked at.)
        names = [r["name"] for r in session.as_dict()["sources"]]
        assert [name for name in names if "FreshArrays" in name] == ["FreshArrays.__getitem__()"]

    def test_reused_buffer_is_reported_and_counted_in_the_parent(self):
        """A worker's finding reaches the parent's session through the channel, and its
        error comes out as safegen's own, with safegen's message."""
        with safegen.enabled() as session:
            loader = DataLoader(td.ReusedBuffer(), batch_size=4, num_workers=2)
            with pytest.raises(safegen.AliasingError) as info:
                rows_of(loader)
        message = str(info.value)
        assert message.startswith("ReusedBuffer.__getitem__() at ")
        assert "in worker process" in message and "Caught" not in message
        assert session.counts()["changed_arrays"] == 1  # the error that reached the parent
        assert session.warned()["changed_arrays"] == 0  # it was raised, not only warned

    def test_copy_mode_fixes_the_rows(self):
        """Copy mode in the workers: every row is its own item."""
        ds = safegen.guard(td.ReusedBuffer(), mode="copy")
        assert sorted(rows_of(DataLoader(ds, batch_size=4, num_workers=2))) == EXPECTED

    @pytest.mark.filterwarnings("ignore::safegen.AliasingWarning")  # warned in the workers
    def test_warned_finding_is_counted_in_the_parent(self):
        """With on_violation="warn", the workers' findings are counted in the parent."""
        with safegen.enabled(on_violation="warn") as session:
            loader = DataLoader(td.ReusedBuffer(), batch_size=4, num_workers=2)
            assert rows_of(loader)[:4] == [3.0] * 4  # warned, not fixed
        # Every item but each worker's last is overwritten by the worker's next one.
        assert session.counts()["changed_arrays"] == td.N - 2
        assert session.warned()["changed_arrays"] == td.N - 2


class TestIterableDataset:
    """IterableDataset: every iterator __iter__ returns is guarded."""

    @pytest.mark.slow  # worker processes
    def test_split_with_get_worker_info_is_silent(self):
        """Items split between the workers pass, over two epochs."""
        ds = safegen.guard(td.SplitByWorker())
        loader = DataLoader(ds, batch_size=4, num_workers=2)
        for _ in range(2):
            assert sorted(rows_of(loader)) == EXPECTED

    @pytest.mark.slow  # worker processes
    def test_unsplit_items_are_reported(self):
        """An IterableDataset not split between workers yields every item in each; the
        finding names the dataset and the fix."""
        with safegen.enabled() as session:
            loader = DataLoader(td.Unsplit(), batch_size=4, num_workers=2)
            with pytest.raises(safegen.RepeatedBatchError, match=r"Unsplit.__iter__\(\)") as info:
                rows_of(loader)
        assert "get_worker_info()" in str(info.value)
        assert session.counts()["repeated_batches"] == 1

    def test_unsplit_items_in_one_process_are_silent(self):
        """Without workers there is one copy of the stream: nothing repeats."""
        ds = safegen.guard(td.Unsplit())
        assert rows_of(DataLoader(ds, batch_size=4)) == EXPECTED

    def test_reused_buffer_in_the_iterator_is_reported(self):
        """A generator __iter__ that refills one buffer is reported at its yield."""
        ds = safegen.guard(td.ReusedInIterator())
        with pytest.raises(safegen.AliasingError, match=r"ReusedInIterator.__iter__\(\)"):
            rows_of(DataLoader(ds, batch_size=4))

    def test_copy_mode_fixes_the_iterator(self):
        """Copy mode on the iterator's yields: every row is its own item."""
        ds = safegen.guard(td.ReusedInIterator(), mode="copy")
        assert rows_of(DataLoader(ds, batch_size=4)) == EXPECTED


class TestEnable:
    """safegen.enable(): every DataLoader guards its dataset when it is iterated."""

    def test_loader_guards_its_dataset_and_disable_restores_it(self):
        """The dataset is guarded in place while enabled, and gets its class back."""
        ds = td.ReusedBuffer()
        with safegen.enabled():
            with pytest.raises(safegen.AliasingError):
                rows_of(DataLoader(ds, batch_size=4))
            assert is_guarded(ds)
        assert type(ds) is td.ReusedBuffer and not is_guarded(ds)
        assert rows_of(DataLoader(ds, batch_size=4))[:4] == [3.0] * 4  # the bug, unguarded

    def test_torchs_own_datasets_are_left_alone(self):
        """TensorDataset (torch's code) is not guarded under enable()."""
        tensors = TensorDataset(torch.arange(8.0)[:, None])
        with safegen.enabled():
            assert len(list(DataLoader(tensors, batch_size=4))) == 2
            assert not is_guarded(tensors)

    def test_explicit_guard_keeps_its_own_mode(self):
        """A dataset guarded with mode="copy" keeps it under enable()."""
        ds = safegen.guard(td.ReusedBuffer(), mode="copy")
        with safegen.enabled(mode="check"):
            assert rows_of(DataLoader(ds, batch_size=4)) == EXPECTED


class TestPorted:
    """Dataset classes from public PyTorch projects (tests/torch_datasets.py names each
    source), ported with synthetic data."""

    IMAGES = np.random.default_rng(0).integers(0, 255, (td.N, 784)).astype(np.uint8)

    @pytest.mark.parametrize(
        "make",
        [
            lambda: td.NeroTorchData(torch.randn(td.N, 5), torch.randn(td.N)),
            lambda: td.GansImageDataset(TestPorted.IMAGES),
            lambda: td.FedAvgTorchDataset(
                {"images": TestPorted.IMAGES.reshape(-1, 28, 28), "labels": np.arange(td.N) % 10},
                False,
            ),
        ],
        ids=["Nero.TorchData", "gans_template.Image_Dataset", "FedAvg.TorchDataset"],
    )
    def test_correct_datasets_are_silent(self, make):
        """Public datasets that return a new or distinct item per index pass check mode,
        shuffled, twice over."""
        ds = safegen.guard(make())
        for _ in range(2):
            assert len(list(DataLoader(ds, batch_size=4, shuffle=True))) == 4
        assert safegen.stats(ds).violations == 0

    def test_replay_buffer_views_are_silent(self):
        """A replay buffer returning row views of preallocated memory passes (distinct rows)."""
        buffer = td.ReplayBuffer(32)
        for i in range(20):
            buffer.push((np.full(4, i, np.float32), np.array(i)))
        safegen.guard(buffer)
        assert len(list(DataLoader(buffer, batch_size=4, shuffle=True))) == 5

    def test_buffered_image_dataset_is_reported(self):
        """The image dataset changed to preprocess into one preallocated array is reported."""
        ds = safegen.guard(td.GansImageDatasetBuffered(self.IMAGES))
        with pytest.raises(safegen.AliasingError, match="GansImageDatasetBuffered"):
            list(DataLoader(ds, batch_size=4))

    @pytest.mark.slow  # worker processes
    def test_docs_iterable_dataset_is_silent_with_workers(self):
        """PyTorch's own get_worker_info() example passes with 2 workers."""
        ds = safegen.guard(td.DocsIterableDataset(0, td.N))
        assert sorted(rows_of(DataLoader(ds, batch_size=4, num_workers=2))) == EXPECTED

    @pytest.mark.slow  # worker processes
    def test_unsplit_public_iterable_dataset_is_reported(self):
        """AugTriever's unsplit IterableDataset is reported with 2 workers."""
        ds = safegen.guard(td.AugTrieverIterableDataset(0, td.N))
        with pytest.raises(safegen.RepeatedBatchError):
            list(DataLoader(ds, batch_size=4, num_workers=2))


def _run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safegen", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=script.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


SCRIPT = """
    from tests import torch_datasets as td
    from torch.utils.data import DataLoader

    for epoch in range(2):
        for batch in DataLoader(td.{name}(), batch_size=4, num_workers={workers}):
            pass
    print("done")
"""


@pytest.mark.slow
class TestRun:
    """`python -m safegen run` on torch scripts: buggy exits 1, correct exits 0."""

    @pytest.mark.parametrize(
        ("name", "workers", "status", "said"),
        [
            ("ReusedBuffer", 0, 1, "AliasingError: ReusedBuffer.__getitem__()"),
            ("FreshArrays", 0, 0, "done"),
            ("Unsplit", 2, 1, "RepeatedBatchError: Unsplit.__iter__()"),
            ("SplitByWorker", 2, 0, "done"),
        ],
    )
    def test_exit_status(self, tmp_path, name, workers, status, said):
        """The buggy script stops with safegen's error and exits 1; its twin exits 0."""
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(SCRIPT.format(name=name, workers=workers)))
        result = _run(script)
        assert result.returncode == status, result.stderr[-3000:]
        assert said in result.stdout + result.stderr


LOADER_TESTS = """
from torch.utils.data import DataLoader

from tests import torch_datasets as td


def test_reused_buffer():
    for batch in DataLoader(td.ReusedBuffer(), batch_size=4):
        pass


def test_fresh_arrays():
    for batch in DataLoader(td.FreshArrays(), batch_size=4):
        pass
"""


@pytest.mark.slow
class TestPytestPlugin:
    """`pytest --safegen` guards every DataLoader of the tests it runs."""

    def test_buggy_loader_fails_its_test_only(self, tmp_path):
        """The test reading the reused buffer fails with AliasingError; its twin passes."""
        (tmp_path / "test_loaders.py").write_text(LOADER_TESTS)
        plugin = ["-p", "no:safegen", "-p", "safegen.integrations.pytest_plugin"]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin]
            + ["--safegen", "test_loaders.py"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 1, result.stdout[-3000:]
        assert "1 failed, 1 passed" in result.stdout
        assert "AliasingError: ReusedBuffer.__getitem__()" in result.stdout


@pytest.mark.slow
class TestBenchmark:
    """benchmarks/torch_loader.py runs (a smoke run: no timing is asserted)."""

    def test_quick_run(self, tmp_path):
        """Its --quick run writes the ratios of every variant, per item and per batch."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "torch_loader.py"), "--quick"]
            + ["--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads((tmp_path / "torch_loader_quick.json").read_text())
        sections = [
            n for n, row in report.items() if isinstance(row, dict) and "ratio_to_bare" in row
        ]
        assert len(sections) == 4
        for name in sections:
            assert set(report[name]["ratio_to_bare"]) == {"hand copy", "check", "copy", "freeze"}
