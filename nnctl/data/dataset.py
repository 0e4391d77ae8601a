"""What a dataset hands to the runner: its splits of arrays, the input shape and the classes."""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from nnctl.backend import current_device, fits_on_device, on_cpu, to_device


@dataclass
class Split:
    """Inputs and targets of one split; `y` holds integer labels or float targets."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def nbytes(self) -> int:
        return self.x.nbytes + self.y.nbytes

    def take(self, rows: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of `rows` on the current device (no copy where the split is there already)."""
        return to_device(self.x[rows]), to_device(self.y[rows])

    def batches(self, selections: Iterable[slice | np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """`take` of each selection in turn. A split left on the host while a GPU computes has the next batch
        gathered and copied over on a worker thread while the caller computes on the current one."""
        if on_cpu() or not isinstance(self.x, np.ndarray):
            yield from map(self.take, selections)
            return
        device = current_device()  # the worker copies to the caller's device (CuPy's is one per thread)

        def take_there(rows: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with device:
                return self.take(rows)

        with ThreadPoolExecutor(1, thread_name_prefix="nnctl-feed") as worker:
            ahead = None
            for rows in selections:
                following = worker.submit(take_there, rows)
                if ahead is not None:
                    yield ahead.result()
                ahead = following
            if ahead is not None:
                yield ahead.result()

    def to_device(self) -> "Split":
        return Split(to_device(self.x), to_device(self.y))


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

    def to_device(self) -> None:
        """Moves the splits to the current device once, when they fit in its free memory; otherwise each batch
        goes over when it is used (`batches`, `take`); both are no-ops on the CPU."""
        splits = [s for s in (self.train, self.val, self.test) if s is not None]
        if not on_cpu() and fits_on_device(sum(s.nbytes() for s in splits)):
            self.train = self.train.to_device()
            self.val = self.val and self.val.to_device()
            self.test = self.test and self.test.to_device()

    def split(self, name: str) -> Split | None:
        """The split called `name`: train, val or test."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]
