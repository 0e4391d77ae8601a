"""runs, plot and sweep through the real CLI on tiny real MNIST runs; plots are checked as real PNG files."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import CONFIGS, REPO, nnctl, png_size
from nnctl.builder import build_model
from nnctl.experiment import build
from nnctl.sweep import Sweep

pytestmark = [pytest.mark.slow,  # runs the CLI in subprocesses and trains real models
              pytest.mark.xdist_group("runs_plot_sweep")]  # one worker: the module's two runs are trained once

TINY = ["data.subset=1200", "data.test_subset=300", "data.validation=200", "train.epochs=2",
        "model.layers.0.units=32", "model.layers.2.units=16"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mnist_root) -> tuple[Path, Path, Path]:
    """Two finished runs that differ in the optimizer; the first logs its loss every 2 steps."""
    runs = tmp_path_factory.mktemp("runs")
    for overrides in (["train.log_every_steps=2"], ["optimizer.type=sgd", "optimizer.lr=0.1"]):
        result = nnctl("train", str(CONFIGS / "mnist_mlp.yaml"), *TINY, *overrides, "--runs-dir", str(runs), "-q")
        assert result.returncode == 0, result.stderr
    first, second = sorted(runs.iterdir())
    return runs, first, second


def test_runs_lists_shows_and_diffs(two_runs):
    runs, first, second = two_runs
    listing = nnctl("runs", str(runs))
    assert listing.returncode == 0, listing.stderr
    for run in (first, second):
        assert run.name in listing.stdout
    assert listing.stdout.count("finished") == 2 and "2/2" in listing.stdout and "val_accuracy" in listing.stdout

    summary = json.loads((first / "summary.json").read_text())
    show = nnctl("runs", "show", str(first))
    assert show.returncode == 0, show.stderr
    assert f"{summary['test']['test_accuracy']:.4g}" in show.stdout
    assert "per epoch" in show.stdout and "finished" in show.stdout

    diff = nnctl("runs", "diff", str(first), str(second))
    assert diff.returncode == 0, diff.stderr
    lines = {line.split()[1]: line for line in diff.stdout.splitlines() if line.startswith("│")}
    assert "adam" in lines["optimizer.type"] and "sgd" in lines["optimizer.type"]
    assert "0.001" in lines["optimizer.lr"] and "0.1" in lines["optimizer.lr"]
    assert "model.layers.0.units" not in lines  # the same in both
    assert "optimizer.momentum" in lines and "optimizer.beta1" in lines  # defaults written out
    # lr, type, log_every_steps, and Adam's beta1, beta2 and eps against SGD's momentum and nesterov
    assert "test_accuracy" in lines and "config keys that differ (8)" in diff.stdout


def test_runs_list_and_show_as_json(two_runs, tmp_path):
    runs, first, second = two_runs
    listed = nnctl("runs", "list", str(runs), "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [record["path"] for record in records] == [str(first), str(second)]
    assert all(record["status"] == "finished" and record["damage"] == [] for record in records)
    assert records[0]["summary"] == json.loads((first / "summary.json").read_text())
    shown = json.loads(nnctl("runs", "show", str(first), "--json").stdout)
    assert shown["config"]["optimizer"]["type"] == "adam" and len(shown["history"]) >= 2
    assert [row["epoch"] for row in shown["history"] if row["kind"] == "epoch"] == [1, 2]
    empty = nnctl("runs", "list", str(tmp_path), "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


def test_runs_diff_as_json(two_runs):
    """`runs diff --json`, as `runs list` and `runs show` have it: the keys that differ and the results, each as
    [value in the first run, value in the second], null where one has none."""
    _, first, second = two_runs
    result = nnctl("runs", "diff", str(first), str(second), "--json")
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    assert diff["runs"] == [str(first), str(second)] and diff["damage"] == [[], []]
    assert len(diff["config"]) == 8 and diff["config"]["optimizer.type"] == ["adam", "sgd"]
    assert diff["config"]["optimizer.lr"] == [0.001, 0.1] and diff["config"]["optimizer.momentum"][0] is None
    summaries = [json.loads((run / "summary.json").read_text()) for run in (first, second)]
    assert diff["results"]["test_accuracy"] == [summary["test"]["test_accuracy"] for summary in summaries]
    assert diff["results"]["status"] == ["finished", "finished"] and diff["results"]["epochs"] == [2, 2]


def test_plain_runs_takes_the_options_of_runs_list(two_runs):
    """`nnctl runs --json [DIR]` lists as `nnctl runs list --json [DIR]` does; -h is still the group's help."""
    runs, _, _ = two_runs
    listed = nnctl("runs", "list", str(runs), "--json")
    for args in (["--json", str(runs)], [str(runs), "--json"]):
        result = nnctl("runs", *args)
        assert result.returncode == 0 and result.stdout == listed.stdout, result.stderr
    default = nnctl("runs", "--json", cwd=runs.parent)  # runs/ is not there: list's own error, not a usage error
    assert default.returncode == 1 and "runs: no such directory" in default.stderr, default.stderr
    assert "Commands:" in nnctl("runs", "-h").stdout


