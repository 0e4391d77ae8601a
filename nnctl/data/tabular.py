"""Small datasets given as arrays: written in the YAML, in .npz or .csv files, or logic truth tables."""

import csv
from pathlib import Path

import numpy as np

from nnctl.data import DATASETS
from nnctl.data.source import Arrays, DatasetSource
from nnctl.errors import DataError


def _array(values: list, what: str) -> np.ndarray:
    try:
        return np.asarray(values) if values and not isinstance(values[0], list) else np.asarray(values, float)
    except ValueError as exc:
        raise DataError(f"data.{what}: not a rectangular table of numbers ({exc})") from None


@DATASETS.register("inline")
class Inline(DatasetSource):
    """x and y written in the config (and optionally test_x, test_y)."""

    def __init__(self, x: list, y: list, test_x: list | None = None, test_y: list | None = None, **kwargs):
        super().__init__(**kwargs)
        if (test_x is None) != (test_y is None):
            raise ValueError("give both test_x and test_y, or neither")
        self.x, self.y, self.test_x, self.test_y = x, y, test_x, test_y

    def read(self) -> Arrays:
        test = (None, None) if self.test_x is None else (_array(self.test_x, "test_x"), _array(self.test_y, "test_y"))
        return _array(self.x, "x"), _array(self.y, "y"), *test


@DATASETS.register("logic")
class Logic(DatasetSource):
    """A two-input truth table, rows [1,1], [0,0], [1,0], [0,1]; the test split is the same table."""

    OPS = {"and": [1, 0, 0, 0], "or": [1, 0, 1, 1], "nand": [0, 1, 1, 1], "nor": [0, 1, 0, 0],
           "xor": [0, 0, 1, 1]}
    num_classes = 2

    def __init__(self, op: str = "and", **kwargs):
        super().__init__(**kwargs)
        if op not in self.OPS:
            raise ValueError(f"unknown op '{op}'; known: {', '.join(self.OPS)}")
        self.op = op

    def read(self) -> Arrays:
        x = np.array([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=np.float64)
        y = np.array(self.OPS[self.op], dtype=np.int64)
        return x, y, x.copy(), y.copy()


@DATASETS.register("npz")
class Npz(DatasetSource):
    """Arrays in a .npz file: `x_key`/`y_key` (x, y), or x_train/y_train (+ x_test/y_test) when those are absent."""

    def __init__(self, path: str, x_key: str = "x", y_key: str = "y", test_path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.file, self.x_key, self.y_key, self.test_file = path, x_key, y_key, test_path

    def read(self) -> Arrays:
        arrays = self._open(self.file)
        if self.x_key in arrays and self.y_key in arrays:
            x, y = arrays[self.x_key], arrays[self.y_key]
            test = (arrays.get("x_test"), arrays.get("y_test"))
        elif "x_train" in arrays and "y_train" in arrays:
            x, y = arrays["x_train"], arrays["y_train"]
            test = (arrays.get("x_test"), arrays.get("y_test"))
        else:
            raise DataError(f"{self.path(self.file)}: expected arrays '{self.x_key}' and '{self.y_key}' "
                            f"(or x_train and y_train); it holds {', '.join(arrays) or 'none'}")
        if self.test_file:
            other = self._open(self.test_file)
            test = (other.get(self.x_key), other.get(self.y_key))
        return x, y, *test

    def _open(self, name: str) -> dict[str, np.ndarray]:
        path = self.path(name)
        try:
            with np.load(path, allow_pickle=False) as f:
                return {key: f[key] for key in f.files}
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from None


@DATASETS.register("csv")
class Csv(DatasetSource):
    """A numeric CSV table; column `target` holds the targets (integers become class labels)."""

    def __init__(self, path: str, target: int = -1, header: bool | None = None, delimiter: str = ",",
                 test_path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.file, self.target, self.header, self.delimiter, self.test_file = path, target, header, delimiter, test_path

    def read(self) -> Arrays:
        x, y = self._table(self.path(self.file))
        test = self._table(self.path(self.test_file)) if self.test_file else (None, None)
        return x, y, *test

    def _table(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(path, newline="") as f:
                rows = [row for row in csv.reader(f, delimiter=self.delimiter) if row]
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: cannot read CSV ({exc})") from None
        header = self.header if self.header is not None else bool(rows) and not _numeric(rows[0])
        body, first = (rows[1:], 2) if header else (rows, 1)
        if not body:
            raise DataError(f"{path}: no data rows")
        values = np.empty((len(body), len(body[0])))
        for i, row in enumerate(body):
            if len(row) != values.shape[1]:
                raise DataError(f"{path}:{i + first}: {len(row)} columns, expected {values.shape[1]}")
            for j, cell in enumerate(row):
                try:
                    values[i, j] = float(cell)
                except ValueError:
                    raise DataError(f"{path}:{i + first}: column {j + 1}: '{cell}' is not a number") from None
        if not -values.shape[1] <= self.target < values.shape[1]:
            raise DataError(f"{path}: data.target {self.target} is not one of its {values.shape[1]} columns")
        y = values[:, self.target]
        x = np.delete(values, self.target % values.shape[1], axis=1)
        return x, (y.astype(np.int64) if np.all(y == np.round(y)) else y)


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
        return True
    except ValueError:
        return False
