"""A model as an ONNX graph (float32, opset 17): each layer becomes the ONNX operators that compute it exactly."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.backend import to_host
from nnctl.data.source import DatasetSource, channel_axis
from nnctl.errors import ConfigError, NnctlError
from nnctl.layers import Layer
from nnctl.layers.activations import ELU, Activation, LeakyReLU
from nnctl.layers.recurrent import GRU, Recurrent, SimpleRNN, reorder_gates
from nnctl.model import Model
from nnctl.outputs import replacing

OPSET = 17
ONNX_GATES = {"lstm": [0, 2, 1, 3], "gru": [1, 0, 2], "rnn": [0]}
"""nnctl's gate blocks in ONNX's order: lstm i, f, o, g -> i, o, f, c; gru r, u, n -> z, r, h."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise NnctlError("ONNX export needs the onnx package: pip install 'nnctl[onnx]'") from None
    return onnx


class Graph:
    """The nodes and initializers built so far; `add` appends one operator and returns its output's name."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        """An initializer holding `value` (floats as float32)."""
        value = np.asarray(value)
        value = value.astype(np.float32) if value.dtype.kind == "f" else value
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def add(self, op: str, inputs: list[str], **attrs) -> str:
        return self.add_many(op, inputs, 1, **attrs)[0]

    def add_many(self, op: str, inputs: list[str], outputs: int, **attrs) -> list[str]:
        """An operator with several outputs; their names."""
        names = [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, **attrs))
        return names


def _activation(g: Graph, layer: Activation, x: str) -> str:
    kind = layer.registered_name
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "identity": "Identity"}
    if kind in simple:
        return g.add(simple[kind], [x])
    if isinstance(layer, LeakyReLU | ELU):
        return g.add({"leaky_relu": "LeakyRelu", "elu": "Elu"}[kind], [x], alpha=float(layer.alpha))
    if kind == "softmax":
        return g.add("Softmax", [x], axis=-1)
    if kind == "step":
        return g.add("Cast", [g.add("Greater", [x, g.const("zero", np.float32(0))])], to=g.onnx.TensorProto.FLOAT)
    raise NnctlError(f"{layer.name}: the activation {kind} has no ONNX export")


def _arrays(layer: Layer) -> dict[str, np.ndarray]:
    """The layer's parameters and state as host NumPy arrays, wherever the model computes."""
    return {key: to_host(a) for key, a in {**layer.params, **layer.state}.items()}


def _then(g: Graph, layer: Layer, y: str) -> str:
    """The layer's own `activation`, if it has one."""
    act = getattr(layer, "activation", None)
    return _activation(g, act, y) if act is not None else y


def _dense(g, layer, x, shape):
    p = _arrays(layer)
    y = g.add("MatMul", [x, g.const("W", p["W"])])
    if layer.use_bias:
        y = g.add("Add", [y, g.const("b", p["b"])])
    return _then(g, layer, y)


def _window(layer, shape) -> dict:
    (top, bottom), (left, right) = layer.window.pads(shape[1:])
    return {"kernel_shape": list(layer.window.kernel), "strides": list(layer.window.stride),
            "pads": [top, left, bottom, right]}


def _conv(g, layer, x, shape):
    p = _arrays(layer)
    inputs = [x, g.const("W", p["W"])] + ([g.const("b", p["b"])] if layer.use_bias else [])
    y = g.add("Conv", inputs, dilations=list(layer.window.dilation), **_window(layer, shape))
    return _then(g, layer, y)


def _batchnorm(g, layer, x, shape):
    features, p = shape[0], _arrays(layer)
    gamma = p["gamma"] if layer.affine else np.ones(features)
    beta = p["beta"] if layer.affine else np.zeros(features)
    return g.add("BatchNormalization", [x, g.const("gamma", gamma), g.const("beta", beta),
                                        g.const("mean", p["running_mean"]), g.const("var", p["running_var"])],
                 epsilon=float(layer.eps))


def _reshape(g, layer, x, shape):
    out = layer.output_shape(shape)
    return g.add("Reshape", [x, g.const("shape", np.array([-1, *out], np.int64))])


