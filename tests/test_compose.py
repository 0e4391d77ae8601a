"""Composed configs (`base:` chains merged key by key) and `nnctl config`, the resolved config with every default."""

import json
import re
from pathlib import Path

import pytest
import yaml

from helpers import CONFIGS, nnctl
from nnctl.config import load_config
from nnctl.errors import ConfigError
from nnctl.experiment import build

BASE = """\
name: base_name
seed: 3
data: {type: logic, op: xor}
model:
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 1}
loss: {type: binary_cross_entropy, l2: 0.001}
optimizer: {type: adam, lr: 0.05, clip_norm: 5.0}
train: {epochs: 5, batch_size: full, metrics: [accuracy]}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_chain_merges_mappings_replaces_lists_and_deletes_nulls(tmp_path):
    write(tmp_path, "shared/base.yaml", BASE)
    write(tmp_path, "shared/middle.yaml", "base: base.yaml\noptimizer: {lr: 0.01}\ntrain: {epochs: 7}\n")
    child = write(tmp_path, "child.yaml", "base: shared/middle.yaml\n"
                                          "model:\n  layers:\n    - {type: dense, units: 1}\n"
                                          "optimizer: {clip_norm: null}\nloss: mse\n")
    data = load_config(child).data
    assert "base" not in data
    assert data["name"] == "child"  # named by the config given, not by a base
    assert data["seed"] == 3 and data["data"] == {"type": "logic", "op": "xor"}
    assert data["optimizer"] == {"type": "adam", "lr": 0.01}  # merged key by key; clip_norm deleted
    assert data["train"] == {"epochs": 7, "batch_size": "full", "metrics": ["accuracy"]}
    assert data["model"]["layers"] == [{"type": "dense", "units": 1}]  # the list replaced whole
    assert data["loss"] == "mse"
    build(load_config(child))


def test_a_mapping_over_a_shorthand_keeps_its_type(tmp_path):
    write(tmp_path, "base.yaml", BASE.replace("loss: {type: binary_cross_entropy, l2: 0.001}",
                                              "loss: binary_cross_entropy"))
    child = write(tmp_path, "child.yaml", "base: base.yaml\nloss: {l2: 0.01}\n")
    assert load_config(child).data["loss"] == {"type": "binary_cross_entropy", "l2": 0.01}


def test_errors_name_the_file_and_line_that_set_the_value(tmp_path):
    write(tmp_path, "good.yaml", BASE)
    child = write(tmp_path, "child.yaml", "base: good.yaml\n\noptimizer: {lrr: 0.01}\n")
    with pytest.raises(ConfigError, match=r"child.yaml:3: optimizer.lrr: unknown key for optimizer 'adam'"):
        build(load_config(child))
    write(tmp_path, "base.yaml", BASE.replace("units: 4,", "units: 4, unitz: 2,"))
    inherits = write(tmp_path, "inherits.yaml", "base: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base.yaml:6: model.layers.0.unitz: unknown key"):
        build(load_config(inherits))
    layers = write(tmp_path, "layers.yaml", "base: base.yaml\nmodel:\n  layers:\n    - {type: dense, units: -1}\n")
    with pytest.raises(ConfigError, match=r"layers.yaml:4: model.layers.0"):
        build(load_config(layers))


@pytest.mark.slow
@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "b.yaml:1: base: a.yaml leads back to a config "
                                                               "already in the chain"),
    ({"a.yaml": "base: a.yaml\n"}, "a.yaml:1: base: a.yaml leads back"),
    ({"a.yaml": "seed: 1\nbase: nowhere.yaml\n"}, "a.yaml:2: base: .*nowhere.yaml: no such config file"),
    ({"a.yaml": "base: [b.yaml]\n"}, "a.yaml:1: base: expected the path of another config"),
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "- 1\n"}, "a.yaml:1: base: .*b.yaml is not a config"),
    ({"a.yaml": "base: c1.yaml\n", **{f"c{i}.yaml": f"base: c{i + 1}.yaml\n" for i in range(1, 1500)}},
     "c100.yaml:1: base: a chain of more than 100 bases"),  # it ended in Python's recursion limit, exit 1
])
def test_bad_bases_are_refused_with_one_message(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    result = nnctl("train", str(tmp_path / "a.yaml"), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2  # a config error
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_config_command_prints_every_default_and_its_output_trains_the_same(tmp_path):
    result = nnctl("config", str(CONFIGS / "mnist_gru_original.yaml"), "optimizer.lr=0.01")
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert "base" not in printed and printed["name"] == "mnist_gru_original"
    assert printed["model"]["layers"][0] == {
        "type": "gru", "units": 128, "reset_after": False, "return_sequences": False, "bidirectional": False,
        "initial_state": "zeros", "weight_init": "glorot_uniform", "recurrent_init": "glorot_uniform",
        "bias_init": "zeros", "state_init": "zeros", "trainable": True, "lr_mult": 1.0}
    assert printed["optimizer"] == {"type": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                    "clip_norm": 5.0}
    assert printed["train"]["early_stopping"] == {"patience": 3, "min_delta": 0.0, "restore_best": True}
    assert printed["train"]["test_on"] == "best" and printed["schedule"]["type"] == "cosine"
    assert printed["data"]["validation"] == 5000 and printed["data"]["subset"] is None
    again = write(tmp_path, "again.yaml", result.stdout)
    assert yaml.safe_load(nnctl("config", str(again)).stdout) == printed  # a fixed point
    as_json = nnctl("config", str(CONFIGS / "mnist_gru_original.yaml"), "optimizer.lr=0.01", "--json")
    assert json.loads(as_json.stdout) == printed  # --json, as the other commands that print results take it


@pytest.mark.slow
def test_config_command_reports_a_bad_key_with_its_line(tmp_path):
    bad = write(tmp_path, "bad.yaml", BASE.replace("lr: 0.05", "lr: 0.05, momentun: 0.9"))
    result = nnctl("config", str(bad))
    assert result.returncode == 2  # a config error
    assert "bad.yaml:9: optimizer.momentun: unknown key for optimizer 'adam'" in result.stderr
