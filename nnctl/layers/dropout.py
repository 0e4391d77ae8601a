"""Inverted dropout: scaled by 1/keep while training, a no-op in eval."""

from nnctl.layers.base import LAYERS, Layer


@LAYERS.register("dropout")
class Dropout(Layer):
    """Zeroes each input with probability `rate` while training and scales the rest by 1/(1-rate)."""

    example = {"config": {"rate": 0.3}, "input_shape": (8,)}

    def __init__(self, rate: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x, training):
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.rate
        self.mask = keep * x.dtype.type(1 / (1 - self.rate))
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask
