"""Random changes to training images, drawn per sample from the run's data generator: shifts and flips."""

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from nnctl.backend import to_device, xp
from nnctl.errors import KeyValueError
from nnctl.layers.window import Window, pad, windows
from nnctl.schema import Natural, as_declared, did_you_mean, expected, matches


@dataclass(frozen=True)
class Augment:
    """`shift`: move each image up to this many pixels along each axis, filling with zeros (a random crop of
    the image padded by `shift`); `flip`: mirror half of the images left to right."""

    shift: Natural = 0
    flip: bool = False

    @classmethod
    def of(cls, options: dict[str, Any]) -> "Augment":
        """From the config's `data.augment` mapping; KeyValueError names a bad key or value."""
        hints = {field.name: field.type for field in fields(cls)}
        if not isinstance(options, dict):
            raise ValueError(f"augment must be a mapping such as {{shift: 4, flip: true}}, got {options!r}")
        for key, value in options.items():
            if key not in hints:
                raise KeyValueError(("data", "augment", key), f"unknown key{did_you_mean(key, hints)}; expected one "
                                                               f"of: {', '.join(hints)}")
            if not matches(value, hints[key]):
                raise KeyValueError(("data", "augment", key), expected(hints[key], value))
        return cls(**{key: as_declared(value, hints[key]) for key, value in options.items()})

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A changed copy of the batch x (N, C, H, W), on x's device; the draws come from the run's generator."""
        x = self._shifted(x, rng) if self.shift else x.copy()
        if self.flip:
            flipped = to_device(np.flatnonzero(rng.random(len(x)) < 0.5))
            x[flipped] = x[flipped, :, :, ::-1]
        return x

    def _shifted(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, c, h, w = x.shape
        s = self.shift
        padded = pad(x, ((s, s), (s, s)))
        crops = windows(padded, Window((h, w), (1, 1)), (2 * s + 1, 2 * s + 1))
        rows, cols = (to_device(a) for a in rng.integers(0, 2 * s + 1, size=(2, n)))
        return crops[xp.arange(n), :, rows, cols]
