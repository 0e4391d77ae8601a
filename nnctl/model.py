"""A sequential model: layers applied in order, gradients flowing back in reverse."""

import numpy as np

from nnctl.layers import Layer


class Model:
    """Layers in order, with the input shape they were built for (batch axis excluded)."""

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], shapes: list[tuple[int, ...]]):
        self.layers = layers
        self.input_shape = input_shape
        self.shapes = shapes
        """The output shape of each layer, in order."""
        self.output_shape = shapes[-1] if shapes else input_shape
        if layers:
            layers[0].input_grad = False
        self.keys = [(layer, key) for layer in layers for key in layer.params]
        self.decayed = [(layer, key) for layer in layers for key in layer.weight_keys if key in layer.params]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Fills every layer's grads; returns the input's gradient if the first layer computes it."""
        grad: np.ndarray | None = dy
        for layer in reversed(self.layers):
            assert grad is not None, "only the first layer may skip its input's gradient"
            grad = layer.backward(grad)
        return grad

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def params(self) -> list[np.ndarray]:
        """Every trainable array, in a fixed order (the optimizer's slots follow it)."""
        return [layer.params[key] for layer, key in self.keys]

    def lr_mults(self) -> list[float]:
        """Each trainable array's learning-rate multiplier (its layer's lr_mult), in the order of params()."""
        return [layer.lr_mult for layer, _ in self.keys]

    def grads(self) -> list[np.ndarray]:
        return [layer.grads[key] for layer, key in self.keys]

    def decayed_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The arrays subject to L1/L2 decay (weights, not biases or scales), and their gradients."""
        return ([layer.params[key] for layer, key in self.decayed],
                [layer.grads[key] for layer, key in self.decayed])

    @property
    def num_params(self) -> int:
        return sum(p.size for p in self.params())

    def set_rng(self, rng: np.random.Generator) -> None:
        """The generator that layers drawing random numbers while training (dropout) use."""
        for layer in self.layers:
            layer.rng = rng

    def state_dict(self) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """Copies of every layer's params and state, by layer name."""
        return {layer.name: {"params": {k: v.copy() for k, v in layer.params.items()},
                             "state": {k: v.copy() for k, v in layer.state.items()}}
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
                    mine[key][...] = value
