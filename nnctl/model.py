"""A sequential model: layers applied in order, gradients flowing back in reverse."""

import math

import numpy as np

from nnctl import threads
from nnctl.backend import host_copy, to_device
from nnctl.errors import ConfigError
from nnctl.layers import Layer
from nnctl.layers.base import range_problem
from nnctl.layers.recurrent import Recurrent
from nnctl.schema import did_you_mean

DEALT_SHARE = 0.9
"""The share of a model's multiply-adds in layers that deal threads above which they do (mnist_deep_cnn's convs:
99 %, 30 % faster; mnist_cnn's: 50 %, whose dense layer then ran on one BLAS thread, 15 % slower)."""


class Model:
    """Layers in order, with the input shape they were built for (batch axis excluded)."""

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], shapes: list[tuple[int, ...]]):
        self.layers = layers
        self.input_shape = input_shape
        self.shapes = shapes
        """The output shape of each layer, in order."""
        self.output_shape = shapes[-1] if shapes else input_shape
        training = [i for i, layer in enumerate(layers) if layer.trainable and layer.params]
        self.first_trained = training[0] if training else 0
        """Backward runs down to this layer only: no layer before it trains, so their gradients are unused (in a
        model with nothing to train, down to the first layer, which gives its input's gradient only where asked
        by setting its `input_grad`, as gradcheck does)."""
        for i, layer in enumerate(layers):
            layer.input_grad = i > self.first_trained
        self.trained = [(layer, key) for layer in layers if layer.trainable for key in layer.params]
        """(layer, key) of every trainable array, in the order params() and grads() give them."""
        self.decayed = [(layer, key) for layer, key in self.trained if key in layer.weight_keys]
        self.loaded: dict[str, str] = {}
        """The layers whose arrays came from model.weights, and the file each came from."""
        work = [layer.multiply_adds(shape) for layer, shape in zip(layers, shapes, strict=True)]
        dealt = sum(w for layer, w in zip(layers, work, strict=True) if layer.deals_threads)
        self.blas_threads = 1 if dealt > DEALT_SHARE * sum(work) else None
        """BLAS's threads in forward and backward: one where layers that deal out their own work to threads do
        most of it (an idle BLAS thread spins for a while after each product, against them), else as BLAS is."""
        for layer in layers:
            layer.threads = threads.available() if self.blas_threads and layer.deals_threads else 1

    def forward(self, x: np.ndarray, training: bool = False, depth: int | None = None) -> np.ndarray:
        """The outputs of the model, or of its first `depth` layers."""
        with threads.blas_limit(self.blas_threads):
            for layer in self.layers[:depth]:
                x = layer.forward(x, training and layer.trainable)
        return x

    def carries_state(self, depth: int | None = None) -> bool:
        """Whether `forward_from` can run the model (or its first `depth` layers) a piece of a sequence at a time:
        each layer works step by step (`per_step`) or is a one-way recurrent layer with an output per step."""
        return self.whole_reader(depth) is None

    def whole_reader(self, depth: int | None = None) -> Layer | None:
        """The first layer (of the first `depth`) that reads a sequence whole, unable to carry its state from one
        piece to the next (a bidirectional one, a flatten); None where there is none (see carries_state)."""
        return next((layer for layer in self.layers[:depth]
                     if not (layer.per_step or isinstance(layer, Recurrent) and layer.carries_on)), None)

    def forward_from(self, x: np.ndarray, states: list, depth: int | None = None) -> tuple[np.ndarray, list]:
        """The outputs (N, T, ...) of the model (or of its first `depth` layers) for the steps x (N, T, ...) that
        follow the recurrent `states` (one per layer run, None at the start), and the states after them: pieces of
        a sequence give the outputs of the whole (see carries_state; evaluation only)."""
        after = []
        with threads.blas_limit(self.blas_threads):
            for layer, state in zip(self.layers[:depth], states, strict=True):
                if isinstance(layer, Recurrent):
                    x, state = layer.forward_from(x, state)
                else:
                    x = layer.forward(x, False)
                after.append(state)
        return x, after

    def kept_values(self, depth: int | None = None) -> tuple[int, int]:
        """About how many values one sample through the model (or its first `depth` layers) keeps, for the memory
        checks: the layers' outputs, and what they keep besides for a backward (a recurrent layer's gates)."""
        layers, shapes = self.layers[:depth], self.shapes[:depth]
        return sum(math.prod(shape) for shape in shapes), sum(layer.working_values() for layer in layers)

    def reads_other_lengths(self) -> bool:
        """Whether the model takes sequences of another length than its input shape's, giving an output per step
        (as recurrent layers do; a flatten or reshape ties the weights to the steps): tried on one step."""
        try:
            outputs = self.forward(to_device(np.zeros((1, 1, *self.input_shape[1:]), dtype=self.params()[0].dtype)))
        except ValueError:  # a product whose sizes no longer fit
            return False
        return tuple(outputs.shape) == (1, 1, *self.output_shape[1:])

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Fills the trainable layers' grads; returns the input's gradient if the first layer computes it."""
        grad: np.ndarray | None = dy
        with threads.blas_limit(self.blas_threads):
            for layer in reversed(self.layers[self.first_trained:]):
                assert grad is not None, "only the first layer that trains may skip its input's gradient"
                grad = layer.backward(grad)
        return grad if self.first_trained == 0 else None

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def params(self) -> list[np.ndarray]:
        """Every trainable array, in a fixed order (the optimizer's slots follow it)."""
        return [layer.params[key] for layer, key in self.trained]

    def layer_index(self, name: str) -> int:
        """The position of the layer called `name` (given as --layer); ConfigError naming the layers if none is."""
        names = [layer.name for layer in self.layers]
        if name not in names:
            raise ConfigError(f"--layer: this model has no layer '{name}'{did_you_mean(name, names)}; its layers: "
                              f"{', '.join(names)}")
        return names.index(name)

    def lr_mults(self) -> list[float]:
        """Each trainable array's learning-rate multiplier (its layer's lr_mult), in the order of params()."""
        return [layer.lr_mult for layer, _ in self.trained]

    def grads(self) -> list[np.ndarray]:
        return [layer.grads[key] for layer, key in self.trained]

    def decayed_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The arrays subject to L1/L2 decay (weights, not biases or scales), and their gradients."""
        return ([layer.params[key] for layer, key in self.decayed],
                [layer.grads[key] for layer, key in self.decayed])

    @property
    def itemsize(self) -> int:
        """The bytes of one value of the model's dtype (its parameters'; float64 where it has none)."""
        return np.dtype(self.params()[0].dtype if self.params() else np.float64).itemsize

    @property
    def num_params(self) -> int:
        """The trainable parameters' count."""
        return sum(p.size for p in self.params())

    @property
    def num_frozen(self) -> int:
        """The count of parameters in layers with `trainable: false`."""
        return sum(p.size for layer in self.layers if not layer.trainable for p in layer.params.values())

    def set_rng(self, rng: np.random.Generator) -> None:
        """The generator that layers drawing random numbers while training (dropout) use."""
        for layer in self.layers:
            layer.rng = rng

    def state_dict(self) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """Host copies of every layer's params and state, by layer name."""
        return {layer.name: {"params": {k: host_copy(v) for k, v in layer.params.items()},
                             "state": {k: host_copy(v) for k, v in layer.state.items()}}
                for layer in self.layers if layer.params or layer.state}

    def load_state_dict(self, saved: dict) -> None:
        """Copies saved arrays into the model in place; ValueError on any name or shape that differs."""
        expected = {layer.name for layer in self.layers if layer.params or layer.state}
        if set(saved) != expected:
            raise ValueError(f"the saved layers {sorted(saved)} are not this model's {sorted(expected)}")
        for name, entry in saved.items():
            layer = self.layer(name)
            for kind in ("params", "state"):
                mine = getattr(layer, kind)
                if set(entry[kind]) != set(mine):
                    raise ValueError(f"layer {name}: saved {kind} {sorted(entry[kind])}, expected {sorted(mine)}")
                for key, value in entry[kind].items():
                    if value.shape != mine[key].shape:
                        raise ValueError(f"layer {name}: {key} has shape {list(value.shape)}, "
                                         f"expected {list(mine[key].shape)}")
                    if problem := range_problem(value, mine[key].dtype):
                        raise ValueError(f"layer {name}: {key} {problem}")
                    mine[key][...] = to_device(value)