def _recurrent(g: Graph, layer: Recurrent, x: str, shape) -> str:
    """ONNX's LSTM, GRU or RNN over time-major x; learned initial states are broadcast over the batch."""
    W, R, B = _recurrent_weights(layer)
    inputs = [g.add("Transpose", [x], perm=[1, 0, 2]), g.const("W", W), g.const("R", R), g.const("B", B)]
    if layer.learned_state:
        inputs += ["", *_initial_states(g, layer, x)]  # "": no sequence lengths
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[layer.registered_name]
    y, y_h = g.add_many(op, inputs, 2, **_recurrent_attributes(layer))
    if layer.return_sequences:  # (T, D, N, U) -> (N, T, D·U), each step's directions side by side
        return g.add("Reshape", [g.add("Transpose", [y], perm=[2, 0, 1, 3]),
                                 g.const("shape", np.array([0, 0, -1], np.int64))])
    return g.add("Reshape", [g.add("Transpose", [y_h], perm=[1, 0, 2]), g.const("shape", np.array([0, -1], np.int64))])


def _recurrent_weights(layer: Recurrent) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX's W, R and B (input and recurrent biases side by side), one row per direction, gates in ONNX's order."""
    perm, directions, p = ONNX_GATES[layer.registered_name], layer.directions, _arrays(layer)
    W = np.stack([reorder_gates(p["Wx" + s], perm).T for s in directions])
    R = np.stack([reorder_gates(p["Wh" + s], perm).T for s in directions])
    zeros = np.zeros(len(perm) * layer.units, W.dtype)
    bias = [reorder_gates(p["b" + s], perm) if "b" + s in p else zeros
            for s in directions]  # rnn with use_bias: false has none
    recurrent_bias = [reorder_gates(p["bh" + s], perm) if "bh" + s in p else zeros
                      for s in directions]  # only gru's reset-after
    B = np.stack([np.concatenate([b, rb]) for b, rb in zip(bias, recurrent_bias, strict=True)])
    return W, R, B


def _initial_states(g: Graph, layer: Recurrent, x: str) -> list[str]:
    """The learned initial states (h0, and c0 for lstm), each (directions, 1, units) expanded over x's batch."""
    p, directions = _arrays(layer), layer.directions
    batch = g.add("Gather", [g.add("Shape", [x]), g.const("zero", np.array([0], np.int64))], axis=0)
    size = g.add("Concat", [g.const("dirs", np.array([len(directions)], np.int64)), batch,
                            g.const("units", np.array([layer.units], np.int64))], axis=0)
    return [g.add("Expand", [g.const(f"{carried}0", np.stack([p[f"{carried}0{s}"] for s in directions])[:, None, :]),
                             size]) for carried in layer.carries]


def _recurrent_attributes(layer: Recurrent) -> dict[str, Any]:
    """The ONNX node's attributes: hidden size, direction, a GRU's reset form, an RNN's activation."""
    attrs: dict[str, Any] = {"hidden_size": layer.units,
                             "direction": "bidirectional" if len(layer.directions) > 1 else "forward"}
    if isinstance(layer, GRU):  # reset after the recurrent product (PyTorch's form), or before it (the original)
        attrs["linear_before_reset"] = int(layer.reset_after)
    if isinstance(layer, SimpleRNN):
        if layer.nonlinearity == "identity":
            raise NnctlError(f"layer {layer.name}: an rnn with activation identity has no ONNX form here; export "
                             "supports tanh and relu")
        attrs["activations"] = [layer.nonlinearity.capitalize()] * len(layer.directions)
    return attrs


EXPORTS: dict[str, Callable] = {
    "dense": _dense, "conv2d": _conv, "batchnorm": _batchnorm, "reshape": _reshape,
    "flatten": lambda g, layer, x, shape: g.add("Flatten", [x], axis=1),
    "dropout": lambda g, layer, x, shape: g.add("Identity", [x]),
    "maxpool2d": lambda g, layer, x, shape: g.add("MaxPool", [x], **_window(layer, shape)),
    "avgpool2d": lambda g, layer, x, shape: g.add("AveragePool", [x], count_include_pad=1, **_window(layer, shape)),
    "global_avg_pool2d": lambda g, layer, x, shape: g.add("Flatten", [g.add("GlobalAveragePool", [x])], axis=1),
    "embedding": lambda g, layer, x, shape: g.add("Gather", [g.const("W", _arrays(layer)["W"]), x], axis=0),
    "lstm": _recurrent, "gru": _recurrent, "rnn": _recurrent,
}


