"""Weights as plain arrays by name (`dense_1/W`): exported from checkpoints, loaded by `model.weights`."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import weight_files
from nnctl.backend import to_device
from nnctl.config import Config
from nnctl.data.npyfile import read_npz
from nnctl.errors import ConfigError, DataError
from nnctl.layers.base import array_problem, range_problem
from nnctl.model import Model
from nnctl.outputs import replacing
from nnctl.schema import describe_value, did_you_mean

SHAPES = ("input_shape", "output_shape")
"""Besides the arrays, an export holds the model's input and output shape (one sample), to check the fit."""
KEY = ("model", "weights")


def named(state: dict) -> dict[str, np.ndarray]:
    """A model's state dict (`{layer: {params, state}}`) as flat arrays named '<layer>/<key>'."""
    return {f"{layer}/{key}": value for layer, entry in state.items()
            for kind in ("params", "state") for key, value in entry[kind].items()}


def layer_of(name: str) -> str:
    """'conv1/W' -> 'conv1'."""
    return name.rpartition("/")[0]


def export(path: str | Path, state: dict, input_shape: tuple[int, ...] | None = None,
           output_shape: tuple[int, ...] | None = None) -> list[str]:
    """Writes the arrays of `state` (and the model's shapes, when given) to an .npz file; returns the names."""
    return write_npz(path, named(state), **({} if input_shape is None else {
        "input_shape": np.array(input_shape, np.int64), "output_shape": np.array(output_shape, np.int64)}))


def check_npz_name(path: Path) -> None:
    """ConfigError unless `path` names an .npz file, the only kind weights are written as."""
    if path.suffix != ".npz":
        raise ConfigError(f"{path}: the weights are written as an .npz archive; name the file *.npz")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], **extra: np.ndarray) -> list[str]:
    """Writes named arrays to an .npz file; returns the names (of `arrays`, not `extra`)."""
    path = Path(path)
    check_npz_name(path)
    with replacing(path, "the weights") as f:
        np.savez(f, **arrays, **extra)  # type: ignore[arg-type]  # numpy's stub fears **arrays naming allow_pickle
    return list(arrays)


@dataclass
class WeightsSpec:
    """`model.weights`: a path, or `{path, layers: [names] | all, strict: true}`."""

    path: str
    layers: list[str] | str = "all"
    strict: bool = True

    @classmethod
    def of(cls, value: Any, config: Config) -> "WeightsSpec":
        """The spec from the config's value, every key and type checked."""
        if isinstance(value, str) and value.strip():
            return cls(value)
        if not isinstance(value, dict):
            raise config.error(KEY, f"expected the path of an .npz file, or {{path, layers, strict}}; "
                                    f"got {describe_value(value)}")
        for key in value:
            if key not in ("path", "layers", "strict"):
                raise config.error(KEY + (key,), f"unknown key{did_you_mean(key, ['path', 'layers', 'strict'])}; "
                                                 "accepted keys: path, layers, strict")
        if not isinstance(value.get("path"), str) or not value["path"].strip():
            raise config.error(KEY + ("path",), "expected the path of an .npz file (nnctl export or nnctl convert)")
        layers = value.get("layers", "all")
        if layers != "all" and not (isinstance(layers, list) and layers and all(isinstance(n, str) for n in layers)):
            raise config.error(KEY + ("layers",), f"expected 'all' or a list of layer names, got "
                                                  f"{describe_value(layers)}")
        strict = value.get("strict", True)
        if not isinstance(strict, bool):
            raise config.error(KEY + ("strict",), f"expected true or false, got {describe_value(strict)}")
        return cls(value["path"], layers, strict)


@dataclass
class Loaded:
    """What `load_into` did: the layers that took arrays from the file, and the arrays it left or skipped."""

    path: Path
    """As the config gives it (relative to the config file)."""
    layers: list[str]
    initialized: list[str] = field(default_factory=list)
    """The selected layers' arrays the file lacks (strict: false): they keep their initializers' values."""
    ignored: list[str] = field(default_factory=list)
    """The file's arrays of layers this model does not have (`layers: all`, strict: false); with a list of
    layers, the file's other arrays are not looked at."""

    def describe(self) -> str:
        """One line for the run's log."""
        parts = [f"model.weights: layers {', '.join(self.layers)} from {self.path}"]
        if self.initialized:
            parts.append(f"left to their initializers: {', '.join(self.initialized)}")
        if self.ignored:
            parts.append(f"not in this model, ignored: {', '.join(self.ignored)}")
        return "; ".join(parts)


def weights_spec(config: Config) -> WeightsSpec | None:
    """The config's model.weights, checked; None when absent or null (the model starts from its initializers)."""
    value = config.section("model").get("weights")
    return None if value is None else WeightsSpec.of(value, config)


