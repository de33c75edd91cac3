"""Official Keras examples, ported with synthetic data, run clean under `safegen run`.

Each script of `tests/keras_io/` keeps its keras-io source's structure (losses,
activations, preprocessing, validation, fit/evaluate/predict) with tiny synthetic data;
its docstring names the source. Correct code nobody here wrote must give no finding: a
false alarm costs more than a miss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "tests" / "keras_io").glob("*.py"))

pytestmark = [pytest.mark.keras, pytest.mark.slow]

# The finding counts of `--report`'s totals: every kind of finding, and the ones no
# source claimed.
FINDINGS = (
    "violations",
    "changed_arrays",
    "reused_containers",
    "stopped_writes",
    "random_streams",
    "repeated_batches",
    "logits",
    "input_scales",
    "validation_overlaps",
    "one_class_splits",
    "frozen_augmentations",
    "shuffled_apart",
    "repeated_orders",
    "unattributed",
    "shape_errors",
)


def _run(script: Path, report: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGEN_")}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "safegen", "run", "--report", str(report), str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """Run the examples the session selected, as many at once as there are cores (each
    is a separate `safegen run`); ``{script: (result, report path)}``."""
    pytest.importorskip("keras")
    selected = [
        item.callspec.params["script"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and "script" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    folder = tmp_path_factory.mktemp("keras_io")
    scripts = list(dict.fromkeys(selected)) or EXAMPLES

    def run(script):
        report = folder / f"{script.stem}.json"
        return script, (_run(script, report), report)

    with ThreadPoolExecutor(max_workers=max(1, min(len(scripts), os.cpu_count() or 1))) as pool:
        return dict(pool.map(run, scripts))


class TestOfficialExamples:
    """The ported keras-io examples exit 0 under `safegen run` with no finding."""

    def test_examples_are_there(self):
        """The folder holds the ported examples, each naming its keras-io source."""
        assert len(EXAMPLES) >= 6
        for script in EXAMPLES:
            assert "keras-team/keras-io" in script.read_text().split('"""')[1], script.name

    @pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
    def test_no_finding(self, script, runs):
        """The example runs to the end under `safegen run`: exit 0, every finding count of
        its report 0, the new checks ran, and no check was skipped for failing."""
        result, report = runs[script]
        assert result.returncode == 0, result.stderr[-4000:]
        data = json.loads(report.read_text())
        assert data["exit_status"] == 0
        counts = {key: data["totals"][key] for key in FINDINGS}
        assert counts == dict.fromkeys(FINDINGS, 0), result.stderr[-4000:]
        assert data["checks"], "no call check ran on the example's fit"
        assert all(not check["findings"] for check in data["checks"])
        assert "was skipped for it" not in result.stderr, result.stderr[-4000:]
