"""Analytic gradients against central differences, in float64."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from nnctl.backend import to_device, to_host, xp
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.errors import ConfigError
from nnctl.experiment import Experiment
from nnctl.layers import LAYERS, Layer
from nnctl.losses import LOSSES, Decay, Loss
from nnctl.model import Model


@dataclass
class Check:
    """One tensor's comparison: `error` is the relative error, or for a rule the largest deviation from it;
    `kind` is gradient, rule, zero (both gradients zero up to rounding), rounding (the difference is the loss's
    rounding), kinks (`kinks` entries agreed only when measured with a smaller step: a kink lay within ±eps) or
    surrogate (behind a step's perceptron rule, which is no derivative: not compared)."""

    target: str
    tensor: str
    shape: tuple[int, ...]
    error: float
    passed: bool
    kind: str = "gradient"
    kinks: int = 0


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """|a − n| / max(|a| + |n|, tiny), with |·| the L2 norm over the whole tensor."""
    a, n = to_host(analytic).astype(np.float64).ravel(), to_host(numeric).astype(np.float64).ravel()
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), np.finfo(np.float64).tiny))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6,
                       indices: list[tuple[int, ...]] | None = None) -> np.ndarray:
    """(f(x + h) − f(x − h)) / 2h for each entry of x (or only `indices`), x restored afterwards."""
    grad = np.zeros(x.shape)
    for index in indices if indices is not None else list(np.ndindex(x.shape)):
        old = float(x[index])  # a copy: a device array indexed this way is a view of x
        x[index] = old + eps
        plus = f()
        x[index] = old - eps
        minus = f()
        x[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal draws pushed at least 0.1 from zero, so that no difference step crosses a kink at 0."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


def example_batch(cls: type[Layer], example: dict, input_shape: tuple[int, ...], rng: np.random.Generator,
                  batch: int) -> np.ndarray:
    """The example's own batch x, else random ids below its vocab_size for layers taking indices, else
    normal draws away from zero."""
    if "x" in example:
        return np.array(example["x"])
    if cls.takes_indices:
        return rng.integers(0, example["config"]["vocab_size"], (batch, *input_shape))
    return away_from_zero(rng, (batch, *input_shape))


def check_layer(name: str, eps: float = 1e-6, tol: float = 1e-6, seed: int = 0, batch: int = 3,
                example: dict | None = None, device: str = "cpu") -> list[Check]:
    """The registered layer `name`, built from its example (or `example`: config, input_shape and maybe the
    batch x itself) on `device`: every parameter's gradient, and the input's unless the layer takes indices."""
    cls = LAYERS.get(name)
    example = example or cls.example
    config = from_dict({"device": device, "model": {"layers": [{"type": name, **example["config"]}]}},
                       f"<{name} example>")
    rng = np.random.default_rng(seed)
    model = build_model(config, tuple(example["input_shape"]), np.float64, rng)
    layer = model.layers[0]
    layer.input_grad = not cls.takes_indices
    x = to_device(example_batch(cls, example, model.input_shape, rng, batch))
    projection = to_device(rng.standard_normal((len(x), *model.output_shape)))

    def f() -> float:
        layer.rng = np.random.default_rng(seed)
        return float((layer.forward(x, training=True) * projection).sum())

    f()
    dx = layer.backward(projection.copy())
    if cls.surrogate_gradient and dx is not None:
        error = float(abs(dx - projection).max())
        return [Check(name, "input", x.shape, error, error <= tol, kind="rule")]
    tensors = {**layer.params} if cls.takes_indices else {**layer.params, "input": x}
    analytic = {**{k: g.copy() for k, g in layer.grads.items()}, "input": dx}
    return [_compare(name, key, analytic[key], numerical_gradient(f, tensors[key], eps), tol) for key in tensors]


def check_loss(name: str, eps: float = 1e-6, tol: float = 1e-6, seed: int = 0) -> list[Check]:
    """The registered loss `name` on random outputs against each kind of target it takes, plain and with its
    `example` options (as training computes it: smoothed targets), and the L1 and L2 decay of a weight, on the
    current device."""
    rng = np.random.default_rng(seed)
    cls = LOSSES.get(name)
    y = to_device(rng.standard_normal((4, 5)))
    examples = {"labels": rng.integers(0, 5, 4), "values": rng.uniform(0, 1, (4, 5))}
    checks = []
    variants: list[dict[str, Any]] = [{}, cls.example] if cls.example else [{}]
    for options in variants:
        loss: Loss = cls(**options)
        for kind in cls.example_targets:
            targets = to_device(examples[kind])
            loss.train_forward(y, targets)
            what = ", ".join([kind, *options])
            checks.append(_compare(name, f"outputs ({what})", loss.backward(),
                                   numerical_gradient(partial(loss.train_forward, y, targets), y, eps), tol))
    decay = Decay(0.3, 0.7, [to_device(away_from_zero(rng, (3, 2)))], [to_device(np.zeros((3, 2)))])
    decay.add_grads()
    return [*checks, _compare(name, "l1+l2 decay", decay.grads[0], numerical_gradient(decay.penalty, decay.weights[0],
                                                                                    eps), tol)]


def check_model(exp: Experiment, samples: int = 8, per_tensor: int = 20, eps: float = 1e-6, tol: float = 1e-6,
                seed: int = 0, layer: str | None = None) -> list[Check]:
    """A whole model from a config, on its first training samples; `per_tensor` entries sampled per tensor; only
    the parameters of the layers called `layer`, or of its type, when given.

    Inputs and parameters are first moved by random noise (5 % of their RMS, at least 0.05), so that no unit sits
    on a kink: zero biases over MNIST's blank borders put thousands of ReLUs exactly at 0 and tie every max pool,
    and there central differences measure the mean of two one-sided slopes, not the gradient. A bias still moves
    thousands of units at once, so that one of them may cross a kink within ±eps: an entry that fails on its own
    is measured again with steps of eps/10 and eps/100 (see `_closer`). The parameters behind a step's perceptron
    rule (no derivative) are listed, not compared."""
    model: Model = exp.model
    rng = np.random.default_rng(seed)
    x, t = exp.data.train.take(slice(samples))
    differentiable = not model.layers[0].takes_indices
    if differentiable:
        x = x.astype(np.float64)
    _jitter([x, *model.params()] if differentiable else list(model.params()), rng)
    model.layers[0].input_grad = differentiable

    def f() -> float:
        model.set_rng(np.random.default_rng(seed))
        return exp.loss.forward(model.forward(x, training=True), t) + exp.decay.penalty()

    loss = f()
    dx = model.backward(exp.loss.backward())
    exp.decay.add_grads()
    entries: list[Entry] = [(each.name, key, each.params[key], each.grads[key].copy()) for each, key in model.trained]
    if dx is not None:  # None from indices, or when the first layers are frozen and backward stops before them
        entries.append(("model", "input", x, dx))
    if layer is not None:
        entries = _of_layer(entries, model, layer)
    behind, checks = _behind_a_rule(model), []
    for target, key, tensor, grad in entries:
        if target in behind:
            checks.append(Check(target, key, tuple(tensor.shape), 0.0, True, kind="surrogate"))
            continue
        indices = _sample_indices(rng, tensor.shape, per_tensor)
        picked = tuple(np.array(indices).T)
        analytic = to_host(grad[picked]).astype(np.float64)
        numeric = numerical_gradient(f, tensor, eps, indices)[picked]
        kinks = _closer(f, tensor, indices, analytic, numeric, eps, tol)
        rounding = ROUNDING * np.finfo(np.float64).eps * abs(loss) / eps * math.sqrt(len(indices))
        check = _compare(target, key, analytic, numeric, tol, tensor.shape, rounding)
        if kinks and check.kind == "gradient":
            check.kind, check.kinks = "kinks", kinks
        checks.append(check)
    return checks


Entry = tuple[str, str, np.ndarray, np.ndarray]
"""A tensor to check: its layer's name (or "model" for the input), its key, the tensor and its analytic gradient."""


def _jitter(tensors: list[np.ndarray], rng: np.random.Generator) -> None:
    """Moves each tensor in place by random noise of 5 % of its RMS, at least 0.05, so that no unit sits on a kink."""
    for tensor in tensors:
        tensor += max(0.05 * float(xp.sqrt(xp.mean(tensor ** 2))), 0.05) * to_device(rng.standard_normal(tensor.shape))


def _of_layer(entries: list[Entry], model: Model, layer: str) -> list[Entry]:
    """The entries of the layers called `layer` or of that type (--layer); ConfigError where there are none."""
    types = {each.name: each.registered_name for each in model.layers}
    entries = [entry for entry in entries if layer in (entry[0], types.get(entry[0]))]
    if entries:
        return entries
    frozen = [each.name for each in model.layers
              if layer in (each.name, each.registered_name) and each.params and not each.trainable]
    if frozen:
        raise ConfigError(f"--layer {layer}: {', '.join(frozen)} has trainable: false, so its parameters "
                          "get no gradients to check")
    trained = ", ".join(dict.fromkeys(f"{each.name} ({each.registered_name})" for each, _ in model.trained))
    raise ConfigError(f"--layer {layer}: no layer of this model with parameters is called so or of that "
                      f"type; those with parameters: {trained}")


STEPS_DOWN = (10, 100)
"""How many times smaller the steps are with which an entry that fails on its own is measured again."""


def _closer(f: Callable[[], float], tensor: np.ndarray, indices: list[tuple[int, ...]], analytic: np.ndarray,
            numeric: np.ndarray, eps: float, tol: float) -> int:
    """Measures again, with steps of eps/10 then eps/100, each entry whose central difference (in `numeric`)
    disagrees with its analytic gradient by more than `tol`, and takes the new difference where it agrees: a kink
    within ±eps (a unit that switches) bends the difference, one farther than the smaller step does not, and where
    f is smooth the smaller step gives the same number, so a wrong gradient still disagrees. Returns how many
    entries agreed only so."""
    def agrees(a: float, n: float) -> bool:
        return abs(a - n) <= tol * (abs(a) + abs(n))

    kinks = 0
    for i, index in enumerate(indices):
        if agrees(analytic[i], numeric[i]):
            continue
        for factor in STEPS_DOWN:
            closer = numerical_gradient(f, tensor, eps / factor, [index])[index]
            if agrees(analytic[i], closer):
                numeric[i], kinks = closer, kinks + 1
                break
    return kinks


def _behind_a_rule(model: Model) -> set[str]:
    """The layers (and "model": the input) whose gradients pass through a step's perceptron rule on their way
    back, which is no derivative."""
    last = max((i for i, layer in enumerate(model.layers) if _has_rule(layer)), default=-1)
    return {layer.name for layer in model.layers[:last + 1]} | ({"model"} if last >= 0 else set())


def _has_rule(layer: Layer) -> bool:
    """Whether the layer, or the activation it applies, passes the gradient back by a rule, not a derivative."""
    activation = getattr(layer, "activation", None)
    return layer.surrogate_gradient or bool(activation is not None and activation.surrogate_gradient)


def _sample_indices(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> list[tuple[int, ...]]:
    flat = rng.choice(int(np.prod(shape)), size=min(count, int(np.prod(shape))), replace=False)
    return [tuple(int(i) for i in np.unravel_index(j, shape)) for j in flat]


ROUNDING = 10
"""A central difference of a loss L computed in float64 is off by about this many times eps_64·|L| / h from
rounding alone; for small gradients (a deep recurrence's) that is more than `tol` of them."""
ZERO = 1e-8
"""Gradients whose analytic and numerical values both lie within this (L2) of zero agree: they are zero up to
rounding (a bias right before batch norm), where a relative error only compares rounding noise."""


def _compare(target: str, tensor: str, analytic: np.ndarray, numeric: np.ndarray, tol: float,
             shape: tuple[int, ...] | None = None, rounding: float = 0.0) -> Check:
    """The check of one tensor; `rounding` bounds (L2) the difference the numerical gradient's rounding explains."""
    error = relative_error(analytic, numeric)
    analytic, numeric = to_host(analytic), to_host(numeric)
    shape = tuple(shape or np.shape(analytic))
    if max(np.linalg.norm(analytic), np.linalg.norm(numeric)) <= ZERO:
        return Check(target, tensor, shape, error, True, kind="zero")
    if error > tol and np.linalg.norm(analytic - numeric) <= rounding:
        return Check(target, tensor, shape, error, True, kind="rounding")
    return Check(target, tensor, shape, error, error <= tol)


def check_registry(only: str | None = None, eps: float = 1e-6, tol: float = 1e-6,
                   device: str = "cpu") -> list[Check]:
    """Every registered layer and loss (or just `only`), on `device`."""
    checks = []
    for name in LAYERS:
        if only in (None, name):
            checks += check_layer(name, eps, tol, device=device)
    for name in LOSSES:
        if only in (None, name):
            checks += check_loss(name, eps, tol)
    return checks
