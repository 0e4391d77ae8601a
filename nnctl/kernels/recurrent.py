"""A recurrent cell's step, forward and backward, each in one pass.

The compiled forward twins compute float32's σ and tanh by formulas that vectorize (numba's own exp and tanh do
not): σ(x) = 1 / (1 + e^−x) with e^x from a polynomial, as Cephes' expf, and tanh by Eigen's rational function;
both within 4e-7 of the exact value. In float64 they call the exact functions. The twins index each gate's block
of a row through its own slice, from 0: an index such as 3·u + k, which numba cannot prove non-negative, gets a
wrap-around check that stops the loop from vectorizing (2-3x slower)."""

import math

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel, scalar


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−a) in place; e^−a overflowing to inf gives the exact limit 0 (callers silence the warning)."""
    xp.negative(a, out=a)
    xp.exp(a, out=a)
    a += 1
    return xp.reciprocal(a, out=a)


@scalar
def sigmoid_of(x, exact):
    """σ(x) for the compiled twins: exact (in float64), or float32's vectorizing formula (see the module)."""
    if exact:
        return 1 / (1 + math.exp(-x))
    f = np.float32
    v = min(max(-x, f(-87.0)), f(88.7))  # e^v stays finite and normal
    n = (v * f(1.44269504) + f(12582912.0)) - f(12582912.0)  # round(v / ln 2), by the float32 rounding trick
    r = v - n * f(0.693359375) - n * f(-2.12194440e-4)  # v − n·ln 2 in two parts, for precision
    p = ((((f(1.9875691500e-4) * r + f(1.3981999507e-3)) * r + f(8.3334519073e-3)) * r + f(4.1665795894e-2)) * r
         + f(1.6666665459e-1)) * r + f(5.0000001201e-1)
    e = (p * r * r + r + f(1)) * np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(f)  # · 2^n
    return f(1) / (f(1) + e)


@scalar
def tanh_of(x, exact):
    """tanh(x) for the compiled twins: exact (in float64), or float32's vectorizing formula (see the module)."""
    if exact:
        return math.tanh(x)
    f = np.float32
    v = min(max(x, f(-7.90531110763549805)), f(7.90531110763549805))  # where the formula reaches ±1
    v2 = v * v
    p = (((((f(-2.76076847742355e-16) * v2 + f(2.00018790482477e-13)) * v2 + f(-8.60467152213735e-11)) * v2
           + f(5.12229709037114e-08)) * v2 + f(1.48572235717979e-05)) * v2 + f(6.37261928875436e-04)) * v2 \
        + f(4.89352455891786e-03)
    q = ((f(1.19825839466702e-06) * v2 + f(1.18534705686654e-04)) * v2 + f(2.26843463243900e-03)) * v2 \
        + f(4.89352518554385e-03)
    return v * p / q


def _lstm_forward(dtype):
    rng = np.random.default_rng(0)
    return tuple(3 * rng.standard_normal(shape).astype(dtype) for shape in ((3, 16), (3, 16), (3, 4)))


@kernel(_lstm_forward)
def lstm_cell(z, a, c_prev):
    """From the gates' input parts z (i, f, o, g) and recurrent parts a = h_prev·Wh, the gates z + a activated in
    place (σ, σ, σ, tanh), and the previous cell c_prev: returns h = o⊙tanh(c), c = f⊙c_prev + i⊙g, tanh(c)."""
    u = c_prev.shape[1]
    z += a
    sigmoid_(z[:, :3 * u])
    xp.tanh(z[:, 3 * u:], out=z[:, 3 * u:])
    i, f, o, g = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
    c = f * c_prev
    c += i * g
    tc = xp.tanh(c)
    return o * tc, c, tc


