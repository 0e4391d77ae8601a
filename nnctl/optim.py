"""Optimizers: `bind(params, grads)` once, then `step()` updates every parameter in place; state is plain arrays."""

import math

import numpy as np

from nnctl.backend import host_copy, to_device, xp
from nnctl.kernels import adam_
from nnctl.layers.base import range_problem
from nnctl.registry import Registry
from nnctl.schema import Fraction, NonNegative, Positive

OPTIMIZERS: Registry = Registry("optimizer")


class Optimizer:
    """Base: learning rate, optional clipping of the gradients' global norm, per-parameter state."""

    def __init__(self, lr: Positive = 0.01, clip_norm: Positive | None = None):
        self.base_lr = self.lr = lr
        """`base_lr` is the configured rate; `lr` the one the next step uses, which a schedule sets."""
        self.clip_norm = clip_norm
        self.t = 0
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.slots: dict[str, list[np.ndarray]] = {}
        self.lr_mults: list[float] = []

    def bind(self, params: list[np.ndarray], grads: list[np.ndarray], lr_mults: list[float] | None = None) -> None:
        """Takes the arrays every step updates, their gradients (filled in place) and each one's multiplier of
        the lr (1 by default), and makes the slots."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
        self.params, self.grads = params, grads
        self.lr_mults = lr_mults or [1.0] * len(params)
        self.slots = {name: [xp.zeros_like(p) for p in params] for name in self.slot_names}

    def step(self) -> None:
        """One update of every bound parameter from its gradient, at the current `lr`."""
        if self.clip_norm is not None:
            clip_by_global_norm(self.grads, self.clip_norm)
        self.t += 1
        for i, (p, g, mult) in enumerate(zip(self.params, self.grads, self.lr_mults, strict=True)):
            if mult:
                self.update(p, g, self.lr * mult, *(self.slots[name][i] for name in self.slot_names))

    slot_names: tuple[str, ...] = ()
    """The per-parameter arrays this optimizer keeps, such as Adam's 'm' and 'v'."""

    def update(self, p: np.ndarray, g: np.ndarray, lr: float, *slots: np.ndarray) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Plain data for a checkpoint (host arrays)."""
        return {"t": self.t, "slots": {k: [host_copy(a) for a in v] for k, v in self.slots.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Copies saved slots into the bound ones; ValueError when they do not fit the bound parameters."""
        self.t = state["t"]
        if set(state["slots"]) != set(self.slots):
            raise ValueError(f"the optimizer's saved slots {sorted(state['slots'])} are not the "
                             f"{sorted(self.slots)} this {type(self).__name__} optimizer keeps")
        for name, saved in state["slots"].items():
            mine = self.slots[name]
            if [np.shape(a) for a in saved] != [a.shape for a in mine]:
                raise ValueError(f"the optimizer's saved '{name}' arrays have shapes "
                                 f"{[list(np.shape(a)) for a in saved]}, the model's parameters "
                                 f"{[list(a.shape) for a in mine]}")
            for a, value in zip(mine, saved, strict=True):
                if problem := range_problem(value, a.dtype):
                    raise ValueError(f"the optimizer's saved '{name}' array {problem}")
                a[...] = to_device(value)


def clip_by_global_norm(grads: list[np.ndarray], max_norm: float) -> float:
    """Scales all gradients together so their joint L2 norm is at most `max_norm`; returns the norm.
    One dot product per gradient and one read of the sum: on a GPU, one wait for the device, not one per array."""
    norm = math.sqrt(float(sum(xp.vdot(g.ravel(), g.ravel()) for g in grads)))
    if norm > max_norm:
        for g in grads:
            g *= max_norm / norm
    return norm


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """p −= lr·g; with momentum, v = μ·v + g and p −= lr·v (Nesterov: p −= lr·(g + μ·v))."""

    def __init__(self, lr: Positive = 0.01, momentum: Fraction = 0.0, nesterov: bool = False, **kwargs):
        super().__init__(lr=lr, **kwargs)
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        self.momentum, self.nesterov = momentum, nesterov
        self.slot_names = ("v",) if momentum else ()

    def update(self, p, g, lr, *slots):
        if not slots:
            p -= lr * g
            return
        (v,) = slots
        v *= self.momentum
        v += g
        p -= lr * (g + self.momentum * v) if self.nesterov else lr * v


@OPTIMIZERS.register("momentum")
class Momentum(SGD):
    """SGD with momentum 0.9 by default."""

    def __init__(self, lr: Positive = 0.01, momentum: Fraction = 0.9, **kwargs):
        super().__init__(lr=lr, momentum=momentum, **kwargs)


@OPTIMIZERS.register("adagrad")
class AdaGrad(Optimizer):
    """h += g²; p −= lr·g / (√h + ε)."""

    slot_names = ("h",)

    def __init__(self, lr: Positive = 0.01, eps: Positive = 1e-10, **kwargs):
        super().__init__(lr=lr, **kwargs)
        self.eps = eps

    def update(self, p, g, lr, h):
        h += g * g
        p -= lr * g / (xp.sqrt(h) + self.eps)


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """h = ρ·h + (1−ρ)·g²; p −= lr·g / (√h + ε)."""

    slot_names = ("h",)

    def __init__(self, lr: Positive = 0.001, rho: Fraction = 0.9, eps: Positive = 1e-7, **kwargs):
        super().__init__(lr=lr, **kwargs)
        self.rho, self.eps = rho, eps

    def update(self, p, g, lr, h):
        h *= self.rho
        h += (1 - self.rho) * g * g
        p -= lr * g / (xp.sqrt(h) + self.eps)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """m, v: running means of g and g²; p −= lr·m̂ / (√v̂ + ε), with bias-corrected m̂, v̂."""

    slot_names = ("m", "v")

    def __init__(self, lr: Positive = 0.001, beta1: Fraction = 0.9, beta2: Fraction = 0.999, eps: Positive = 1e-8,
                 **kwargs):
        super().__init__(lr=lr, **kwargs)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def update(self, p, g, lr, m, v):
        as_p = p.dtype.type  # every scalar in the parameters' precision, as NumPy rounds them
        adam_(p, g, m, v, as_p(self.beta1), as_p(1 - self.beta1), as_p(self.beta2), as_p(1 - self.beta2),
              as_p(self.eps), as_p(lr / (1 - self.beta1 ** self.t)), as_p(1 / math.sqrt(1 - self.beta2 ** self.t)))


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay: p −= lr·λ·p before the Adam step."""

    def __init__(self, lr: Positive = 0.001, weight_decay: NonNegative = 0.01, **kwargs):
        super().__init__(lr=lr, **kwargs)
        self.weight_decay = weight_decay

    def update(self, p, g, lr, m, v):
        p *= 1 - lr * self.weight_decay
        super().update(p, g, lr, m, v)
