"""Nothing silently wrong: no NaN weights saved as good, dead runs shown as crashed, bugs marking runs failed,
leftovers of a kill cleaned at the next start."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hostile import XOR, clean_error

from helpers import REPO, nnctl
from nnctl import checkpoint
from nnctl.config import load_config
from nnctl.runner import Runner
from nnctl.runs import load_run

pytestmark = pytest.mark.slow  # each test runs the CLI or trains


def test_weights_that_overflow_are_never_saved(tmp_path):
    # one full batch per epoch: the step's loss is finite, the update it makes is not
    (tmp_path / "c.yaml").write_text(XOR.replace("{type: adam, lr: 0.05}", "{type: sgd, lr: 1.0e+300}")
                                     .replace("batch_size: 4", "batch_size: full"))
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path), 1, "became NaN or infinite at the end of epoch 1",
                "they were not saved", "optimizer.lr")
    run = next((tmp_path / "runs").iterdir())
    assert not (run / "checkpoints" / "last.pkl").exists() and not (run / "checkpoints" / "best.pkl").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "became NaN or infinite" in summary["error"]


def test_a_run_killed_with_sigkill_shows_as_crashed_and_its_leftovers_go_at_resume(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR.replace("epochs: 2", "epochs: 100000"))
    process = subprocess.Popen([sys.executable, "-m", "nnctl", "train", "c.yaml", "-q"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("runs/*/checkpoints/last.pkl")):
            time.sleep(0.2)
        run_dir = next(tmp_path.glob("runs/*"))
        assert load_run(run_dir).status == "running"
        assert "running" in nnctl("runs", "runs", cwd=tmp_path).stdout
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "running" and summary["pid"] == process.pid
    assert load_run(run_dir).status == "crashed"
    assert "crashed" in nnctl("runs", "runs", cwd=tmp_path).stdout
    leftovers = [run_dir / "checkpoints" / ".last.pkl.abc123.tmp", run_dir / ".metrics.jsonl.abc123.tmp",
                 run_dir / ".config.yaml.abc123.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a file")
    epochs = checkpoint.load(run_dir / "checkpoints" / "last.pkl").progress["epoch"]
    result = nnctl("train", "--resume", str(run_dir / "checkpoints" / "last.pkl"), f"train.epochs={epochs + 1}", "-q",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(leftover.exists() for leftover in leftovers) and load_run(run_dir).status == "finished"


def test_a_run_being_trained_is_not_resumed_by_a_second_process_at_once(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR.replace("epochs: 2", "epochs: 100000"))
    process = subprocess.Popen([sys.executable, "-m", "nnctl", "train", "c.yaml", "-q"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(REPO)})  # this checkout's nnctl
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("runs/*/checkpoints/last.pkl")):
            time.sleep(0.2)
        run_dir = next(tmp_path.glob("runs/*"))
        for again in (str(run_dir), str(run_dir / "checkpoints" / "last.pkl")):
            clean_error(nnctl("train", "--resume", again, "-q", cwd=tmp_path, timeout=60), 1,
                        f"{run_dir}: another nnctl process (pid {process.pid}) is training this run now")
        assert process.poll() is None, "the first run goes on"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 130 and load_run(run_dir).status == "stopped"
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, len(epochs) + 1)), "one process wrote the metrics"
    resumed = nnctl("train", "--resume", str(run_dir), f"train.epochs={len(epochs) + 1}", "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def test_an_internal_error_marks_the_run_failed_with_its_message(tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text(XOR)
    runner = Runner.start(load_config(tmp_path / "c.yaml"), tmp_path / "runs", quiet=True)

    def broken(*args):
        raise RuntimeError("a bug in a layer")

    monkeypatch.setattr(runner.exp.model.layers[1], "backward", broken)
    with pytest.raises(RuntimeError):
        runner.fit()
    run = load_run(runner.run_dir)
    assert run.status == "failed" and run.summary["error"] == "internal error: RuntimeError: a bug in a layer"


def test_the_repository_ships_no_runs_from_these_tests():
    assert not list((REPO / "runs").glob("xor-*"))