@lstm_cell.numba  # type: ignore[no-redef]
def lstm_cell(z, a, c_prev):
    n, u = c_prev.shape
    exact = z.itemsize == 8
    h, c, tc = np.empty_like(c_prev), np.empty_like(c_prev), np.empty_like(c_prev)
    for r in range(n):
        sig, g, a_sig, a_g = z[r, :3 * u], z[r, 3 * u:], a[r, :3 * u], a[r, 3 * u:]
        for k in range(3 * u):
            sig[k] = sigmoid_of(sig[k] + a_sig[k], exact)
        for k in range(u):
            g[k] = tanh_of(g[k] + a_g[k], exact)
        i, f, o, cp, cr, tr, hr = sig[:u], sig[u:2 * u], sig[2 * u:], c_prev[r], c[r], tc[r], h[r]
        for k in range(u):
            cr[k] = f[k] * cp[k] + i[k] * g[k]
            tr[k] = tanh_of(cr[k], exact)
            hr[k] = o[k] * tr[k]
    return h, c, tc


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
        i, f, o, g = z[r, :u], z[r, u:2 * u], z[r, 2 * u:3 * u], z[r, 3 * u:]
        di, df, do, dg = dz[r, :u], dz[r, u:2 * u], dz[r, 2 * u:3 * u], dz[r, 3 * u:]
        dhr, dcn, cp, t, dcp = dh[r], dc_next[r], c_prev[r], tc[r], dc_prev[r]
        for k in range(u):
            dc = dhr[k] * o[k] * (one - t[k] * t[k]) + dcn[k]
            di[k] = dc * g[k] * (i[k] - i[k] * i[k])
            df[k] = dc * cp[k] * (f[k] - f[k] * f[k])
            do[k] = dhr[k] * t[k] * (o[k] - o[k] * o[k])
            dg[k] = dc * i[k] * (one - g[k] * g[k])
            dcp[k] = dc * f[k]
    return dc_prev


def _gru_forward(dtype):
    rng = np.random.default_rng(0)
    return tuple(3 * rng.standard_normal(shape).astype(dtype) for shape in ((3, 12), (3, 12), (3, 4)))


def gru_gates_(z: np.ndarray, a: np.ndarray) -> None:
    """r, u = σ(z + a) in place, in the first two of the gate blocks (r, u, n) of z."""
    u = z.shape[1] // 3
    z[:, :2 * u] += a[:, :2 * u]
    sigmoid_(z[:, :2 * u])


