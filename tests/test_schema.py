"""The JSON Schema of configs: every shipped config validates, mistakes the validator catches fail it too, and
shell completion answers."""

import inspect
import json
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import pytest
import yaml

from helpers import CONFIGS, nnctl
from nnctl.config import load_config, parse_yaml
from nnctl.errors import ConfigError
from nnctl.experiment import TrainSettings
from nnctl.init import INITIALIZERS
from nnctl.jsonschema import config_schema
from nnctl.layers import LAYERS
from nnctl.layers.activations import activations
from nnctl.schema import bounds, signature_params
from nnctl.sections import NESTED, PROVIDED, SPEC_SECTIONS, arguments, resolved
from nnctl.yaml_loader import dump_yaml


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
    return nnctl_error(tmp_path, text) is None


def nnctl_error(tmp_path: Path, text: str) -> str | None:
    """Why `nnctl config` refuses the config `text`; None where it takes it."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        resolved(load_config(path))
    except ConfigError as exc:
        return str(exc)
    return None


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


PLAIN = {int: [-1, 0, 1, 10**6], float: [-1.5, -0.5, 0.0, 0.5, 1.0, 1.5, 1e9], str: ["nope", ""]}
"""Values a plain int, float or str is tried with: a constructor that refuses one states a bound or choice its
signature lacks."""


def candidates(hint: Any) -> list[Any]:
    """Values at and beyond every bound and choice a hint states, and around 0 and 1 where it states none (in lists
    as its lists take them): what the schema and the validator must judge alike."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in PLAIN:
        return PLAIN[hint]
    if origin is Annotated:
        step = 1 if args[0] is int else 0.5
        near = [v for b in bounds(hint) for v in (b.limit, b.limit - step, b.limit + step, float(b.limit))]
        return near + ([2.5] if args[0] is int else [])
    if origin is Literal:
        return [*args, "nope", args[0].upper()]
    if origin in (typing.Union, types.UnionType):
        return [value for arg in args for value in candidates(arg)]
    if origin in (list, tuple) and args:
        width = len(args) if origin is tuple and args[-1] is not Ellipsis else 1
        return [[value] * width for value in candidates(args[0])]
    return []


REQUIRED = {"path": "x.csv", "x": [[0, 0]], "y": [0], "every": 1}
"""Values for the required keys of the data sections and schedules, so that only the key under test is wrong."""
BASES = {"pattern_ends": {"pattern": "a"}}
"""Where another key bounds the key under test (a pattern's length, seq_len), the base keeps that bound out of the
way."""
UNSTATED = ["class_weights must not all be 0", "shape must hold positive sizes and at most one -1",
            "mirror must be a base URL", "delimiter must be one character", "alphabet must be distinct letters",
            "must be letters of the alphabet", "not apply to text: its inputs are indices",
            "not apply to trees: its inputs are indices", "which is no char token", "uniform needs low < high",
            "the classes of images are its class folders"]
"""What the constructors alone refuse, as no type, bound or choice says it (a relation between keys, a URL's
scheme, a delimiter's length): a schema that takes it is right to."""


def targets() -> typing.Iterator[tuple[str, tuple, dict, type]]:
    """Every class a config reads, where its mapping sits, and a mapping of it the validator takes."""
    for name in LAYERS:
        yield f"layer-{name}", ("model", "layers", 0), {"type": name, **LAYERS.get(name).example["config"]}, \
            LAYERS.get(name)
    for section, registry in SPEC_SECTIONS.items():
        for name in registry:
            cls = registry.get(name)
            required = {k: REQUIRED[k] for k, p in arguments(cls, PROVIDED.get(section, ())).items()
                        if p.default is inspect.Parameter.empty}
            yield f"{section}-{name}", (section,), {"type": name, **required, **BASES.get(name, {})}, cls
    for name in INITIALIZERS:
        yield f"initializer-{name}", ("model", "layers", 0, "weight_init"), {"type": name}, INITIALIZERS.get(name)
    yield "train", ("train",), {"epochs": 5}, TrainSettings
    for key, cls in NESTED.items():
        yield key, ("train" if key == "early_stopping" else "data", key), {}, cls


TARGETS = list(targets())


@pytest.mark.parametrize("path, spec, cls", [t[1:] for t in TARGETS], ids=[t[0] for t in TARGETS])
def test_the_schema_and_the_validator_judge_every_bound_and_choice_alike(validator, tmp_path, path, spec, cls):
    """The schema took about 1,260 configs only the constructors refused (`units: -1`, `padding: abc`): every
    range and choice is now in the signature, which both read."""
    config = parse_yaml(GOOD, "<test>")[0]

    def judged(mapping: dict) -> tuple[bool, bool]:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = mapping
        text = dump_yaml(config)
        error = nnctl_error(tmp_path, text)
        return errors(validator, text) == [], error is None or any(reason in error for reason in UNSTATED)

    assert judged(spec) == (True, True)
    disagree, refused = [], set()
    for key, param in arguments(cls, PROVIDED.get(path[0], ())).items():
        names = list(activations()) if key == "activation" else []  # a layer may take some only, as rnn does
        for value in candidates(param.annotation) + names:
            verdicts = judged({**spec, key: value})
            if verdicts[0] != verdicts[1]:
                disagree.append(f"{key}: {value!r}: schema {verdicts[0]}, nnctl {verdicts[1]}")
            if verdicts == (False, False):
                refused.add(key)
    assert disagree == [], disagree
    assert {key for key, p in arguments(cls).items() if stated(p.annotation)} <= refused


def stated(hint: Any) -> bool:
    """Whether a hint states a bound or a choice, anywhere in it."""
    return typing.get_origin(hint) in (Annotated, Literal) or any(stated(arg) for arg in typing.get_args(hint))
