"""train.steps as the budget (ending mid-epoch, schedules following it) and train.eval_every_steps from step 0."""

import json
import math
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import CONFIGS, nnctl
from nnctl import checkpoint, plot
from nnctl.config import load_config
from nnctl.course import MAY_CHANGE
from nnctl.experiment import build
from nnctl.metrics import evaluate
from nnctl.runs import load_run

pytestmark = pytest.mark.slow  # the real CLI, training


def run_of(tmp_path, *args):
    result = nnctl("train", str(CONFIGS / "elman_pattern_ends.yaml"), *args, "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return run, json.loads((run / "summary.json").read_text()), rows


def test_a_step_budget_ends_mid_epoch_and_the_schedule_follows_it(tmp_path):
    # 900 training sequences in batches of 32: 29 steps per epoch; 40 steps end 11 steps into epoch 2
    run, summary, rows = run_of(tmp_path, "train.steps=40", "schedule=cosine")
    assert summary["steps"] == 40 and summary["epochs"] == 2 and summary["status"] == "finished"
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [(r["epoch"], r["step"]) for r in epochs] == [(1, 29), (2, 40)]
    assert epochs[-1]["lr"] == pytest.approx(0.02 * 0.5 * (1 + math.cos(math.pi * 39 / 40)), rel=1e-9)
    assert "val_loss" in epochs[-1]  # the last epoch is evaluated, cut short or not
    listed = nnctl("runs", str(tmp_path))
    assert listed.returncode == 0 and "40/40 steps" in listed.stdout, listed.stdout  # not 2 of train.epochs' 3
    again = nnctl("train", "--resume", str(run / "checkpoints" / "last.pkl"))
    assert again.returncode == 1 and "already took 40 of 40 steps" in again.stderr
    advice = again.stderr.split("add an override such as ")[1].split()[0]
    assert advice == "train.steps=1040" and advice.split("=")[0] in MAY_CHANGE  # advice a resume takes
    longer = nnctl("train", "--resume", str(run / "checkpoints" / "last.pkl"), "train.steps=50", "-q")
    assert longer.returncode == 0, longer.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == 50


INTERRUPTED_AT = """\
import os, signal, sys
from nnctl import optim
from nnctl.cli import main
step, at, presses = optim.Optimizer.step, int(sys.argv.pop(1)), int(sys.argv.pop(1))
taken = []

def interrupted(self):  # Ctrl-C during optimizer step `at`: once, the runner stops after it; twice, at once
    taken.append(1)
    if len(taken) == at:
        for _ in range(presses):
            os.kill(os.getpid(), signal.SIGINT)
    return step(self)

optim.Optimizer.step = interrupted
sys.argv[0] = "nnctl"
main()
"""


def test_a_run_stopped_at_its_last_step_resumes_to_end_its_cut_short_epoch(tmp_path):
    """Ctrl-C in step 40 of 40 (11 steps into epoch 2): the resume ends that epoch (evaluated, checkpointed, tested)
    and takes no step more, as the uninterrupted run does."""
    stopped = subprocess.run([sys.executable, "-c", INTERRUPTED_AT, "40", "1", "train",
                              str(CONFIGS / "elman_pattern_ends.yaml"), "train.steps=40", "--runs-dir",
                              str(tmp_path / "a"), "-q"], capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 130, stopped.stderr
    (run,) = (tmp_path / "a").iterdir()
    resumed = nnctl("train", "--resume", str(run), "-q")
    assert resumed.returncode == 0, resumed.stderr
    _, summary, rows = run_of(tmp_path / "b", "train.steps=40")
    kept = ("kind", "epoch", "step", "loss", "val_loss")
    after = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [{k: r.get(k) for k in kept} for r in after] == [{k: r.get(k) for k in kept} for r in rows]
    assert json.loads((run / "summary.json").read_text())["test"] == summary["test"]


def test_a_second_ctrl_c_stops_at_once_and_says_where_to_resume_from(tmp_path):
    aborted = subprocess.run([sys.executable, "-c", INTERRUPTED_AT, "35", "2", "train",
                              str(CONFIGS / "elman_pattern_ends.yaml"), "--runs-dir", str(tmp_path), "-q"],
                             capture_output=True, text=True, timeout=300)
    (run,) = tmp_path.iterdir()
    assert aborted.returncode == 130 and "Traceback" not in aborted.stderr, aborted.stderr
    assert f"interrupted at once; resume from the end of the last finished epoch with: nnctl train --resume " \
           f"{run / 'checkpoints' / 'last.pkl'}" in aborted.stderr.replace("\n", "")
    assert checkpoint.load(run / "checkpoints" / "last.pkl").progress["epoch"] == 1  # 29 steps an epoch


def test_checkpoints_kept_every_n_steps_resume_exactly(tmp_path):
    """train.keep_every counted epochs only, too coarse for a run of a few long epochs or a step budget;
    train.keep_every_steps: N keeps step-NNNNNNNN.pkl every N optimizer steps, mid-epoch too, and a run resumed from
    one ends as the uninterrupted one does."""
    run, summary, rows = run_of(tmp_path / "whole", "train.steps=40", "train.keep_every_steps=15")  # 29 steps an epoch
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.pkl", "last.pkl", "step-00000015.pkl", "step-00000030.pkl"]
    kept = checkpoint.load(run / "checkpoints" / "step-00000030.pkl").progress
    assert (kept["epoch"], kept["batch"], kept["step"]) == (1, 1, 30)
    resumed = nnctl("train", "--resume", str(run / "checkpoints" / "step-00000030.pkl"), "--runs-dir",
                    str(tmp_path / "resumed"), "-q")
    assert resumed.returncode == 0, resumed.stderr
    (again,) = (tmp_path / "resumed").iterdir()
    assert [json.loads(line) | {"time_s": 0} for line in (again / "metrics.jsonl").read_text().splitlines()] == [
        row | {"time_s": 0} for row in rows]
    assert json.loads((again / "summary.json").read_text())["test"] == summary["test"]


def test_evaluation_every_n_steps_starts_at_step_0(tmp_path):
    run, _, rows = run_of(tmp_path, "train.steps=40", "train.eval_every_steps=10", "--tensorboard")
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [(r["step"], r["epoch"]) for r in evals] == [(0, 1), (10, 1), (20, 1), (30, 2), (40, 2)]  # 29 steps an epoch
    events = EventAccumulator(str(run))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("eval/val_loss")] == \
        [(r["step"], pytest.approx(r["val_loss"], rel=1e-6)) for r in evals]
    shown = nnctl("runs", "show", str(run))
    assert shown.returncode == 0 and "damaged" not in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    exp = build(load_config(CONFIGS / "elman_pattern_ends.yaml"))  # the run's untrained start
    untrained = evaluate(exp.model, exp.loss, exp.data.val.x, exp.data.val.y, exp.metrics, prefix="val_")
    assert evals[0]["val_loss"] == pytest.approx(untrained["val_loss"], rel=1e-6)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] / 2
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert epochs[-1]["val_loss"] == pytest.approx(evals[-1]["val_loss"], rel=1e-12)  # the same weights


