"""The benchmarks run to completion (smoke runs only: no timing is asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _commit():
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip() or "?"  # "?" outside a git checkout, as the benchmark labels it


def _run(script, tmp_path, *extra):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / script),
            "--quick",
            "--out",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
class TestBenchmarks:
    """Each benchmark's --quick run writes its JSON and Markdown."""

    def test_per_yield_against_another_checkout(self, tmp_path):
        """per_yield.py --root runs the seed batch in one process per checkout (here a
        copy of this repository's package) and reports each one's overheads."""
        other = tmp_path / "other"
        shutil.copytree(ROOT / "safegen", other / "safegen")
        _run("per_yield.py", tmp_path, "--root", str(other), "--rounds", "1")
        report = json.loads((tmp_path / "per_yield_roots_quick.json").read_text())
        assert list(report["overhead_us"]) == [
            f"this checkout ({_commit()})",
            "other (?)",
        ]
        for per in report["overhead_us"].values():
            assert set(per) == {"check", "copy", "hand copy"}
            assert all(len(values) == 1 for values in per.values())

    def test_per_yield(self, tmp_path):
        """per_yield.py --quick reports every variant and target."""
        pytest.importorskip("tqdm")
        _run("per_yield.py", tmp_path)
        report = json.loads((tmp_path / "per_yield_quick.json").read_text())
        sections = {section["name"]: section for section in report["sections"]}
        assert len(sections) == 8 and list(sections)[:3] == ["seed", "64 KiB", "1 MiB"]
        assert list(sections)[-1] == "window sweep"
        background = [s for s in report["sections"] if s["name"].startswith("background")]
        assert len(background) == 2
        for section in background:
            assert {f"check, {c} consumer" for c in ("idle", "busy")} <= set(section["variants"])
            assert (
                "background-hash overhead / in-place hash overhead, busy consumer"
                in section["targets"]
            )
        seed = sections["seed"]
        assert set(seed["variants"]) >= {"bare", "hand copy", "check", "copy", "freeze"}
        assert "copy.deepcopy" in seed["variants"]
        for section in report["sections"][1:5]:
            assert "np.copy (no generator)" in section["variants"]
            assert section["nbytes"] > 0
        large = report["sections"][3]
        assert "check, one hot array" in large["variants"]
        assert any("np.copy" in name for name in large["targets"])
        assert set(sections["window sweep"]["variants"]) >= {
            f"check, window {w}" for w in (1, 12, 48, 192)
        }
        assert (tmp_path / "per_yield_quick.md").read_text().startswith("# Per-yield cost")
        assert (tmp_path / "per_yield_quick.png").stat().st_size > 0

    @pytest.mark.keras
    def test_shape_checked(self, tmp_path):
        """shape_checked.py --quick writes _quick results, not the committed files."""
        pytest.importorskip("keras")
        pytest.importorskip("tqdm")
        _run("shape_checked.py", tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "shape_checked_quick.json",
            "shape_checked_quick.md",
        ]
        report = json.loads((tmp_path / "shape_checked_quick.json").read_text())
        assert report["forward_ops"]["checked"] == report["forward_ops"]["plain"]

    @pytest.mark.keras
    def test_mean_training(self, tmp_path):
        """mean_training.py --quick reports steps/s, ratios and safegen's own time."""
        pytest.importorskip("keras")
        pytest.importorskip("tqdm")
        _run("mean_training.py", tmp_path)
        report = json.loads((tmp_path / "mean_training_quick.json").read_text())
        variants = {"bare", "bare again", "check", "copy", "freeze", "hand copy", "enabled"}
        assert set(report["steps_per_second"]) == variants
        assert set(report["ratio_vs_bare"]) == variants - {"bare"}
        assert set(report["safegen_time"]) == {"check", "copy", "freeze"}
        for ratio in report["ratio_vs_bare"].values():
            assert set(ratio) >= {"median", "min", "max"}
        assert len(report["targets"]) == 3  # check, copy, and all that enable() turns on
        for ratio in report["ratio_vs_bare"].values():
            assert ratio["ci_low"] <= ratio["median"] <= ratio["ci_high"]
        assert "A/A control's interval" in (tmp_path / "mean_training_quick.md").read_text()

    @pytest.mark.keras
    def test_augmentation_check(self, tmp_path):
        """augmentation_check.py --quick times the check against a bare fit, and its
        repeats table says a seeded map repeats and a tf.random.Generator does not."""
        pytest.importorskip("keras")
        _run("augmentation_check.py", tmp_path)
        report = json.loads((tmp_path / "augmentation_check_quick.json").read_text())
        assert "small, first fit" in report["ratio_vs_bare_fit"]
        repeats = report["repeats"]
        assert repeats["map(...) -> cache()"] == {"no seed": True, "global seed": True}
        assert repeats["map(tf.random.Generator.from_seed(1).uniform)"]["global seed"] is False

    def test_loss_checks(self, tmp_path):
        """loss_checks.py --quick reports each checked variant's ratio to its twin."""
        pytest.importorskip("keras")
        pytest.importorskip("tqdm")
        _run("loss_checks.py", tmp_path)
        report = json.loads((tmp_path / "loss_checks_quick.json").read_text())
        assert set(report["ratio_vs_twin"]) == {
            "bare again",
            "mse, checked",
            "subclass, checked",
            "eager subclass, checked",
        }
        assert len(report["targets"]) == 3

    @pytest.mark.keras
    def test_tf_data(self, tmp_path):
        """tf_data.py --quick reports throughput, ratios and what TensorFlow copied."""
        pytest.importorskip("tensorflow")
        pytest.importorskip("tqdm")
        _run("tf_data.py", tmp_path)
        report = json.loads((tmp_path / "tf_data_quick.json").read_text())
        assert len(report["sections"]) == 2
        variants = {"bare", "copy", "check", "check, hash in place", "hand copy"}
        for section in report["sections"]:
            assert set(section["batches_per_second"]) == variants
            assert set(section["ratio_vs_bare"]) == variants - {"bare"}
            assert set(section["zero_copy"]) == {"bare", "copy", "check"}
            for leaves in section["zero_copy"].values():
                assert set(leaves["x"]) == {"nbytes", "address_mod_64", "tensor_shares_memory"}
            assert len(section["pool_alignment_mod_64"]["x"]) == 16
        assert len(report["targets"]) == 3
        conditions = {(c["pool"], c["consumer"]) for c in report["conditions"]}
        assert conditions == {(p, c) for p in (16, 6) for c in ("python loop", "tf.function")}
        assert (tmp_path / "tf_data_quick.md").exists()
        assert (tmp_path / "tf_data_quick.png").stat().st_size > 0

    def test_many_leaves(self, tmp_path):
        """many_leaves.py --quick compares views of one array with arrays, per leaf count."""
        pytest.importorskip("tqdm")
        _run("many_leaves.py", tmp_path)
        report = json.loads((tmp_path / "many_leaves_quick.json").read_text())
        assert [s["leaves"] for s in report["sections"]] == [32, 128, 512]
        for section in report["sections"]:
            assert set(section["us_per_next"]) == {
                "bare views",
                "bare arrays",
                "check views",
                "check arrays",
            }
            assert set(section["views_over_arrays"]) == {"median", "min", "max"}
        assert any("per-leaf overhead" in name for name in report["targets"])
        assert (tmp_path / "many_leaves_quick.md").read_text().startswith("# Check mode against")

    def test_structure_walk(self, tmp_path):
        """structure_walk.py --quick times safegen's walk against optree's, per mode."""
        pytest.importorskip("tqdm")
        pytest.importorskip("optree")
        _run("structure_walk.py", tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "structure_walk_quick.json",
            "structure_walk_quick.md",
        ]
        report = json.loads((tmp_path / "structure_walk_quick.json").read_text())
        assert report["verified"]["all_equal"]
        names = [section["name"] for section in report["sections"]]
        assert names == ["seed (x, y)", "nested dict, 6 leaves", "list of 128 row views"]
        for section in report["sections"]:
            assert set(section["modes"]) == {"check", "freeze", "copy"}
            for entry in section["modes"].values():
                assert entry["optree_over_current"]
                for ratio in entry["optree_over_current"].values():
                    assert set(ratio) == {"median", "min", "max"}
        assert report["sections"][0]["mode_calls_walk"] == {
            "check": False,
            "freeze": True,
            "copy": False,
        }
        cases = {case["case"]: case for case in report["semantics"]}
        assert cases["list subclass"]["optree"] == "(root): ListSub"
        assert cases["list that contains itself"]["optree"] == "raises RecursionError"
        assert set(report["imports"]["ms"]) >= {"import optree", "import safegen, optree"}
        markdown = (tmp_path / "structure_walk_quick.md").read_text()
        assert markdown.startswith("# Structure walk")

    def test_wrapper_call(self, tmp_path):
        """wrapper_call.py --quick times guarded calls against bare ones, per kind."""
        _run("wrapper_call.py", tmp_path)
        report = json.loads((tmp_path / "wrapper_call_quick.json").read_text())
        assert report["wrapper"] == "FunctionWrapper"
        for section in ("bare_us", "overhead_us", "dispatch_us"):
            assert set(report[section]) == {"function", "method", "classmethod"}
        assert report["bare_us"]["function"]["median"] > 0
        assert (tmp_path / "wrapper_call_quick.md").read_text().startswith("# guard's wrappers")

    def test_import_time(self, tmp_path):
        """import_time.py --quick times import safegen against import numpy."""
        pytest.importorskip("tqdm")
        _run("import_time.py", tmp_path)
        report = json.loads((tmp_path / "import_time_quick.json").read_text())
        assert set(report["ms"]) == {
            "python -I -c pass",
            "import numpy",
            "import wrapt",
            "import safegen",
            "import safegen, wrapt",
        }
        assert set(report["wrapt added to import safegen, ms"]) == {"median", "min", "max"}
        assert report["safegen"].startswith(str(ROOT / "safegen"))  # this checkout's
        assert report["safegen / numpy"]["median"] > 0


@pytest.mark.slow
@pytest.mark.keras
class TestSplitsCheck:
    def test_splits_check(self, tmp_path):
        """splits_check.py --quick times the pairing detector, the row collector and the
        fit variants, each as a ratio against its baseline."""
        _run("splits_check.py", tmp_path)
        report = json.loads((tmp_path / "splits_check_quick.json").read_text())
        seed = report["seed (64, 2) float64"]
        assert set(seed["pairing, epoch 1"]) == {"us", "vs_step"}
        assert "vs_batch_hash" in seed["row keys"]
        assert "vs generator, bare" in report["fit"]["generator, enable() (checks on)"]
        assert (tmp_path / "splits_check_quick.md").read_text().startswith("# The split")
