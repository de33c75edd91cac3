"""Multi-process training on localhost, each process guarding its own source.

* tf_keras with ``tf.distribute.MultiWorkerMirroredStrategy``: two worker processes
  (``TF_CONFIG`` on 127.0.0.1 ports), tests/multiworker_run.py.
* Keras 3 on JAX with ``jax.distributed`` and ``keras.distribution.DataParallel``: two
  processes, tests/jax_multiprocess_run.py. (Keras 3 under MultiWorkerMirroredStrategy
  fails in ``fit`` with or without safegen: keras-team/keras#20585.)

Every run has a time limit; a process still running at the limit is killed and the test
fails saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TIME_LIMIT = 240  # seconds for a whole run of both processes


def _free_ports(count):
    """Ports free on 127.0.0.1 right now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run_together(commands, envs):
    """Start every command at once; wait until all end or TIME_LIMIT passes.

    Returns, per process: return code (None if it had to be killed), stdout, stderr, and
    the seconds it ran.
    """
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for command, env in zip(commands, envs, strict=True)
    ]
    results = []
    for proc in procs:
        remaining = max(1.0, TIME_LIMIT - (time.monotonic() - start))
        try:
            out, err = proc.communicate(timeout=remaining)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            # SIGKILL: JAX's distributed runtime handles SIGTERM itself.
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code = None
        results.append((code, out, err, time.monotonic() - start))
    return results


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _tf_config(ports, index):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def _tf_keras_job(source, mode, data, launcher=(sys.executable,), launcher_args=None):
    """Two MultiWorkerMirroredStrategy workers; ``data[i]`` is worker i's source."""
    ports = _free_ports(2)
    commands = [
        [
            *launcher,
            *(launcher_args(index) if launcher_args else ()),
            "tests/multiworker_run.py",
            source,
            mode,
            data[index],
        ]
        for index in range(2)
    ]
    envs = [_env(TF_CONFIG=_tf_config(ports, index)) for index in range(2)]
    return _run_together(commands, envs)


def _last_json(out):
    return json.loads(out.strip().splitlines()[-1])


needs_tf_keras = pytest.mark.skipif(
    importlib.util.find_spec("tf_keras") is None, reason="tf_keras is not installed"
)


@needs_tf_keras
@pytest.mark.tf_keras
class TestMultiWorkerMirroredStrategy:
    """tf_keras, two workers on localhost, each with its own guarded source."""

    def test_copy_mode_trains_on_both_sources(self):
        """Copy mode: both workers train on a reused-buffer generator and Sequence, in sync."""
        results = _tf_keras_job("both", "copy", ["reused", "reused"])
        for code, _, err, _ in results:
            assert code == 0, err[-3000:]
        first, second = (_last_json(out) for _, out, _, _ in results)
        assert {first["task"], second["task"]} == {0, 1} and first["replicas"] == 2
        untrained = first["generator"]["loss"][0]  # the first epoch, from random weights
        for source in ("generator", "sequence"):
            # One model, gradients all-reduced: both workers report the same losses.
            assert first[source]["loss"] == second[source]["loss"]
            # It trains: every later epoch (the Sequence's on the model the generator
            # trained) is below the untrained one. Not "each epoch below the last": RMSprop
            # at this rate oscillates near the minimum, so an epoch of a trained model may
            # be worse than the one before (seen: 0.25 then 10.8).
            later = first[source]["loss"][1:] if source == "generator" else first[source]["loss"]
            assert max(later) < untrained, (untrained, later)
            for worker in (first, second):
                assert worker[source]["violations"] == 0 and worker[source]["yields"] >= 10

    @pytest.mark.parametrize(
        "source, name",
        [
            ("generator", r"reused_batches() at tests/multiworker_run.py:"),
            ("sequence", r"Batches.__getitem__() at tests/multiworker_run.py:"),
        ],
        ids=["generator", "sequence"],
    )
    def test_check_mode_violation_stops_its_worker_and_the_job(self, source, name):
        """Worker 0's reused buffer stops it with safegen's message and exit status 1; worker
        1 (clean) is blocked in an all-reduce and ends too, with TensorFlow's
        UnavailableError once worker 0's socket closes, without hanging."""
        (code0, _, err0, _), (code1, _, err1, _) = _tf_keras_job(
            source, "check", ["reused", "fresh"]
        )
        assert code0 == 1, err0[-3000:]
        assert f"AliasingError: {name}" in err0, err0[-3000:]
        assert "changed after it was" in err0
        assert code1 is not None, "worker 1 was still running at the time limit"
        assert code1 != 0 and "UnavailableError" in err1, err1[-3000:]
        assert "AliasingError" not in err1

    def test_safegen_run_as_each_workers_launcher(self, tmp_path):
        """`python -m safegen run --report FILE worker.py` launches each worker: both train,
        and each writes its own report."""
        reports = [tmp_path / f"worker{index}.json" for index in range(2)]
        results = _tf_keras_job(
            "both",
            "copy",
            ["reused", "reused"],
            launcher=(sys.executable, "-m", "safegen", "run"),
            launcher_args=lambda index: ("--report", str(reports[index])),
        )
        for code, _, err, _ in results:
            assert code == 0, err[-3000:]
            assert "safegen: 2 data source(s) guarded" in err  # one summary per worker
        for report in reports:
            data = json.loads(report.read_text())
            assert data["exit_status"] == 0
            assert {row["mode"] for row in data["sources"]} == {"copy"}
            assert data["totals"]["batches"] > 0 and data["totals"]["violations"] == 0


@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
class TestJaxDataParallel:
    """Keras 3 on JAX, two processes on localhost (jax.distributed over gloo on CPU)."""

    def _job(self, mode, data):
        (port,) = _free_ports(1)
        command = [sys.executable, "tests/jax_multiprocess_run.py"]
        return _run_together(
            [[*command, str(index), str(port), mode, data[index]] for index in range(2)],
            [_env(KERAS_BACKEND="jax") for _ in range(2)],
        )

    def test_copy_mode_trains(self):
        """Copy mode: both processes train on their reused-buffer generators, in sync."""
        results = self._job("copy", ["reused", "reused"])
        for code, _, err, _ in results:
            assert code == 0, err[-3000:]
        first, second = (_last_json(out) for _, out, _, _ in results)
        assert {first["process"], second["process"]} == {0, 1} and first["devices"] == 2
        assert first["loss"] == second["loss"] and first["loss"][1] < first["loss"][0]
        assert first["violations"] == second["violations"] == 0

    def test_check_mode_violation_ends_the_job(self):
        """Process 0's reused buffer raises AliasingError in it; JAX then ends both
        processes with SIGABRT once its shutdown barrier times out (5 s here)."""
        (code0, _, err0, _), (code1, _, err1, _) = self._job("check", ["reused", "fresh"])
        assert "safegen.AliasingError: reused_batches() at tests/jax_multiprocess_run.py:" in err0
        assert code0 is not None and code1 is not None, "still running at the time limit"
        assert code0 == code1 == -signal.SIGABRT, (err0[-2000:], err1[-2000:])
        assert "Terminating process because the JAX distributed service" in err1