def test_tensorboard_turned_on_at_a_resume_gets_the_rows_before_it_too(tmp_path):
    run, _, _ = run_of(tmp_path, "train.epochs=2")
    resumed = nnctl("train", "--resume", str(run), "train.epochs=3", "--tensorboard", "-q")
    assert resumed.returncode == 0, resumed.stderr
    events = EventAccumulator(str(run))
    events.Reload()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(s.step, s.value) for s in events.Scalars("epoch/loss")] == \
        [(r["epoch"], pytest.approx(r["loss"], rel=1e-6)) for r in rows] and len(rows) == 3


def test_the_curves_plot_draws_the_evaluations_every_n_steps(tmp_path, monkeypatch):
    run, _, rows = run_of(tmp_path, "train.steps=40", "train.eval_every_steps=10", "train.log_every_steps=5")
    drawn = []
    monkeypatch.setattr(plot, "_save", lambda fig, out: drawn.append(fig) or out)
    plot.curves([load_run(run)], "val_loss", tmp_path / "c.png")  # a val_ metric: its train and validation sides
    (left, right), = [fig.axes for fig in drawn]
    evals = [(r["step"], r["val_loss"]) for r in rows if r["kind"] == "eval"]
    lines = [list(zip(*line.get_data(), strict=True)) for line in right.get_lines()]
    assert [(float(x), pytest.approx(y)) for x, y in evals] in lines and "dashed: validation" in right.get_title()
    assert len(left.get_lines()) == 2  # per epoch: train loss, and val_loss dashed


def test_eval_every_steps_without_validation_is_refused(tmp_path):
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.eval_every_steps=5", "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "train.eval_every_steps: evaluating every N steps needs a validation split" in result.stderr
