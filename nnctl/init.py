"""Weight initializers, registered by name; a layer calls one with the shape and fans it needs."""

import math
from typing import Any

import numpy as np

from nnctl.backend import to_device
from nnctl.config import Config, KeyPath
from nnctl.limits import too_big
from nnctl.registry import Registry
from nnctl.schema import NonNegative, describe_value, finite, is_number

INITIALIZERS: Registry = Registry("initializer")


class Initializer:
    """Makes an array of `shape` given the fans of the layer that owns it."""

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int,
                 rng: np.random.Generator, dtype: type) -> np.ndarray:
        # the float64 draw, then the parameter, its gradient and up to two optimizer slots
        problem = too_big(math.prod(shape) * (8 + 4 * np.dtype(dtype).itemsize),
                          f"a parameter of shape {list(shape)} (its float64 draw, then itself, its gradient and two "
                          "optimizer slots)")
        if problem:
            raise ValueError(problem)
        return to_device(self.sample(shape, fan_in, fan_out, rng).astype(dtype))

    def sample(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@INITIALIZERS.register("zeros")
class Zeros(Initializer):
    """All 0."""

    def sample(self, shape, fan_in, fan_out, rng):
        return np.zeros(shape)


@INITIALIZERS.register("ones")
class Ones(Initializer):
    """All 1."""

    def sample(self, shape, fan_in, fan_out, rng):
        return np.ones(shape)


@INITIALIZERS.register("constant")
class Constant(Initializer):
    """All `value`."""

    def __init__(self, value: float = 0.0):
        self.value = value

    def sample(self, shape, fan_in, fan_out, rng):
        return np.full(shape, self.value)


@INITIALIZERS.register("uniform")
class Uniform(Initializer):
    """Uniform draws from [low, high)."""

    def __init__(self, low: float = -0.05, high: float = 0.05):
        if high <= low:
            raise ValueError(f"uniform needs low < high, got low={low}, high={high}")
        self.low, self.high = low, high

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.uniform(self.low, self.high, shape)


@INITIALIZERS.register("normal")
class Normal(Initializer):
    """Normal draws of mean `mean` and standard deviation `std`."""

    def __init__(self, std: NonNegative = 0.05, mean: float = 0.0):
        self.std, self.mean = std, mean

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(self.mean, self.std, shape)


@INITIALIZERS.register("truncated_normal")
class TruncatedNormal(Normal):
    """Normal, with draws beyond two standard deviations drawn again."""

    def sample(self, shape, fan_in, fan_out, rng):
        z = rng.standard_normal(shape)
        while (outside := np.abs(z) > 2).any():
            z[outside] = rng.standard_normal(int(outside.sum()))
        return self.mean + self.std * z


class _VarianceScaling(Initializer):
    """Zero-mean draws with variance `scale / fan`; the Glorot, He and LeCun families."""

    scale = 1.0
    fan = "in"
    distribution = "normal"

    def sample(self, shape, fan_in, fan_out, rng):
        fan = {"in": fan_in, "avg": (fan_in + fan_out) / 2}[self.fan]
        std = math.sqrt(self.scale / max(fan, 1))
        if self.distribution == "uniform":
            limit = math.sqrt(3.0) * std
            return rng.uniform(-limit, limit, shape)
        return rng.normal(0.0, std, shape)


def _variance_scaling(name: str, scale: float, fan: str, distribution: str) -> None:
    attrs = {"scale": scale, "fan": fan, "distribution": distribution,
             "__doc__": f"{distribution.title()} with variance {scale}/fan_{fan}."}
    INITIALIZERS.register(name)(type(name, (_VarianceScaling,), attrs))


for _name, _scale, _fan in (("glorot", 1.0, "avg"), ("he", 2.0, "in"), ("lecun", 1.0, "in")):
    for _dist in ("uniform", "normal"):
        _variance_scaling(f"{_name}_{_dist}", _scale, _fan, _dist)


class Explicit(Initializer):
    """Values written out in the config; their shape must be the parameter's."""

    def __init__(self, values: Any):
        self.values = np.asarray(values, dtype=np.float64)

    def sample(self, shape, fan_in, fan_out, rng):
        if self.values.shape != tuple(shape):
            raise ValueError(f"explicit values have shape {list(self.values.shape)}, "
                             f"the parameter needs {list(shape)}")
        return self.values.copy()


def make_initializer(spec: Any, config: Config, path: KeyPath) -> Initializer:
    """An initializer from a name, a `{type: ...}` mapping, or explicit numbers."""
    if isinstance(spec, str | dict):
        return INITIALIZERS.build(spec, config, path)
    if finite_numbers(spec):
        try:
            return Explicit(spec)
        except ValueError:  # lists of unequal lengths
            pass
    raise config.error(path, f"expected an initializer name, a mapping with 'type', or finite numbers (a number "
                             f"or lists of them, rows of equal length); got {describe_value(spec)}")


def finite_numbers(value: Any) -> bool:
    """Whether `value` is a finite number (within float's range, not a bool) or nested lists of them."""
    if isinstance(value, list):
        return all(finite_numbers(item) for item in value)
    return is_number(value) and finite(value)