def test_runs_list_takes_the_runs_dir_that_train_and_sweep_take(two_runs):
    """`nnctl train c.yaml --runs-dir exp` then `nnctl runs list --runs-dir exp` was 'No such option'."""
    runs, _, _ = two_runs
    listed = nnctl("runs", "list", str(runs), "--json")
    for args in (["list", "--runs-dir", str(runs)], ["--runs-dir", str(runs)]):
        result = nnctl("runs", *args, "--json")
        assert result.returncode == 0 and result.stdout == listed.stdout, result.stderr


def test_runs_list_looks_for_dir_under_runs_dir_as_a_run_is_looked_for(two_runs, tmp_path):
    """`nnctl runs show NAME --runs-dir exp` found exp/NAME, but `nnctl runs list NAME --runs-dir exp` was refused
    ('give the folder of runs once') and DIR alone was taken only as a path: a sweep's folder, made as
    <runs-dir>/<name>, had to be spelled out. DIR is now found as a RUN is."""
    runs, first, _ = two_runs
    listed = nnctl("runs", "list", str(runs), "--json")
    by_name = nnctl("runs", "list", runs.name, "--runs-dir", str(runs.parent), "--json", cwd=tmp_path)
    assert by_name.returncode == 0 and by_name.stdout == listed.stdout, by_name.stderr
    one = nnctl("runs", "list", first.name, "--runs-dir", str(runs), "--json", cwd=tmp_path)
    assert one.returncode == 0 and [run["path"] for run in json.loads(one.stdout)] == [str(first)], one.stderr


def test_mlflows_copies_of_a_run_are_not_listed_as_runs(two_runs, tmp_path):
    """MLflow's local artifact store beside the runs holds each tracked run's summary.json and config.yaml."""
    _, first, _ = two_runs
    shutil.copytree(first, tmp_path / "runs" / first.name)
    shutil.copytree(first, tmp_path / "runs" / "mlartifacts" / "mnist_mlp" / "abc123" / "artifacts")
    listing = nnctl("runs", str(tmp_path / "runs"))
    assert listing.returncode == 0 and first.name in listing.stdout, listing.stderr
    assert "artifacts" not in listing.stdout, listing.stdout


def test_runs_diff_does_not_count_a_key_given_at_its_default(tmp_path):
    config = CONFIGS / "xor_mlp.yaml"
    for name, extra in (("a", []), ("c", ["optimizer.beta1=0.9", "model.layers.0.use_bias=true"])):
        result = nnctl("train", str(config), f"name={name}", "train.epochs=5", "--runs-dir", str(tmp_path), "-q",
                       *extra)
        assert result.returncode == 0, result.stderr
    diff = nnctl("runs", "diff", *map(str, sorted(tmp_path.iterdir())))
    assert diff.returncode == 0 and "config keys that differ (1)" in diff.stdout, diff.stdout
    assert "beta1" not in diff.stdout and "use_bias" not in diff.stdout


def test_runs_errors(two_runs, tmp_path):
    not_a_run = nnctl("runs", "show", str(tmp_path))
    assert not_a_run.returncode == 1 and "not a run directory" in not_a_run.stderr
    usage = nnctl("runs", "diff", str(two_runs[1]))
    assert usage.returncode == 2 and "nnctl runs diff RUN RUN" in usage.stderr
    empty = nnctl("runs", str(tmp_path))
    assert empty.returncode == 0 and "no runs under" in empty.stdout
    for result in (not_a_run, usage):
        assert "Traceback" not in result.stderr


