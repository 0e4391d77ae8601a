"""Max pooling over windows that tile the image (stride = window, no padding): forward and backward.

Images are channel-last here, (N, H, W, C): the layout conv outputs have in memory."""

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel


def _images(dtype):
    return (np.random.default_rng(0).standard_normal((2, 4, 6, 3)).astype(dtype), 2, 3)


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
    n, h, w, c = x.shape
    y = np.empty((n, h // kh, w // kw, c), x.dtype)
    where = np.empty(y.shape, np.uint8)
    for a in range(n):
        for p in range(h // kh):
            for q in range(w // kw):
                best, first = y[a, p, q], where[a, p, q]
                best[:] = x[a, p * kh, q * kw]
                for k in range(1, kh * kw):
                    row = x[a, p * kh + k // kw, q * kw + k % kw]
                    for ch in range(c):
                        best[ch] = max(best[ch], row[ch])
                first[:] = 0
                for k in range(kh * kw - 2, -1, -1):  # without branches, which random data mispredicts
                    row = x[a, p * kh + k // kw, q * kw + k % kw]
                    for ch in range(c):
                        first[ch] = (row[ch] != best[ch]) * (1 + first[ch])
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
            for q in range(ow):
                grad, first = dy[a, p, q], where[a, p, q]
                for k in range(kh * kw):
                    row = dx[a, p * kh + k // kw, q * kw + k % kw]
                    for ch in range(c):
                        row[ch] = grad[ch] * (first[ch] == k)
    return dx
