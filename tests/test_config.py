"""A config's own knowledge: its base directory, its dtype, where a bad value in it is reported; overrides
with `*`, the same rule as in sweep files."""

import math
import pickle
import re
import textwrap

import numpy as np
import pytest
import yaml

from helpers import CONFIGS, nnctl
from nnctl.backend import DTYPES
from nnctl.config import apply_overrides, from_dict, load_config
from nnctl.errors import ConfigError
from nnctl.experiment import build, initial_model
from nnctl.sections import resolved
from nnctl.sweep import Sweep

CSV_CONFIG = """\
data: {type: csv, path: table.csv}
model:
  layers:
    - {type: dense, units: 2}
loss: softmax_cross_entropy
optimizer: sgd
train: {epochs: 1, batch_size: 2}
"""


def write_project(folder):
    folder.mkdir()
    (folder / "table.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    (folder / "c.yaml").write_text(CSV_CONFIG)
    return folder / "c.yaml"


def test_a_config_knows_its_base_directory(tmp_path, monkeypatch):
    path = write_project(tmp_path / "project")
    monkeypatch.chdir(tmp_path)  # relative paths start at the config's folder, not the working directory
    config = load_config("project/c.yaml")
    assert config.base_dir == (tmp_path / "project").resolve()
    assert len(build(config).data.train) == 4
    assert from_dict({}).base_dir == from_dict({}, base_dir=".").base_dir  # a test's dict: the working directory
    sweep = tmp_path / "project" / "s.yaml"
    sweep.write_text("base:\n" + textwrap.indent(CSV_CONFIG, "  ") + "grid:\n  seed: [1, 2]\n")
    members = Sweep(sweep, tmp_path / "runs").members  # an inline base: relative to the sweep file
    assert [m.config.base_dir for m in members] == [path.parent.resolve()] * 2
    assert len(build(members[1].config).data.train) == 4


def test_a_run_from_elsewhere_resumes_with_the_configs_base_directory(tmp_path):
    path = write_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = nnctl("train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    (last,) = (tmp_path / "runs").glob("*/checkpoints/last.pkl")
    with open(last, "rb") as f:
        assert pickle.load(f)["base_dir"] == str(path.parent.resolve())
    assert f"relative to {path.parent.resolve()}" in (last.parent.parent / "config.yaml").read_text()
    result = nnctl("train", "--resume", str(last), "train.epochs=2", "-q", cwd=elsewhere)
    assert result.returncode == 0, result.stderr


def test_dtype_takes_the_backends_names_and_gradcheck_asks_for_float64_as_an_override():
    config = from_dict({"data": {"type": "logic", "op": "xor"}, "loss": "mse", "optimizer": "sgd",
                        "model": {"layers": [{"type": "dense", "units": 1}]}, "dtype": "float16"})
    with pytest.raises(ConfigError, match=f"dtype: expected {' or '.join(DTYPES)}, got str 'float16'"):
        apply_overrides(config, [])
    with pytest.raises(ConfigError, match="dtype: expected float32 or float64, got list"):
        apply_overrides(config, ["dtype=[1]"])
    apply_overrides(config, ["dtype=float64"])
    exp = build(config)
    assert exp.dtype is np.float64 and exp.model.params()[0].dtype == np.float64


LAYER = """\
data: {type: logic, op: xor}
model:
  layers:
    - type: %(layer)s
      units: 2
      %(key)s: %(value)s
loss: softmax_cross_entropy
optimizer: sgd
train: %(early_stopping)s
"""


@pytest.mark.parametrize("layer, key, value, early_stopping, expected", [
    ("dense", "activation", "rleu", "{}", "c.yaml:6: model.layers.0.activation: unknown activation 'rleu'"),
    ("dense", "weight_init", "{type: normal, stdd: 1}",
     "{}", "c.yaml:6: model.layers.0.weight_init.stdd: unknown key for initializer 'normal'"),
    ("rnn", "activation", "sigmoid", "{}", "c.yaml:6: model.layers.0.activation: expected 'tanh' or 'relu' or "
                                           "'identity', got str 'sigmoid'"),
    ("dense", "use_bias", "true", "{early_stopping: {patience: 0}}",
     "c.yaml:9: train.early_stopping.patience: expected an integer ≥ 1, got 0"),
    ("dense", "use_bias", "true", "{early_stopping: {patiense: 3}}",
     "c.yaml:9: train.early_stopping.patiense: unknown key for early_stopping (did you mean 'patience'?)"),
])
def test_sub_objects_and_sections_are_checked_where_they_are_written(tmp_path, layer, key, value, early_stopping,
                                                                     expected):
    path = tmp_path / "c.yaml"
    path.write_text(LAYER % {"layer": layer, "key": key, "value": value, "early_stopping": early_stopping})
    with pytest.raises(ConfigError) as info:
        build(load_config(path))
    assert str(info.value).startswith(f"{path.parent}/{expected}")


@pytest.mark.parametrize("layers, expected", [
    ("[{type: dense, units: 2, trainable: false, lr_mult: 2}]",
     "c.yaml:3: model.layers.0.lr_mult: lr_mult 2 has no effect on a frozen layer (trainable: false)"),
    ("[{type: dense, units: 4}, {type: dropout, lr_mult: 0.5}, {type: dense, units: 2}]",
     "c.yaml:3: model.layers.1.lr_mult: dropout has no parameters: lr_mult has nothing to scale"),
])
def test_an_lr_mult_that_would_change_nothing_is_refused(tmp_path, layers, expected):
    path = tmp_path / "c.yaml"
    path.write_text(LAYER.replace("  layers:\n    - type: %(layer)s\n      units: 2\n      %(key)s: %(value)s",
                                  f"  layers: {layers}") % {"early_stopping": "{}"})
    with pytest.raises(ConfigError) as info:
        build(load_config(path))
    assert str(info.value).startswith(f"{path.parent}/{expected}")


EMPTY = {"0": "int 0", "false": "bool False", "[]": "list []", "''": "str ''"}


@pytest.mark.parametrize("section, value", [(section, value) for section in ("model", "train") for value in EMPTY]
                         + [(section, value) for section in ("schedule", "optimizer", "loss", "data")
                            for value in EMPTY if value != "''"])  # '' names a type: "unknown schedule ''"
def test_a_section_written_as_an_empty_value_is_refused_not_taken_for_its_defaults(tmp_path, section, value):
    """Only a missing or null section means "the defaults": `train: 0` or `schedule: []` is a mistake."""
    path = write_project(tmp_path / "p")
    data = yaml.safe_load(path.read_text())
    data[section] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(data))
    line = path.read_text().splitlines().index(f"{section}: {value}") + 1
    with pytest.raises(ConfigError) as info:
        resolved(load_config(path))
    assert str(info.value).startswith(f"{path}:{line}: {section}: expected a ")
    assert str(info.value).endswith(f"got {EMPTY[value]}")
    result = nnctl("train", str(path), cwd=tmp_path)
    assert result.returncode == 2 and f"c.yaml:{line}: {section}: expected a " in result.stderr, result.stderr


@pytest.mark.parametrize("value, message", [
    ("0", "expected the path of an .npz file, or {path, layers, strict}; got int 0"),
    ("false", "got bool False"), ("''", "got str ''"), ("'  '", "got str '  '"), ("[]", "got list []"),
    ("{path: ''}", "model.weights.path: expected the path of an .npz file"),
])
def test_model_weights_that_name_no_file_are_refused_not_taken_for_none(tmp_path, value, message):
    """Only a missing or null model.weights means "start from the initializers" (config, summary, train, eval)."""
    path = write_project(tmp_path / "p")
    config = load_config(path, [f"model.weights={value}"])
    for use in (resolved, build):
        with pytest.raises(ConfigError, match=re.escape(message)):
            use(config)
    for command in ("summary", "eval"):
        result = nnctl(command, str(path), f"model.weights={value}", cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_layer_name_of_null_takes_the_default_as_every_other_key_does():
    """`name: null` (the signature's default, which an override or a base's deletion writes) is <type>_<n>."""
    c = config()
    apply_overrides(c, ["model.layers.0.name=null", "model.layers.1.name=null"])
    assert [layer.name for layer in initial_model(c).layers] == ["dense_1", "dropout_1", "dense_2"]
    assert [layer.get("name") for layer in resolved(c)["model"]["layers"]] == [None, None, None]


def test_a_schedule_without_a_type_is_the_default_constant_one_with_its_options():
    """It was 'schedule: missing type', though a config without a schedule has the constant one."""
    c = config()
    apply_overrides(c, ["schedule.warmup_epochs=2"])
    assert resolved(c)["schedule"] == {"type": "constant", "warmup_epochs": 2.0}
    schedule = build(c).schedule
    assert type(schedule).registered_name == "constant" and schedule.warmup_epochs == 2.0


def config():
    return from_dict({"data": {"type": "logic", "op": "xor"}, "loss": "mse", "optimizer": "sgd", "model": {"layers": [
        {"type": "dense", "units": 4, "weight_init": {"type": "normal", "std": 0.1}},
        {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 1, "weight_init": {"type": "normal", "std": 0.1}},
    ]}}, "c.yaml", {("model", "layers", 0, "weight_init", "std"): "c.yaml:5"})


def test_a_star_in_an_override_sets_every_item_that_has_the_key_after_it():
    c = config()
    apply_overrides(c, ["model.layers.*.weight_init.std=0.01", "model.layers.*.rate=0.2"])
    layers = c.data["model"]["layers"]
    assert [layer.get("weight_init", {}).get("std") for layer in layers] == [0.01, None, 0.01]
    assert layers[1] == {"type": "dropout", "rate": 0.2}
    assert c.where(("model", "layers", 2, "weight_init", "std")) == "override 'model.layers.*.weight_init.std=0.01'"
    apply_overrides(c, ["model.layers.*.weight_init={type: uniform, low: -1}"])
    layers[0]["weight_init"]["low"] = 5
    assert layers[2]["weight_init"] == {"type": "uniform", "low": -1}, "each item gets its own copy of the value"


def test_a_star_that_matches_nothing_is_an_error_naming_the_override():
    with pytest.raises(ConfigError, match=r"override 'model.layers.\*.nope=1': model.layers.\*.nope: its '\*' "
                                          "matches no item"):
        apply_overrides(config(), ["model.layers.*.nope=1"])


def test_an_override_under_a_name_extends_the_shorthand_and_under_an_empty_string_is_refused():
    c = config()
    apply_overrides(c, ["optimizer.lr=0.5"])
    assert c.data["optimizer"] == {"type": "sgd", "lr": 0.5}
    for empty in ("''", "' '"):
        c = config()
        apply_overrides(c, [f"train={empty}"])
        with pytest.raises(ConfigError, match=r"override 'train.epochs=1': train is str '.*', not a mapping"):
            apply_overrides(c, ["train.epochs=1"])


def test_yaml_that_nnctl_writes_reads_back_equal():
    from nnctl.yaml_loader import dump_yaml, parse_yaml

    data = {"name": "1e-05", "lr": 1e-05, "label": "0.003", "units": [1, "2"], "when": "2026-11-27", "none": None}
    assert parse_yaml(dump_yaml(data), "<written>")[0] == data  # a run named 1e-05 stays a name, not a float


@pytest.mark.parametrize("text, value", [
    ("010", 10), ("-010", -10), ("1:30", "1:30"), ("12:30:00", "12:30:00"), ("190:20:30.15", "190:20:30.15"),
    ("0x1F", 31), ("0b11", 3), ("1_000", 1000), ("+12", 12), ("1e-3", 0.001), (".5", 0.5), ("-.inf", -math.inf),
])
def test_numbers_read_as_yaml_1_2_and_editors_read_them(text, value):
    """YAML 1.1 read 010 as octal 8 and 1:30 as 90 (base 60): train.epochs=010 trained 8 epochs."""
    from nnctl.yaml_loader import parse_yaml

    assert parse_yaml(text, "<test>")[0] == value
    c = config()
    apply_overrides(c, [f"train.epochs={text}"])
    assert c.data["train"]["epochs"] == value


@pytest.mark.parametrize("text, value", [
    ("true", True), ("False", False), ("TRUE", True), ("yes", "yes"), ("No", "No"), ("on", "on"), ("OFF", "OFF"),
    ("y", "y"), ("n", "n"),
])
def test_booleans_read_as_yaml_1_2(text, value):
    """YAML 1.1 read yes/no/on/off as booleans: `name: on` was the bool True, refused as a run name."""
    from nnctl.yaml_loader import parse_yaml

    assert parse_yaml(f"name: {text}", "<test>")[0] == {"name": value}


@pytest.mark.slow  # runs the CLI
def test_a_yaml_1_1_boolean_is_refused_naming_why_and_on_is_a_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text((CONFIGS / "xor_mlp.yaml").read_text().replace("name: xor_mlp", "name: on")
                    .replace("op: xor", "op: xor\n  shuffle: yes"))
    result = nnctl("config", str(path))
    assert result.returncode == 2
    assert result.stderr == (f"error: {path}:9: data.shuffle: expected true or false, got str 'yes' (only true and "
                             "false are booleans, as in YAML 1.2)\n")
    result = nnctl("config", str(path), "data.shuffle=off", "data.shuffle=FALSE")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["name"] == "on"
    assert "  shuffle: false\n" in result.stdout


@pytest.mark.slow  # runs the CLI
def test_the_printed_config_means_the_same_from_another_folder(tmp_path):
    """`nnctl config` writes its relative paths out absolute, so that its output trains the same run anywhere."""
    printed = nnctl("config", "configs/char_lstm.yaml", "train.steps=2", "data.seq_len=10")
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "c.yaml").write_text(printed.stdout)
    data = yaml.safe_load(printed.stdout)
    assert data["data"]["path"] == str(CONFIGS.resolve() / "data" / "genesis_asv.txt")
    trained = nnctl("train", "c.yaml", "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
