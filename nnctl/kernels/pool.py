"""Max pooling over windows that tile the image (stride = window, no padding): forward and backward.

Images are channel-last here, (N, H, W, C): the layout conv outputs have in memory."""

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel


def _images(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 6)).astype(dtype).transpose(0, 2, 3, 1)  # NCHW memory
    x[0, 1, 2] = x[0, 0, 0]  # a tie in the first tile: the first of the two wins
    return x, 2, 3


@kernel(_images)
def maxpool_tiles(x, kh, kw):
    """y = the largest value of each kh×kw tile of x (N, H, W, C), and `where` (uint8): the offset i·kw + j of
    the tile's first largest value, scanning rows then columns."""
    n, h, w, c = x.shape
    tiles = x.reshape(n, h // kh, kh, w // kw, kw, c)
    y = tiles[:, :, 0, :, 0].copy()
    where = xp.zeros(y.shape, xp.uint8)
    for k in range(1, kh * kw):
        candidate = tiles[:, :, k // kw, :, k % kw]
        xp.copyto(where, k, where=candidate > y)
        xp.maximum(y, candidate, out=y)
    return y, where


@maxpool_tiles.numba  # type: ignore[no-redef]
def maxpool_tiles(x, kh, kw):
    x = np.ascontiguousarray(x)  # a copy only for images that are not channel-last in memory
    n, h, w, c = x.shape
    oh, ow = h // kh, w // kw
    y = np.empty((n, oh, ow, c), x.dtype)
    where = np.empty(y.shape, np.uint8)
    for a in range(n):
        for p in range(oh):  # a row of tiles at a time: loops over (q, ch) with indices numba sees are not negative
            tiles, best, first = x[a, p * kh:(p + 1) * kh].reshape(kh, ow, kw, c), y[a, p], where[a, p]
            for q in range(ow):
                for ch in range(c):
                    best[q, ch], first[q, ch] = tiles[0, q, 0, ch], 0
            for i in range(kh):
                for j in range(kw):
                    if i or j:
                        for q in range(ow):
                            for ch in range(c):
                                v, b = tiles[i, q, j, ch], best[q, ch]
                                best[q, ch] = v if v > b or v != v else b  # NaN wins and stays, as in np.maximum
            for k in range(kh * kw - 2, -1, -1):  # without branches, which random data mispredicts
                for q in range(ow):
                    for ch in range(c):
                        first[q, ch] = (tiles[k // kw, q, k % kw, ch] != best[q, ch]) * (1 + first[q, ch])
    return y, where


def _gradient(dtype):
    y, where = maxpool_tiles.reference(*_images(dtype))
    return (np.random.default_rng(1).standard_normal(y.shape).astype(dtype), where, 2, 3)


@kernel(_gradient)
def maxpool_tiles_backward(dy, where, kh, kw):
    """dx (N, H, W, C): each tile's dy at the offset `where` names, zeros elsewhere."""
    n, oh, ow, c = dy.shape
    dx = xp.empty((n, oh, kh, ow, kw, c), dy.dtype)
    for k in range(kh * kw):
        xp.multiply(dy, where == k, out=dx[:, :, k // kw, :, k % kw])
    return dx.reshape(n, oh * kh, ow * kw, c)


@maxpool_tiles_backward.numba  # type: ignore[no-redef]
def maxpool_tiles_backward(dy, where, kh, kw):
    n, oh, ow, c = dy.shape
    dx = np.empty((n, oh * kh, ow * kw, c), dy.dtype)
    for a in range(n):
        for p in range(oh):
            tiles, grad, first = dx[a, p * kh:(p + 1) * kh].reshape(kh, ow, kw, c), dy[a, p], where[a, p]
            for i in range(kh):
                for j in range(kw):
                    for q in range(ow):
                        for ch in range(c):
                            tiles[i, q, j, ch] = grad[q, ch] * (first[q, ch] == i * kw + j)
    return dx


@maxpool_tiles.cupy
def _maxpool_tiles_gpu():
    import cupy

    fused = cupy.ElementwiseKernel(  # one thread per output entry: its tile's largest value and where it is
        "raw T x, int32 h, int32 w, int32 c, int32 oh, int32 ow, int32 kh, int32 kw", "T y, uint8 where",
        """ptrdiff_t rest = i / c, ch = i - rest * c;
        int q = rest % ow; rest /= ow;
        int p = rest % oh; ptrdiff_t image = rest / oh;
        T best = x[((image * h + p * kh) * w + q * kw) * c + ch];
        int first = 0;
        for (int k = 1; k < kh * kw; ++k) {
            T v = x[((image * h + p * kh + k / kw) * w + q * kw + k % kw) * c + ch];
            if (v > best) { best = v; first = k; }
            else if (v != v) { best = v; }  // NaN wins and stays, as in np.maximum
        }
        y = best;
        where = first;""",
        "nnctl_maxpool_tiles")

    def maxpool_tiles_gpu(x, kh, kw):
        n, h, w, c = x.shape
        y, where = cupy.empty((n, h // kh, w // kw, c), x.dtype), cupy.empty((n, h // kh, w // kw, c), cupy.uint8)
        fused(cupy.ascontiguousarray(x), h, w, c, h // kh, w // kw, kh, kw, y, where)
        return y, where

    return maxpool_tiles_gpu


@maxpool_tiles_backward.cupy
def _maxpool_tiles_backward_gpu():
    import cupy

    fused = cupy.ElementwiseKernel(  # one thread per entry of dx: its tile's dy if it was the winner, else 0
        "raw T dy, raw uint8 where, int32 h, int32 w, int32 c, int32 kh, int32 kw", "T dx",
        """ptrdiff_t rest = i / c, ch = i - rest * c;
        int col = rest % w; rest /= w;
        int row = rest % h; ptrdiff_t image = rest / h;
        ptrdiff_t tile = ((image * (h / kh) + row / kh) * (w / kw) + col / kw) * c + ch;
        dx = dy[tile] * (T)(where[tile] == (row % kh) * kw + col % kw);""",
        "nnctl_maxpool_tiles_backward")

    def maxpool_tiles_backward_gpu(dy, where, kh, kw):
        n, oh, ow, c = dy.shape
        dx = cupy.empty((n, oh * kh, ow * kw, c), dy.dtype)
        fused(cupy.ascontiguousarray(dy), cupy.ascontiguousarray(where), oh * kh, ow * kw, c, kh, kw, dx)
        return dx

    return maxpool_tiles_backward_gpu