def test_a_run_given_by_name_is_found_under_runs_dir(tmp_path):
    """`nnctl runs show NAME`, `runs diff`, `plot` and the commands that take a CHECKPOINT took only paths, where `runs
    list` and `train` take --runs-dir: a name that is no path here is looked for there (default runs/), also as the
    start of one run's name; a start that several share is refused, naming them."""
    for name in ("alpha", "beta", "beta"):
        result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), f"name={name}", "train.epochs=2", "-q", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    alpha, beta, later = sorted((tmp_path / "runs").iterdir())
    shown = nnctl("runs", "show", "alpha", "--json", cwd=tmp_path)
    assert shown.returncode == 0 and json.loads(shown.stdout)["path"] == f"runs/{alpha.name}", shown.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    diff = nnctl("runs", "diff", alpha.name, beta.name, "--json", "--runs-dir", str(tmp_path / "runs"), cwd=elsewhere)
    assert diff.returncode == 0 and json.loads(diff.stdout)["runs"] == [str(alpha), str(beta)], diff.stderr
    np.save(tmp_path / "x.npy", np.array([[0, 1], [1, 1]], dtype=np.float32))
    for command in (["eval", "alph", "--json"], ["export", "alpha", "-o", "w.npz"], ["plot", "alpha", "-o", "c.png"],
                    ["predict", "alpha", "x.npy"], ["train", "--resume", "alpha", "train.epochs=3", "-q"],
                    ["train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=1", "--init-from", "alpha", "-q"]):
        result = nnctl(*command, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    assert json.loads((alpha / "summary.json").read_text())["epochs"] == 3  # resumed in its own folder
    assert json.loads(nnctl("eval", "alpha", "--json", cwd=tmp_path).stdout)["checkpoint"] == (
        f"runs/{alpha.name}/checkpoints/best.pkl")

    several = nnctl("runs", "show", "beta", cwd=tmp_path)
    assert several.returncode == 2 and "2 runs in runs start with 'beta'" in several.stderr, several.stderr
    assert f"({later.name}, {beta.name})" in several.stderr  # newest first
    none = nnctl("runs", "show", "gamma", cwd=tmp_path)
    assert none.returncode == 1 and "gamma: not found: neither gamma nor runs/gamma exists" in none.stderr
    (tmp_path / "alpha").mkdir()  # a path that exists as given is taken as given
    here = nnctl("runs", "show", "alpha", cwd=tmp_path)
    assert here.returncode == 1 and "alpha: not a run directory" in here.stderr, here.stderr
    for result in (several, none, here):
        assert "Traceback" not in result.stderr


def test_a_name_is_looked_for_among_the_runs_there_not_every_folder(tmp_path):
    """MLflow keeps its stores beside the runs (mlruns, mlartifacts): `nnctl runs show ml` found 'ml-...' and
    'mlruns' and was refused as ambiguous. A folder that holds no run is no candidate."""
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "name=ml", "train.epochs=1", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    for store in ("mlruns", "mlartifacts"):
        (tmp_path / "runs" / store).mkdir()
    shown = nnctl("runs", "show", "ml", "--json", cwd=tmp_path)
    assert shown.returncode == 0 and json.loads(shown.stdout)["path"] == f"runs/{run.name}", shown.stderr
    none = nnctl("runs", "show", "mlr", cwd=tmp_path)
    assert none.returncode == 1 and none.stderr.endswith("and no run in runs starts with 'mlr'\n"), none.stderr


def test_the_confusion_matrix_title_puts_the_split_and_accuracy_on_a_line_of_their_own(tmp_path):
    (tmp_path / "matplotlibrc").write_text("svg.fonttype: none\n")  # text as <text> elements, one a line
    out = tmp_path / "confusion.svg"
    result = nnctl("plot", str(CONFIGS / "xor_mlp.yaml"), "--confusion", "-o", str(out),
                   env={"MATPLOTLIBRC": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = re.findall(r"<text[^>]*>([^<]*)</text>", out.read_text())
    assert "xor_mlp.yaml (initial weights)" in lines, lines
    assert any(line.startswith("on test: accuracy ") and line.endswith(" (4 samples)") for line in lines), lines


def test_plot_curves_confusion_activations(two_runs, tmp_path):
    runs, first, second = two_runs
    curves = tmp_path / "curves.png"
    result = nnctl("plot", str(first), str(second), "--metric", "accuracy", "-o", str(curves))
    assert result.returncode == 0, result.stderr
    assert png_size(curves) == (1200, 500)

    result = nnctl("plot", str(runs))  # a folder of runs: every run in it, the plot written into it
    assert result.returncode == 0, result.stderr
    assert png_size(runs / "curves.png") == (1200, 500)

    assert nnctl("plot", str(first), "--confusion").returncode == 0
    assert png_size(first / "confusion.png") == (700, 600)
    out = tmp_path / "act.png"
    assert nnctl("plot", str(first / "checkpoints" / "last.pkl"), "--activations", "-o", str(out)).returncode == 0
    assert png_size(out) == (1200, 300)  # five layers: one row
    init = tmp_path / "init.png"
    at_init = nnctl("plot", str(CONFIGS / "mnist_mlp.yaml"), "--activations", "--samples", "50", "-o", str(init))
    assert at_init.returncode == 0, at_init.stderr
    assert png_size(init) == (1200, 300)


def test_plot_errors(two_runs, tmp_path):
    _, first, _ = two_runs
    no_conv = nnctl("plot", str(first), "--filters", "-o", str(tmp_path / "f.png"))
    assert no_conv.returncode == 1 and "first conv layer" in no_conv.stderr and "dense" in no_conv.stderr
    unknown = nnctl("plot", str(first), "--metric", "acuracy", "-o", str(tmp_path / "x.png"))  # a typo: exit 2
    assert unknown.returncode == 2 and "--metric: unknown metric 'acuracy'" in unknown.stderr, unknown.stderr
    unrecorded = nnctl("plot", str(first), "--metric", "top_5_accuracy", "-o", str(tmp_path / "y.png"))
    assert unrecorded.returncode == 1 and "no run records the metric 'top_5_accuracy'" in unrecorded.stderr
    assert "val_accuracy" in unrecorded.stderr, unrecorded.stderr
    assert not any((tmp_path / name).exists() for name in ("f.png", "x.png", "y.png"))
    for result in (no_conv, unknown, unrecorded):
        assert "Traceback" not in result.stderr


def test_plot_without_matplotlib_says_how_to_install(two_runs, tmp_path):
    hide = "import sys; sys.modules['matplotlib'] = None; from nnctl.cli import main; sys.argv[0] = 'nnctl'; main()"
    result = subprocess.run([sys.executable, "-c", hide, "plot", str(two_runs[1]), "-o", str(tmp_path / "c.png")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'nnctl[plot]'" in result.stderr and "Traceback" not in result.stderr


SWEEP = """\
base: {base}
overrides:
  data.subset: 1200
  data.test_subset: 300
  data.validation: 200
  train.epochs: 2
  model.layers.*.units: 16        # every layer that has units, the output layer too...
  model.layers.4.units: 10        # ...which is set back to the 10 classes
members:
  - {{name: plain}}
  - {{name: nodrop, model.layers.*.rate: 0.0}}
  - {{name: broken, optimizer: {{type: sgd, lr: 1.0e+30}}}}
grid:
  seed: [0, 1]
metric: accuracy
"""


def test_sweep_finishes_the_others_reports_the_broken_one_and_skips_on_rerun(tmp_path, mnist_root):
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(SWEEP.format(base=CONFIGS / "mnist_mlp.yaml"))
    result = nnctl("sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "RuntimeWarning" not in result.stderr  # the broken ones: a row each
    assert "2 of 6 members failed: broken_0, broken_1" in result.stderr
    assert "broken_0: failed" in result.stdout and "the loss became" in result.stdout
    folder = tmp_path / "runs" / "tiny"
    summaries = {p.parent.name.rsplit("-", 2)[0]: json.loads(p.read_text()) for p in folder.glob("*/summary.json")}
    assert {k: s["status"] for k, s in summaries.items()} == {
        "plain_0": "finished", "plain_1": "finished", "nodrop_0": "finished", "nodrop_1": "finished",
        "broken_0": "failed", "broken_1": "failed"}
    assert summaries["plain_0"]["final"] != summaries["plain_1"]["final"]  # the seeds differ
    assert png_size(folder / "curves.png") == (1200, 500)
    assert png_size(folder / "by_seed.png") == (800, 500)

    before = sorted(p.name for p in folder.iterdir())
    again = nnctl("sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs"), "--jobs", "2")
    assert again.returncode == 1
    assert "6 members, 4 already done, 2 to run" in again.stdout
    assert again.stdout.count("done before (finished)") == 4
    after = sorted(p.name for p in folder.iterdir())
    assert [n for n in after if not n.startswith("broken")] == [n for n in before if not n.startswith("broken")]


def test_sweep_quiet_prints_nothing_but_what_failed(tmp_path):
    """`sweep -q`, as `train -q`: no plan, member lines, table or plot names on stdout; a failed member on stderr."""
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'xor_mlp.yaml'}\noverrides: {{train.epochs: 2}}\nmembers:\n"
                          "  - {name: ok}\n  - {name: broken, data: {type: csv, path: nope.csv}}\n")
    result = nnctl("sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr == "1 of 2 members failed: broken\n", result.stderr
    assert [run.name.split("-")[0] for run in (tmp_path / "runs" / "s").glob("*/")] == ["ok"]


def test_sweep_members_and_wildcards(tmp_path, mnist_root):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP.format(base=CONFIGS / "mnist_mlp.yaml"))
    members = Sweep(sweep_file, tmp_path).members
    assert [m.label for m in members] == ["plain_0", "plain_1", "nodrop_0", "nodrop_1", "broken_0", "broken_1"]
    layers = members[2].config.data["model"]["layers"]
    assert [layer.get("units") for layer in layers] == [16, None, 16, None, 10]
    assert [layer.get("rate") for layer in layers] == [None, 0.0, None, 0.0, None]
    assert members[4].config.data["optimizer"] == {"type": "sgd", "lr": 1e30}
    assert members[1].config.data["seed"] == 1 and members[1].config.data["name"] == "plain_1"


@pytest.mark.parametrize("text, message", [
    ("base: {base}\ngrid:\n  optimizer.type: adam\n", "s.yaml:3: grid.optimizer.type: expected a non-empty list"),
    ("base: {base}\ngird:\n  seed: [1]\n", "gird: unknown key for a sweep file (did you mean 'grid'?)"),
    ("base: {base}\ngrid:\n  model.layers.*.nope: [1]\n", "its '*' matches no item"),
    ("base: nope.yaml\n", "nope.yaml: no such config file"),
    ("base: {base}\noverrides: {{optimizer.lr: abc}}\n",
     "member s: {dir}/s.yaml:2 (overrides.optimizer.lr): optimizer.lr: expected a number > 0, got str 'abc'"),
    ("base: {base}\ngrid:\n  optimizer.lr: [0.1, abc]\n",
     "member optimizer.lr=abc: {dir}/s.yaml:3 (grid.optimizer.lr)"),
    ("base: {base}\nmembers:\n  - {{name: plain}}\ngrid:\n  optimizer.lr: [abc]\n",
     "member plain, optimizer.lr=abc: {dir}/s.yaml:5 (grid.optimizer.lr)"),
    ("base: {base}\ngrid:\n  optimizer.bogus: [1]\n", "member optimizer.bogus=1: {dir}/s.yaml:3 "
                                                        "(grid.optimizer.bogus): optimizer.bogus: unknown key"),
    ("base: {base}\ngrid:\n  train.epochs: [[1, 2]]\n", "member train.epochs=[1, 2]: {dir}/s.yaml:3 "
                                                          "(grid.train.epochs): train.epochs: expected an integer ≥ 1, "
                                                          "got list [1, 2]"),
])
def test_sweep_file_mistakes(tmp_path, text, message):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(text.format(base=CONFIGS / "mnist_mlp.yaml"))
    result = nnctl("sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and message.format(dir=tmp_path) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_help_for_the_new_commands():
    for command in ("runs", "plot", "sweep"):
        result = nnctl(command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


@pytest.mark.parametrize("name, count", [("optimizers", 5), ("bn_init_scale", 32), ("overfitting", 3)])
def test_shipped_sweeps_build_every_member(tmp_path, mnist_root, name, count):
    members = Sweep(CONFIGS / "sweeps" / f"{name}.yaml", tmp_path).members
    assert len(members) == count
    shape = build(members[0].config).data.input_shape
    rng = np.random.default_rng(0)
    for member in members:
        build_model(member.config, shape, np.float32, rng)


def test_ctrl_c_stops_a_sweep_and_running_it_again_resumes_the_member(tmp_path, mnist_root):
    """The members waiting behind the running one do not start (with one job they all ran to the end first)."""
    sweep_file = tmp_path / "one.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'mnist_mlp.yaml'}\noverrides:\n  data.subset: 10000\n"
                          "  data.validation: 500\n  train.epochs: 2\n  train.batch_size: 10\n"
                          "  train.log_every_steps: 1\nmembers:\n  - {name: only}\n  - {name: later, seed: 1}\n"
                          "  - {name: last, seed: 2}\n")
    command = [sys.executable, "-m", "nnctl", "sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own process group, as a terminal's Ctrl-C reaches
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = list((tmp_path / "runs").glob("one/*/metrics.csv"))
        if metrics and len(metrics[0].read_text().splitlines()) > 20:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Run the sweep again to resume" in stderr and "Traceback" not in stderr
    (run,) = (tmp_path / "runs" / "one").glob("only-*")
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"
    assert [p.name for p in (tmp_path / "runs" / "one").iterdir() if p.name != ".lock"] == [run.name]

    again = nnctl(*command[3:])
    assert again.returncode == 0, again.stderr
    assert "3 to run" in again.stdout
    summary = json.loads((run / "summary.json").read_text())  # the same run directory, continued
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert [p.name for p in (tmp_path / "runs" / "one").glob("only-*")] == [run.name]


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie no parent reaps has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_sweep_killed_with_sigkill_leaves_no_worker_behind(tmp_path):
    sweep_file = tmp_path / "k.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'xor_mlp.yaml'}\noverrides:\n  train.epochs: 100000\n"
                          "grid:\n  optimizer.lr: [0.01, 0.02, 0.03]\n")
    process = subprocess.Popen([sys.executable, "-m", "nnctl", "sweep", str(sweep_file), "--jobs", "2", "--runs-dir",
                                str(tmp_path / "runs")], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 120, []
    try:
        while time.time() < deadline and len(list(tmp_path.glob("runs/k/*/checkpoints/last.pkl"))) < 2:
            time.sleep(0.1)
        runs = sorted(tmp_path.glob("runs/k/*-*"))
        workers = [json.loads((run / "summary.json").read_text())["pid"] for run in runs]
        assert len(workers) == 2 and process.pid not in workers
        process.kill()
        process.wait()
        deadline = time.time() + 30
        while time.time() < deadline and any(map(_alive, workers)):
            time.sleep(0.2)
        assert not any(map(_alive, workers)), "the workers end with the sweep"
    finally:
        process.kill()
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)
    assert [json.loads((run / "summary.json").read_text())["status"] for run in runs] == ["stopped"] * 2
    assert sorted(tmp_path.glob("runs/k/*-*")) == runs, "no member started after the sweep was gone"


def test_sweep_samples_draw_a_random_search_from_the_grid(tmp_path):
    sweep_file = tmp_path / "r.yaml"
    grid = "grid:\n  optimizer.lr: [0.1, 0.01, 0.001]\n  train.batch_size: [16, 32, 64, 128]\n"
    sweep_file.write_text(f"base: {CONFIGS / 'mnist_mlp.yaml'}\n{grid}samples: 5\nseed: 3\n")
    labels = [m.label for m in Sweep(sweep_file, tmp_path).members]
    assert len(set(labels)) == 5 and labels == [m.label for m in Sweep(sweep_file, tmp_path).members]
    every = {f"{lr}_{size}" for lr in (0.1, 0.01, 0.001) for size in (16, 32, 64, 128)}
    assert set(labels) <= every
    sweep_file.write_text(f"base: {CONFIGS / 'mnist_mlp.yaml'}\n{grid}samples: 5\nseed: 4\n")
    assert [m.label for m in Sweep(sweep_file, tmp_path).members] != labels
    sweep_file.write_text(f"base: {CONFIGS / 'mnist_mlp.yaml'}\n{grid}samples: 0\n")
    result = nnctl("sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "r.yaml:5: samples: samples must be at least 1" in result.stderr


def test_plot_filters_of_a_small_conv_run(tmp_path, mnist_root):
    result = nnctl("train", str(CONFIGS / "mnist_cnn.yaml"), "data.subset=600", "data.test_subset=100",
                   "data.validation=100", "train.epochs=1", "model.layers.0.filters=6", "model.layers.3.units=16",
                   "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    shown = nnctl("plot", str(run), "--filters")
    assert shown.returncode == 0, shown.stderr
    assert png_size(run / "filters.png") == (800, 800)
    layers = nnctl("plot", str(run), "--activations", "-o", str(tmp_path / "a.png"))
    assert layers.returncode == 0, layers.stderr
    assert png_size(tmp_path / "a.png") == (1200, 300)  # conv, pool, flatten, dense, dense: one row of five


def stop_before_test(run: Path) -> None:
    """Leaves `run` as a stop between its last epoch and its test evaluation does (Ctrl-C in a Ray member's
    last epoch): status stopped, every epoch trained, no test metrics."""
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "stopped", "test": None, "test_on": None}))


def test_a_run_stopped_before_its_test_evaluation_is_finished_by_resume_and_by_the_sweep(tmp_path, mnist_root):
    sweep_file = tmp_path / "last.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'mnist_mlp.yaml'}\noverrides:\n  data.subset: 2000\n"
                          "  data.validation: 500\n  data.test_subset: 300\n  train.epochs: 1\n"
                          "members:\n  - {name: only}\n")
    command = ["sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs")]
    assert nnctl(*command).returncode == 0
    (run,) = (tmp_path / "runs" / "last").glob("only-*")
    stop_before_test(run)
    resumed = nnctl("train", "-q", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 1 and "test_accuracy" in summary["test"]

    stop_before_test(run)
    again = nnctl(*command)
    assert again.returncode == 0, again.stderr
    assert "1 to run" in again.stdout and "only: finished" in again.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and "test_accuracy" in summary["test"]
    assert [p.name for p in (tmp_path / "runs" / "last").glob("only-*")] == [run.name]


def test_sweep_takes_its_metric_as_plot_does(tmp_path):
    """val_loss is loss (train, validation and test columns); a metric no member records is refused."""
    sweep_file = tmp_path / "m.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'xor_mlp.yaml'}\noverrides: {{train.epochs: 2}}\nmetric: val_loss\n")
    command = ["sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs")]
    result = nnctl(*command)
    assert result.returncode == 0, result.stderr
    assert "val_val_loss" not in result.stdout and "test_loss" in result.stdout
    refused = nnctl(*command, "--metric", "mse")
    assert refused.returncode == 1 and "no run records the metric 'mse'; they record: accuracy" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_sweep_already_running_is_not_run_again_at_once(tmp_path):
    sweep_file = tmp_path / "busy.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'xor_mlp.yaml'}\noverrides: {{train.epochs: 1000000}}\n")
    command = ["sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs")]
    first = subprocess.Popen([sys.executable, "-m", "nnctl", *command], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((tmp_path / "runs").glob("busy/*/metrics.jsonl")):
            time.sleep(0.05)
        second = nnctl(*command, timeout=30)
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=60)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"the sweep is being run by process {first.pid}" in second.stderr and second.stdout == ""
    assert len(list((tmp_path / "runs" / "busy").glob("busy-*"))) == 1


def test_a_member_without_its_summary_is_listed_as_damaged_and_finished_by_the_sweep(tmp_path):
    sweep_file = tmp_path / "lost.yaml"
    sweep_file.write_text(f"base: {CONFIGS / 'xor_mlp.yaml'}\noverrides: {{train.epochs: 2}}\n")
    command = ["sweep", str(sweep_file), "--runs-dir", str(tmp_path / "runs")]
    assert nnctl(*command).returncode == 0
    (run,) = (tmp_path / "runs" / "lost").glob("lost-*")
    (run / "summary.json").unlink()
    listing = nnctl("runs", "list", str(tmp_path / "runs"))
    assert listing.returncode == 0 and run.name in listing.stdout, listing.stdout + listing.stderr
    assert f"{run} is damaged, shown without: summary.json: missing" in listing.stdout
    again = nnctl(*command)
    assert again.returncode == 0 and "1 member, 0 already done, 1 to run" in again.stdout, again.stdout
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert [p.name for p in (tmp_path / "runs" / "lost").glob("lost-*")] == [run.name]
