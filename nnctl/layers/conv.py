"""2-D convolution over NCHW images: im2col and a matrix product, a few images at a time."""

import math
from typing import Any

from nnctl.backend import Scratch, sum_rows, xp
from nnctl.init import Initializer
from nnctl.layers.activations import Identity
from nnctl.layers.base import LAYERS, Layer
from nnctl.layers.window import ColumnBlocks, Padding, Pair, Window, col2im, conv_product
from nnctl.schema import Count


@LAYERS.register("conv2d")
class Conv2D(Layer):
    """x (C, H, W) -> act(W ⋆ x + b) (filters, OH, OW); W has shape (filters, C, KH, KW).

    The output is channel-last in memory (a transposed view), which the next im2col reads fastest."""

    example = {"config": {"filters": 2, "kernel_size": [3, 2], "stride": 2, "padding": 1, "dilation": [1, 2],
                          "activation": "tanh"},
               "input_shape": (2, 7, 7)}
    weight_keys = ("W",)
    deals_threads = True

    def __init__(self, filters: Count, kernel_size: Pair, stride: Pair = 1, padding: Padding = "valid",
                 dilation: Pair = 1,
                 activation: str | None = None, use_bias: bool = True, weight_init: Any = "glorot_uniform",
                 bias_init: Any = "zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.use_bias = filters, use_bias
        self.window = Window.of(kernel_size, stride, dilation, padding)
        self.activation = activation or Identity()  # the builder has made the name an activation layer
        self.weight_init: Initializer = weight_init
        self.bias_init: Initializer = bias_init
        self.scratch = Scratch()  # a block of columns per thread, reused from block to block and step to step
        self.kept = Scratch()  # the whole batch's columns of x, where forward keeps them for backward

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
        self.image_shape = input_shape
        self.params["W"] = self.weight_init(shape, fan_in, fan_out, rng, dtype)
        if self.use_bias:
            self.params["b"] = self.bias_init((self.filters,), fan_in, fan_out, rng, dtype)
        self._zero_grads()

    def multiply_adds(self, output_shape):
        return self.params["W"].size * output_shape[1] * output_shape[2]  # the kernel at every output position

    def working_values(self):
        if not self.keeps_columns(self.image_shape):
            return 0
        return math.prod(self.window.output_size(self.image_shape[1:])) * self._width(self.image_shape)

    def keeps_columns(self, input_shape: tuple[int, ...]) -> bool:
        """Whether a training forward keeps x's columns for backward: where backward takes dW from them (no
        input gradient, or a window without an adjoint) and they hold no more values than the output does."""
        takes = not self.input_grad or self.window.adjoint(input_shape[1:]) is None
        return takes and self._width(input_shape) <= self.filters

    def _width(self, input_shape: tuple[int, ...]) -> int:
        """The columns' width: a window's values, C·KH·KW."""
        return input_shape[0] * self.window.kernel[0] * self.window.kernel[1]

    def forward(self, x, training):
        # evaluation keeps nothing (its larger batches would stay in memory), but a frozen layer that a trainable
        # one comes before still passes the gradient back, from its input
        self.x = x if training or (self.input_grad and not self.trainable) else None
        n, f = len(x), self.filters
        oh, ow = self.window.output_size(x.shape[2:])
        keep = training and self.keeps_columns(x.shape[1:])
        self.columns = self.kept((n * oh * ow, self._width(x.shape[1:])), x.dtype) if keep else None
        y = conv_product(x, self.window, self.params["W"].transpose(2, 3, 1, 0).reshape(-1, f), self.scratch,
                         self.threads, self.columns)
        y = self.activation.forward_(y, self.params.get("b"), training)
        return y.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)

    def backward(self, dy):
        """dW, db and dx block by block from dz, the gradient before the activation (each block's shares of dW and
        db kept apart and summed in block order). Where the window allows (stride 1, even padding:
        `Window.adjoint`), one set of columns gives dW and dx: dz's under the adjoint window; else dW comes from the
        columns of x, gathered again in cache, and dx by col2im of dz·W."""
        adjoint = self.window.adjoint(self.x.shape[2:]) if self.input_grad else None
        return self._backward_adjoint(dy, adjoint) if adjoint else self._backward_columns(dy)

    def _backward_columns(self, dy):
        """dW = (the columns of x, kept by forward or gathered again)ᵀ·dz; dx, where asked for, by col2im of dz·W."""
        n, f, oh, ow = dy.shape
        W = self.params["W"]
        c, kh, kw = W.shape[1:]
        dy = dy.transpose(0, 2, 3, 1).reshape(-1, f)
        dz = xp.empty_like(dy) if self.input_grad else None  # kept whole for col2im
        blocks = ColumnBlocks(self.x, self.window, self.scratch, self.threads, self.columns, gathered=True)
        gW, gb = self._shares(len(blocks.starts), (kh * kw * c, f))

        def block_grads(thread, block, rows, cols):
            part = self._dz(dy, rows, gb[block])
            xp.matmul(cols.T, part, out=gW[block])
            if dz is not None:
                dz[rows] = part

        blocks.each(block_grads)
        self._set_grads(gW.sum(axis=0).reshape(kh, kw, c, f).transpose(3, 2, 0, 1), gb)
        if dz is None:
            return None
        return col2im(lambda i, j, _: (dz @ W[:, :, i, j]).reshape(n, oh, ow, c).transpose(0, 3, 1, 2),
                      self.x.shape, self.window, dy.dtype)

    def _backward_adjoint(self, dy, adjoint):
        """With A, dz's columns under the adjoint window (a row per input pixel, the outputs it meets at each kernel
        offset, flipped): dx = A·(the flipped kernel), and dW = Aᵀ·x, x's pixels a row each, flipped back."""
        n, f, oh, ow = dy.shape
        W, size = self.params["W"], self.x.shape[2:]
        c, kh, kw = W.shape[1:]
        pixels = self.x.transpose(0, 2, 3, 1).reshape(-1, c)  # a view where x is channel-last, as conv outputs are
        flipped = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(-1, c)
        dx = xp.empty_like(pixels)
        blocks = ColumnBlocks(dy, adjoint, self.scratch, self.threads)  # blocks of dz's images and their columns
        gW, gb = self._shares(len(blocks.starts), (kh * kw * f, c))
        dy = dy.transpose(0, 2, 3, 1).reshape(-1, f)

        def block_grads(thread, block, images):
            dz = self._dz(dy, slice(images.start * oh * ow, images.stop * oh * ow), gb[block])
            cols = blocks.gather(dz.reshape(-1, oh, ow, f).transpose(0, 3, 1, 2), thread)
            rows = slice(images.start * blocks.rows, images.stop * blocks.rows)  # the images' pixels
            xp.matmul(cols.T, pixels[rows], out=gW[block])
            xp.matmul(cols, flipped, out=dx[rows])

        blocks.deal(block_grads)
        self._set_grads(gW.sum(axis=0).reshape(kh, kw, f, c)[::-1, ::-1].transpose(2, 3, 0, 1), gb)
        return dx.reshape(n, *size, c).transpose(0, 3, 1, 2)

    def _shares(self, blocks, shape):
        """Empty per-block shares of dW (each of `shape`) and of db."""
        dtype = self.params["W"].dtype
        return xp.empty((blocks, *shape), dtype), xp.empty((blocks, self.filters), dtype)

    def _dz(self, dy, rows, gb):
        """dz on dy's `rows` (the activation's backward), with their share of db summed into gb."""
        dz = self.activation.backward(dy[rows], rows)
        if self.use_bias:
            sum_rows(dz, gb)
        return dz

    def _set_grads(self, gW, gb):
        """dW, and db as the sum of its per-block shares."""
        self.grads["W"][...] = gW
        if self.use_bias:
            self.grads["b"][...] = gb.sum(axis=0)
