"""Damaged metric rows (lists, huge integers, strings, NaN, rows that are not mappings) never crash plot or runs:
only values that are numbers are kept, the rest is named as damage, and a run with nothing to draw says so."""

import json
import socket
from pathlib import Path

import pytest
from hostile import clean_error

from helpers import nnctl, png_size

pytestmark = [pytest.mark.slow, pytest.mark.no_kernels]  # each test runs the CLI

CONFIG = """\
# resolved config of this run (overrides applied); nnctl 0.1.0
name: xor_mlp
seed: 0
dtype: float64
data:
  type: logic
  op: xor
model:
  layers:
  - type: dense
    units: 4
    activation: tanh
  - type: dense
    units: 1
loss: binary_cross_entropy
optimizer:
  type: adam
  lr: 0.05
train:
  epochs: 3
  batch_size: full
  metrics:
  - accuracy
device: cpu
"""
GOOD = [{"kind": "epoch", "epoch": e, "step": e, "lr": 0.05, "loss": 0.7 - 0.1 * e, "accuracy": 0.5, "time_s": 0.4}
        for e in (1, 2, 3)]
BIG = "9" * 400


def summary(**extra) -> dict:
    """summary.json of a finished 3-epoch run, as the runner writes it."""
    return {"name": "xor_mlp", "status": "finished", "epochs": 3, "steps": 3, "wall_time_s": 0.41, "final": GOOD[-1],
            "best": {"monitor": "loss", "mode": "min", "value": 0.4}, "test": {"test_loss": 0.4, "test_accuracy": 0.5},
            "test_on": {"weights": "best", "epoch": 3}, "error": None, "seed": 0, "num_params": 17,
            "frozen_params": 0, "weights_from": {}, "pid": 1, "host": "elsewhere", "heartbeat": 1.0, **extra}


def write_run(folder: Path, metrics: str, **extra) -> Path:
    """A run directory with a real run's files: config.yaml, summary.json, metrics.jsonl and .csv, train.log."""
    folder.mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "config.yaml").write_text(CONFIG)
    (folder / "summary.json").write_text(json.dumps(summary(**extra), indent=2))
    (folder / "metrics.jsonl").write_text(metrics)
    (folder / "metrics.csv").write_text("kind,epoch,step,lr,loss,accuracy,time_s\n")
    (folder / "train.log").write_text("epoch 1/3  lr 0.05  loss 0.6\n")
    return folder


def rows(*rows: dict | str) -> str:
    """metrics.jsonl lines: mappings as JSON, strings as they are."""
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def epoch(n: int, loss: str) -> str:
    """An epoch row whose loss is written as the raw JSON `loss`."""
    return f'{{"kind": "epoch", "epoch": {n}, "step": {n}, "loss": {loss}}}'


# name: (metrics.jsonl, what `plot` says when it cannot draw (None: it draws), what `runs show` names as damage)
SHAPES = {
    "a list": (rows(epoch(1, "[1]")), "'loss' is a list, not a number", "'loss' is a list, not a number"),
    "a 400-digit integer": (rows(epoch(1, BIG)), "'loss' is an integer past float's range",
                            "metrics.jsonl:1: 'loss' is an integer past float's range"),
    "a nested mapping": (rows(epoch(1, '{"a": {"b": [1, {"c": 2}]}}')), "'loss' is a mapping, not a number",
                         "'loss' is a mapping, not a number"),
    "strings": (rows('{"kind": "epoch", "epoch": "one", "step": "1", "loss": "0.5"}'), "is a string, not a number",
                "'epoch' is a string, not a number"),
    "booleans": (rows('{"kind": "epoch", "epoch": true, "step": 1, "loss": false}'), "is a boolean, not a number",
                 "'loss' is a boolean, not a number"),
    "NaN and infinities only": (rows(epoch(1, "NaN"), epoch(2, "Infinity"), epoch(3, "-Infinity")),
                                "nothing to plot: no value of 'loss' or 'val_loss' is a finite number", None),
    "floats at float's limit": (rows(epoch(1, "1.7e308"), epoch(2, "-1.7e308"), epoch(3, "0.5")), None, None),
    "steps at float's limit": (rows('{"kind": "step", "epoch": 1, "step": 1.7e308, "loss": 1.7e308}', *GOOD),
                               None, None),
    "rows that are not mappings": (rows("[1, 2]", '"x"', "5", "null", *GOOD), None,
                                   "metrics.jsonl:1: a row without kind 'epoch', 'step' or 'eval' (and 3 more rows "
                                   "like it)"),
    "an empty file": ("", "no run records the metric 'loss'; they record: nothing yet", None),
    "one bad row among good ones": (rows(GOOD[0], epoch(2, "[1]"), GOOD[2]), None,
                                    "metrics.jsonl:2: 'loss' is a list, not a number; left out"),
    "an epoch past float's range": (rows(f'{{"kind": "epoch", "epoch": {BIG}, "step": 1, "loss": 0.5}}', GOOD[1]),
                                    None, "'epoch' is an integer past float's range"),
}


