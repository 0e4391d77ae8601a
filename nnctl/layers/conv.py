"""2-D convolution over NCHW images: im2col, then one matrix product for the whole batch."""

from typing import Any

from nnctl.backend import sum_rows
from nnctl.init import Initializer
from nnctl.layers.base import LAYERS, Layer
from nnctl.layers.window import Window, col2im, im2col


@LAYERS.register("conv2d")
class Conv2D(Layer):
    """x (C, H, W) -> act(W ⋆ x + b) (filters, OH, OW); W has shape (filters, C, KH, KW).

    The output is channel-last in memory (a transposed view), which the next im2col reads fastest."""

    example = {"config": {"filters": 2, "kernel_size": [3, 2], "stride": 2, "padding": 1, "dilation": [1, 2],
                          "activation": "tanh"},
               "input_shape": (2, 7, 7)}
    weight_keys = ("W",)

    def __init__(self, filters: int, kernel_size: int | list[int], stride: int | list[int] = 1,
                 padding: str | int | list[int] = "valid", dilation: int | list[int] = 1,
                 activation: str | None = None, use_bias: bool = True, weight_init: Any = "glorot_uniform",
                 bias_init: Any = "zeros", **kwargs):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"filters must be at least 1, got {filters}")
        self.filters, self.use_bias = filters, use_bias
        self.window = Window.of(kernel_size, stride, dilation, padding)
        self.activation = activation  # the builder has made the name an activation layer
        self.weight_init: Initializer = weight_init
        self.bias_init: Initializer = bias_init

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError("conv2d needs images shaped (channels, height, width): set data.flatten: false, "
                             "and give grey images (H, W) their channel axis with a first layer "
                             "{type: reshape, shape: [1, H, W]}")
        return (self.filters, *self.window.output_size(input_shape[1:]))

    def build(self, input_shape, rng, dtype):
        kh, kw = self.window.kernel
        shape = (self.filters, input_shape[0], kh, kw)
        fan_in, fan_out = input_shape[0] * kh * kw, self.filters * kh * kw
        self.params["W"] = self.weight_init(shape, fan_in, fan_out, rng, dtype)
        if self.use_bias:
            self.params["b"] = self.bias_init((self.filters,), fan_in, fan_out, rng, dtype)
        self._zero_grads()

    def forward(self, x, training):
        self.x_shape = x.shape
        oh, ow = self.window.output_size(x.shape[2:])
        self.cols = im2col(x, self.window, channels_last=True)
        y = self.cols @ self.params["W"].transpose(0, 2, 3, 1).reshape(self.filters, -1).T
        if self.use_bias:
            y += self.params["b"]
        y = y.reshape(len(x), oh, ow, self.filters).transpose(0, 3, 1, 2)
        return self.activation.forward(y, training) if self.activation else y

    def backward(self, dy):
        if self.activation:
            dy = self.activation.backward(dy)
        n, f, oh, ow = dy.shape
        c, kh, kw = self.params["W"].shape[1:]
        dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, f)
        self.grads["W"][...] = (dy2.T @ self.cols).reshape(f, kh, kw, c).transpose(0, 3, 1, 2)
        if self.use_bias:
            sum_rows(dy2, self.grads["b"])
        if not self.input_grad:
            return None
        W = self.params["W"]
        return col2im(lambda i, j, _: (dy2 @ W[:, :, i, j]).reshape(n, oh, ow, c).transpose(0, 3, 1, 2),
                      self.x_shape, self.window, dy.dtype)
