"""The backward step of a recurrent cell, in one pass (its forward keeps NumPy's vectorized exp)."""

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel


def _lstm(dtype):
    rng = np.random.default_rng(0)
    n, u = 3, 4
    z = rng.random((n, 4 * u)).astype(dtype)
    z[:, 3 * u:] = 2 * z[:, 3 * u:] - 1  # i, f, o in (0, 1); g in (−1, 1)
    tc = np.tanh(rng.standard_normal((n, u))).astype(dtype)
    dh, dc_next, c_prev = (rng.standard_normal((n, u)).astype(dtype) for _ in range(3))
    return dh, dc_next, z, c_prev, tc, np.empty((n, 4 * u), dtype)


@kernel(_lstm)
def lstm_cell_backward(dh, dc_next, z, c_prev, tc, dz):
    """For h = o⊙tanh(c), c = f⊙c_prev + i⊙g, with z the activated gates (i, f, o, g) and tc = tanh(c):
    dc = dh⊙o⊙(1 − tc²) + dc_next; dz = the gradients of the gates' pre-activations (written into dz):
    dc⊙g⊙σ', dc⊙c_prev⊙σ', dh⊙tc⊙σ', dc⊙i⊙(1 − g²) with σ' = σ(1 − σ); returns dc_prev = dc⊙f."""
    u = tc.shape[1]
    i, f, o, g = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
    sig = z[:, :3 * u]
    dc = dh * o
    dc *= 1 - tc * tc
    dc += dc_next
    xp.multiply(dc, g, out=dz[:, :u])
    xp.multiply(dc, c_prev, out=dz[:, u:2 * u])
    xp.multiply(dh, tc, out=dz[:, 2 * u:3 * u])
    dz[:, :3 * u] *= sig - sig * sig
    xp.multiply(dc, i, out=dz[:, 3 * u:])
    dz[:, 3 * u:] *= 1 - g * g
    return dc * f


@lstm_cell_backward.numba  # type: ignore[no-redef]
def lstm_cell_backward(dh, dc_next, z, c_prev, tc, dz):
    n, u = tc.shape
    one = np.ones(1, z.dtype)[0]  # keeps float32 arithmetic in float32, as NumPy's
    dc_prev = np.empty_like(tc)
    for r in range(n):
        for k in range(u):
            i, f, o, g, t = z[r, k], z[r, u + k], z[r, 2 * u + k], z[r, 3 * u + k], tc[r, k]
            dc = dh[r, k] * o * (one - t * t) + dc_next[r, k]
            dz[r, k] = dc * g * (i - i * i)
            dz[r, u + k] = dc * c_prev[r, k] * (f - f * f)
            dz[r, 2 * u + k] = dh[r, k] * t * (o - o * o)
            dz[r, 3 * u + k] = dc * i * (one - g * g)
            dc_prev[r, k] = dc * f
    return dc_prev


def _gru(dtype):
    rng = np.random.default_rng(0)
    n, u = 3, 4
    z = rng.random((n, 3 * u)).astype(dtype)
    z[:, 2 * u:] = 2 * z[:, 2 * u:] - 1  # r, u in (0, 1); n in (−1, 1)
    dh, h_prev = (rng.standard_normal((n, u)).astype(dtype) for _ in range(2))
    an = rng.standard_normal((n, 3 * u)).astype(dtype)[:, 2 * u:]
    return dh, z, an, h_prev, np.empty((n, 3 * u), dtype), np.empty((n, 3 * u), dtype)


@kernel(_gru)
def gru_cell_backward(dh, z, an, h_prev, dz, da):
    """For h = (1 − u)⊙n + u⊙h_prev, n = tanh(xn + r⊙an), with z the activated gates (r, u, n) and an the
    recurrent part of n: dn = dh⊙(1 − u)⊙(1 − n²); dz (the gates' pre-activation gradients) = dn⊙an⊙σ'(r),
    dh⊙(h_prev − n)⊙σ'(u), dn; da (h·Wh's gradient) = dz's r and u parts, dn⊙r; returns dh⊙u, the direct part
    of h_prev's gradient."""
    u = h_prev.shape[1]
    r, g, n = z[:, :u], z[:, u:2 * u], z[:, 2 * u:]
    dn = dh * (1 - g)
    dn *= 1 - n * n
    dz[:, 2 * u:] = dn
    xp.multiply(dn, r, out=da[:, 2 * u:])
    xp.multiply(dn, an, out=dz[:, :u])
    xp.multiply(dh, h_prev - n, out=dz[:, u:2 * u])
    sig = z[:, :2 * u]
    dz[:, :2 * u] *= sig - sig * sig
    da[:, :2 * u] = dz[:, :2 * u]
    return dh * g


@gru_cell_backward.numba  # type: ignore[no-redef]
def gru_cell_backward(dh, z, an, h_prev, dz, da):
    rows, u = h_prev.shape
    one = np.ones(1, z.dtype)[0]  # keeps float32 arithmetic in float32, as NumPy's
    direct = np.empty_like(dh)
    for q in range(rows):
        for k in range(u):
            r, g, n, d = z[q, k], z[q, u + k], z[q, 2 * u + k], dh[q, k]
            dn = d * (one - g) * (one - n * n)
            dr = dn * an[q, k] * (r - r * r)
            dg = d * (h_prev[q, k] - n) * (g - g * g)
            dz[q, k], dz[q, u + k], dz[q, 2 * u + k] = dr, dg, dn
            da[q, k], da[q, u + k], da[q, 2 * u + k] = dr, dg, dn * r
            direct[q, k] = d * g
    return direct