def clean(result) -> str:
    """Asserts a zero exit without a traceback; the output."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "internal error" not in output, output
    return output


@pytest.mark.parametrize("metrics, refusal, damage", SHAPES.values(), ids=SHAPES.keys())
def test_damaged_metric_rows_never_crash_plot_or_runs(tmp_path, metrics, refusal, damage):
    run = write_run(tmp_path / "bad", metrics)
    good = write_run(tmp_path / "good", rows(*GOOD))
    plotted = nnctl("plot", str(run), "-o", str(tmp_path / "bad.png"), timeout=120)
    if refusal is None:
        clean(plotted)
        assert png_size(tmp_path / "bad.png") == (1200, 500)
    else:
        clean_error(plotted, 1, refusal)
        assert not (tmp_path / "bad.png").exists()
    for command in (("runs", "show", str(run)), ("runs", "diff", str(run), str(good))):
        output = clean(nnctl(*command))
        assert (f"{run} is damaged, shown without: " in output and damage in output) if damage else \
            "is damaged" not in output, output


def test_a_folder_of_damaged_runs_is_listed_and_its_good_run_plotted(tmp_path):
    for i, (metrics, _, _) in enumerate(SHAPES.values()):
        write_run(tmp_path / "runs" / f"run{i}", metrics)
    write_run(tmp_path / "runs" / "good", rows(*GOOD))
    output = clean(nnctl("runs", str(tmp_path / "runs")))
    assert all(f"run{i}" in output for i in range(len(SHAPES))) and "is damaged" in output
    clean(nnctl("plot", str(tmp_path / "runs"), "-o", str(tmp_path / "all.png"), timeout=120))
    assert png_size(tmp_path / "all.png") == (1200, 500)


def test_a_metrics_file_of_many_bad_rows_is_summed_up_not_listed_line_by_line(tmp_path):
    bad = "".join(f'{{"kind": "epoch", "epoch": {i}, "step": {i}, "loss": [1], "k{i}": "x"}}\n' for i in range(2000))
    run = write_run(tmp_path / "run", bad)
    output = clean(nnctl("runs", "show", str(run)))
    assert "metrics.jsonl:1: 'loss' is a list, not a number; left out (and 1999 more rows like it)" in output
    assert "more problems of other kinds or keys" in output and output.count("'k") <= 5
    refused = clean_error(nnctl("plot", str(run), "-o", str(tmp_path / "p.png")), 1, "no run records the metric")
    assert f"{run} is damaged: metrics.jsonl:1: 'loss' is a list" in refused


# name: (what summary.json holds besides a good run's, what every `runs` command shows of it)
SUMMARIES = {
    "numbers past float's range": (dict(best={"monitor": "loss", "value": int(BIG)}, wall_time_s=int(BIG),
                                        heartbeat=int(BIG)), "summary.json: its 'wall_time_s' is int 999"),
    "final and test values that are not numbers": (
        dict(final={"kind": "epoch", "epoch": 3, "loss": [1], "accuracy": int(BIG)}, test={"test_loss": "x"}),
        "summary.json: its 'final': 'loss' is a list, not a number; left out"),
    "booleans for counts": (dict(epochs=True, wall_time_s=False, seed=True), "summary.json: its 'epochs' is bool True"),
    "a running run whose pid no process can have": (
        dict(status="running", pid=10**30, host=socket.gethostname(), heartbeat=1.0), "crashed"),
}


@pytest.mark.parametrize("extra, shown", SUMMARIES.values(), ids=SUMMARIES.keys())
def test_damaged_summaries_never_crash_runs_or_plot(tmp_path, extra, shown):
    run = write_run(tmp_path / "runs" / "bad", rows(*GOOD), **extra)
    good = write_run(tmp_path / "runs" / "good", rows(*GOOD))
    for command in (("runs", str(tmp_path / "runs")), ("runs", "show", str(run)),
                    ("runs", "diff", str(run), str(good)), ("plot", str(run), "-o", str(tmp_path / "p.png"))):
        output = clean(nnctl(*command, timeout=120))
        if command[0] == "runs":
            assert shown in output, output
    assert png_size(tmp_path / "p.png") == (1200, 500)


def test_a_summary_of_many_values_that_are_not_numbers_is_read_in_one_pass(tmp_path):
    """200,000 of them (a 3.6 MB summary.json): each is looked up once, not against all the others (minutes)."""
    run = write_run(tmp_path / "run", rows(*GOOD), final={f"m{i}": "x" for i in range(200_000)})
    output = clean(nnctl("runs", "show", str(run), timeout=60))
    assert "summary.json: its 'final': 'm0' is a string, not a number; left out" in output
    assert "summary.json: its 'final': 199995 more values that are not numbers; left out" in output


def test_a_summary_nested_deeper_than_a_config_may_be_is_damage_and_the_other_runs_still_list(tmp_path):
    """json.loads reads 900 levels, which printing them back as JSON cannot follow: one such run failed
    `runs list --json` for every run."""
    run = write_run(tmp_path / "runs" / "deep", rows(*GOOD))
    write_run(tmp_path / "runs" / "good", rows(*GOOD))
    text = json.dumps(summary())
    (run / "summary.json").write_text(text[:-1] + ', "extra": ' + "[" * 900 + "]" * 900 + "}")
    listed = json.loads(clean(nnctl("runs", "list", str(tmp_path / "runs"), "--json")))
    assert [entry["damage"] for entry in listed] == [["summary.json: nested deeper than 100 levels"], []]
    shown = json.loads(clean(nnctl("runs", "show", str(run), "--json")))
    assert shown["summary"] == {} and shown["damage"] == ["summary.json: nested deeper than 100 levels"]
