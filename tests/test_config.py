"""Command-line overrides, `*` included: the same rule as in sweep files."""

import pytest

from nnctl.config import apply_overrides, from_dict
from nnctl.errors import ConfigError


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