def gru_mix_(z: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
    """n = tanh of z's n block in place (its pre-activation, recurrent part added); returns h = (1 − u)⊙n +
    u⊙h_prev, as n + u⊙(h_prev − n)."""
    u = h_prev.shape[1]
    n = z[:, 2 * u:]
    xp.tanh(n, out=n)
    h = h_prev - n
    h *= z[:, u:2 * u]
    h += n
    return h


@kernel(_gru_forward)
def gru_cell(z, a, h_prev):
    """From the gates' input parts z (r, u, n), activated in place, and the recurrent parts a = h_prev·Wh + bh:
    r, u = σ(z + a), n = tanh(z_n + r⊙a_n); returns h = (1 − u)⊙n + u⊙h_prev, as n + u⊙(h_prev − n)."""
    u = h_prev.shape[1]
    gru_gates_(z, a)
    z[:, 2 * u:] += z[:, :u] * a[:, 2 * u:]
    return gru_mix_(z, h_prev)


@gru_cell.numba  # type: ignore[no-redef]
def gru_cell(z, a, h_prev):
    rows, u = h_prev.shape
    exact = z.itemsize == 8
    h = np.empty_like(h_prev)
    for q in range(rows):
        sig, n, a_sig, a_n = z[q, :2 * u], z[q, 2 * u:], a[q, :2 * u], a[q, 2 * u:]
        for k in range(2 * u):
            sig[k] = sigmoid_of(sig[k] + a_sig[k], exact)
        r, g, hp, hq = sig[:u], sig[u:], h_prev[q], h[q]
        for k in range(u):
            n[k] = tanh_of(n[k] + r[k] * a_n[k], exact)
            hq[k] = (hp[k] - n[k]) * g[k] + n[k]
    return h


def _gru(dtype):
    rng = np.random.default_rng(0)
    n, u = 3, 4
    z = rng.random((n, 3 * u)).astype(dtype)
    z[:, 2 * u:] = 2 * z[:, 2 * u:] - 1  # r, u in (0, 1); n in (−1, 1)
    dh, h_prev = (rng.standard_normal((n, u)).astype(dtype) for _ in range(2))
    a = rng.standard_normal((n, 3 * u)).astype(dtype)
    return dh, z, a, h_prev, np.empty((n, 3 * u), dtype), np.empty((n, 3 * u), dtype)


def gru_mix_back_(dh: np.ndarray, z: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """dn = dh⊙(1 − u)⊙(1 − n²), the gradient of n's pre-activation, written into dz's n block and returned."""
    u = dh.shape[1]
    dn = dh * (1 - z[:, u:2 * u])
    n = z[:, 2 * u:]
    dn *= 1 - n * n
    dz[:, 2 * u:] = dn
    return dn


def gru_gates_back_(dh: np.ndarray, z: np.ndarray, h_prev: np.ndarray, dz: np.ndarray, da: np.ndarray) -> np.ndarray:
    """With dz's r block holding r's gradient: u's, dh⊙(h_prev − n); both through σ' and copied into da's r and u
    blocks; returns dh⊙u, the direct part of h_prev's gradient through u."""
    u = h_prev.shape[1]
    g = z[:, u:2 * u]
    xp.multiply(dh, h_prev - z[:, 2 * u:], out=dz[:, u:2 * u])
    sig = z[:, :2 * u]
    dz[:, :2 * u] *= sig - sig * sig
    da[:, :2 * u] = dz[:, :2 * u]
    return dh * g


@kernel(_gru)
def gru_cell_backward(dh, z, a, h_prev, dz, da):
    """For h = (1 − u)⊙n + u⊙h_prev, n = tanh(xn + r⊙an), with z the activated gates (r, u, n) and an n's block
    of the recurrent parts a = h_prev·Wh + bh: dn = dh⊙(1 − u)⊙(1 − n²); dz (the gates' pre-activation gradients)
    = dn⊙an⊙σ'(r), dh⊙(h_prev − n)⊙σ'(u), dn; da (h·Wh's gradient) = dz's r and u parts, dn⊙r; returns dh⊙u,
    the direct part of h_prev's gradient."""
    u = h_prev.shape[1]
    dn = gru_mix_back_(dh, z, dz)
    xp.multiply(dn, z[:, :u], out=da[:, 2 * u:])
    xp.multiply(dn, a[:, 2 * u:], out=dz[:, :u])
    return gru_gates_back_(dh, z, h_prev, dz, da)


@gru_cell_backward.numba  # type: ignore[no-redef]
def gru_cell_backward(dh, z, a, h_prev, dz, da):
    rows, u = h_prev.shape
    one = np.ones(1, z.dtype)[0]  # keeps float32 arithmetic in float32, as NumPy's
    direct = np.empty_like(dh)
    for q in range(rows):
        r, g, n, anq, hp, d, dq = z[q, :u], z[q, u:2 * u], z[q, 2 * u:], a[q, 2 * u:], h_prev[q], dh[q], direct[q]
        dr, dg, dn, ar, ag, an_ = dz[q, :u], dz[q, u:2 * u], dz[q, 2 * u:], da[q, :u], da[q, u:2 * u], da[q, 2 * u:]
        for k in range(u):
            dnk = d[k] * (one - g[k]) * (one - n[k] * n[k])
            drk = dnk * anq[k] * (r[k] - r[k] * r[k])
            dgk = d[k] * (hp[k] - n[k]) * (g[k] - g[k] * g[k])
            dr[k], dg[k], dn[k] = drk, dgk, dnk
            ar[k], ag[k], an_[k] = drk, dgk, dnk * r[k]
            dq[k] = d[k] * g[k]
    return direct


# The CuPy twins: one thread per (row, unit), reading and writing that unit's entry of every gate block; the
# gates live in raw arrays, (N, G·U), indexed from the row's start. Each is one launch where the reference is
# a dozen, which matters on a GPU: a recurrent step is small, so its cost is the launches.

def _cell_kernel(gates: int, inputs: str, outputs: str, body: str, name: str):
    """A cell's ElementwiseKernel over (row, unit) of h's shape, given `u` (the units) after `inputs`; `body` reads
    gate block k of its row at z[at + k·u] (and a, dz, da alike) and may call SIGMOID."""
    import cupy

    index = f"ptrdiff_t row = i / u, at = {gates} * u * row + (i - row * u);\n"
    return cupy.ElementwiseKernel(f"{inputs}, int32 u", outputs, index + body, name,
                                  preamble="#define SIGMOID(v) ((T)1 / ((T)1 + exp(-(v))))\n")


@lstm_cell.cupy
def _lstm_cell_gpu():
    import cupy

    fused = _cell_kernel(4, "T c_prev, raw T a", "raw T z, T h, T c, T tc", """
        T gi = SIGMOID(z[at] + a[at]), gf = SIGMOID(z[at + u] + a[at + u]);
        T go = SIGMOID(z[at + 2 * u] + a[at + 2 * u]), gg = tanh(z[at + 3 * u] + a[at + 3 * u]);
        z[at] = gi; z[at + u] = gf; z[at + 2 * u] = go; z[at + 3 * u] = gg;
        c = gf * c_prev + gi * gg;
        tc = tanh(c);
        h = go * tc;""", "nnctl_lstm_cell")

    def lstm_cell_gpu(z, a, c_prev):
        h, c, tc = (cupy.empty(c_prev.shape, z.dtype) for _ in range(3))
        fused(c_prev, a, c_prev.shape[1], z, h, c, tc)
        return h, c, tc

    return lstm_cell_gpu


@lstm_cell_backward.cupy
def _lstm_cell_backward_gpu():
    import cupy

    fused = _cell_kernel(4, "T dh, T dc_next, T c_prev, T tc, raw T z", "raw T dz, T dc_prev", """
        T gi = z[at], gf = z[at + u], go = z[at + 2 * u], gg = z[at + 3 * u];
        T dc = dh * go * ((T)1 - tc * tc) + dc_next;
        dz[at] = dc * gg * (gi - gi * gi);
        dz[at + u] = dc * c_prev * (gf - gf * gf);
        dz[at + 2 * u] = dh * tc * (go - go * go);
        dz[at + 3 * u] = dc * gi * ((T)1 - gg * gg);
        dc_prev = dc * gf;""", "nnctl_lstm_cell_backward")

    def lstm_cell_backward_gpu(dh, dc_next, z, c_prev, tc, dz):
        dc_prev = cupy.empty(tc.shape, tc.dtype)
        fused(dh, dc_next, c_prev, tc, z, tc.shape[1], dz, dc_prev)
        return dc_prev

    return lstm_cell_backward_gpu


@gru_cell.cupy
def _gru_cell_gpu():
    import cupy

    fused = _cell_kernel(3, "T h_prev, raw T a", "raw T z, T h", """
        T gr = SIGMOID(z[at] + a[at]), gu = SIGMOID(z[at + u] + a[at + u]);
        T gn = tanh(z[at + 2 * u] + gr * a[at + 2 * u]);
        z[at] = gr; z[at + u] = gu; z[at + 2 * u] = gn;
        h = (h_prev - gn) * gu + gn;""", "nnctl_gru_cell")

    def gru_cell_gpu(z, a, h_prev):
        h = cupy.empty(h_prev.shape, z.dtype)
        fused(h_prev, a, h_prev.shape[1], z, h)
        return h

    return gru_cell_gpu


@gru_cell_backward.cupy
def _gru_cell_backward_gpu():
    import cupy

    fused = _cell_kernel(3, "T dh, T h_prev, raw T z, raw T a", "raw T dz, raw T da, T direct", """
        T gr = z[at], gu = z[at + u], gn = z[at + 2 * u];
        T dn = dh * ((T)1 - gu) * ((T)1 - gn * gn);
        T dr = dn * a[at + 2 * u] * (gr - gr * gr), dg = dh * (h_prev - gn) * (gu - gu * gu);
        dz[at] = dr; dz[at + u] = dg; dz[at + 2 * u] = dn;
        da[at] = dr; da[at + u] = dg; da[at + 2 * u] = dn * gr;
        direct = dh * gu;""", "nnctl_gru_cell_backward")

    def gru_cell_backward_gpu(dh, z, a, h_prev, dz, da):
        direct = cupy.empty(dh.shape, dh.dtype)
        fused(dh, h_prev, z, a, h_prev.shape[1], dz, da, direct)
        return direct

    return gru_cell_backward_gpu
