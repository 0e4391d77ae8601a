"""Inverted dropout: scaled by 1/keep while training, a no-op in eval."""

from nnctl.backend import to_device
from nnctl.layers.base import LAYERS, Layer
from nnctl.schema import Fraction


@LAYERS.register("dropout")
class Dropout(Layer):
    """Zeroes each input with probability `rate` while training and scales the rest by 1/(1-rate)."""

    example = {"config": {"rate": 0.3}, "input_shape": (8,)}
    per_step = True

    def __init__(self, rate: Fraction = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def forward(self, x, training):
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = to_device(self.rng.random(x.shape, dtype=x.dtype) >= self.rate)  # the run's seeded generator
        self.mask = keep * x.dtype.type(1 / (1 - self.rate))
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask
