"""`--resume RUN` goes on in the run's folder only with that run's own last.pkl and with run files it can write:
anything else is refused with one message before a byte of the folder changes."""

import os
import pickle
import shutil

import pytest
from hostile import XOR, clean_error

from helpers import nnctl
from nnctl.unpickle import safe_unpickle
from nnctl.yaml_loader import parse_yaml

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_resume")]  # one worker: the runs trained once


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs by name: xor; wide (another model); slow (the same course at another lr); long (xor, one epoch more)."""
    folder = tmp_path_factory.mktemp("resume")
    (folder / "xor.yaml").write_text(XOR)
    (folder / "wide.yaml").write_text(XOR.replace("units: 4", "units: 8"))
    for config, overrides in (("xor.yaml", []), ("wide.yaml", ["name=wide"]), ("xor.yaml", ["optimizer.lr=0.01",
                                                                                            "name=slow"]),
                              ("xor.yaml", ["train.epochs=3", "name=long"])):
        result = nnctl("train", config, "-q", *overrides, cwd=folder)
        assert result.returncode == 0, result.stderr
    return {run.name.split("-")[0]: run for run in (folder / "runs").iterdir()}


def contents(folder):
    """Every path under `folder` with its bytes (or what it is, when not a regular file)."""
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else "folder" if path.is_dir()
            else "special" for path in folder.rglob("*")}


def resume(run, *overrides):
    return nnctl("train", "-q", "--resume", str(run), "train.epochs=4", *overrides, cwd=run.parent, timeout=120)


@pytest.fixture
def victim(runs, tmp_path):
    """A copy of the xor run, to be resumed."""
    return shutil.copytree(runs["xor"], tmp_path / "victim")


@pytest.mark.parametrize("other, phrases", [
    ("wide", ["it holds a run of 'wide' whose course differs from that of", "victim/config.yaml (a run of 'xor')",
              "model.layers.0.units: 4 -> 8"]),
    ("slow", ["its epoch 2 (step 2, loss", "is not the one", "victim/metrics.jsonl records"]),  # epoch 1 is the same
    ("long", ["it has trained 3 epochs but", "victim/metrics.jsonl records 2"]),
])
def test_another_runs_last_pkl_is_refused_and_nothing_changes(runs, victim, other, phrases):
    shutil.copy(runs[other] / "checkpoints" / "last.pkl", victim / "checkpoints" / "last.pkl")
    before = contents(victim)
    clean_error(resume(victim), 1, "victim/checkpoints/last.pkl: not this run's checkpoint", *phrases,
                "Nothing was changed", "copy it out of", "nnctl train --resume COPY.pkl")
    assert contents(victim) == before


@pytest.mark.parametrize("damaged", ["name: [broken\n", "bad: 1\n", "- 1\n"])
def test_the_runs_own_last_pkl_resumes_with_its_config_or_metrics_damaged(victim, damaged):
    """A config.yaml that is no YAML, no mapping, or a mapping without a config's sections is damage, which the
    resume writes again (the second was taken for another run's config, 'a run of None')."""
    (victim / "config.yaml").write_text(damaged)
    metrics = victim / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-10])  # the cut-off last line a kill leaves
    result = resume(victim)
    assert result.returncode == 0, result.stderr
    config = parse_yaml((victim / "config.yaml").read_text(), "config.yaml")[0]
    assert config["name"] == "xor" and config["train"]["epochs"] == 4
    assert [row.count('"kind": "epoch"') for row in metrics.read_text().splitlines()] == [1] * 4


@pytest.mark.parametrize("name, kind", [
    ("train.log", "folder"), ("train.log", "fifo"), ("metrics.csv", "fifo"), ("metrics.jsonl", "folder"),
    ("config.yaml", "folder"), ("summary.json", "folder"), ("summary.json.tmp", "fifo"),
    ("checkpoints/best.pkl", "folder"), ("checkpoints/epoch-0002.pkl", "fifo"),
])
def test_a_run_file_that_is_not_a_regular_file_is_refused_before_anything_is_written(victim, name, kind):
    path = victim / name
    path.unlink(missing_ok=True)
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    before = contents(victim)
    what = "a folder, not a run file" if kind == "folder" else "not a regular file (a device, FIFO or socket)"
    clean_error(resume(victim), 1, f"victim/{name}: {what}", "the run writes it, so nothing was changed")
    assert contents(victim) == before


@pytest.mark.parametrize("kind, phrase", [("fifo", "not a regular file (a device, FIFO or socket)"),
                                          ("damaged", "holds no MLflow run id (it is damaged); move it away")])
