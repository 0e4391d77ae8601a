"""2-D convolution over NCHW images: im2col and a matrix product, a few images at a time."""

from typing import Any

from nnctl.backend import Scratch, sum_rows, xp
from nnctl.init import Initializer
from nnctl.layers.activations import Identity
from nnctl.layers.base import LAYERS, Layer
from nnctl.layers.window import ColumnBlocks, Window, col2im, conv_product, im2col


@LAYERS.register("conv2d")
class Conv2D(Layer):
    """x (C, H, W) -> act(W ⋆ x + b) (filters, OH, OW); W has shape (filters, C, KH, KW).

    The output is channel-last in memory (a transposed view), which the next im2col reads fastest."""

    example = {"config": {"filters": 2, "kernel_size": [3, 2], "stride": 2, "padding": 1, "dilation": [1, 2],
                          "activation": "tanh"},
               "input_shape": (2, 7, 7)}
    weight_keys = ("W",)
    deals_threads = True

    def __init__(self, filters: int, kernel_size: int | list[int], stride: int | list[int] = 1,
                 padding: str | int | list[int] = "valid", dilation: int | list[int] = 1,
                 activation: str | None = None, use_bias: bool = True, weight_init: Any = "glorot_uniform",
                 bias_init: Any = "zeros", **kwargs):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"filters must be at least 1, got {filters}")
        self.filters, self.use_bias = filters, use_bias
        self.window = Window.of(kernel_size, stride, dilation, padding)
        self.activation = activation or Identity()  # the builder has made the name an activation layer
        self.weight_init: Initializer = weight_init
        self.bias_init: Initializer = bias_init
        self.scratch = Scratch()  # a block of columns per thread, reused from block to block and step to step
        self.dx_scratch = Scratch()  # the same for the output gradient's columns, in the backward

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

    def multiply_adds(self, output_shape):
        return self.params["W"].size * output_shape[1] * output_shape[2]  # the kernel at every output position

    def forward(self, x, training):
        # evaluation keeps nothing (its larger batches would stay in memory), but a frozen layer that a trainable
        # one comes before still passes the gradient back, from its input
        self.x = x if training or (self.input_grad and not self.trainable) else None
        n, f = len(x), self.filters
        oh, ow = self.window.output_size(x.shape[2:])
        y = conv_product(x, self.window, self.params["W"].transpose(2, 3, 1, 0).reshape(-1, f), self.scratch,
                         self.threads)
        y = self.activation.forward_(y, self.params.get("b"), training)
        return y.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)

    def backward(self, dy):
        """dW and db block by block from the columns of x (gathered again, in cache) and dz, the gradient before the
        activation; dx as a convolution of dz with the flipped kernel where the window allows (stride 1, even
        padding: `Window.adjoint`), else by col2im of dz·W."""
        n, f, oh, ow = dy.shape
        W, size = self.params["W"], self.x.shape[2:]
        c, kh, kw = W.shape[1:]
        pixels = size[0] * size[1]
        dy = dy.transpose(0, 2, 3, 1).reshape(-1, f)
        adjoint = self.window.adjoint(size) if self.input_grad else None
        dz = xp.empty_like(dy) if self.input_grad and not adjoint else None  # kept whole for col2im
        if adjoint:  # dx = dz ⋆ the flipped kernel, image by image: each block's images while dz is in cache
            flipped = W[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(-1, c)
            dx = xp.empty((n * pixels, c), dy.dtype)
        blocks = ColumnBlocks(self.x, self.window, self.scratch, self.threads)  # the columns again, in cache
        gW = xp.empty((len(blocks.starts), kh * kw * c, f), dy.dtype)  # each block's shares, summed in order below
        gb = xp.empty((len(blocks.starts), f), dy.dtype)

        def block_grads(thread, block, rows, cols):
            part = self.activation.backward(dy[rows], rows)
            xp.matmul(cols.T, part, out=gW[block])
            if self.use_bias:
                sum_rows(part, gb[block])
            if dz is not None:
                dz[rows] = part
            if adjoint:
                images = part.reshape(-1, oh, ow, f).transpose(0, 3, 1, 2)
                first = rows.start // blocks.rows * pixels  # dx's first row for the block's first image
                cols = im2col(images, adjoint, self.dx_scratch((len(images) * pixels, kh * kw * f), dy.dtype, thread))
                xp.matmul(cols, flipped, out=dx[first:first + len(cols)])

        blocks.each(block_grads)
        self.grads["W"][...] = gW.sum(axis=0).reshape(kh, kw, c, f).transpose(3, 2, 0, 1)
        if self.use_bias:
            self.grads["b"][...] = gb.sum(axis=0)
        if not self.input_grad:
            return None
        if adjoint:
            return dx.reshape(n, *size, c).transpose(0, 3, 1, 2)
        return col2im(lambda i, j, _: (dz @ W[:, :, i, j]).reshape(n, oh, ow, c).transpose(0, 3, 1, 2),
                      self.x.shape, self.window, dy.dtype)