def load_into(model: Model, config: Config) -> Loaded | None:
    """Copies the arrays `model.weights` selects from its .npz into `model` (None when it names none); every name,
    shape and dtype is checked before any array is copied. Records the layers it loaded in `model.loaded`."""
    spec = weights_spec(config)
    if spec is None:
        return None
    path = config.base_dir / Path(spec.path).expanduser()
    try:
        arrays = read_npz(path)
    except DataError as exc:
        raise config.error(KEY, str(exc) + _convert_hint(path)) from None
    shapes = {name: arrays.pop(name, None) for name in SHAPES}
    targets = named({layer.name: {"params": layer.params, "state": layer.state} for layer in model.layers})
    owners = {layer_of(name) for name in targets}
    chosen = _chosen_layers(spec, model, owners, config)
    if spec.layers == "all" and spec.strict:
        _check_shapes(shapes, model, path, config)
    wanted = {name: target for name, target in targets.items() if layer_of(name) in chosen}
    missing, extra = _check_fit(spec, path, arrays, wanted, targets, config)
    found = {name: target for name, target in wanted.items() if name in arrays}
    for name, target in found.items():
        _check_values(path, name, arrays[name], target, config)
    for name, target in found.items():
        target[...] = to_device(arrays[name])
    loaded = [name for name in chosen if any(layer_of(a) == name for a in found)]
    model.loaded = {name: spec.path for name in loaded}
    return Loaded(Path(spec.path), loaded, missing, extra)


def _convert_hint(path: Path) -> str:
    """Where `path` is a file named as another framework's weights (Keras's .h5/.keras, PyTorch's .safetensors),
    the way to nnctl's .npz; else nothing (a missing file wants its name fixed, not a conversion)."""
    if path.is_file() and path.name.endswith(weight_files.READ):
        return f"; it is named as another framework's weights: make an .npz of it with `nnctl convert {path} " \
               "-c CONFIG -o weights.npz` and give that"
    return ""


def _chosen_layers(spec: WeightsSpec, model: Model, owners: set[str], config: Config) -> list[str]:
    """The layers `model.weights` loads: every layer with arrays, in model order, or those it lists (each checked)."""
    if spec.layers == "all":
        return sorted(owners, key=[layer.name for layer in model.layers].index)
    for i, name in enumerate(spec.layers):
        if name not in owners:
            raise config.error(KEY + ("layers", i), f"'{name}' is not a layer of this model with weights"
                                                    f"{did_you_mean(name, owners)}; those are: {', '.join(owners)}")
    return list(spec.layers)


def _check_fit(spec: WeightsSpec, path: Path, arrays: dict[str, np.ndarray], wanted: dict[str, np.ndarray],
               targets: dict[str, np.ndarray], config: Config) -> tuple[list[str], list[str]]:
    """The `wanted` arrays the file lacks, and (loading all layers) those it holds for no layer of the model; a
    ConfigError where that is not allowed (strict), a listed layer gets nothing, or nothing fits at all."""
    missing = [name for name in wanted if name not in arrays]
    owners = {layer_of(name) for name in targets}
    extra = [name for name in arrays if layer_of(name) not in owners] if spec.layers == "all" else []
    if spec.strict and (missing or extra):
        problems = ([f"missing {_shapes(missing, wanted)}"] if missing else []) + \
                   ([f"not in this model {_shapes(extra, arrays)}"] if extra else [])
        raise config.error(KEY, f"{path} does not fit this model: {'; '.join(problems)}. "
                                f"This model's arrays: {_shapes(list(wanted), wanted)}"
                                + ("" if spec.layers != "all" or not missing else
                                   ". To load only some layers, give model.weights as {path, layers: [...]}, "
                                   "or strict: false"))
    if spec.layers != "all":
        for name in spec.layers:
            if not any(layer_of(a) == name for a in wanted if a in arrays):
                raise config.error(KEY + ("layers",), f"{path} holds no arrays of layer '{name}'; it holds "
                                                      f"{_shapes(list(arrays), arrays)}")
    if not any(name in arrays for name in wanted):
        raise config.error(KEY, f"{path} holds none of this model's arrays (it holds "
                                f"{_shapes(list(arrays), arrays) or 'none'}); this model's arrays: "
                                f"{_shapes(list(targets), targets)}")
    return missing, extra


def _check_values(path: Path, name: str, value: np.ndarray, target: np.ndarray, config: Config) -> None:
    """A ConfigError when an array cannot go into its target: another shape, not numbers, out of range."""
    if value.shape != target.shape:
        raise config.error(KEY, f"{path}: array '{name}' has shape {list(value.shape)}, "
                                f"but this model's {name} has shape {list(target.shape)}")
    if value.dtype.kind not in "biuf":
        raise config.error(KEY, f"{path}: array '{name}' holds {value.dtype} values, not numbers")
    if problem := array_problem(name.rsplit("/", 1)[-1], value):
        raise config.error(KEY, f"{path}: array '{name}' {problem}")
    if problem := range_problem(value, target.dtype):
        raise config.error(KEY, f"{path}: array '{name}' {problem}")


def _check_shapes(shapes: dict[str, np.ndarray | None], model: Model, path: Path, config: Config) -> None:
    for name, saved in shapes.items():
        mine = list(getattr(model, name))
        if saved is not None and saved.tolist() != mine:
            raise config.error(KEY, f"{path} was exported from a model with {name.replace('_', ' ')} "
                                    f"{saved.tolist()}, but this model's is {mine}")


def _shapes(names: list[str], arrays: dict[str, np.ndarray]) -> str:
    """"'dense_1/W' [784, 10], 'dense_1/b' [10]"."""
    return ", ".join(f"'{n}' {list(arrays[n].shape)}" for n in names)
