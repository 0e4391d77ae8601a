"""Pooling over NCHW images: max and average over sliding windows, and the global average."""

from nnctl.backend import xp
from nnctl.kernels import maxpool_tiles, maxpool_tiles_backward
from nnctl.layers.base import LAYERS, Layer
from nnctl.layers.window import Padding, Pair, Window, col2im, offsets, pad, unpad


class Pool2D(Layer):
    """A window slid over each channel; `stride` defaults to `pool_size`. Loops run over kernel offsets only."""

    example = {"config": {"pool_size": 2, "stride": 1, "padding": "same"}, "input_shape": (2, 5, 4)}
    pad_value = 0.0

    def __init__(self, pool_size: Pair = 2, stride: Pair | None = None, padding: Padding = "valid", **kwargs):
        super().__init__(**kwargs)
        self.window = Window.of(pool_size, pool_size if stride is None else stride, 1, padding)
        pads, kernel = self.window.padding, self.window.kernel
        if isinstance(pads, tuple) and (pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2):
            raise ValueError(f"padding {list(pads)} must be at most half the pool size {list(kernel)} "
                             f"(as PyTorch's), else a window may hold only padding; or use padding 'same'")

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.registered_name} needs images shaped (channels, height, width)")
        return (input_shape[0], *self.window.output_size(input_shape[1:]))

    def _offsets(self, x):
        """Pads x and caches it; yields each kernel offset's slice of it across all windows."""
        self.x_shape = x.shape
        self.xpad = pad(x, self.window.pads(x.shape[2:]), self.pad_value)
        for _, _, index in offsets(self.window, self.window.output_size(x.shape[2:])):
            yield self.xpad[index]


@LAYERS.register("maxpool2d")
class MaxPool2D(Pool2D):
    """y = the largest value in each window (padding never wins); its gradient goes to the first such pixel."""

    pad_value = -xp.inf

    def forward(self, x, training):
        self.where = None
        kh, kw = self.window.kernel
        self.pads = self.window.pads(x.shape[2:])
        if self.window.tiles(x.shape[2:]) and kh * kw <= 256:  # the winner's offset fits a byte
            y, self.where = maxpool_tiles(channels_last(pad(x, self.pads, self.pad_value)), kh, kw)
            self.y = y.transpose(0, 3, 1, 2)
            return self.y
        for k, candidate in enumerate(self._offsets(x)):
            if k == 0:
                self.y = xp.array(candidate, order="K")  # keeps x's memory layout (channel-last after a conv)
            else:
                xp.maximum(self.y, candidate, out=self.y)
        return self.y

    def backward(self, dy):
        if self.where is not None:
            dx = maxpool_tiles_backward(channels_last(dy), self.where, *self.window.kernel).transpose(0, 3, 1, 2)
            return unpad(dx, self.pads)
        taken = xp.zeros_like(self.y, dtype=bool)

        def share(i, j, index):
            hit = xp.equal(self.xpad[index], self.y)
            if i or j:  # an earlier offset may already have taken this window's maximum
                hit &= ~taken
            xp.logical_or(taken, hit, out=taken)
            return dy * hit

        return col2im(share, self.x_shape, self.window, dy.dtype)


@LAYERS.register("avgpool2d")
class AvgPool2D(Pool2D):
    """y = the mean of each window, zero padding included in the count (as PyTorch's default)."""

    def forward(self, x, training):
        y = sum(self._offsets(x))
        return y / (self.window.kernel[0] * self.window.kernel[1])

    def backward(self, dy):
        share = dy / (self.window.kernel[0] * self.window.kernel[1])
        return col2im(lambda i, j, index: share, self.x_shape, self.window, dy.dtype)


@LAYERS.register("global_avg_pool2d")
class GlobalAvgPool2D(Layer):
    """x (C, H, W) -> the mean of each channel (C,)."""

    example = {"config": {}, "input_shape": (3, 2, 4)}

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError("global_avg_pool2d needs images shaped (channels, height, width)")
        return input_shape[:1]

    def forward(self, x, training):
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy):
        h, w = self.x_shape[2:]
        return xp.broadcast_to((dy / (h * w))[:, :, None, None], self.x_shape).copy()


def channels_last(x):
    """The (N, H, W, C) view of NCHW images: contiguous when they are channel-last in memory, as conv outputs are."""
    return x.transpose(0, 2, 3, 1)
