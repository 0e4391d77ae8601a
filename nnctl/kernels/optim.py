"""Optimizer updates in one pass over each parameter, in place."""

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel


def _adam(dtype):
    rng = np.random.default_rng(0)
    p, g, m = (rng.standard_normal((4, 5)).astype(dtype) for _ in range(3))
    v = rng.random((4, 5)).astype(dtype)
    t = dtype.type
    return p, g, m, v, t(0.9), t(0.1), t(0.999), t(1 - 0.999), t(1e-8), t(0.01), t(1 / np.sqrt(1 - 0.999 ** 3))


@kernel(_adam)
def adam_(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, v_scale):
    """m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= step_size·m / (√v·v_scale + ε), each in place.

    The scalars come in p's dtype, so that every operation rounds as in float32 (or float64) NumPy."""
    m *= beta1
    m += one_minus_beta1 * g
    v *= beta2
    v += one_minus_beta2 * (g * g)
    denom = xp.sqrt(v)
    denom *= v_scale
    denom += eps
    p -= step_size * m / denom
    return p


@adam_.numba  # type: ignore[no-redef]
def adam_(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, v_scale):
    fp, fg, fm, fv = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    for i in range(fp.size):
        gi = fg[i]
        mi = fm[i] * beta1 + one_minus_beta1 * gi
        vi = fv[i] * beta2 + one_minus_beta2 * (gi * gi)
        fm[i], fv[i] = mi, vi
        fp[i] -= step_size * mi / (np.sqrt(vi) * v_scale + eps)
    return p


@adam_.cupy
def _adam_gpu():
    import cupy

    fused = cupy.ElementwiseKernel(
        "T g, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T step_size, T v_scale",
        "T p, T m, T v",
        """T mi = m * beta1 + one_minus_beta1 * g;
           T vi = v * beta2 + one_minus_beta2 * (g * g);
           m = mi; v = vi;
           p -= step_size * mi / (sqrt(vi) * v_scale + eps)""",
        "nnctl_adam")

    def adam_gpu(p, g, m, v, *scalars):
        fused(g, *scalars, p, m, v)
        return p

    return adam_gpu
