"""Batch normalization over the batch (dense inputs) or over batch and pixels (NCHW images)."""

from nnctl.backend import xp
from nnctl.layers.base import LAYERS, Layer
from nnctl.schema import Fraction, Positive


@LAYERS.register("batchnorm")
class BatchNorm(Layer):
    """y = gamma · (x − mean) / sqrt(var + eps) + beta per feature (axis 1); batch statistics while
    training, the running ones in eval: running = momentum · running + (1 − momentum) · batch."""

    example = {"config": {"momentum": 0.8}, "input_shape": (3, 2, 2)}

    def __init__(self, momentum: Fraction = 0.9, eps: Positive = 1e-5, affine: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.eps, self.affine = momentum, eps, affine

    def output_shape(self, input_shape):
        if len(input_shape) not in (1, 3):
            raise ValueError("batchnorm normalizes features (F,) or image channels (C, H, W), "
                             f"not samples of shape {list(input_shape)}")
        return input_shape

    def build(self, input_shape, rng, dtype):
        features = input_shape[0]
        if self.affine:
            self.params = {"gamma": xp.ones(features, dtype), "beta": xp.zeros(features, dtype)}
        self.state = {"running_mean": xp.zeros(features, dtype), "running_var": xp.ones(features, dtype)}
        self._zero_grads()

    def forward(self, x, training):
        self.axes = (0, *range(2, x.ndim))
        shape = (1, -1, *[1] * (x.ndim - 2))
        if training:
            mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)
            m = x.size // len(mean)
            if m > 1:  # one value per channel (a last batch of one sample) has no variance to learn from
                self.state["running_mean"] *= self.momentum
                self.state["running_mean"] += (1 - self.momentum) * mean
                self.state["running_var"] *= self.momentum
                self.state["running_var"] += (1 - self.momentum) * var * (m / (m - 1))  # unbiased
        else:
            mean, var = self.state["running_mean"], self.state["running_var"]
        self.training = training
        self.inv_std = (1 / xp.sqrt(var + self.eps)).reshape(shape)
        self.xhat = (x - mean.reshape(shape)) * self.inv_std
        if not self.affine:
            return self.xhat
        return self.xhat * self.params["gamma"].reshape(shape) + self.params["beta"].reshape(shape)

    def backward(self, dy):
        if self.affine:
            (dy * self.xhat).sum(axis=self.axes, out=self.grads["gamma"])
            dy.sum(axis=self.axes, out=self.grads["beta"])
            dy = dy * self.params["gamma"].reshape(self.inv_std.shape)
        if not self.input_grad:
            return None
        if not self.training:  # the statistics are constants
            return dy * self.inv_std
        mean_dy = dy.mean(axis=self.axes, keepdims=True)
        mean_dy_xhat = (dy * self.xhat).mean(axis=self.axes, keepdims=True)
        return (dy - mean_dy - self.xhat * mean_dy_xhat) * self.inv_std
