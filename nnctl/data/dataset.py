"""What a dataset hands to the runner: its splits of arrays, the input shape and the classes."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    """Inputs and targets of one split; `y` holds integer labels or float targets."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Dataset:
    """What a source loads: the splits, the input shape of one sample, and the class count if any."""

    train: Split
    val: Split | None
    test: Split | None
    input_shape: tuple[int, ...]
    num_classes: int | None
    shuffle: bool = True
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    """Random changes to each training batch (never to val/test), drawn from the run's data generator."""
    vocab: list[str] | None = None
    """The tokens that input and target ids stand for (text datasets); saved with every checkpoint."""

    def split(self, name: str) -> Split | None:
        """The split called `name`: train, val or test."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]
