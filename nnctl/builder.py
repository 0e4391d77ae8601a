"""Config -> Model: every layer built from its config keys, shapes checked before training starts."""

from functools import partial
from typing import Any

import numpy as np

from nnctl.backend import use
from nnctl.config import Config, KeyPath, is_path_name, path_name_rule
from nnctl.init import make_initializer
from nnctl.layers import LAYERS, Layer
from nnctl.layers.activations import make_activation
from nnctl.model import Model
from nnctl.schema import construct, signature_params
from nnctl.weights import weights_spec

MODEL_KEYS = ("layers", "weights")


def build_model(config: Config, input_shape: tuple[int, ...], dtype: type,
                rng: np.random.Generator) -> Model:
    """Builds the layers of `model.layers` for inputs of `input_shape` (the dataset's), checking each, on the
    config's device."""
    use(config.data.get("device", "cpu"))
    layers: list[Layer] = []
    shapes: list[tuple[int, ...]] = []
    shape = tuple(input_shape)
    for path, cls, kwargs in layer_specs(config):
        layer = construct(cls, kwargs, config, path, f"layer '{cls.registered_name}'",
                          resolve=partial(with_sub_objects, cls, config=config, path=path))
        try:
            out = tuple(layer.output_shape(shape))
            layer.build(shape, rng, dtype)
        except ValueError as exc:
            raise config.error(path, f"{cls.registered_name} on input shape {list(shape)}: {exc}") from None
        _check_lr_mult(layer, config, path)
        layers.append(layer)
        shapes.append(out)
        shape = out
    return Model(layers, tuple(input_shape), shapes)


def layer_specs(config: Config) -> list[tuple[KeyPath, type[Layer], dict[str, Any]]]:
    """The model section checked as far as the config alone tells (its keys, model.weights, each layer's type,
    place and name): each layer's path, class and keyword arguments, `name` filled in as <type>_<count>."""
    section = config.section("model")
    for key in section:
        if key not in MODEL_KEYS:
            raise config.error(("model", key), f"unknown key; expected one of: {', '.join(MODEL_KEYS)}")
    weights_spec(config)  # checked before any layer is built
    specs = section.get("layers")
    if not isinstance(specs, list) or not specs:
        raise config.error(("model", "layers"), "expected a non-empty list of layers, "
                                                "such as '- {type: dense, units: 10}'")
    layers: list[tuple[KeyPath, type[Layer], dict[str, Any]]] = []
    counts: dict[str, int] = {}
    names: dict[str, int] = {}
    for i, spec in enumerate(specs):
        path = ("model", "layers", i)
        cls, kwargs = LAYERS.split(spec, config, path)
        if cls.takes_indices and i > 0:
            raise config.error(path + ("type",), f"{cls.registered_name} reads indices: it must be the first layer")
        counts[cls.registered_name] = counts.get(cls.registered_name, 0) + 1
        if kwargs.get("name") is None:  # `name: null` too, as for every other key
            kwargs["name"] = f"{cls.registered_name}_{counts[cls.registered_name]}"
        _check_layer_name(kwargs["name"], i, isinstance(spec, dict) and spec.get("name") is not None, names, config)
        names[kwargs["name"]] = i
        layers.append((path, cls, kwargs))
    return layers


def _check_layer_name(name: str, i: int, named: bool, names: dict[str, int], config: Config) -> None:
    """A ConfigError where layer i's name (`named` in the config, else <type>_<count>) cannot name a path or is
    one of `names`, the earlier layers' (name -> index), at the line that gave it."""
    path = ("model", "layers", i)
    if not is_path_name(name):
        raise config.error(path + ("name",), f"'{name}' cannot name a layer (its arrays are exported "
                                             f"as <layer>/<key>); {path_name_rule(name)}")
    if (first := names.get(name)) is not None:
        given = path + ("name",) if named else ("model", "layers", first, "name")
        raise config.error(given, f"layer name '{name}' is used twice: by model.layers.{first} and "
                                  f"model.layers.{i} (a layer without a name is called <type>_<count>)")


def _check_lr_mult(layer: Layer, config: Config, path: KeyPath) -> None:
    """A ConfigError at the layer's lr_mult where it could change nothing: on a frozen layer, or one without
    parameters."""
    if layer.lr_mult == 1:
        return
    if not layer.trainable:
        raise config.error(path + ("lr_mult",), f"lr_mult {layer.lr_mult:g} has no effect on a frozen layer "
                                                "(trainable: false); remove one of the two")
    if not layer.params:
        raise config.error(path + ("lr_mult",), f"{layer.registered_name} has no parameters: lr_mult has nothing to "
                                                "scale; remove it")


def with_sub_objects(cls: type, kwargs: dict[str, Any], config: Config, path: KeyPath) -> dict[str, Any]:
    """A layer's checked keys with its sub-objects built, by one rule: `activation` names an activation layer and
    a key ending in `_init` an initializer; each is built at its own config line, given or by default."""
    kwargs = dict(kwargs)
    for key, param in signature_params(cls).items():
        make = make_activation if key == "activation" else make_initializer if key.endswith("_init") else None
        if make is not None:
            kwargs[key] = make(kwargs.get(key, param.default), config, path + (key,))
    return kwargs
