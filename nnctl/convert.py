"""Weights saved by PyTorch (a state_dict as safetensors) or Keras (.h5) as nnctl's .npz: names mapped by a
table or by order, layouts converted (Linear (out, in), HWIO kernels, HWC flatten order, gate order, biases)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from nnctl.errors import ConfigError, NnctlError
from nnctl.layers import Layer
from nnctl.layers.base import array_problem
from nnctl.layers.conv import Conv2D
from nnctl.layers.dense import Dense
from nnctl.layers.embedding import Embedding
from nnctl.layers.norm import BatchNorm
from nnctl.layers.recurrent import GRU, Recurrent, reorder_gates
from nnctl.model import Model
from nnctl.schema import did_you_mean
from nnctl.weight_files import SourceLayer

GATES = {  # where each framework's gate blocks go in nnctl's order (lstm i, f, o, g; gru r, u, n)
    ("torch", "lstm"): [0, 1, 3, 2],  # i, f, g, o
    ("keras", "lstm"): [0, 1, 3, 2],  # i, f, c, o
    ("keras", "gru"): [1, 0, 2],  # z, r, h
}
"""Keras's and PyTorch's simple rnn and PyTorch's gru keep nnctl's order."""
KERAS_EPSILON = 1e-3
"""Keras's BatchNormalization's default epsilon (nnctl's batchnorm's eps defaults to 1e-5, as PyTorch's)."""
FLATTEN = {"torch": "chw", "keras": "hwc"}
"""The order a framework's flatten lays out (C, H, W) feature maps in: PyTorch's NCHW, Keras's NHWC."""


@dataclass
class Step:
    """One nnctl array written: its name, what it came from and how it was changed."""

    target: str
    source: str
    how: str


def read_map(entries: list[str]) -> dict[str, str]:
    """`--map` values: NNCTL=SOURCE pairs, or YAML files of `nnctl_layer: source_layer` lines."""
    table: dict[str, str] = {}
    for entry in entries:
        if "=" in entry:
            mine, _, theirs = entry.partition("=")
            table[mine.strip()] = theirs.strip()
            continue
        path = Path(entry)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such map file (give NNCTL_LAYER=SOURCE_LAYER pairs or a YAML file)") \
                from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not a readable YAML map: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"{path}: expected lines 'nnctl_layer: source_layer'")
        table.update({str(k): v for k, v in data.items()})
    return table


def plan(model: Model, sources: list[SourceLayer], table: dict[str, str] | None) -> list[tuple[Layer, SourceLayer]]:
    """Pairs nnctl layers with source layers: by the table, else by order within each kind of layer (the n-th
    conv with the n-th conv, ...), since a safetensors file keeps its names sorted, not in the model's order."""
    targets = [layer for layer in model.layers if layer.params or layer.state]
    by_name = {s.name: s for s in sources}
    pairs: list[tuple[Layer, SourceLayer]] = []
    if not table:
        for kind in dict.fromkeys(_target_kind(layer) for layer in targets):
            mine = [layer for layer in targets if _target_kind(layer) == kind]
            pairs += zip(mine, [s for s in sources if _source_kind(s) == kind], strict=False)
        return sorted(pairs, key=lambda pair: targets.index(pair[0]))
    named = {layer.name: layer for layer in targets}
    for target, source in table.items():
        if target not in named:
            raise ConfigError(f"map: '{target}' is not a layer of this model with weights"
                              f"{did_you_mean(target, named)}; those are: {', '.join(named)}")
        if source not in by_name:
            raise ConfigError(f"map: '{source}' is not a layer of the weights file{did_you_mean(source, by_name)}; "
                              f"it holds: {', '.join(by_name)}")
        pairs.append((named[target], by_name[source]))
    return pairs


def _target_kind(layer: Layer) -> str:
    if isinstance(layer, Dense) and not layer.use_bias or isinstance(layer, Embedding):
        return "matrix"
    return layer.registered_name


def _source_kind(source: SourceLayer) -> str:
    """conv2d, dense, matrix (a weight without bias), batchnorm, lstm, gru or rnn, from the arrays' names/shapes."""
    arrays = list(source.arrays.values())
    leaves = [_leaf(name) for name in source.arrays]
    if any(leaf in ("running_mean", "moving_mean") for leaf in leaves) or all(a.ndim == 1 for a in arrays):
        return "batchnorm"
    recurrent = [a for name, a in source.arrays.items() if _leaf(name) in ("weight_hh", "recurrent_kernel")] or \
        ([arrays[1]] if len(arrays) in (2, 3) and arrays[0].ndim == 2 and arrays[1].ndim == 2 else [])
    if recurrent:
        if recurrent[0].ndim != 2 or not recurrent[0].size:
            return "unknown"
        rows, cols = recurrent[0].shape
        gates = max(rows, cols) // min(rows, cols)
        return {4: "lstm", 3: "gru", 1: "rnn"}.get(gates, "unknown")
    main = next((a for name, a in source.arrays.items() if _leaf(name) in ("weight", "kernel")), arrays[0])
    if main.ndim == 4:
        return "conv2d"
    return "dense" if len(arrays) == 2 else "matrix"


def convert(model: Model, framework: str, pairs: list[tuple[Layer, SourceLayer]], flatten: str | None = None,
            strict: bool = True) -> tuple[dict[str, np.ndarray], list[Step]]:
    """nnctl's arrays (`<layer>/<key>`) for each pair, and the steps taken; NnctlError on any that does not fit,
    or with `strict` False (pairs made by order, not by a table) a step that says why the pair was skipped."""
    arrays: dict[str, np.ndarray] = {}
    steps: list[Step] = []
    for layer, source in pairs:
        try:
            converted = _converted(layer, source, framework, _feature_maps(model, layer), flatten or FLATTEN[framework])
            mine = {**layer.params, **layer.state}
            for key, (value, origin, _) in converted.items():
                if value.shape != mine[key].shape:
                    raise NnctlError(f"{source.name} -> {layer.name}: {origin} becomes {key} of shape "
                                     f"{list(value.shape)}, but {layer.name}/{key} has shape {list(mine[key].shape)}; "
                                     "check the map and the layer's config")
                if problem := array_problem(key, value):
                    raise NnctlError(f"{source.name} -> {layer.name}: {origin} {problem}; no model can start from "
                                     "it (weights saved before training diverged can)")
            missing = [key for key in mine if key not in converted]
            if missing:
                raise NnctlError(f"{layer.name}: {', '.join(missing)} cannot come from {source.name}, which "
                                 f"{framework} does not save (a learned initial state: use initial_state: zeros)")
        except NnctlError as exc:
            if strict:
                raise
            steps.append(Step(f"{layer.name}/-", source.name, f"not converted: {exc}"))
            continue
        for key, (value, origin, how) in converted.items():
            arrays[f"{layer.name}/{key}"] = value.astype(mine[key].dtype)
            steps.append(Step(f"{layer.name}/{key}", f"{source.name}: {origin}", how))
    return arrays, steps


def _feature_maps(model: Model, layer: Layer) -> tuple[int, ...] | None:
    """The (C, H, W) shape a dense layer's inputs were flattened from, if only shape layers stand between."""
    i = model.layers.index(layer)
    if not isinstance(layer, Dense) or i == 0:
        return None
    for j in range(i - 1, -1, -1):
        shape = model.shapes[j - 1] if j else model.input_shape
        if len(shape) == 3 and model.layers[j].registered_name == "flatten":
            return shape
        if model.layers[j].params or len(shape) != 1:
            return None
    return None


Converted = dict[str, tuple[np.ndarray, str, str]]


def _converted(layer: Layer, source: SourceLayer, framework: str, maps: tuple[int, ...] | None,
               order: str) -> Converted:
    """`_layer`, with NumPy's complaints about arrays whose shapes its reshapes cannot take said as an NnctlError."""
    try:
        return _layer(layer, source, framework, maps, order)
    except (ValueError, IndexError) as exc:  # a forged file, or a map that pairs layers of other sizes
        shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in source.arrays.items())
        raise NnctlError(f"{source.name} -> {layer.name}: arrays of these shapes ({shapes}) do not fit a "
                         f"{layer.registered_name} layer ({exc}); check the map and the layer's config") from None


