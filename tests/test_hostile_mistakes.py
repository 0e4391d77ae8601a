"""User mistakes end in one clear message, never an internal error; a damaged run folder is shown in part."""

import json

import pytest
from hostile import XOR, clean_error, listing

from helpers import nnctl

pytestmark = [pytest.mark.slow,  # each test runs the CLI or trains
              pytest.mark.xdist_group("hostile_mistakes")]  # one worker: the module's xor run is trained once


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One finished xor run (3 epochs) and its folder."""
    folder = tmp_path_factory.mktemp("mistakes")
    (folder / "xor.yaml").write_text(XOR.replace("epochs: 2", "epochs: 3"))
    result = nnctl("train", "xor.yaml", "-q", cwd=folder)
    assert result.returncode == 0, result.stderr
    return next((folder / "runs").iterdir())


YAML_MISTAKES = {
    "control character": (XOR.replace("name: xor", "name: x\x07y"), "c.yaml:1: the character U+0007 is not allowed"),
    "nul byte": ("seed: 0\x00\n" + XOR, "c.yaml:1: the character U+0000"),
    "a key that is a list": (XOR + "? [a, b]\n: 1\n", "c.yaml:11: <top level>: a key must be a name, not a sequence"),
    "a key that is a mapping": (XOR.replace("seed: 0", "seed: 0\ndata2: {? {a: 1}: 2}"),
                                "c.yaml:3: data2: a key must be a name, not a mapping"),
    "a null key": (XOR + "~: 1\n", "a key must be a name, not null"),
    "recursive alias": (XOR.replace("seed: 0", "seed: &s [*s]"), "c.yaml:2: seed.0: an alias refers to a node"),
    "5000-deep nesting": ("x: " + "[" * 5000 + "]" * 5000 + "\n" + XOR, "c.yaml:1: nested deeper than 100 levels"),
    "non-finite lr": (XOR.replace("lr: 0.05", "lr: .nan"), "c.yaml:9: optimizer.lr: must be a finite number, got nan"),
    "infinite min_delta": (XOR.replace("batch_size: 4", "batch_size: 4, early_stopping: {min_delta: .inf}"),
                           "train.early_stopping.min_delta: must be a finite number, got inf"),
}


@pytest.mark.parametrize("name", YAML_MISTAKES)
def test_yaml_mistakes(tmp_path, name):
    text, phrase = YAML_MISTAKES[name]
    (tmp_path / "c.yaml").write_text(text)
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path, timeout=120), 2, phrase)
    assert listing(tmp_path) == {str(tmp_path / "c.yaml")}


def test_merge_keys_work_in_a_config(tmp_path):
    text = XOR.replace("optimizer: {type: adam, lr: 0.05}", "optimizer:\n  <<: &o {type: adam, lr: 0.5}\n  lr: 0.05")
    (tmp_path / "c.yaml").write_text(text)
    result = nnctl("train", "c.yaml", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lr: 0.05" in next(tmp_path.glob("runs/*/config.yaml")).read_text()


@pytest.mark.parametrize("args, code, phrase", [
    (["gradcheck", "--eps", "0"], 2, "--eps must be a finite number above 0, got 0.0"),
    (["gradcheck", "--tol", "nan"], 2, "--tol must be a finite number above 0"),
    (["gradcheck", "{config}", "--samples", "0"], 2, "--samples must be a finite number of at least 1, got 0"),
    (["gradcheck", "{config}", "--samples", "-3"], 2, "--samples must be"),
    (["gradcheck", "{config}", "--per-tensor", "-1"], 2, "--per-tensor must be"),
    (["sample", "{run}/checkpoints/last.pkl", "--temperature", "nan"], 2, "--temperature must be a finite number"),
    (["sample", "{run}/checkpoints/last.pkl", "--length", "0"], 2, "--length must be"),
    (["sample", "{run}/checkpoints/last.pkl", "--length", "9" * 30], 2, "--length may be at most 1,000,000"),
    (["sample", "{run}/checkpoints/last.pkl", "--seed", "-1"], 2, "--seed must be a finite number of at least 0"),
    (["plot", "{run}", "--smooth", "nan"], 2, "--smooth must be in [0, 1)"),
    (["plot", "{run}", "--activations", "--samples", "0"], 2, "--samples must be"),
    (["train", "{config}", "--runs-dir", "{config}"], 1, "a file (or inside one), not a folder for runs"),
    (["runs", "{config}"], 1, "a file, not a folder of runs"),
    (["train", "{config}", "a..b=1"], 2, "override 'a..b=1': the key 'a..b' has an empty or padded part"),
    (["plot", "{run}", "-o", "{tmp}/out.xyz"], 2, "unknown image kind '.xyz'"),
    (["predict", "{run}", "{tmp}/x.npy", "--layer", "dense_1"], 2, "--layer writes the layer's outputs as an array"),
    (["predict", "{run}", "{tmp}/x.npy", "-o", "{tmp}/a.txt"], 2, "cannot write predictions as '.txt'"),
    (["predict", "{run}", "{tmp}/x.npy", "--layer", "nolayer", "-o", "{tmp}/f.npy"], 2,
     "--layer: this model has no layer 'nolayer'"),
    (["export", "{run}", "-o", "{tmp}/a.npz", "--format", "bogus"], 2, "--format must be npz or onnx, not 'bogus'"),
    (["export", "{run}", "-o", "{tmp}/a.txt"], 2, "a.txt: the weights are written as an .npz archive"),
    (["export", "{run}", "-o", "{tmp}/a.npz", "--format", "onnx"], 2, "a.npz: name the ONNX file *.onnx"),
    (["plot", "{run}", "{run}", "--confusion"], 2, "--confusion shows one run; got 2"),
    (["train", "{config}", "--resume", "{run}"], 2, "--resume continues the run with its own config, so drop"),
    (["train", "{config}", "name=" + "c" * 240], 2, "a name may have at most 200 characters, this one has 240"),
    (["train", "{config}", "model.layers.0.name=" + "d" * 201], 2, "a name may have at most 200 characters, this one "
                                                                   "has 201"),
    (["plot", "{run}", "--metric", "bogus"], 2, "--metric: unknown metric 'bogus'"),
    (["train", "{config}", "data.validation=10"], 2, "override 'data.validation=10': data.validation: holds out 10 "
                                                     "of the 4 training samples, leaving none to train on; make "
                                                     "data.validation smaller"),
    (["train", "{config}", "data.validation=3", "data.subset=3"], 2, "override 'data.validation=3': data.validation: "
                                                                     "holds out 3 of the 3 training samples "
                                                                     "(data.subset keeps 3)"),
    (["plot", "{run}", "-o", "{config}/x.png"], 1, "is a file, not a folder"),
    # every -o refuses a folder that does not exist (plot made it, export failed after its work), before any work
    (["plot", "{run}", "-o", "{tmp}/nodir/x.png"], 1, "x.png: no folder {tmp}/nodir to write it in; make it first"),
    (["export", "{run}", "-o", "{tmp}/nodir/w.npz"], 1, "w.npz: no folder {tmp}/nodir to write it in; make it first"),
    (["predict", "{run}", "{tmp}/x.npy", "-o", "{tmp}/nodir/p.csv"], 1, "p.csv: no folder {tmp}/nodir to write"),
    (["convert", "{tmp}/w.safetensors", "-c", "{config}", "-o", "{tmp}/nodir/w.npz"], 1,
     "w.npz: no folder {tmp}/nodir to write it in"),
    (["eval", "{tmp}"], 1, "a folder, not a checkpoint"),  # a run directory stands for its checkpoint; not any folder
    (["predict", "{tmp}", "{config}"], 1, "a folder, not a checkpoint"),
    (["gradcheck", "{config}", "--layer", "conv2d"], 2, "--layer conv2d: no layer of this model with parameters is "
                                                        "called so or of that type; those with parameters: dense_1"),
    (["gradcheck", "{config}", "--layer", "dense_1", "model.layers.0.trainable=false"], 2,
     "--layer dense_1: dense_1 has trainable: false, so its parameters get no gradients to check"),
])
def test_cli_mistakes(run, tmp_path, args, code, phrase):
    (tmp_path / "c.yaml").write_text(XOR)
    names = {"config": str(tmp_path / "c.yaml"), "run": str(run), "tmp": str(tmp_path)}
    before = listing(tmp_path, run)
    clean_error(nnctl(*(a.format(**names) for a in args), cwd=tmp_path), code, phrase.format(**names))
    assert listing(tmp_path, run) == before


def test_run_folders_whose_files_are_not_files_are_listed_with_the_damage_named(run, tmp_path):
    """They were left out of `runs` without a word (the README says damaged runs are shown in part)."""
    import os
    import shutil
    for name, file in (("folder", "config.yaml"), ("fifo", "summary.json")):
        shutil.copytree(run, tmp_path / "runs" / name)
        target = tmp_path / "runs" / name / file
        target.unlink()
        if name == "folder":
            target.mkdir()
        else:
            os.mkfifo(target)
    result = nnctl("runs", str(tmp_path / "runs"), cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "folder is damaged, shown without: config.yaml:" in result.stdout and "a folder, not a run file" in \
        result.stdout, result.stdout
    assert "fifo is damaged, shown without: summary.json:" in result.stdout and "not a regular file" in result.stdout


def test_gradcheck_of_a_config_checks_only_the_layer_asked_for(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR)
    result = nnctl("gradcheck", "c.yaml", "--layer", "dense_2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dense_2" in result.stdout and "dense_1" not in result.stdout and "all 2 checks passed" in result.stdout


def test_check_bounds_its_timed_passes_by_seconds(tmp_path):
    """--repeats 10⁸ ran for hours: the timed passes stop at --seconds, as the overfitting does."""
    (tmp_path / "c.yaml").write_text(XOR)
    result = nnctl("check", "c.yaml", "--repeats", "100000000", "--seconds", "1", cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and "dense_1" in result.stdout, result.stderr


def test_data_root_that_is_a_file(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR.replace("{type: logic, op: xor}", "{type: mnist, root: c.yaml}"))
    clean_error(nnctl("train", "c.yaml", cwd=tmp_path), 1, "c.yaml: a file, but the data of mnist is kept in a folder")


DAMAGE = {
    "broken config.yaml": ("config.yaml", "model: [unclosed\n", "config.yaml: "),
    "summary.json that is a list": ("summary.json", "[1, 2]", "summary.json: holds list"),
    "a metrics row without kind": ("metrics.jsonl", None, "metrics.jsonl:2: a row without kind"),
    "a half-written last line": ("metrics.jsonl", "cut", "metrics.jsonl:3: its last line is cut off"),
    "a summary value of the wrong kind": ("summary.json", "wall", "summary.json: its 'wall_time_s' is str"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_damaged_run_folders_are_listed_in_part_with_the_damage_named(run, tmp_path, name):
    import shutil
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    file, text, phrase = DAMAGE[name]
    if text is None:
        rows = (copy / file).read_text().splitlines()
        rows[1] = json.dumps({k: v for k, v in json.loads(rows[1]).items() if k != "kind"})
        text = "\n".join(rows) + "\n"
    elif text == "cut":
        text = (copy / file).read_text()[:-20]
    elif text == "wall":
        text = json.dumps({**json.loads((copy / file).read_text()), "wall_time_s": "long"})
    (copy / file).write_text(text)
    for args in (["runs", str(tmp_path / "runs")], ["runs", "show", str(copy)], ["runs", "diff", str(copy), str(run)]):
        result = nnctl(*args, cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert f"{copy} is damaged, shown without: " in result.stdout and phrase in result.stdout, result.stdout
        assert "internal error" not in result.stdout + result.stderr
    listed = nnctl("runs", str(tmp_path / "runs"), cwd=tmp_path).stdout
    assert run.name in listed and ("finished" in listed or file == "summary.json")
