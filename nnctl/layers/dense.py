"""The fully-connected layer: y = act(x·W + b)."""

import math
from typing import Any

from nnctl.backend import sum_rows, xp
from nnctl.init import Initializer
from nnctl.layers.activations import Identity
from nnctl.layers.base import LAYERS, Layer
from nnctl.schema import Count


@LAYERS.register("dense")
class Dense(Layer):
    """x (..., in) -> act(x·W + b) (..., units); W has shape (in, units). Leading axes are kept."""

    example = {"config": {"units": 3, "activation": "tanh"}, "input_shape": (4,)}
    per_step = True
    weight_keys = ("W",)

    def __init__(self, units: Count, activation: str | None = None, use_bias: bool = True,
                 weight_init: Any = "glorot_uniform", bias_init: Any = "zeros", **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = units, use_bias
        self.activation = activation or Identity()  # the builder has made the name an activation layer
        self.weight_init: Initializer = weight_init
        self.bias_init: Initializer = bias_init

    def output_shape(self, input_shape):
        if len(input_shape) == 0:
            raise ValueError("dense needs inputs with at least one axis")
        return (*input_shape[:-1], self.units)

    def build(self, input_shape, rng, dtype):
        fan_in = input_shape[-1]
        self.params["W"] = self.weight_init((fan_in, self.units), fan_in, self.units, rng, dtype)
        if self.use_bias:
            self.params["b"] = self.bias_init((self.units,), fan_in, self.units, rng, dtype)
        self._zero_grads()

    def multiply_adds(self, output_shape):
        return self.params["W"].size * math.prod(output_shape[:-1])  # W for every position of the leading axes

    def forward(self, x, training):
        self.x = xp.ascontiguousarray(x.reshape(-1, x.shape[-1]))  # BLAS needs it; a strided x is 10x slower
        y = self.activation.forward_(self.x @ self.params["W"], self.params.get("b"), training)
        return y.reshape(*x.shape[:-1], self.units)

    def backward(self, dy):
        dz = self.activation.backward(dy.reshape(-1, self.units))
        xp.dot(self.x.T, dz, out=self.grads["W"])  # dot, not matmul: 6x faster for one-sample batches
        if self.use_bias:
            sum_rows(dz, self.grads["b"])
        if not self.input_grad:
            return None
        return (dz @ self.params["W"].T).reshape(*dy.shape[:-1], -1)


