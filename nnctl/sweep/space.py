"""A sweep's grid: each key's list of values or range, and the members' values taken from it (every
combination, or draws of a random search)."""

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnctl.limits import capped_product
from nnctl.schema import finite

MAX_REDRAWS = 1000
"""How many draws in a row a random search makes that repeat earlier members before it stops short."""
INT64 = (-(2**63), 2**63 - 1)
"""The ends an integer range may have: what NumPy's generator draws."""


@dataclass(frozen=True)
class Range:
    """A range of values of one grid key: uniform or log-uniform floats, or integers with both ends included."""

    kind: str
    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float | int:
        if self.kind == "integer":
            return int(rng.integers(int(self.low), int(self.high), endpoint=True))
        if self.kind == "loguniform":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def ends(self) -> list[float | int]:
        """The lowest and highest value a draw may take."""
        cast = int if self.kind == "integer" else float
        return [cast(self.low), cast(self.high)]

    @property
    def size(self) -> int:
        """How many values an integer range holds."""
        return int(self.high) - int(self.low) + 1


RANGES = ("uniform", "loguniform", "integer")
Space = dict[str, list | Range]
"""The grid: each key's list of values (choices) or Range."""


def grid_values(space: Space, seed: int, samples: int, random: bool) -> list[dict[str, Any]]:
    """The grid values of each member: every combination, or `samples` of them drawn at random (a `random`
    search: without repeats from lists of values, each key on its own where a key has a range)."""
    keys, rng = list(space), np.random.default_rng(seed)
    if any(isinstance(v, Range) for v in space.values()):
        return _drawn(space, rng, samples)
    lists = [v for v in space.values() if isinstance(v, list)]
    sizes = [len(v) for v in lists]
    total = capped_product(sizes)  # at most MAX_MEMBERS for a grid search (Sweep._check_size); any for a random one
    if random and samples < total:
        chosen = _distinct(rng, sizes, samples)
        return [dict(zip(keys, (v[i] for v, i in zip(lists, c, strict=True)), strict=True)) for c in chosen]
    return [dict(zip(keys, c, strict=True)) for c in itertools.product(*lists)]


def draw_count(space: Space, samples: int) -> int:
    """How many grid values a random search draws: `samples`, or all combinations where there are fewer."""
    if any(isinstance(v, Range) for v in space.values()):
        return samples  # each member's values drawn on their own
    return min(samples, capped_product(len(v) for v in space.values() if isinstance(v, list)))


def _drawn(space: Space, rng: np.random.Generator, samples: int) -> list[dict[str, Any]]:
    """`samples` draws of each key on its own, none the same as an earlier one: a repeat is drawn again, and
    after MAX_REDRAWS repeats in a row (the grid has no more combinations) the draws end short."""
    drawn: list[dict[str, Any]] = []
    seen: set[str] = set()
    repeats = 0
    while len(drawn) < samples and repeats < MAX_REDRAWS:
        values = {k: v.draw(rng) if isinstance(v, Range) else v[rng.integers(len(v))] for k, v in space.items()}
        text = as_text(values)
        repeats = repeats + 1 if text in seen else 0
        if not repeats:
            seen.add(text)
            drawn.append(values)
    return drawn


def as_text(value: Any) -> str:
    """A grid value (or a member's values) as JSON text, which tells 1 from 1.0 and True, and 0.0 from -0.0."""
    return json.dumps(value, sort_keys=True, default=str)


def bounds_problem(kind: str, low: int | float, high: int | float) -> str | None:
    """Why [low, high] cannot be a range of `kind`, or None."""
    if kind == "integer":
        if not (isinstance(low, int) and isinstance(high, int) and low < high):
            return "expected integers low < high"
        if low < INT64[0] or high > INT64[1]:
            return f"expected ends from {INT64[0]:,} to {INT64[1]:,} (64-bit integers, what NumPy draws)"
        return None
    if not (finite(low) and finite(high)):
        return "expected finite numbers within float's range (±1.8e308)"
    if not low < high or (kind == "loguniform" and low <= 0):
        return "expected 0 < low < high" if kind == "loguniform" else "expected low < high"
    if not math.isfinite(float(high) - float(low)):
        return "expected high - low within float's range (±1.8e308)"
    return None


def _distinct(rng: np.random.Generator, sizes: list[int], samples: int) -> list[tuple[int, ...]]:
    """`samples` distinct combinations of indices into lists of `sizes`, in the grid's order (the last list's
    index changes fastest): drawn by their number in that order where NumPy can, else key by key."""
    total = capped_product(sizes)
    if total <= INT64[1]:
        numbers = sorted(int(n) for n in rng.choice(total, samples, replace=False))
        return [_digits(n, sizes) for n in numbers]
    chosen: set[tuple[int, ...]] = set()  # among more than 9e18 combinations a repeat is all but impossible
    while len(chosen) < samples:
        chosen.add(tuple(int(rng.integers(size)) for size in sizes))
    return sorted(chosen)


def _digits(number: int, sizes: list[int]) -> tuple[int, ...]:
    """The indices of combination `number` of itertools.product over lists of `sizes`."""
    digits = []
    for size in reversed(sizes):
        number, digit = divmod(number, size)
        digits.append(digit)
    return tuple(reversed(digits))
