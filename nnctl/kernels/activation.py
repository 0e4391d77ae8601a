"""Bias and ReLU on a layer's own output buffer, in one pass, and ReLU's backward."""

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel


def _rows(dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 7)).astype(dtype), rng.standard_normal(7).astype(dtype)


@kernel(_rows)
def bias_relu_(y, b):
    """y = max(y + b, 0) in place, for y (M, F) and b (F,); returns y."""
    y += b
    return xp.maximum(y, 0, out=y)


@bias_relu_.numba  # type: ignore[no-redef]
def bias_relu_(y, b):
    for r in range(y.shape[0]):
        row = y[r]
        for f in range(y.shape[1]):
            v = row[f] + b[f]
            row[f] = 0 if v < 0 else v  # NaN stays NaN, as in np.maximum
    return y


def _pair(dtype):
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal((2, 5, 7)).astype(dtype).transpose(2, 0, 1) for _ in range(2))  # strided


@kernel(_pair)
def relu_backward(dy, y):
    """dx = dy where the ReLU's output y is positive, else 0 (dy and y of the same shape)."""
    return dy * (y > 0)


@relu_backward.numba  # type: ignore[no-redef]
def relu_backward(dy, y):
    flat_dy, flat_y = np.ravel(dy), np.ravel(y)  # views when contiguous, copies otherwise
    dx = np.empty(flat_dy.size, dy.dtype)
    for i in range(dx.size):
        dx[i] = flat_dy[i] * (flat_y[i] > 0)
    return dx.reshape(dy.shape)


@bias_relu_.cupy
def _bias_relu_gpu():
    import cupy

    fused = cupy.ElementwiseKernel("T b", "T y", "T v = y + b; y = v < 0 ? (T)0 : v", "nnctl_bias_relu")

    def bias_relu_gpu(y, b):
        fused(b, y)
        return y

    return bias_relu_gpu


@relu_backward.cupy
def _relu_backward_gpu():
    import cupy

    return cupy.ElementwiseKernel("T dy, T y", "T dx", "dx = dy * (T)(y > 0)", "nnctl_relu_backward")
