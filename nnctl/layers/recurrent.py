"""Recurrent layers over (N, T, F) sequences: rnn, lstm and gru, with full backpropagation through time."""

import itertools
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np

from nnctl import threads
from nnctl.backend import on_cpu, sum_rows, xp
from nnctl.init import Initializer
from nnctl.kernels import (
    gru_cell,
    gru_cell_backward,
    gru_gates_,
    gru_gates_back_,
    gru_mix_,
    gru_mix_back_,
    lstm_cell,
    lstm_cell_backward,
)
from nnctl.layers.base import LAYERS, Layer
from nnctl.schema import Count

if typing.TYPE_CHECKING:
    from nnctl.layers.activations import Activation

PART_ROWS = 64
"""The fewest sequences a thread takes: a batch is dealt among the threads in parts of at least this many (one
LSTM time loop over 28 steps on 2 threads, units 128: parts of 64 1.26x faster than the whole batch with BLAS on 2
threads, parts of 32 0.63x; units 256: parts of 128 1.23x, parts of 32 0.83x)."""
STATE_INIT = {"type": "normal", "std": 0.5}
"""The gradient-check examples start from this non-zero learned state (a zero one hides BPTT mistakes)."""


def reorder_gates(a: np.ndarray, perm: list[int]) -> np.ndarray:
    """The gate blocks along a's last axis taken in the order `perm` (another framework's layout to nnctl's or
    back: converting and exporting weights)."""
    return a.reshape(*a.shape[:-1], len(perm), -1)[..., perm, :].reshape(a.shape)


