"""The base of every dataset: common options (scaling, one-hot, subsets, validation) applied after reading."""

import math
import os
from pathlib import Path

import numpy as np

from nnctl.data import Dataset, Split
from nnctl.errors import DataError

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


class DatasetSource:
    """Reads raw arrays (`read`), then applies the options every dataset shares; `load` returns a Dataset."""

    num_classes: int | None = None
    """Set by sources that know their class count; otherwise derived from integer labels."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0, flatten: bool = True, one_hot: bool = False,
                 on_value: float = 1.0, off_value: float = 0.0, subset: int | None = None,
                 test_subset: int | None = None, validation: float | int | str | None = None,
                 shuffle: bool = True, base_dir: str = "."):
        if isinstance(validation, str) and validation != "test":
            raise ValueError(f"validation must be a fraction, a count or 'test', got '{validation}'")
        if isinstance(validation, float) and not 0 < validation < 1:
            raise ValueError(f"a validation fraction must be between 0 and 1, got {validation}")
        if isinstance(validation, int) and validation < 1:
            raise ValueError(f"a validation count must be at least 1, got {validation}")
        for name, value in (("subset", subset), ("test_subset", test_subset)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.scale, self.shift, self.flatten = scale, shift, flatten
        self.one_hot, self.on_value, self.off_value = one_hot, on_value, off_value
        self.subset, self.test_subset, self.validation = subset, test_subset, validation
        self.shuffle, self.base_dir = shuffle, Path(base_dir)

    def read(self) -> Arrays:
        """x_train, y_train, x_test, y_test (the test pair may be None)."""
        raise NotImplementedError

    def path(self, name: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        return self.base_dir / Path(name).expanduser()

    def load(self, dtype: type) -> Dataset:
        x, y, x_test, y_test = self.read()
        _check_pair(x, y, "training")
        if self.subset is not None:
            x, y = x[: self.subset], y[: self.subset]
        test = None
        if x_test is not None and y_test is not None:
            _check_pair(x_test, y_test, "test")
            if self.test_subset is not None:
                x_test, y_test = x_test[: self.test_subset], y_test[: self.test_subset]
            test = Split(x_test, y_test)
        labels = y.dtype.kind in "iu" and y.ndim == 1
        num_classes = self.num_classes or (int(y.max()) + 1 if labels else None)
        train, val = self._split_validation(Split(x, y), test)
        splits = [self._prepare(s, dtype, num_classes) if s is not None else None for s in (train, val, test)]
        return Dataset(splits[0], splits[1], splits[2], splits[0].x.shape[1:], num_classes, self.shuffle)

    def _split_validation(self, train: Split, test: Split | None) -> tuple[Split, Split | None]:
        if self.validation is None:
            return train, None
        if self.validation == "test":
            if test is None:
                raise DataError("data.validation is 'test', but this dataset has no test split")
            return train, test
        n = len(train)
        count = math.ceil(self.validation * n) if isinstance(self.validation, float) else self.validation
        if count >= n:
            raise DataError(f"data.validation takes {count} of {n} training samples, leaving none to train on")
        return Split(train.x[: n - count], train.y[: n - count]), Split(train.x[n - count:], train.y[n - count:])

    def _prepare(self, split: Split, dtype: type, num_classes: int | None) -> Split:
        x = split.x.astype(np.float64) * self.scale + self.shift if (self.scale, self.shift) != (1.0, 0.0) \
            else split.x
        x = x.reshape(len(x), -1) if self.flatten else x
        y = split.y
        if self.one_hot:
            if num_classes is None or y.ndim != 1:
                raise DataError("data.one_hot needs integer class labels, one per sample")
            hot = np.full((len(y), num_classes), self.off_value, dtype=dtype)
            hot[np.arange(len(y)), y.astype(np.int64)] = self.on_value
            y = hot
        elif y.dtype.kind in "iu":
            y = y.astype(np.int64)
        else:
            y = y.astype(dtype)
        return Split(np.ascontiguousarray(x, dtype=dtype), y)


def _check_pair(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if len(x) != len(y):
        raise DataError(f"the {what} inputs hold {len(x)} samples but the targets {len(y)}")
    if len(x) == 0:
        raise DataError(f"the {what} split is empty")


def data_root(root: str | None, base_dir: Path) -> Path:
    """data.root (relative to the config), else $NNCTL_DATA_DIR, else $XDG_CACHE_HOME/nnctl or ~/.cache/nnctl."""
    if root:
        return base_dir / Path(root).expanduser()
    if os.environ.get("NNCTL_DATA_DIR"):
        return Path(os.environ["NNCTL_DATA_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnctl"