def test_an_mlflow_json_that_is_a_fifo_or_damaged_is_one_message_not_a_hang(victim, kind, phrase):
    pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'nnctl[mlflow]'")
    path = victim / "mlflow.json"  # a FIFO blocked the resume forever; '[1]' was named an MLflow store failure
    os.mkfifo(path) if kind == "fifo" else path.write_text("[1]")
    result = nnctl("train", "-q", "--resume", str(victim), "train.epochs=4", "--mlflow", cwd=victim.parent, timeout=60,
                   env={"MLFLOW_TRACKING_URI": ""})
    clean_error(result, 1, f"victim/mlflow.json: {phrase}")


@pytest.mark.parametrize("summary", [True, False])
def test_a_run_without_last_pkl_names_it_and_the_best_pkl_it_has(victim, summary):
    (victim / "checkpoints" / "last.pkl").unlink()
    if not summary:  # no longer seen as a run folder: still resumed through its checkpoints/last.pkl
        (victim / "summary.json").unlink()
    before = contents(victim)
    best = victim / "checkpoints" / "best.pkl"
    clean_error(resume(victim), 1, "victim/checkpoints/last.pkl: missing", "cannot go on where it stopped",
                f"nnctl train --resume {best}", f"--init-from {best}")
    assert contents(victim) == before
    best.unlink()
    output = clean_error(resume(victim), 1, "victim/checkpoints/last.pkl: missing")
    assert "best.pkl" not in output


def _link_every_file(victim, original):
    """A farm of links, as `cp -rs` makes: real folders, every file a symbolic link to the original's."""
    for path in victim.rglob("*"):
        if path.is_file():
            path.unlink()
            path.symlink_to(original / path.relative_to(victim))


def _link_the_log(victim, original):
    outside = original.parent / "outside.log"
    outside.write_text("mine\n")
    (victim / "train.log").unlink()
    (victim / "train.log").symlink_to(outside)


def _link_the_checkpoints(victim, original):
    shutil.rmtree(victim / "checkpoints")
    (victim / "checkpoints").symlink_to(original / "checkpoints")


def _hard_link_the_metrics(victim, original):
    (victim / "metrics.csv").unlink()
    os.link(original / "metrics.csv", victim / "metrics.csv")


@pytest.mark.parametrize("make, linked, what", [
    (_link_every_file, "config.yaml", "a link to {original}/config.yaml"),
    (_link_the_log, "train.log", "a link to {outside}"), (_link_the_checkpoints, "checkpoints", "a link to {original}"),
    (_hard_link_the_metrics, "metrics.csv", "a file with 1 other hard link(s), elsewhere")])
def test_a_run_folder_with_links_is_refused_and_what_they_name_is_kept(runs, tmp_path, make, linked, what):
    original = shutil.copytree(runs["xor"], tmp_path / "original")
    victim = shutil.copytree(original, tmp_path / "victim")
    make(victim, original)
    before = contents(tmp_path)
    what = what.format(original=original / "checkpoints" if linked == "checkpoints" else original,
                       outside=tmp_path / "outside.log")
    clean_error(resume(victim), 1, f"victim/{linked}: {what}, which resuming", "nothing was changed", "cp -rL")
    assert contents(tmp_path) == before


def test_a_link_to_a_runs_last_pkl_branches_into_a_new_folder(runs, tmp_path):
    original = shutil.copytree(runs["xor"], tmp_path / "original")
    (tmp_path / "link.pkl").symlink_to(original / "checkpoints" / "last.pkl")
    before = contents(original)
    result = resume(tmp_path / "link.pkl")
    assert result.returncode == 0, result.stderr
    assert contents(original) == before and len(list((tmp_path / "runs").iterdir())) == 1


@pytest.mark.parametrize("where, overrides", [
    ("progress.step", []), ("optimizer.t", []), ("progress.epoch", ["train.epochs=9223372036854775810"])])
def test_a_count_at_the_top_of_its_range_is_not_carried_past_it_into_a_checkpoint(victim, where, overrides):
    """One more epoch took it to 2**63, which nnctl wrote as last.pkl and best.pkl and then refused to read back."""
    last = victim / "checkpoints" / "last.pkl"
    saved = safe_unpickle(last.read_bytes())
    section, key = where.split(".")
    saved[section][key] = 2**63 - 1
    last.write_bytes(pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL))
    checkpoints = contents(victim / "checkpoints")
    clean_error(resume(victim, *overrides), 1, f"last.pkl: not written: its '{where}' would be 9223372036854775808",
                "a checkpoint holds a whole number from 0 to 2**63 - 1", "the last one written is kept")
    assert contents(victim / "checkpoints") == checkpoints
