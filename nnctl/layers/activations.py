"""Element-wise activations and softmax, each a layer of its own."""

from typing import TYPE_CHECKING

from nnctl.backend import xp
from nnctl.kernels import bias_relu_, relu_backward
from nnctl.layers.base import LAYERS, Layer
from nnctl.schema import did_you_mean

if TYPE_CHECKING:
    from nnctl.config import Config, KeyPath


ALL = slice(None)


class Activation(Layer):
    """A parameter-free layer that keeps its output shape; usable as `activation:` of another layer.

    `backward(dy, rows)` gives the gradient for rows `rows` of the last output (all by default): a conv layer
    asks for one block of rows at a time."""

    example = {"config": {}, "input_shape": (6,)}
    per_step = True

    def forward_(self, y, b, training):
        """act(y + b) for a product y (M, F) that its layer hands over (it may be overwritten); b may be None."""
        if b is not None:
            y += b
        return self.forward(y, training)


@LAYERS.register("identity")
class Identity(Activation):
    """y = x; dx = dy."""

    def forward(self, x, training):
        return x

    def backward(self, dy, rows=ALL):
        return dy


@LAYERS.register("step")
class Step(Activation):
    """y = 1 if x > 0 else 0; backward passes dy through (the perceptron rule, derivative taken as 1)."""

    surrogate_gradient = True

    def forward(self, x, training):
        return (x > 0).astype(x.dtype)

    def backward(self, dy, rows=ALL):
        return dy


@LAYERS.register("sigmoid")
class Sigmoid(Activation):
    """y = 1 / (1 + e^−x); dx = dy · y · (1 − y)."""

    def forward(self, x, training):
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy, rows=ALL):
        y = self.y[rows]
        return dy * y * (1 - y)


@LAYERS.register("tanh")
class Tanh(Activation):
    """y = tanh(x); dx = dy · (1 − y²)."""

    def forward(self, x, training):
        self.y = xp.tanh(x)
        return self.y

    def backward(self, dy, rows=ALL):
        y = self.y[rows]
        return dy * (1 - y * y)


@LAYERS.register("relu")
class ReLU(Activation):
    """y = max(x, 0); dx = dy where y > 0."""

    def forward(self, x, training):
        self.y = xp.maximum(x, 0)
        return self.y

    def forward_(self, y, b, training):
        self.y = xp.maximum(y, 0, out=y) if b is None else bias_relu_(y, b)
        return self.y

    def backward(self, dy, rows=ALL):
        return relu_backward(dy, self.y[rows])


@LAYERS.register("leaky_relu")
class LeakyReLU(Activation):
    """y = x where x > 0, else alpha · x; dx = dy where x > 0, else alpha · dy."""

    def __init__(self, alpha: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(self, x, training):
        self.mask = x > 0
        return xp.where(self.mask, x, self.alpha * x)

    def backward(self, dy, rows=ALL):
        return xp.where(self.mask[rows], dy, self.alpha * dy)


@LAYERS.register("elu")
class ELU(Activation):
    """y = x where x > 0, else alpha · (e^x − 1); dx = dy where x > 0, else dy · (y + alpha)."""

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(self, x, training):
        self.mask = x > 0
        self.neg = self.alpha * xp.expm1(xp.minimum(x, 0))
        return xp.where(self.mask, x, self.neg)

    def backward(self, dy, rows=ALL):
        return xp.where(self.mask[rows], dy, dy * (self.neg[rows] + self.alpha))


@LAYERS.register("softmax")
class Softmax(Activation):
    """Row-wise softmax over the last axis (stable: each row's maximum is subtracted); dx = y · (dy − Σ dy · y)."""

    def forward(self, x, training):
        self.y = softmax(x)
        return self.y

    def backward(self, dy, rows=ALL):
        y = self.y[rows]
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def sigmoid(x):
    """1 / (1 + e^-x), without overflow for large |x|."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x):
    """Softmax over the last axis, one row at a time."""
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def activations() -> dict[str, type[Activation]]:
    """The layers that may also be a layer's `activation:`, by name."""
    return {n: cls for n in LAYERS if issubclass(cls := LAYERS.get(n), Activation)}


def make_activation(name: str | None, config: "Config", path: "KeyPath") -> Activation | None:
    """The activation layer called `name` (None for none), or the config's error at `path`."""
    if name is None:
        return None
    classes = activations()
    if name not in classes:
        raise config.error(path, f"unknown activation '{name}'{did_you_mean(name, classes)}; "
                                 f"known: {', '.join(classes)}")
    return classes[name]()
