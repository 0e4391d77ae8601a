"""Small datasets given as arrays: written in the YAML, or read from .npz or .csv files."""

import csv
import itertools
from pathlib import Path
from typing import Literal

import numpy as np

from nnctl.data.npyfile import npz_shapes, read_npz
from nnctl.data.source import DATASETS, Arrays, EitherTargets, FileSource, HeldOut, numbers_array
from nnctl.errors import DataError
from nnctl.files import regular_file
from nnctl.limits import too_big


@DATASETS.register("inline")
class Inline(EitherTargets):
    """x and y written in the config (and optionally test_x, test_y)."""

    def __init__(self, x: list, y: list, test_x: list | None = None, test_y: list | None = None, **kwargs):
        super().__init__(**kwargs)
        if (test_x is None) != (test_y is None):
            raise ValueError("give both test_x and test_y, or neither")
        self.x, self.y, self.test_x, self.test_y = x, y, test_x, test_y

    def origin(self, split: str) -> str:
        return "data.test_x/test_y" if split == "test" else "data.x/y"

    def peek(self) -> tuple[int, ...]:
        return _array(self.x, "x").shape[1:]

    def read(self) -> Arrays:
        test = ((None, None) if self.test_x is None or self.test_y is None
                else (_array(self.test_x, "test_x"), _array(self.test_y, "test_y")))
        return _array(self.x, "x"), _array(self.y, "y"), *test


def _array(values: list, key: str) -> np.ndarray:
    try:
        return numbers_array(values, f"data.{key}")
    except ValueError:
        raise DataError(f"data.{key}: not a rectangular table (its rows differ in length)") from None


@DATASETS.register("npz")
class Npz(EitherTargets, FileSource):
    """Arrays in a .npz file: `x_key`/`y_key`, else x_train/y_train; test split from x_test/y_test if present, and
    with `validation: file` the validation split from x_val/y_val.

    A `test_path` file supplies the test split instead, from its `x_key`/`y_key`, else its x_test/y_test."""

    def __init__(self, path: str, x_key: str = "x", y_key: str = "y", test_path: str | None = None,
                 validation: HeldOut | Literal["test", "file"] | None = None, **kwargs):
        if validation == "file" and kwargs.get("validation_from") == "random":
            raise ValueError("validation_from: random draws the validation split from the training samples, but "
                             "validation: file reads it from the file's x_val and y_val; leave one of them out")
        super().__init__(validation=None if validation == "file" else validation, **kwargs)
        self.validation = validation
        self.file, self.x_key, self.y_key, self.test_file = path, x_key, y_key, test_path
        self.input_keys = (x_key,)

    def read(self) -> Arrays:
        arrays = self._open(self.file)
        train = _pair(arrays, [(self.x_key, self.y_key), ("x_train", "y_train")], self.origin("training"))
        held: tuple[str, ...] = ()
        if self.validation == "file":
            held = _pair(arrays, [VAL_KEYS], f"{self.origin('training')} (data.validation: file)")
            self.held = arrays[held[0]], arrays[held[1]]
        test_arrays = self._open(self.test_file) if self.test_file else arrays
        test_keys = [(self.x_key, self.y_key)] if self.test_file else []
        if not (self.test_file or "x_test" in arrays or "y_test" in arrays):
            self._note_unread(self.file, arrays, (*train, *held))
            return arrays[train[0]], arrays[train[1]], None, None
        test = _pair(test_arrays, [*test_keys, ("x_test", "y_test")], self.origin("test"))
        if self.test_file:
            self._note_unread(self.test_file, test_arrays, test)
        self._note_unread(self.file, arrays, (*train, *held, *(() if self.test_file else test)))
        return arrays[train[0]], arrays[train[1]], test_arrays[test[0]], test_arrays[test[1]]

    def _note_unread(self, name: str, arrays: dict[str, np.ndarray], read: tuple[str, ...]) -> None:
        """A line for the run's log naming the arrays of the file `name` that no split is read from."""
        if unread := [key for key in arrays if key not in read]:
            held = set(VAL_KEYS) <= set(unread) and name == self.file
            self.notes.append(f"data: {self.path(name).name} holds arrays that no split is read from: "
                              f"{', '.join(unread)} (the splits are read from data.x_key and y_key, here "
                              f"{self.x_key} and {self.y_key}, else x_train and y_train, x_test and y_test"
                              + ("; data.validation: file validates on x_val and y_val" if held else "") + ")")

    def peek(self) -> tuple[int, ...]:
        """From the header of the inputs' array in the archive; no array is read."""
        shapes = npz_shapes(self.path(self.file))
        for x_key, y_key in [(self.x_key, self.y_key), ("x_train", "y_train")]:
            if x_key in shapes and y_key in shapes:
                return shapes[x_key][1:]
        return self.read()[0].shape[1:]  # fails with the message reading it gives

    def _open(self, name: str) -> dict[str, np.ndarray]:
        return read_npz(self.path(name))