def _layer(layer: Layer, source: SourceLayer, framework: str, maps: tuple[int, ...] | None, order: str) -> Converted:
    """The arrays of `layer` from its source layer, each with the source's name for it and how it was converted."""
    if isinstance(layer, Recurrent):
        return _recurrent(layer, source, framework)
    if isinstance(layer, BatchNorm):
        return _batchnorm_arrays(layer, source, framework)
    if isinstance(layer, Embedding):
        (role,) = _roles(source, framework, ["weight"], ["embeddings"])
        return {"W": (source.arrays[role], role, "as is")}
    if not isinstance(layer, Dense | Conv2D):
        raise NnctlError(f"{layer.name}: nnctl convert does not know how {framework} saves a "
                         f"{layer.registered_name} layer")
    return _weights_and_bias(layer, source, framework, maps, order)


def _batchnorm_arrays(layer: BatchNorm, source: SourceLayer, framework: str) -> Converted:
    """A batch norm's scale and shift (where affine) and running statistics, as they are."""
    names = (["weight", "bias"] if layer.affine else []) + ["running_mean", "running_var"]
    found = _roles(source, framework, names, ["gamma", "beta", "moving_mean", "moving_variance"]
                   if layer.affine else ["moving_mean", "moving_variance"])
    keys = (["gamma", "beta"] if layer.affine else []) + ["running_mean", "running_var"]
    how = _keras_epsilon(layer, source) if framework == "keras" else "as is"
    return {key: (source.arrays[role], role, how) for key, role in zip(keys, found, strict=True)}