class Recurrent(Layer):
    """The time loop shared by rnn, lstm and gru; a subclass gives one step forward and one step back.

    Per direction ('' forward, '_r' reversed): Wx (F, G·U), Wh (U, G·U), b (G·U) for G gate blocks,
    and with `initial_state: learned` one trainable vector per carried state (h0, and c0 for an lstm).
    The input projection of all steps is one matrix product; the loop runs over time only, with one
    fused product h·Wh per step for all gates; weight gradients are one product each after the loop.
    On the CPU the batch is dealt in parts among the threads, each running the whole loop for its sequences
    with BLAS on one thread (a step's product is too small to keep two BLAS threads busy while the cell
    waits), and the parts' gradients summed in order."""

    gates: ClassVar[int] = 1
    carries: ClassVar[tuple[str, ...]] = ("h",)
    """The states passed from step to step, h first."""
    use_bias: bool = True
    """False for a cell without the bias b (the classic Elman unit may go without)."""
    split_recurrent: ClassVar[bool] = False
    """True when the gradient of h·Wh differs from the gates' pre-activation gradient (gru's reset gate)."""
    weight_keys = ("Wx", "Wh", "Wx_r", "Wh_r")
    deals_threads = True

    def __init__(self, units: Count, return_sequences: bool = False, bidirectional: bool = False,
                 initial_state: Literal["zeros", "learned"] = "zeros", weight_init: Any = "glorot_uniform",
                 recurrent_init: Any = "glorot_uniform", bias_init: Any = "zeros", state_init: Any = "zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.units, self.return_sequences, self.learned_state = units, return_sequences, initial_state == "learned"
        self.directions = ("", "_r") if bidirectional else ("",)
        self.weight_init: Initializer = weight_init
        self.recurrent_init: Initializer = recurrent_init
        self.bias_init: Initializer = bias_init
        self.state_init: Initializer = state_init
        self.spares: list[dict[str, np.ndarray]] = []  # the gradients of the batch's parts after the first

    def output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"{self.registered_name} needs sequences of shape (steps, features), "
                             f"got {list(input_shape)}; put an embedding or a reshape before it")
        width = self.units * len(self.directions)
        return (input_shape[0], width) if self.return_sequences else (width,)

    def build(self, input_shape, rng, dtype):
        features, units, width = input_shape[-1], self.units, self.gates * self.units
        self.steps = input_shape[0]
        for suffix in self.directions:
            self.params["Wx" + suffix] = self.weight_init((features, width), features, width, rng, dtype)
            self.params["Wh" + suffix] = self.recurrent_init((units, width), units, width, rng, dtype)
            if self.use_bias:
                self.params["b" + suffix] = self.bias_init((width,), features, width, rng, dtype)
            self.build_extra(suffix, rng, dtype)
            if self.learned_state:
                for name in self.carries:
                    self.params[f"{name}0{suffix}"] = self.state_init((units,), units, units, rng, dtype)
        self._zero_grads()

    def build_extra(self, suffix: str, rng: np.random.Generator, dtype: type) -> None:
        """Parameters or settings a cell adds for direction `suffix`."""

    def multiply_adds(self, output_shape):
        return self.steps * sum(self.params[k].size for k in self.weight_keys if k in self.params)

    def working_values(self):
        # per step and direction, at most: the pre-activations, their gradients and h·Wh's (3 G·U), h and the carried
        # states' caches (3 U)
        return self.steps * len(self.directions) * self.units * (3 * self.gates + 3)

    # -- one step, given by each cell ----------------------------------------------------------------------

    def step(self, z: np.ndarray, a: np.ndarray, state: tuple, suffix: str) -> tuple[tuple, tuple]:
        """New state from z = x·Wx + b (overwritten in place) and a = h·Wh; and what step_back needs."""
        raise NotImplementedError

    def step_back(self, dh: np.ndarray, dstate: tuple, cache: tuple, dz: np.ndarray, da: np.ndarray,
                  suffix: str) -> tuple[np.ndarray | None, tuple]:
        """Fills dz (and da if split_recurrent) from dh and the later states' gradients; returns the direct
        gradient of the previous h (beyond da·Whᵀ) or None, and the previous other states' gradients."""
        raise NotImplementedError

    # -- the time loop -------------------------------------------------------------------------------------

    def forward(self, x, training):
        self.parts = self._parts(len(x))
        self.caches: list[dict] = [{} for _ in self.parts]
        outs: list[Any] = [None] * len(self.parts)

        def run(k: int) -> None:
            outs[k] = self._forward(x[self.parts[k]], self.caches[k])

        self._deal(run)
        return outs[0] if len(outs) == 1 else xp.concatenate(outs)

    def _parts(self, n: int) -> list[slice]:
        """The batch's rows in parts of about equal size, one per thread, each of at least PART_ROWS sequences
        (the whole batch on a GPU, or on one thread)."""
        count = max(min(self.threads, n // PART_ROWS), 1) if on_cpu() else 1
        bounds = [n * k // count for k in range(count + 1)]
        return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]

    def _deal(self, task: Callable[[int], None]) -> None:
        """task(k) for every part, each on a thread of its own; a batch too small to deal runs on this thread with
        BLAS on the layer's threads instead (the model runs BLAS on one where its layers deal their work)."""
        if len(self.parts) > 1 or self.threads == 1:
            threads.share(task, len(self.parts))
            return
        with threads.blas_limit(self.threads):
            task(0)

    def _forward(self, x: np.ndarray, caches: dict) -> np.ndarray:
        """The layer's output for the sequences x (N, T, F), keeping in `caches` what backward needs."""
        xt = x.transpose(1, 0, 2)
        outs = [self._scan(xt[::-1] if suffix else xt, suffix, caches)[0] for suffix in self.directions]
        if not self.return_sequences:
            return xp.concatenate([h[-1] for h in outs], axis=-1) if len(outs) > 1 else outs[0][-1]
        if len(outs) > 1:
            outs = [outs[0], outs[1][::-1]]
        return (xp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]).transpose(1, 0, 2)

    @property
    def bidirectional(self) -> bool:
        """Whether a second pass reads the sequence backwards: each step's output depends on the steps after it."""
        return len(self.directions) > 1

    @property
    def carries_on(self) -> bool:
        """Whether `forward_from` can run it: one direction, an output at every step."""
        return not self.bidirectional and self.return_sequences

    def forward_from(self, x: np.ndarray, state: tuple | None) -> tuple[np.ndarray, tuple]:
        """The outputs (N, T, U) for the steps x (N, T, F) that follow `state` (None: the initial state), and the
        state after them: a sequence fed in pieces gives the outputs of the whole (evaluation only)."""
        assert self.carries_on, "one direction, with return_sequences"
        h, state = self._scan(x.transpose(1, 0, 2), "", {}, state)
        return h.transpose(1, 0, 2), state

    def _scan(self, xs: np.ndarray, suffix: str, caches: dict,
              state: tuple | None = None) -> tuple[np.ndarray, tuple]:
        """Runs direction `suffix` over time-major xs (T, N, F) in processing order from `state` (None: the initial
        state); returns h of every step and the state after the last."""
        steps, n, features = xs.shape
        p, units = self.params, self.units
        x_rows = xs.reshape(steps * n, features)
        z = x_rows @ p["Wx" + suffix]
        if self.use_bias:
            z += p["b" + suffix]
        z = z.reshape(steps, n, -1)
        state = self._initial(suffix, n, xs.dtype) if state is None else state
        h = xp.empty((steps, n, units), dtype=z.dtype)
        kept = []
        wh = p["Wh" + suffix]
        with np.errstate(over="ignore"):  # CuPy has no errstate; never warns
            for t in range(steps):
                state, cache = self.step(z[t], state[0] @ wh, state, suffix)
                h[t] = state[0]
                kept.append(cache)
        caches[suffix] = (x_rows, h, kept)
        return h, state

    def _initial(self, suffix: str, n: int, dtype: np.dtype) -> tuple:
        if self.learned_state:
            return tuple(xp.broadcast_to(self.params[f"{name}0{suffix}"], (n, self.units)) for name in self.carries)
        return tuple(xp.zeros((n, self.units), dtype=dtype) for _ in self.carries)

    def backward(self, dy):
        grads = [self.grads, *self._spare_grads(len(self.parts) - 1)]
        dxs: list[Any] = [None] * len(self.parts)

        def run(k: int) -> None:
            dxs[k] = self._backward(dy[self.parts[k]], self.caches[k], grads[k])

        self._deal(run)
        for part in grads[1:]:  # in order, so that a run's sums do not depend on which thread ended first
            for key, grad in part.items():
                self.grads[key] += grad
        return None if dxs[0] is None else dxs[0] if len(dxs) == 1 else xp.concatenate(dxs)

    def _spare_grads(self, count: int) -> list[dict[str, np.ndarray]]:
        """`count` sets of buffers shaped as grads, for the other parts' gradients (kept from call to call)."""
        self.spares += [{key: xp.empty_like(grad) for key, grad in self.grads.items()}
                        for _ in range(count - len(self.spares))]
        return self.spares[:count]

    def _backward(self, dy: np.ndarray, caches: dict, g: dict[str, np.ndarray]) -> np.ndarray | None:
        """Writes the gradients of one part's sequences into `g`; returns their input's gradient or None."""
        x_rows, h, _ = caches[""]
        units, (steps, n), features = self.units, h.shape[:2], x_rows.shape[1]
        dx = None
        for k, suffix in enumerate(self.directions):
            part = dy[..., k * units:(k + 1) * units]
            if self.return_sequences:
                dh_seq, dh_last = part.transpose(1, 0, 2), None
                dh_seq = dh_seq[::-1] if suffix else dh_seq
            else:
                dh_seq, dh_last = None, part
            dxs = self._unscan(suffix, dh_seq, dh_last, caches[suffix], g)
            if dxs is not None:
                dxs = dxs.reshape(steps, n, features)
                dxs = dxs[::-1] if suffix else dxs
                dx = dxs if dx is None else dx + dxs
        return None if dx is None else xp.ascontiguousarray(dx.transpose(1, 0, 2))

    def _unscan(self, suffix: str, dh_seq: np.ndarray | None, dh_last: np.ndarray | None, cached: tuple,
                g: dict[str, np.ndarray]) -> np.ndarray | None:
        """Backpropagation through time for direction `suffix` from its forward's `cached` (x_rows, h, each step's
        cache); writes its gradients into g, returns dx (T·N, F) or None."""
        x_rows, h, caches = cached
        p = self.params
        steps, n, units = h.shape
        wh_t = xp.ascontiguousarray(p["Wh" + suffix].T)  # BLAS runs a product by a transposed view 10-15 % slower
        dz = xp.empty((steps, n, self.gates * units), dtype=h.dtype)
        da = xp.empty_like(dz) if self.split_recurrent else dz
        dstate = tuple(xp.zeros((n, units), dtype=h.dtype) for _ in self.carries)
        if dh_last is not None:
            dstate = (dstate[0] + dh_last, *dstate[1:])
        for t in range(steps - 1, -1, -1):
            dh = dstate[0] + dh_seq[t] if dh_seq is not None else dstate[0]
            direct, rest = self.step_back(dh, dstate[1:], caches[t], dz[t], da[t], suffix)
            dh_prev = da[t] @ wh_t
            if direct is not None:
                dh_prev += direct
            dstate = (dh_prev, *rest)
        dz_rows, da_rows = dz.reshape(steps * n, -1), da.reshape(steps * n, -1)
        self._param_grads(suffix, cached, dz_rows, da_rows, dstate, g)
        return dz_rows @ p["Wx" + suffix].T if self.input_grad else None

    def _param_grads(self, suffix: str, cached: tuple, dz_rows: np.ndarray, da_rows: np.ndarray, dstate: tuple,
                     g: dict[str, np.ndarray]) -> None:
        """The parameters' gradients (into g), summed over all steps: Wx = xᵀ·dz, Wh = h_prevᵀ·da, b = Σ dz, and the
        learned initial state's from `dstate`, the gradient that reaches it."""
        x_rows, h, caches = cached
        n, units = h.shape[1:]
        xp.dot(x_rows.T, dz_rows, out=g["Wx" + suffix])
        # Wh's gradient is h_prevᵀ·da over all steps: h[:-1] (a view) with steps 1.., and h_0 with step 0
        xp.dot(h[:-1].reshape(-1, units).T, da_rows[n:], out=g["Wh" + suffix])
        if self.learned_state:  # a zero h_0 adds nothing
            g["Wh" + suffix] += self._initial(suffix, n, h.dtype)[0].T @ da_rows[:n]
        if self.use_bias:
            sum_rows(dz_rows, g["b" + suffix])
        self.backward_extra(suffix, dz_rows, da_rows, caches, g)
        if self.learned_state:
            for name, d in zip(self.carries, dstate, strict=True):
                d.sum(axis=0, out=g[f"{name}0{suffix}"])

    def backward_extra(self, suffix: str, dz_rows: np.ndarray, da_rows: np.ndarray, caches: list[tuple],
                       g: dict[str, np.ndarray]) -> None:
        """Gradients (into g) of the parameters build_extra added (or of Wh's blocks not taken from h·Wh), from
        the gradients of the pre-activations and of h·Wh over all steps, (T·N, G·U) each, and each step's cache."""


@LAYERS.register("rnn")
class SimpleRNN(Recurrent):
    """h_t = act(x_t·Wx + h_{t−1}·Wh + b), act tanh, relu or identity; `use_bias: false` drops b (with identity,
    the linear Elman unit of the classic texts)."""

    example = {"config": {"units": 3, "return_sequences": True, "bidirectional": True, "initial_state": "learned",
                          "state_init": STATE_INIT}, "input_shape": (5, 2)}

    def __init__(self, units: Count, activation: Literal["tanh", "relu", "identity"] = "tanh", use_bias: bool = True,
                 **kwargs):
        super().__init__(units, **kwargs)
        name = typing.cast("Activation", activation).registered_name  # the builder has built the name into a layer
        self.nonlinearity, self.use_bias = name, use_bias

    def step(self, z, a, state, suffix):
        z += a
        if self.nonlinearity == "relu":
            xp.maximum(z, 0, out=z)
        elif self.nonlinearity == "tanh":
            xp.tanh(z, out=z)
        return (z,), (z,)

    def step_back(self, dh, dstate, cache, dz, da, suffix):
        (h,) = cache
        if self.nonlinearity == "relu":
            xp.multiply(dh, h > 0, out=dz)
        elif self.nonlinearity == "tanh":
            xp.multiply(dh, 1 - h * h, out=dz)
        else:
            dz[...] = dh
        return None, ()


@LAYERS.register("lstm")
class LSTM(Recurrent):
    """Gates i, f, o = σ(·), candidate g = tanh(·) from x_t·Wx + h_{t−1}·Wh + b; c_t = f⊙c_{t−1} + i⊙g,
    h_t = o⊙tanh(c_t). `forget_bias` is added to f's bias at build time (1 keeps memories at the start)."""

    gates = 4
    carries = ("h", "c")
    example = {"config": {"units": 3, "return_sequences": True, "bidirectional": True, "initial_state": "learned",
                          "state_init": STATE_INIT}, "input_shape": (5, 2)}

    def __init__(self, units: Count, forget_bias: float = 1.0, **kwargs):
        super().__init__(units, **kwargs)
        self.forget_bias = forget_bias

    def build_extra(self, suffix, rng, dtype):
        self.params["b" + suffix][self.units:2 * self.units] += self.forget_bias

    def step(self, z, a, state, suffix):
        h, c, tc = lstm_cell(z, a, state[1])
        return (h, c), (z, state[1], tc)

    def step_back(self, dh, dstate, cache, dz, da, suffix):
        z, c_prev, tc = cache
        return None, (lstm_cell_backward(dh, dstate[0], z, c_prev, tc, dz),)


@LAYERS.register("gru")
class GRU(Recurrent):
    """r, u = σ(x·Wx + h·Wh + b + bh), n = tanh(x·Wxn + bn + r⊙(h·Whn + bhn)), h_t = (1−u)⊙n + u⊙h_{t−1}
    (the reset-after form of cuDNN and PyTorch: one fused h·Wh product per step). `reset_after: false` gives
    the original form, n = tanh(x·Wxn + bn + (r⊙h)·Whn), without bh."""

    gates = 3
    split_recurrent = True
    example = {"config": {"units": 3, "return_sequences": True, "bidirectional": True, "initial_state": "learned",
                          "state_init": STATE_INIT, "bias_init": {"type": "normal", "std": 0.3}}, "input_shape": (5, 2)}

    def __init__(self, units: Count, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def build_extra(self, suffix, rng, dtype):
        if self.reset_after:
            width = 3 * self.units
            self.params["bh" + suffix] = self.bias_init((width,), self.units, width, rng, dtype)

    def step(self, z, a, state, suffix):
        u = self.units
        h_prev = state[0]
        if self.reset_after:
            a += self.params["bh" + suffix]
            return (gru_cell(z, a, h_prev),), (z, a, h_prev)
        gru_gates_(z, a)
        # reset before the product: the fused h·Wh's n block goes unused, h·Whn becomes (r⊙h)·Whn
        rh = z[:, :u] * h_prev
        z[:, 2 * u:] += rh @ self.params["Wh" + suffix][:, 2 * u:]
        return (gru_mix_(z, h_prev),), (z, rh, h_prev)

    def step_back(self, dh, dstate, cache, dz, da, suffix):
        z, a, h_prev = cache
        if self.reset_after:
            return gru_cell_backward(dh, z, a, h_prev, dz, da), ()
        u = self.units
        dn = gru_mix_back_(dh, z, dz)
        drh = dn @ self.params["Wh" + suffix][:, 2 * u:].T  # the gradient of r⊙h, reset before the product
        da[:, 2 * u:] = 0
        xp.multiply(drh, h_prev, out=dz[:, :u])
        return gru_gates_back_(dh, z, h_prev, dz, da) + drh * z[:, :u], ()

    def backward_extra(self, suffix, dz_rows, da_rows, caches, g):
        if self.reset_after:
            sum_rows(da_rows, g["bh" + suffix])
            return
        u = self.units
        rh = xp.concatenate([cache[1] for cache in caches])
        g["Wh" + suffix][:, 2 * u:] = rh.T @ dz_rows[:, 2 * u:]
