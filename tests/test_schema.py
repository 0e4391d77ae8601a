"""The JSON Schema of configs: every shipped config validates, mistakes the validator catches fail it too, and
shell completion answers."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from helpers import CONFIGS, nnctl
from nnctl.config import load_config, parse_yaml
from nnctl.errors import ConfigError
from nnctl.jsonschema import config_schema
from nnctl.layers import LAYERS
from nnctl.schema import signature_params
from nnctl.sections import resolved


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.slow
def test_the_schema_command_prints_the_schema():
    result = nnctl("schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(config_schema()))


def errors(validator, text: str) -> list[str]:
    data, _ = parse_yaml(text, "<test>")  # nnctl's reading: 1e-3 is a float, as in YAML 1.2 editors
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(validator, path):
    assert errors(validator, path.read_text()) == []


GOOD = """\
data: {type: logic, op: xor}
model:
  layers:
    - {type: dense, units: 4, activation: tanh, weight_init: {type: normal, std: 0.1}}
    - {type: dense, units: 1, bias_init: [0.5]}
loss: binary_cross_entropy
optimizer: {type: adam, lr: 1e-3}
train: {epochs: 5, batch_size: full, early_stopping: {patience: 2}}
"""


@pytest.mark.parametrize("old, new", [
    ("units: 4,", "unitz: 4,"),                         # unknown key
    ("units: 4,", "units: four,"),                      # wrong type
    ("units: 4,", ""),                                  # missing required key
    ("type: dense, units: 1", "type: dens, units: 1"),  # unknown layer
    ("binary_cross_entropy", "binary_crossentropy"),    # unknown loss
    ("lr: 1e-3", "lr: 1e-3, momentum: 0.9"),            # a key of another optimizer
    ("patience: 2", "patience: 2, wait: 3"),            # nested mapping
    ("epochs: 5", "epochs: 5.5"),
    ("data:", "dataset:"),                              # unknown (and missing) section
    ("type: normal, std: 0.1", "type: gaussian"),       # unknown initializer
    ("activation: tanh", "activation: tahn"),           # unknown activation
    ("lr: 1e-3", "lr: .inf"),                           # floats are finite
    ("lr: 1e-3", "lr: 1" + "0" * 400),                  # and within float's range
    ("bias_init: [0.5]", "bias_init: [.inf]"),          # explicit initial values too
    ("bias_init: [0.5]", "bias_init: [true]"),
])
def test_mistakes_fail_the_schema(validator, old, new):
    assert errors(validator, GOOD) == []
    assert old in GOOD
    assert errors(validator, GOOD.replace(old, new)), f"{old} -> {new} passed"


def test_a_config_with_a_base_may_give_partial_sections(validator):
    partial = "base: xor_mlp.yaml\noptimizer: {lr: 0.01}\ntrain: {epochs: 3}\n"
    assert errors(validator, partial) == []
    assert errors(validator, partial.replace("base: xor_mlp.yaml\n", ""))  # alone, it lacks data, model, loss
    assert errors(validator, partial + "optimiser: {}\n")


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_example_validates_as_a_layer(validator, name):
    config = {"data": "logic", "loss": "mse", "optimizer": "sgd",
              "model": {"layers": [{"type": name, **LAYERS.get(name).example["config"]}]}}
    assert list(validator.iter_errors(json.loads(json.dumps(config)))) == []


@pytest.mark.slow
def test_shell_completion_answers_through_the_installed_command():
    command = Path(sys.executable).parent / "nnctl"
    result = subprocess.run([str(command)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "_NNCTL_COMPLETE": "complete_bash", "COMP_WORDS": "nnctl sch",
                                 "COMP_CWORD": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["schema"]
    assert "--install-completion" in nnctl("--help").stdout


def test_over_a_base_null_deletes_but_alone_it_is_a_type_error(validator):
    assert errors(validator, "base: xor_mlp.yaml\ntrain: {epochs: null}\n") == []
    assert errors(validator, GOOD.replace("epochs: 5", "epochs: null"))


def nnctl_accepts(tmp_path: Path, text: str) -> bool:
    """Whether `nnctl config` takes the config `text` (every key and value checked, no data read)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        resolved(load_config(path))
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("section", ["schedule", "train"])
def test_an_optional_section_of_null_takes_its_defaults_for_the_schema_too(validator, tmp_path, section):
    text = re.sub(r"^train:.*\n", "", GOOD, flags=re.M) + f"{section}: null\n"
    assert nnctl_accepts(tmp_path, text)
    assert errors(validator, text) == []