def _weights_and_bias(layer: Dense | Conv2D, source: SourceLayer, framework: str, maps: tuple[int, ...] | None,
                      order: str) -> Converted:
    """A dense or conv layer's W in nnctl's layout (Keras's HWIO kernels as OIHW, PyTorch's (out, in) matrices
    transposed, a flattened HWC input's rows as CHW) and its b as it is."""
    a = source.arrays
    roles = _roles(source, framework, ["weight", "bias"] if layer.use_bias else ["weight"],
                   ["kernel", "bias"] if layer.use_bias else ["kernel"])
    w, how = a[roles[0]], "as is"
    if isinstance(layer, Conv2D) and framework == "keras":
        w, how = w.transpose(3, 2, 0, 1), "HWIO -> OIHW"
    elif isinstance(layer, Dense) and framework == "torch":
        w, how = w.T, "(out, in) -> (in, out)"
    if maps is not None and order == "hwc" and w.ndim == 2:
        c, h, wd = maps
        w, how = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1), how + "; rows HWC -> CHW"
    out = {"W": (w, roles[0], how)}
    if layer.use_bias:
        out["b"] = (a[roles[1]], roles[1], "as is")
    return out


def _keras_epsilon(layer: BatchNorm, source: SourceLayer) -> str:
    """How a Keras batch norm converts: NnctlError where its saved epsilon is not the layer's eps; where the file
    does not say (weights only), the step says that Keras's default is not nnctl's."""
    epsilon = (source.config or {}).get("epsilon")
    if not isinstance(epsilon, int | float) or isinstance(epsilon, bool):
        return (f"as is; the file does not say Keras's epsilon (its default is {KERAS_EPSILON:g}, this layer's eps "
                f"{layer.eps:g}): set the layer's eps to Keras's")
    if not np.isclose(epsilon, layer.eps, rtol=1e-6, atol=0):
        raise NnctlError(f"{source.name} -> {layer.name}: Keras's epsilon is {epsilon:g}, but the layer's eps is "
                         f"{layer.eps:g}, so their outputs differ; set eps: {epsilon:g} on {layer.name} in the config")
    return f"as is; epsilon {epsilon:g} as the layer's eps"


def _roles(source: SourceLayer, framework: str, torch_names: list[str], keras_names: list[str]) -> list[str]:
    """The source's arrays for each role: by name (torch; Keras names like 'dense/kernel:0'), else by position."""
    names = list(source.arrays)
    wanted = torch_names if framework == "torch" else keras_names
    by_name = [next((n for n in names if _leaf(n) == w), None) for w in wanted]
    if all(by_name):
        return by_name  # type: ignore[return-value]
    if framework == "keras" and len(names) == len(wanted):  # Keras 3's vars/0, vars/1 ... (or old names)
        return names
    raise NnctlError(f"{source.name}: expected the arrays {', '.join(wanted)}, found {', '.join(names)}; map this "
                     "layer to one of the same kind")


