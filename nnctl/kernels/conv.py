"""im2col: every window of a channel-last image batch, one row per window position; and the padded copy and the
kernel offsets' slices its reference shares with the layers' windows.

Padding is implicit: a window's pixels outside the image read as zeros, so no padded copy is made."""

from collections.abc import Iterator

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel

Pads = tuple[tuple[int, int], tuple[int, int]]


def pad_nhwc(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """A copy of x (N, H, W, C) with `pads`, ((top, bottom), (left, right)), rows and columns of `value` around it."""
    (top, bottom), (left, right) = pads
    n, h, w, c = x.shape
    out = xp.full((n, top + h + bottom, left + w + right, c), value, x.dtype)
    out[:, top:top + h, left:left + w] = x
    return out


def offset_slices(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                  out: tuple[int, int]) -> Iterator[tuple[int, int, slice, slice]]:
    """Each kernel offset (i, j) with the rows and columns of the padded image it takes across all (OH, OW) windows."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    for i in range(kh):
        rows = slice(i * dh, i * dh + (out[0] - 1) * sh + 1, sh)
        for j in range(kw):
            yield i, j, rows, slice(j * dw, j * dw + (out[1] - 1) * sw + 1, sw)


def _images(dtype):
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 3)).astype(dtype)
    # 2×3 windows, row stride 1 and column stride 2, row dilation 2, one padding row and column before: windows
    # start in the padding, run past the right edge, and lie whole inside
    return x, (2, 3, 1, 2, 2, 1, 1, 1), np.empty((2, 4, 4, 2 * 3 * 3), dtype)


@kernel(_images)
def im2col_(x, geometry, out):
    """Fills out (N, OH, OW, KH·KW·C) from x (N, H, W, C): out[n, p, q] holds the window at row p·sh − top,
    column q·sw − left, its pixels (rows i·dh, columns j·dw) in turn, each pixel's channels; zeros outside x.
    `geometry` is (kh, kw, sh, sw, dh, dw, top, left). Returns out."""
    kh, kw, sh, sw, dh, dw, top, left = geometry
    n, oh, ow = out.shape[:3]
    h, w, c = x.shape[1:]
    bottom = max((oh - 1) * sh + (kh - 1) * dh + 1 - top - h, 0)
    right = max((ow - 1) * sw + (kw - 1) * dw + 1 - left - w, 0)
    image = pad_nhwc(x, ((top, bottom), (left, right)))
    windows = out.reshape(n, oh, ow, kh, kw, c)
    for i, j, rows, cols in offset_slices((kh, kw), (sh, sw), (dh, dw), (oh, ow)):
        windows[:, :, :, i, j] = image[:, rows, cols]
    return out


@im2col_.numba  # type: ignore[no-redef]
def im2col_(x, geometry, out):
    kh, kw, sh, sw, dh, dw, top, left = geometry
    n, h, w, c = x.shape
    oh, ow, run = out.shape[1], out.shape[2], kw * c
    rows = x.reshape(n, h, w * c)
    for a in range(n):
        for p in range(oh):
            for q in range(ow):
                start = q * sw - left
                for i in range(kh):
                    y = p * sh + i * dh - top
                    part = out[a, p, q, i * run:(i + 1) * run]
                    if y < 0 or y >= h:
                        part[:] = 0
                    elif dw == 1 and start >= 0 and start + kw <= w:  # the window's row is one run of x's row
                        src = rows[a, y, start * c:(start + kw) * c]
                        for k in range(run):
                            part[k] = src[k]
                    else:
                        for j in range(kw):
                            col, pixel = start + j * dw, part[j * c:(j + 1) * c]
                            if 0 <= col < w:
                                src = rows[a, y, col * c:(col + 1) * c]
                                for k in range(c):
                                    pixel[k] = src[k]
                            else:
                                pixel[:] = 0
    return out


@im2col_.cupy
def _im2col_gpu():
    import cupy

    fused = cupy.ElementwiseKernel(  # one thread per entry of out, read from x or zero
        "raw T x, int32 h, int32 w, int32 c, int32 oh, int32 ow, int32 kh, int32 kw, int32 sh, int32 sw, "
        "int32 dh, int32 dw, int32 top, int32 left", "T out",
        """ptrdiff_t rest = i / c, ch = i - rest * c;
        int j = rest % kw; rest /= kw;
        int k = rest % kh; rest /= kh;
        int q = rest % ow; rest /= ow;
        int p = rest % oh; ptrdiff_t image = rest / oh;
        int y = p * sh + k * dh - top, col = q * sw + j * dw - left;
        out = (y >= 0 && y < h && col >= 0 && col < w) ? x[((image * h + y) * w + col) * c + ch] : (T)0;""",
        "nnctl_im2col")

    def im2col_gpu(x, geometry, out):
        fused(cupy.ascontiguousarray(x), *x.shape[1:], *out.shape[1:3], *geometry, out)
        return out

    return im2col_gpu