VAL_KEYS = ("x_val", "y_val")
"""The validation split of an .npz (Keras's name for it), read with data.validation: file."""


def _pair(arrays: dict[str, np.ndarray], keys: list[tuple[str, str]], origin: str) -> tuple[str, str]:
    """The first (x, y) key pair that `arrays` holds both of."""
    for x_key, y_key in keys:
        if x_key in arrays and y_key in arrays:
            return x_key, y_key
    wanted = " or ".join(f"'{x}' and '{y}'" for x, y in keys)
    raise DataError(f"{origin}: expected arrays {wanted}; it holds {', '.join(arrays) or 'none'}")


@DATASETS.register("csv")
class Csv(EitherTargets, FileSource):
    """A numeric CSV table; column `target` holds the targets (data.targets: auto guesses, as a CSV has no dtypes)."""

    def __init__(self, path: str, target: int = -1, header: bool | None = None, delimiter: str = ",",
                 test_path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if len(delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got '{delimiter}'")
        self.file, self.target, self.header, self.delimiter, self.test_file = path, target, header, delimiter, test_path
        self.input_delimiter = delimiter

    def read(self) -> Arrays:
        x, y = self._table(self.path(self.file))
        if not self.test_file:
            return x, y, None, None
        x_test, y_test = self._table(self.path(self.test_file))
        if x_test.shape[1] != x.shape[1]:
            raise DataError(f"{self.origin('test')}: {x_test.shape[1] + 1} columns, but the training file "
                            f"{self.path(self.file).name} has {x.shape[1] + 1}; the test file needs the same columns")
        return x, y, x_test, y_test

    def peek(self) -> tuple[int, ...]:
        """From the first data row; the rest of the file is not read."""
        path = self.path(self.file)
        _, rows = _rows(path, self.header, self.delimiter, limit=2)
        if len(rows[0]) < 2:
            raise DataError(f"{path}: one column only; expected inputs and a target column")
        return (len(rows[0]) - 1,)

    def guess(self, y: np.ndarray) -> str:
        """Whole numbers from 0 below AUTO_CLASSES are labels, others values; the run's log says which."""
        labels = bool(np.all(y == np.round(y)) and y.min() >= 0 and y.max() < AUTO_CLASSES)
        name = self.path(self.file).name
        self.notes.append(f"data: {name}'s targets read as class labels 0–{int(y.max())} (set data.targets: values "
                          "for regression)" if labels else
                          f"data: {name}'s targets read as values (regression; set data.targets: labels for classes)")
        return "labels" if labels else "values"

    def what_targets(self, split: str) -> str:
        return f"the {split} targets (column {self.target})"

    def _table(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets (float64, read as data.targets says later) of one file."""
        values = read_table(path, self.header, self.delimiter)
        width = values.shape[1]
        if width < 2:
            raise DataError(f"{path}: one column only; expected inputs and a target column")
        if not -width <= self.target < width:
            raise DataError(f"{path}: data.target {self.target} is not one of its {width} columns")
        return np.delete(values, self.target % width, axis=1), values[:, self.target]


CSV_COST = 32
"""What reading a CSV costs in memory per byte of it at most: a cell of one digit and its comma (2 bytes) is a str and a
list slot (about 58 bytes) and then a float."""
AUTO_CLASSES = 1000
"""With data.targets: auto, whole numbers from 0 below this are class labels; others are values (regression)."""


def read_table(path: Path, header: bool | None = None, delimiter: str = ",") -> np.ndarray:
    """A numeric CSV table as float64 rows (a header row is detected when `header` is None)."""
    lines, rows = _rows(path, header, delimiter)
    width = len(rows[0])
    for line, row in zip(lines, rows, strict=True):
        if len(row) != width:
            raise DataError(f"{path}:{line}: {len(row)} columns, expected {width}")
    try:
        values = np.array(rows, dtype=np.float64)  # cell by cell: dtype=str pads every cell to the longest
    except ValueError:
        raise _bad_cell(path, lines, rows, delimiter) from None
    if not np.isfinite(values).all():  # nan, inf, or a number past float's range such as 1e400
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"{path}:{lines[i]}: column {j + 1} is {'NaN' if np.isnan(values[i, j]) else 'infinite'}, "
                        "not a finite number; fill it in or drop the row")
    return values


def _rows(path: Path, header: bool | None, delimiter: str,
          limit: int | None = None) -> tuple[list[int], list[list[str]]]:
    """The file's non-blank rows after any header (of its first `limit` non-blank rows), with their line numbers."""
    size = regular_file(path, DataError, "file")
    problem = limit is None and too_big(size * CSV_COST, f"{path}: {size:,} bytes of CSV as rows of cells")
    if problem:  # the first `limit` rows (a peek at the shape) cost little, whatever the file's size
        raise DataError(problem)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM (Excel's) is not part of a cell
            reader = csv.reader(f, delimiter=delimiter)
            rows = itertools.islice((row for row in reader if row), limit)
            numbered = [(reader.line_num, row) for row in rows]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if numbered:
        _check_delimiter(path, delimiter, *numbered[0])
    header = header if header is not None else bool(numbered) and _is_header(path, *numbered[0])
    numbered = numbered[1:] if header else numbered
    if not numbered:
        raise DataError(f"{path}: no data rows")
    return [line for line, _ in numbered], [row for _, row in numbered]


DELIMITERS = (",", ";", "\t", "|")
"""The separators a CSV is commonly written with (Excel's in much of Europe is ';')."""


def _check_delimiter(path: Path, delimiter: str, line: int, row: list[str]) -> None:
    """DataError when the first row is one cell holding another common separator: the file is separated by it, and
    every row would be read as one column (its first taken for a header)."""
    other = next((d for d in DELIMITERS if d != delimiter and len(row) == 1 and d in row[0]), None)
    if other is not None:
        raise DataError(f"{path}:{line}: one column, whose cells hold {other!r}: the file looks separated by "
                        f"{other!r}, not {delimiter!r} (a csv dataset's data.delimiter says which, for the .csv "
                        "inputs of its predict too; other models' are read with ',')")


def _is_header(path: Path, line: int, row: list[str]) -> bool:
    """Whether the first row is a header: names in most cells. Numbers in most of them, with a name among them,
    is a typo in the first data row or a header of numbers: DataError rather than a row dropped unseen."""
    names = sum(not _is_number(cell) for cell in row)
    if 0 < names <= len(row) / 2:
        raise DataError(f"{path}:{line}: the first row holds numbers but column {_bad_column(row) + 1} is not one: "
                        "a typo in the first row, or a header of numbers? (a csv dataset's data.header: true or "
                        "false says which)")
    return names > 0


def _not_a_number(cell: str, delimiter: str) -> str:
    """Why a cell that is no number may be so: a comma in a number, another separator, else a name."""
    if _is_number(cell.replace(",", ".", 1)):
        return ("it has a comma (a decimal comma, or one between thousands?), and nnctl reads plain numbers with a "
                "decimal point (1234.5): save the file so")
    other = next((d for d in DELIMITERS if d != delimiter and d in cell), None)
    if other is not None:
        return (f"it holds {other!r}: is the file separated by {other!r}, not {delimiter!r}? (a csv dataset's "
                "data.delimiter says which)")
    return "every cell must be one (class names too: number them 0, 1, ...)"


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _bad_column(row: list[str]) -> int:
    """The index of the first cell that is not a number, or -1."""
    return next((j for j, cell in enumerate(row) if not _is_number(cell)), -1)


def _bad_cell(path: Path, lines: list[int], rows: list[list[str]], delimiter: str) -> DataError:
    """A DataError naming the first non-numeric cell by line and column, not by its text (see parse_tree)."""
    for line, row in zip(lines, rows, strict=True):
        if (j := _bad_column(row)) >= 0:
            if not row[j].strip():
                return DataError(f"{path}:{line}: column {j + 1} is empty")
            return DataError(f"{path}:{line}: column {j + 1} is not a number; {_not_a_number(row[j], delimiter)}")
    return DataError(f"{path}: cannot read the table as numbers")
