"""Sliding windows over NCHW images: their geometry, im2col in cache-sized blocks (through the im2col_ kernel), and
its adjoint col2im."""

import itertools
import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from nnctl import threads
from nnctl.backend import Scratch, on_cpu, strided_view, xp
from nnctl.kernels import Pads, im2col_, offset_slices, pad_nhwc
from nnctl.schema import Count, Natural

Pair = Count | tuple[Count, Count]
"""A kernel size, stride or dilation: one for both axes, or (rows, columns)."""
Padding = typing.Literal["valid", "same"] | Natural | tuple[Natural, Natural]
"""'valid' (none), 'same' (TF-style), or the zeros around each side: one for both axes, or (rows, columns)."""


def pair(value: int | list | tuple) -> tuple[int, int]:
    """An int or a pair of ints from the config (a Pair, or a Padding's numbers), as (height, width)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


@dataclass(frozen=True)
class Window:
    """Kernel, stride and dilation per axis, and the padding: 'valid', 'same' (TF-style) or (rows, columns)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    padding: str | tuple[int, int] = "valid"

    @classmethod
    def of(cls, kernel, stride, dilation=1, padding="valid") -> "Window":
        """A window from config values, which the signatures' Pair and Padding have checked."""
        return cls(pair(kernel), pair(stride), pair(dilation), padding if isinstance(padding, str) else pair(padding))

    def span(self, axis: int) -> int:
        """How many input pixels one window covers along `axis` (0 rows, 1 columns), dilation included."""
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def pads(self, size: tuple[int, ...]) -> Pads:
        """(before, after) zeros for rows and columns; 'same' pads the extra pixel after, as TensorFlow does."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if isinstance(self.padding, tuple):
            return (self.padding[0],) * 2, (self.padding[1],) * 2
        pads = []
        for axis in (0, 1):
            n, stride = size[axis], self.stride[axis]
            total = max((-(-n // stride) - 1) * stride + self.span(axis) - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads[0], pads[1]

    def tiles(self, size: tuple[int, ...]) -> bool:
        """Whether the windows cover an input of `size`, padded, exactly once, edge to edge (a 2×2 pool with
        stride 2; with padding 'same', also over 7 pixels padded to 8)."""
        padded = [n + before + after for n, (before, after) in zip(size, self.pads(size), strict=True)]
        return (self.stride == self.kernel and self.dilation == (1, 1)
                and padded[0] % self.kernel[0] == 0 and padded[1] % self.kernel[1] == 0)

    def adjoint(self, size: tuple[int, ...]) -> "Window | None":
        """For stride 1 and even padding, the window over the output gradient (padded by span − 1 − padding)
        whose convolution with the flipped kernel is the input gradient of an input of `size`; else None."""
        (top, bottom), (left, right) = self.pads(size)
        if self.stride != (1, 1) or top != bottom or left != right:
            return None
        padding = (self.span(0) - 1 - top, self.span(1) - 1 - left)
        return Window(self.kernel, (1, 1), self.dilation, padding) if min(padding) >= 0 else None

    def output_size(self, size: tuple[int, ...]) -> tuple[int, int]:
        """(OH, OW) for an input of `size` (H, W); ValueError for a window that does not fit or stride evenly."""
        out = []
        for axis, (before, after) in enumerate(self.pads(size)):
            padded, span, stride = size[axis] + before + after, self.span(axis), self.stride[axis]
            what = ("rows", "columns")[axis]
            if span > padded:
                raise ValueError(f"the window spans {span} {what} but the padded input has only {padded}")
            if (padded - span) % stride and self.padding != "same":
                raise ValueError(f"the window ({span} {what}) does not stride evenly over {padded} {what} with "
                                 f"stride {stride}: {padded} - {span} is not a multiple of {stride}; change the "
                                 "stride or the padding, or use padding 'same'")
            out.append((padded - span) // stride + 1)
        return out[0], out[1]


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) with `pads` rows and columns of `value` added (x itself when there are none).

    The copy is channel-last in memory, as conv outputs are, so that taking windows reads memory in order."""
    if pads == ((0, 0), (0, 0)):
        return x
    return pad_nhwc(x.transpose(0, 2, 3, 1), pads, value).transpose(0, 3, 1, 2)