@pytest.mark.parametrize("schedule", ["{warmup_epochs: 1}", "{warmup_epochs: 1, type: cosine}", "{every: 2}",
                                      "{type: step, every: 2}"])
def test_a_schedule_without_a_type_is_the_constant_one_for_the_schema_too(validator, tmp_path, schedule):
    text = f"{GOOD}schedule: {schedule}\n"
    assert (errors(validator, text) == []) == nnctl_accepts(tmp_path, text) == (schedule != "{every: 2}"), text


def test_explicit_initial_values_of_up_to_four_axes_validate(validator):
    conv = "[[[[0.1, -0.2], [0.3, 0.4]]]]"  # one filter of one channel, 2 x 2
    assert errors(validator, GOOD.replace("bias_init: [0.5]", f"weight_init: {conv}")) == []


@pytest.mark.parametrize("line", [
    "name: " + "a" * 200, "name: " + "a" * 201, "name: a..b", "name: a.b_c-1", "name: -a",
    "device: cpu", "device: cuda", "device: 'cuda:12'", "device: gpu", "device: CPU", "device: 'cuda:'",
    "device: 'cpu:0'", "device: 3", "dtype: float16",
])
def test_the_schema_takes_a_top_level_value_exactly_when_nnctl_does(validator, tmp_path, line):
    text = f"{line}\n{GOOD}"
    assert (errors(validator, text) == []) == nnctl_accepts(tmp_path, text)


@pytest.mark.parametrize("name", ["dense_9", "a" * 200, "a" * 201, "a/b", "a..b", "-a", None])
def test_the_schema_takes_a_layer_name_exactly_when_nnctl_does(validator, tmp_path, name):
    text = GOOD.replace("units: 1,", f"units: 1, name: {json.dumps(name)},")
    accepted = nnctl_accepts(tmp_path, text)
    assert accepted == (name is None or len(name) <= 200 and "/" not in name and ".." not in name and name[0] != "-")
    assert (errors(validator, text) == []) == accepted


@pytest.mark.parametrize("name", [name for name in LAYERS if "activation" in signature_params(LAYERS.get(name))])
@pytest.mark.parametrize("activation", [None, "relu", "tahn"])
def test_the_schema_takes_a_layer_activation_exactly_when_nnctl_does(validator, tmp_path, name, activation):
    """null is 'none' where the signature allows it (dense), and a mistake where a default must stay (rnn)."""
    layer = {"type": name, **LAYERS.get(name).example["config"], "activation": activation}
    text = GOOD.replace("{type: dense, units: 4, activation: tanh, weight_init: {type: normal, std: 0.1}}",
                        json.dumps(layer))  # first: a recursive layer must be
    assert (errors(validator, text) == []) == nnctl_accepts(tmp_path, text), text


@pytest.mark.parametrize("old, new", [
    ("epochs: 5", "epochs: 5.0"), ("epochs: 5", "epochs: 5.5"), ("epochs: 5", "epochs: 5e0"),
    ("units: 4,", "units: 4.0,"), ("units: 4,", "units: 1e1,"), ("units: 4,", "units: 4.000001,"),
    ("patience: 2", "patience: 2.0"),
])
def test_the_schema_takes_an_integral_float_exactly_when_nnctl_does(validator, tmp_path, old, new):
    """JSON, and so JSON Schema's "integer" and every editor, takes 2.0 for 2: nnctl reads it as 2, not as an error."""
    text = GOOD.replace(old, new)
    integral = float(new.split()[-1].strip(",")).is_integer()
    assert (errors(validator, text) == []) == nnctl_accepts(tmp_path, text) == integral


@pytest.mark.slow  # trains
def test_an_integral_float_trains_as_the_integer_it_is(tmp_path):
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=2.0", "seed=1.0", "model.layers.0.units=4.0",
                   "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "runs").iterdir()
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # the header and two epochs
    printed = nnctl("config", str(CONFIGS / "mnist_cnn.yaml"), "model.layers.0.kernel_size=[3.0, 3]", "seed=2.0")
    config = yaml.safe_load(printed.stdout)
    assert config["seed"] == 2 and config["model"]["layers"][0]["kernel_size"] == [3, 3], printed.stderr