def to_onnx(model: Model, name: str = "nnctl"):
    """The model as an onnx ModelProto: input `x` (batch, *input shape), output `y` (the model's raw outputs)."""
    onnx = _onnx()
    g = Graph(onnx)
    x, shape = "x", model.input_shape
    for layer, out in zip(model.layers, model.shapes, strict=True):
        if isinstance(layer, Activation):
            x = _activation(g, layer, x)
        elif layer.registered_name in EXPORTS:
            x = EXPORTS[layer.registered_name](g, layer, x, shape)
        else:
            raise NnctlError(f"{layer.name}: a {layer.registered_name} layer has no ONNX export; layers that have "
                             f"one: {', '.join(sorted(EXPORTS))} and the activations")
        shape = out
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["y"]))
    indices = model.layers and model.layers[0].takes_indices
    element = onnx.TensorProto.INT64 if indices else onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes, name, [onnx.helper.make_tensor_value_info("x", element, ["N", *model.input_shape])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", *model.output_shape])],
        g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="nnctl")
    proto.ir_version = 8  # what opset 17 needs; newer runtimes read it, older ones are not shut out
    onnx.checker.check_model(proto, full_check=True)
    return proto


PREPARATION_KEY = "nnctl.input_preparation"
"""The metadata_props entry holding, as JSON, how raw samples become the input `x`."""


def preparation(source: DatasetSource) -> dict[str, Any]:
    """How a raw sample becomes the model's input `x`, as the training data did: indices as int64; anything else
    as float32 x * scale + shift, then (x - mean) / std per channel along `channel_axis` of the raw sample, then
    reshaped (flattened where the data was)."""
    assert source.sample_shape is not None, "a trained model's source knows its raw sample shape"
    sample = list(source.sample_shape)
    if source.indices:
        return {"raw_sample_shape": sample, "indices": True}
    stats = source.channel_stats
    return {"raw_sample_shape": sample, "indices": False, "scale": source.scale, "shift": source.shift,
            "normalize": None if stats is None else {
                "channel_axis": channel_axis(len(sample)),
                "mean": np.ravel(to_host(stats[0])).tolist(), "std": np.ravel(to_host(stats[1])).tolist()},
            "flatten": bool(source.flatten)}


def describe_preparation(prep: dict[str, Any]) -> str:
    """The preparation in one phrase: 'raw samples [1, 28, 28] * 0.00392157 + 0, flattened'."""
    if prep["indices"]:
        return f"raw samples {prep['raw_sample_shape']} of indices, as int64"
    sign = "-" if prep["shift"] < 0 else "+"
    steps = [f"raw samples {prep['raw_sample_shape']} * {prep['scale']:g} {sign} {abs(prep['shift']):g}"]
    if prep["normalize"]:
        steps.append(f"minus each channel's mean, over its std (axis {prep['normalize']['channel_axis']} of a sample)")
    if prep["flatten"]:
        steps.append("flattened")
    return ", ".join(steps)


def check_onnx_name(path: Path) -> None:
    """ConfigError unless `path` names an .onnx file."""
    if path.suffix != ".onnx":
        raise ConfigError(f"{path}: name the ONNX file *.onnx")


def export_onnx(model: Model, path: Path, name: str = "nnctl", prep: dict[str, Any] | None = None) -> None:
    """Writes the model's ONNX graph to `path`, with the input preparation `prep` as JSON in its metadata_props."""
    check_onnx_name(path)
    proto = to_onnx(model, name)
    if prep is not None:
        _onnx().helper.set_model_props(proto, {PREPARATION_KEY: json.dumps(prep)})
    with replacing(path, "the model") as f:
        f.write(proto.SerializeToString())