def windows(x: np.ndarray, window: Window, out: tuple[int, int]) -> np.ndarray:
    """A read-only view (N, C, OH, OW, KH, KW) of every window over the (already padded) x; no copy."""
    (kh, kw), (th, tw), (dh, dw) = window.kernel, window.stride, window.dilation
    sn, sc, sh, sw = x.strides
    return strided_view(x, (*x.shape[:2], *out, kh, kw), (sn, sc, sh * th, sw * tw, sh * dh, sw * dw))


def im2col(x: np.ndarray, window: Window, out: np.ndarray | None = None) -> np.ndarray:
    """x (N, C, H, W) -> (N·OH·OW, KH·KW·C): one row per window position, its pixels in turn, each pixel's
    channels (the classic texts' im2col with each row reordered: gathered from channel-last memory in runs).
    With `out` the columns are written there."""
    (kh, kw), (oh, ow), n, c = window.kernel, window.output_size(x.shape[2:]), x.shape[0], x.shape[1]
    (top, _), (left, _) = window.pads(x.shape[2:])
    out = xp.empty((n * oh * ow, kh * kw * c), x.dtype) if out is None else out
    images = xp.ascontiguousarray(x.transpose(0, 2, 3, 1))  # no copy when x is channel-last in memory
    # one channel (grey images), kernels up to 3 wide, on the CPU: NumPy's copy per kernel offset beats the
    # compiled twin's runs of kw numbers (50 MNIST images, 3×3 'same': 0.33 against 0.69 ms), and releases the GIL
    # as well; at 5×5 its 25 strided copies lose (25 images: 0.42 against 0.27 ms)
    fill = im2col_.reference if c == 1 and kw <= 3 and on_cpu() else im2col_
    fill(images, (kh, kw, *window.stride, *window.dilation, top, left), out.reshape(n, oh, ow, -1))
    return out


CACHE_BYTES = 2 << 20
"""The columns a convolution gathers at a time on the CPU: enough for BLAS to run at speed, few enough to be
still in cache when the product reads them (2-3x faster than a whole batch's columns, which go out to memory)."""