def _leaf(name: str) -> str:
    """'block1_conv1/kernel:0' -> 'kernel'."""
    return name.rpartition("/")[2].split(":")[0]


Direction = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str, str]
"""One direction of a recurrent layer from a source: Wx, Wh, the input and recurrent biases, their arrays' names
and how they were converted."""


def _recurrent(layer: Recurrent, source: SourceLayer, framework: str) -> Converted:
    """A recurrent layer's Wx, Wh and biases per direction, each framework's gate blocks in nnctl's order."""
    reset_before = isinstance(layer, GRU) and not layer.reset_after
    if reset_before and framework == "torch":
        raise NnctlError(f"{source.name} -> {layer.name}: a gru with reset_after: false computes another formula "
                         "(reset before the recurrent product) than PyTorch's GRU; convert into a gru with "
                         "reset_after: true")
    perm = GATES.get((framework, layer.registered_name), list(range(layer.gates)))
    out: Converted = {}
    for s in layer.directions:
        wx, wh, bx, bh, origin, how = (_torch_direction(layer, source, s) if framework == "torch"
                                       else _keras_direction(layer, source, s, reset_before))
        if perm != list(range(layer.gates)):
            wx, wh, bx, bh = (reorder_gates(v, perm) for v in (wx, wh, bx, bh))
            how += f"; gate blocks reordered {perm}"
        out["Wx" + s] = (wx, origin, how)
        out["Wh" + s] = (wh, origin, how)
        if reset_before:
            out["b" + s] = (bx, origin, how)
        elif isinstance(layer, GRU):
            out["b" + s], out["bh" + s] = (bx, origin, how), (bh, origin, how + "; the recurrent bias")
        else:
            out["b" + s] = (bx + bh, origin, how + "; input and recurrent biases summed")
    return out


def _torch_direction(layer: Recurrent, source: SourceLayer, s: str) -> Direction:
    """The direction `s` ('' forward, '_r' backward) of a PyTorch RNN, LSTM or GRU: weight_ih/hh transposed, a
    missing bias as zeros."""
    suffix = "_reverse" if s else ""
    names = [f"weight_ih{suffix}", f"weight_hh{suffix}", f"bias_ih{suffix}", f"bias_hh{suffix}"]
    missing = [n for n in names[:2] if n not in source.arrays]
    if missing:
        raise NnctlError(f"{source.name}: no {', '.join(missing)} for {layer.name}'s "
                         f"{'backward' if s else 'forward'} direction (found {', '.join(source.arrays)})")
    wx, wh = source.arrays[names[0]].T, source.arrays[names[1]].T
    bx = source.arrays.get(names[2], np.zeros(wx.shape[1], wx.dtype))
    bh = source.arrays.get(names[3], np.zeros(wx.shape[1], wx.dtype))
    return wx, wh, bx, bh, f"{names[0]}, {names[1]}, {names[2]}, {names[3]}", "transposed"


def _keras_direction(layer: Recurrent, source: SourceLayer, s: str, reset_before: bool) -> Direction:
    """The direction `s` of a Keras recurrent layer: kernel, recurrent_kernel and bias as they are (a GRU's two bias
    rows, reset_after=True, split into the input and recurrent biases)."""
    part = [n for n in source.arrays if ("backward" in n) == bool(s)]
    if len(part) not in (2, 3):
        raise NnctlError(f"{source.name}: expected kernel, recurrent_kernel and bias for {layer.name}'s "
                         f"{'backward' if s else 'forward'} direction, found {', '.join(source.arrays)}")
    wx, wh = source.arrays[part[0]], source.arrays[part[1]]
    bias = source.arrays[part[2]] if len(part) == 3 else np.zeros(wx.shape[1], wx.dtype)
    if layer.registered_name == "gru" and (bias.ndim == 2) == reset_before:  # one bias row: Keras's reset_after=False
        ours, theirs = ("false", "True (two bias rows)") if reset_before else ("true", "False (one bias row)")
        raise NnctlError(f"{source.name} -> {layer.name}: a Keras GRU with reset_after={theirs} computes "
                         f"another formula than a gru with reset_after: {ours}; set the layer's reset_after "
                         "to match")
    bx, bh = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
    return wx, wh, bx, bh, ", ".join(part), "as is"
