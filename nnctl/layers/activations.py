"""Element-wise activations and softmax, each a layer of its own."""

from typing import TYPE_CHECKING

from nnctl.backend import xp
from nnctl.layers.base import LAYERS, Layer
from nnctl.schema import did_you_mean

if TYPE_CHECKING:
    from nnctl.config import Config, KeyPath


class Activation(Layer):
    """A parameter-free layer that keeps its output shape; usable as `activation:` of another layer."""

    example = {"config": {}, "input_shape": (6,)}


@LAYERS.register("identity")
class Identity(Activation):
    def forward(self, x, training):
        return x

    def backward(self, dy):
        return dy


@LAYERS.register("step")
class Step(Activation):
    """y = 1 if x > 0 else 0; backward passes dy through (the perceptron rule, derivative taken as 1)."""

    surrogate_gradient = True

    def forward(self, x, training):
        return (x > 0).astype(x.dtype)

    def backward(self, dy):
        return dy


@LAYERS.register("sigmoid")
class Sigmoid(Activation):
    def forward(self, x, training):
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


@LAYERS.register("tanh")
class Tanh(Activation):
    def forward(self, x, training):
        self.y = xp.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)


@LAYERS.register("relu")
class ReLU(Activation):
    def forward(self, x, training):
        self.mask = x > 0
        return xp.maximum(x, 0)

    def backward(self, dy):
        return dy * self.mask


@LAYERS.register("leaky_relu")
class LeakyReLU(Activation):
    def __init__(self, alpha: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(self, x, training):
        self.mask = x > 0
        return xp.where(self.mask, x, self.alpha * x)

    def backward(self, dy):
        return xp.where(self.mask, dy, self.alpha * dy)


@LAYERS.register("elu")
class ELU(Activation):
    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(self, x, training):
        self.mask = x > 0
        self.neg = self.alpha * xp.expm1(xp.minimum(x, 0))
        return xp.where(self.mask, x, self.neg)

    def backward(self, dy):
        return xp.where(self.mask, dy, dy * (self.neg + self.alpha))


@LAYERS.register("softmax")
class Softmax(Activation):
    """Row-wise softmax over the last axis (stable: each row's maximum is subtracted)."""

    def forward(self, x, training):
        self.y = softmax(x)
        return self.y

    def backward(self, dy):
        return self.y * (dy - (dy * self.y).sum(axis=-1, keepdims=True))


def sigmoid(x):
    """1 / (1 + e^-x), without overflow for large |x|."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x):
    """Softmax over the last axis, one row at a time."""
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def make_activation(name: str | None, config: "Config", path: "KeyPath") -> Activation | None:
    """The activation layer called `name` (None for none), or the config's error at `path`."""
    if name is None:
        return None
    classes = {n: cls for n in LAYERS if issubclass(cls := LAYERS.get(n), Activation)}
    if name not in classes:
        raise config.error(path, f"unknown activation '{name}'{did_you_mean(name, classes)}; "
                                 f"known: {', '.join(classes)}")
    return classes[name]()