class ColumnBlocks:
    """im2col(x) a few images at a time: on the CPU, blocks of at most CACHE_BYTES of columns, about equal in size
    and about a multiple of the threads in number, so that the threads end together (the whole batch as one block
    on a GPU), taken in turn by up to `workers` threads, each gathering into its own part of `scratch`; or, with
    `whole` (N·OH·OW, KH·KW·C), into their rows of it, which a later pass reads again once `gathered`."""

    def __init__(self, x: np.ndarray, window: Window, scratch: Scratch, workers: int = 1,
                 whole: np.ndarray | None = None, gathered: bool = False):
        self.x, self.window, self.scratch = x, window, scratch
        self.whole, self.gathered = whole, gathered
        self.rows = math.prod(window.output_size(x.shape[2:]))
        """Rows (window positions) per image."""
        self.width = x.shape[1] * window.kernel[0] * window.kernel[1]
        n = len(x)
        blocks = 1  # the whole batch at once on a GPU
        if on_cpu():
            most = max(1, CACHE_BYTES // (self.rows * self.width * x.itemsize))  # images a block at most
            blocks = max(min(math.ceil(n / (most * workers)) * workers, n), 1)  # rounded up to a multiple of threads
        self.starts = range(0, n, max(math.ceil(n / blocks), 1))
        self.threads = min(workers, len(self.starts))

    def deal(self, work: Callable[[int, int, slice], None]) -> None:
        """Calls work(thread, block, images) for every block, numbered in order, with the slice of x's images it
        holds. A thread takes the next block when it finishes one (so which thread gets which block varies)."""
        step, n = self.starts.step, len(self.x)
        taken = itertools.count()  # next() on it is atomic: one C call under the GIL

        def run(thread: int) -> None:
            while (block := next(taken)) < len(self.starts):
                work(thread, block, slice(self.starts[block], min(self.starts[block] + step, n)))

        threads.share(run, self.threads)

    def gather(self, images: np.ndarray, thread: int) -> np.ndarray:
        """im2col(images) under the blocks' window, into thread `thread`'s part of the scratch (which its next
        block overwrites); images are a block of x's, or others of the same shape."""
        out = self.scratch((len(images) * self.rows, self.width), images.dtype, thread)
        return im2col(images, self.window, out)

    def each(self, work: Callable[[int, int, slice, np.ndarray], None]) -> None:
        """Calls work(thread, block, rows, columns) for every block, as `deal` does, with the block's rows of
        im2col(x) and the columns themselves."""
        def run(thread: int, block: int, images: slice) -> None:
            rows = slice(images.start * self.rows, images.stop * self.rows)
            work(thread, block, rows, self._columns(images, rows, thread))

        self.deal(run)

    def _columns(self, images: slice, rows: slice, thread: int) -> np.ndarray:
        """The columns of x's `images` (its `rows` of im2col(x)): gathered into the thread's scratch, or into their
        rows of `whole`, or, once `gathered`, those rows as they are."""
        if self.whole is None:
            return self.gather(self.x[images], thread)
        return self.whole[rows] if self.gathered else im2col(self.x[images], self.window, self.whole[rows])


def conv_product(x: np.ndarray, window: Window, weights: np.ndarray, scratch: Scratch,
                 workers: int = 1, whole: np.ndarray | None = None) -> np.ndarray:
    """im2col(x) @ weights, (N·OH·OW, F), a block of columns at a time, on up to `workers` threads; with `whole`,
    the columns are gathered there, all of them, for a later pass to read again."""
    blocks = ColumnBlocks(x, window, scratch, workers, whole)
    y = xp.empty((len(x) * blocks.rows, weights.shape[1]), x.dtype)
    blocks.each(lambda thread, block, rows, cols: xp.matmul(cols, weights, out=y[rows]))
    return y


def offsets(window: Window, out: tuple[int, int]) -> Iterator[tuple[int, int, tuple]]:
    """Each kernel offset (i, j) with the index of the padded-image pixels it takes across all windows."""
    for i, j, rows, cols in offset_slices(window.kernel, window.stride, window.dilation, out):
        yield i, j, (..., rows, cols)


def unpad(x: np.ndarray, pads: Pads) -> np.ndarray:
    """The inverse of `pad`: the image without its padding rows and columns."""
    (top, bottom), (left, right) = pads
    return x[:, :, top: x.shape[2] - bottom, left: x.shape[3] - right]


def col2im(slab: Callable[[int, int, tuple], np.ndarray], shape: tuple[int, ...], window: Window,
           dtype: type) -> np.ndarray:
    """The adjoint of taking windows: for each kernel offset (i, j), `slab(i, j, index)` gives the gradient
    (N, C, OH, OW) of the pixels that offset took, at `index` of the padded image; their sum, unpadded."""
    pads = window.pads(shape[2:])
    n, c, h, w = shape
    tiles = window.tiles(shape[2:])  # then every pixel gets exactly one slab's value: assign, no zeros to add to
    dx = (xp.empty if tiles else xp.zeros)((n, h + sum(pads[0]), w + sum(pads[1]), c), dtype).transpose(0, 3, 1, 2)
    for i, j, index in offsets(window, window.output_size(shape[2:])):  # kernel offsets only: whole slices
        if tiles:
            dx[index] = slab(i, j, index)
        else:
            dx[index] += slab(i, j, index)
    return unpad(dx, pads)
