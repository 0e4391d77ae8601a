"""The base of every dataset source: common options (scaling, one-hot, subsets, validation) applied after reading,
and the registry of sources by name."""

import math
import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from nnctl.backend import as_indices
from nnctl.data.augment import Augment
from nnctl.data.dataset import Dataset, Split
from nnctl.data.download import SCHEMES, fetch_first
from nnctl.errors import DataError, KeyValueError
from nnctl.limits import too_big
from nnctl.registry import Registry
from nnctl.schema import Above, AtLeast, AtMost, Below, Count

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]
MAX_LABEL = 2**31 - 1
"""The largest class label `data.classes` may name."""
_CHUNK = 4096  # rows scaled at a time: bounds the float64 temporary and is ~3x faster than one pass on MNIST


HeldOut = Annotated[float, Above(0), Below(1)] | Count
"""The validation split: a fraction of the training samples, or a count of them."""


class DatasetSource:
    """Reads raw arrays (`read`), then applies the options every dataset shares; `load` returns a Dataset."""

    registered_name: ClassVar[str] = "dataset"
    num_classes: int | None = None
    """Set by sources that know their class count; otherwise derived from integer labels."""
    class_names: list[str] | None = None
    """The name of each class, by label, where the data names them (an images folder's class folders)."""
    indices: bool = False
    """True for sources whose inputs are indices (word ids, tree node tables): kept as int64, never scaled."""
    raw_shape: tuple[int, ...] | None = None
    """The shape of one raw sample, for sources that know it without reading anything (MNIST's (1, 28, 28))."""
    input_keys: tuple[str, ...] = ()
    """The arrays of an .npz that `predict` reads inputs from before the usual x and x_test (an npz's x_key)."""
    input_delimiter = ","
    """The separator of the .csv inputs of `predict`: a csv dataset's own."""
    regression_hint = "store regression targets as floats"
    """How integer targets that are no class labels are given as values instead, for the errors that meet them."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0, flatten: bool = True, one_hot: bool = False,
                 on_value: float = 1.0, off_value: float = 0.0, subset: Count | None = None,
                 test_subset: Count | None = None, validation: HeldOut | Literal["test"] | None = None,
                 shuffle: bool = True, normalize: bool = False, augment: dict | None = None,
                 classes: list[Annotated[int, AtLeast(0), AtMost(MAX_LABEL)]] | None = None,
                 validation_from: Literal["end", "random"] = "end", base_dir: str = ".", run_seed: int = 0):
        for options, given in (("scale and shift do", (scale, shift) != (1.0, 0.0)), ("normalize does", normalize),
                               ("augment does", bool(augment))):
            if self.indices and given:
                raise ValueError(f"{options} not apply to {self.registered_name}: its inputs are indices")
        if classes is not None and (not classes or len(set(classes)) != len(classes)):
            raise ValueError(f"classes must list distinct class labels, got {classes}")
        self.scale, self.shift, self.flatten = scale, shift, flatten
        self.one_hot, self.on_value, self.off_value = one_hot, on_value, off_value
        self.subset, self.test_subset = subset, test_subset
        self.validation: HeldOut | Literal["test", "file"] | None = validation
        """'file' (an npz's own validation arrays) only where a source offers it."""
        self.shuffle, self.base_dir = shuffle, Path(base_dir)
        self.validation_from, self.run_seed = validation_from, run_seed
        self.normalize = normalize
        self.classes = classes
        self.augment = Augment.of(augment) if augment else None
        self.sample_shape: tuple[int, ...] | None = None
        """The shape of one raw sample as read (before flatten); known once loaded."""
        self.channel_stats: tuple[np.ndarray, np.ndarray] | None = None
        """The training split's per-channel mean and standard deviation, when `normalize` asks for them."""
        self.notes: list[str] = []
        """What the source guessed about the data where the config left it open, or left unread, for the run's log."""
        self.warnings: list[str] = []
        """What looks wrong in the data as loaded, though it can be trained on, for the run to warn of."""
        self.held: tuple[np.ndarray, np.ndarray] | None = None
        """The validation inputs and targets the data holds apart (data.validation: file), set by `read`."""

    def read(self) -> Arrays:
        """x_train, y_train, x_test, y_test (the test pair may be None)."""
        raise NotImplementedError

    def peek(self) -> tuple[int, ...]:
        """The shape of one raw sample, from as little of the data as the source must read (nothing if it knows)."""
        return self.raw_shape or self.read()[0].shape[1:]

    def input_shape(self, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
        """One sample as the model takes it: raw samples of `sample_shape`, flattened if data.flatten asks."""
        return (math.prod(sample_shape),) if self.flatten else tuple(sample_shape)

    def origin(self, split: str) -> str:
        """Where the `split` ('training' or 'test') arrays come from, to start error messages."""
        return f"data ({self.registered_name})"

    def labels_hint(self, num_classes: int | None) -> str:
        """What to do where a loss that compares outputs with values (mse) meets these class labels: the data's
        labels are what they are, so the model must fit them."""
        units = f" (units: {num_classes})" if num_classes else ""
        return (f"{self.registered_name} holds class labels only: give the last layer one output per "
                f"class{units}, or use softmax_cross_entropy")

    def path(self, name: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        return self.base_dir / Path(name).expanduser()

    def load(self, dtype: type) -> Dataset:
        """Reads the arrays and applies subset, scale/shift, flatten, validation split and one-hot."""
        whole, test, given = self._read_splits()
        train = _first(whole, self.subset)
        test = None if test is None else _first(test, self.test_subset)
        self.sample_shape = train.x.shape[1:]
        # the labels of all the training samples: the first ones (data.subset) may lack a class, as a smoke test
        num_classes = self._classes(train, {"test": test, "validation": given}, whole.y)
        train, val = self._split_validation(train, test, given)
        self._check_memory([train, val, test], dtype, num_classes)
        self.channel_stats = self._statistics(train.x, dtype)
        train = self._prepare(train, dtype, num_classes)
        val, test = (self._prepare(s, dtype, num_classes) if s is not None else None for s in (val, test))
        self._check_augment(train.x)
        return Dataset(train, test if self.validation == "test" else val, test, train.x.shape[1:], num_classes,
                       self.shuffle, self.augment)

    def _read_splits(self) -> tuple[Split, Split | None, Split | None]:
        """The training split as read (only data.classes' samples), and the test and validation (data.validation:
        file) splits the data holds apart from it, each checked."""
        self.notes, self.warnings, self.held = [], [], None
        x, y, x_test, y_test = self.read()
        y, y_test = self.targets_of(y, y_test)
        held = None if self.held is None else (self.held[0], self.targets_of(y, self.held[1])[1])
        self._check(x, y, "training")
        self._note_raw_bytes(x)
        train = Split(*self._only_classes(x, y, "training")) if self.classes is not None else Split(x, y)
        test = None if x_test is None or y_test is None else self._apart(train, x_test, y_test, "test")
        given = None if held is None else self._apart(train, *held, "validation")
        return train, test, given

    def _statistics(self, x: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray] | None:
        """The per-channel mean and standard deviation of the training inputs x as read (unflattened), where
        data.normalize asks for them; DataError for samples it cannot take them of."""
        if not self.normalize:
            return None
        if x.ndim > 4 or self.indices:
            raise DataError(f"{self.origin('training')}: data.normalize takes each channel's statistics of "
                            f"images (channels, height, width), or each feature's of sequences (steps, "
                            f"features), of flat samples or of single values, but the samples have shape "
                            f"{x.shape[1:]}")
        return channel_stats(self._scaled(x, dtype))

    def _check_augment(self, x: np.ndarray) -> None:
        """DataError where data.augment meets prepared training inputs x that are no images, or a shift that
        would move them off their frame."""
        if not self.augment:
            return
        if x.ndim != 4:
            images = self.flatten and len(self.sample_shape or ()) == 3
            raise DataError(f"{self.origin('training')}: data.augment shifts and flips images (channels, height, "
                            f"width), but the samples have shape {x.shape[1:]}; "
                            + ("set data.flatten: false" if images else "leave data.augment out for such data"))
        if self.augment.shift >= min(x.shape[2:]):
            raise KeyValueError(("data", "augment", "shift"), f"{self.augment.shift} pixels would move a "
                                f"{x.shape[2]}×{x.shape[3]} image off its frame; shift by less than "
                                f"{min(x.shape[2:])}")

    def _apart(self, train: Split, x: np.ndarray, y: np.ndarray, split: str) -> Split:
        """The `split` read apart from the training samples (test, or validation), checked against them."""
        if self.classes is not None:
            x, y = self._only_classes(x, y, split)
        self._check(x, y, split)
        if (x.shape[1:], y.shape[1:]) != (train.x.shape[1:], train.y.shape[1:]):
            raise DataError(f"{self.origin(split)}: {split} samples of shape {x.shape[1:]} with targets of shape "
                            f"{y.shape[1:]}, but training samples of shape {train.x.shape[1:]} with targets of "
                            f"shape {train.y.shape[1:]}")
        _check_target_kinds(train.y, y, self.origin(split), split)
        return Split(x, y)

    def _note_raw_bytes(self, x: np.ndarray) -> None:
        """A note where the inputs are bytes past 1 (pixels 0–255, as Keras's mnist.npz holds them) that neither
        scale nor normalize touches: they train as they are, with losses in the tens."""
        if x.dtype == np.uint8 and (self.scale, self.shift) == (1.0, 0.0) and not (self.normalize or self.indices) \
                and x.max() > 1:
            self.notes.append(f"data: the inputs of {self.origin('training')} are bytes (uint8, up to {x.max()}), "
                              "taken as they are; for pixels in [0, 1] set data.scale: 0.00392156862745098 (1/255), "
                              "or data.normalize: true")

    def targets_of(self, y: np.ndarray, y_test: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Both splits' targets as read: boolean ones, one per sample, as the labels 0 and 1."""
        return _bool_labels(y), None if y_test is None else _bool_labels(y_test)

    def _check(self, x: np.ndarray, y: np.ndarray, split: str) -> None:
        where = self.origin(split)
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise DataError(f"{where}: the {split} inputs have shape {x.shape} but the targets {y.shape}: "
                            "expected the same number of samples along the first axis")
        if len(x) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if 0 in x.shape[1:]:
            raise DataError(f"{where}: the {split} samples have shape {list(x.shape[1:])}, which holds no values")
        for what, a in (("inputs", x), ("targets", y)):
            if a.dtype.kind not in "biuf":
                hint = "; class labels are integers from 0: number the class names 0, 1, ..." * (what == "targets")
                raise DataError(f"{where}: the {split} {what} are not numbers (dtype {a.dtype}){hint}")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
                raise DataError(f"{where}: the {split} {what} hold NaN or infinite values, the first at index "
                                f"{list(first)} (sample {first[0]}); fill them in or drop those samples")
        if y.dtype.kind == "i" and y.min() < 0:
            raise DataError(f"{where}: the {split} targets hold the negative integer {y.min()}; class labels "
                            f"count from 0 ({self.regression_hint})")
        if y.dtype.kind == "u" and y.max() > np.iinfo(np.int64).max:  # would wrap to a negative int64 label
            raise DataError(f"{where}: the {split} targets hold the integer {y.max()}, past int64's range; class "
                            f"labels go up to {MAX_LABEL:,} ({self.regression_hint})")

    def _only_classes(self, x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The samples whose label `classes` lists, labelled by their place in that list (5, 6, 7 -> 0, 1, 2)."""
        assert self.classes is not None, "called for data.classes only"
        if y.dtype.kind not in "iu" or y.ndim != 1:
            raise DataError(f"{self.origin(split)}: data.classes picks classes by label, but the targets are not "
                            f"integer labels (shape {list(y.shape)}, dtype {y.dtype})")
        keep = np.isin(y, self.classes)
        if not keep.any():
            raise DataError(f"{self.origin(split)}: no {split} sample has one of the labels {self.classes}")
        if split == "training":
            self._check_classes_present(y)
        order = np.argsort(self.classes)  # each kept label's place in `classes`, found in the sorted list
        return x[keep], order[np.searchsorted(np.asarray(self.classes)[order], y[keep])].astype(y.dtype)

    def _check_classes_present(self, y: np.ndarray) -> None:
        """DataError for a label of data.classes that no training sample has: its output could never be learnt."""
        assert self.classes is not None, "called for data.classes only"
        missing = sorted(set(self.classes) - set(np.unique(y).tolist()))
        if missing:
            raise DataError(f"{self.origin('training')}: data.classes lists {', '.join(map(str, missing))}, but no "
                            f"training sample has {'that label' if len(missing) == 1 else 'those labels'} (they run "
                            f"from {y.min()} to {y.max()}); remove {'it' if len(missing) == 1 else 'them'} from "
                            "data.classes")

    def _classes(self, train: Split, apart: dict[str, Split | None], labels: np.ndarray) -> int | None:
        """The class count: the source's own, else max label + 1 when the targets are integer labels, one per
        sample (N,) or one per time step (N, T); integer one-hot rows are not labels. `labels` are the training
        targets before data.subset, which the labels of the splits read `apart` (test, validation) must not pass."""
        if self.classes is not None:
            return len(self.classes)
        splits = [s for s in (train, *apart.values()) if s is not None]
        if any(s.y.dtype.kind not in "iu" or s.y.ndim > 2 or _one_hot(s.y) for s in splits):
            return self.num_classes
        top = max(int(s.y.max()) for s in splits)
        for name, split in apart.items():
            if self.num_classes is None and split is not None and int(split.y.max()) > int(labels.max()):
                raise DataError(f"{self.origin(name)}: the {name} targets hold the label {int(split.y.max())}, past "
                                f"the training labels (0 to {int(labels.max())}): no training sample has that "
                                "class, so no output of the model could learn it")
        if self.num_classes is not None and top >= self.num_classes:
            raise DataError(f"{self.origin('training')}: label {top} is out of range for "
                            f"{self.num_classes} classes")
        return self.num_classes or top + 1

    def _split_validation(self, train: Split, test: Split | None, given: Split | None) -> tuple[Split, Split | None]:
        if self.validation == "file":
            return train, given
        if self.validation is None or self.validation == "test":
            if self.validation == "test" and test is None:
                raise DataError(f"{self.origin('test')}: data.validation is 'test', but there is no test split")
            return train, None
        kept, held = self._validation_rows(len(train))
        val = Split(train.x[held], train.y[held])
        train = Split(train.x[kept], train.y[kept])
        if self.validation_from == "end" and (warning := self._unlike_classes(train.y, val.y)):
            self.warnings.append(warning)
        return train, val

    def _validation_rows(self, n: int) -> tuple[slice | np.ndarray, slice | np.ndarray]:
        """The rows of n samples that train and those that validate: the last ones, or drawn with the run's seed
        (in a stream of their own, so the other draws stay as they were), each part in the file's order."""
        count = self.validation_count(n)
        if self.validation_from == "end":
            return slice(n - count), slice(n - count, n)
        drawn = np.random.default_rng([self.run_seed, 3]).permutation(n)
        return np.sort(drawn[: n - count]), np.sort(drawn[n - count:])

    def _unlike_classes(self, y: np.ndarray, y_val: np.ndarray) -> str | None:
        """A warning where the last samples, held out for validation, hold a class the training part lacks, or lack
        classes that a random split of their size would lack less than once in 100 draws, as a file sorted by class
        gives; None otherwise."""
        if y.ndim != 1 or y.dtype.kind not in "iu":
            return None
        labels, counts = np.unique(y, return_counts=True)
        held = np.unique(y_val)
        unseen = np.setdiff1d(held, labels)
        lacking = ~np.isin(labels, held)
        missing = labels[lacking]
        if len(unseen):
            holds = f"class {self._labels(unseen)}, which no sample of the training part has"
        elif len(missing) and (1 - counts[lacking].sum() / len(y)) ** len(y_val) < 0.01:
            holds = (f"only class {self._labels(held)}" if len(held) == 1 else f"no sample of class "
                     f"{self._labels(missing)}") + f", though the training part has {len(labels)} classes"
        else:
            return None
        return (f"data.validation (the last {len(y_val):,} samples of {self.origin('training')}) holds {holds}: are "
                "the samples sorted by class? val_loss, val_accuracy and early stopping would not measure what "
                "they should; set data.validation_from: random to draw the validation split at random (with the "
                "run's seed)")

    def _labels(self, classes: np.ndarray) -> str:
        """Classes as the data names them: their labels in data.classes where that list relabelled them, the names
        the data gives them (an images folder's class folders), else their numbers."""
        names: list[int] | list[str] | None = self.classes if self.classes is not None else self.class_names
        return ", ".join(str(names[c] if names is not None else c) for c in classes.tolist())

    def validation_count(self, n: int) -> int:
        """How many of n training samples data.validation holds out (0 for none or 'test')."""
        validation = self.validation
        if validation is None or isinstance(validation, str):  # "test": the test split validates
            return 0
        count = math.ceil(validation * n) if isinstance(validation, float) else validation
        if count >= n:
            kept = f" (data.subset keeps {self.subset})" if self.subset is not None and self.subset <= n else ""
            raise KeyValueError(("data", "validation"), f"holds out {count} of the {n} training samples{kept}, "
                                "leaving none to train on; make data.validation smaller"
                                + (" or data.subset larger" if kept else ""))
        return count

    def inputs(self, x: np.ndarray, dtype: type) -> np.ndarray:
        """Raw samples as the model takes them: indices as int64, anything else as x * scale + shift, normalized
        per channel with the training statistics once they are known; then flattened if asked."""
        sample = x.shape[1:]
        x = x.reshape(len(x), -1) if self.flatten else x
        if self.indices:
            return np.ascontiguousarray(as_indices(x, f"the inputs of a {self.registered_name} model"))
        with np.errstate(over="ignore", invalid="ignore"):  # a value past the dtype's range: refused below
            x = self._scaled(x, dtype)
            if self.channel_stats is not None:
                mean, std = (np.broadcast_to(s, sample).reshape(x.shape[1:]) if s.ndim == len(sample) else s
                             for s in self.channel_stats)  # per channel, laid out as x is (an earlier nnctl's: as is)
                x = ((x - mean) / std).astype(dtype)
        if not np.isfinite(x).all():
            raise DataError(f"the inputs hold values beyond {np.dtype(dtype).name}'s range once scaled and shifted "
                            f"(data.scale, data.shift): they would be infinite")
        return x

    def _check_memory(self, splits: list[Split | None], dtype: type, num_classes: int | None) -> None:
        """DataError where the splits as the model takes them, kept together, would pass the memory limit: checked
        before any is made, since a file of bytes (images, MNIST) grows 4 to 8 times as floats."""
        kept = [split for split in splits if split is not None]
        if self.one_hot and num_classes:
            self._check_one_hot(sum(map(len, kept)), num_classes, dtype)
        nbytes = sum(self._prepared_bytes(split, dtype, num_classes) for split in kept)
        what = "indices (int64)" if self.indices else np.dtype(dtype).name
        if problem := too_big(nbytes, f"{self.origin('training')}: {sum(map(len, kept)):,} samples of "
                                      f"{'×'.join(map(str, kept[0].x.shape[1:]))} as {what}"):
            raise DataError(f"{problem}; or keep fewer samples (data.subset, data.test_subset)")

    def _check_one_hot(self, count: int, num_classes: int, dtype: type) -> None:
        """DataError where one-hot targets for `count` samples would pass the memory limit: a label past the
        class numbers, more likely than so many classes."""
        if problem := too_big(count * num_classes * np.dtype(dtype).itemsize,
                              f"{self.origin('training')}: one-hot targets for {num_classes:,} classes"):
            raise DataError(f"{problem}; are the labels class numbers (the largest is {num_classes - 1:,})?")

    def _prepared_bytes(self, split: Split, dtype: type, num_classes: int | None) -> int:
        """The bytes of `split` as `_prepare` makes it: inputs as `dtype` (indices as int64), targets one-hot as
        `dtype`, labels as int64, values as `dtype`."""
        item = np.dtype(dtype).itemsize
        labels = split.y.dtype.kind in "iu"
        targets = len(split.y) * num_classes * item if self.one_hot and num_classes else \
            split.y.size * (8 if labels else item)
        return split.x.size * (8 if self.indices else item) + targets

    def _prepare(self, split: Split, dtype: type, num_classes: int | None) -> Split:
        y = split.y
        if self.one_hot:
            if num_classes is None or y.ndim != 1:
                raise DataError(f"{self.origin('training')}: data.one_hot needs integer class labels, "
                                f"one per sample (got targets of dtype {y.dtype} and shape {y.shape})")
            hot: np.ndarray = np.full((len(y), num_classes), self.off_value, dtype=dtype)
            hot[np.arange(len(y)), y] = self.on_value
            y = hot
        elif y.dtype.kind in "iu":
            y = y.astype(np.int64)
        else:
            with np.errstate(over="ignore"):
                y = y.astype(dtype)
            if not np.isfinite(y).all():
                raise DataError(f"{self.origin('training')}: the targets hold values beyond "
                                f"{np.dtype(dtype).name}'s range; scale them down, or set dtype: float64")
        return Split(self.inputs(split.x, dtype), y)

    def _scaled(self, x: np.ndarray, dtype: type) -> np.ndarray:
        """x * scale + shift computed in float64, stored as `dtype`."""
        if (self.scale, self.shift) == (1.0, 0.0):
            return np.ascontiguousarray(x, dtype=dtype)
        out: np.ndarray = np.empty(x.shape, dtype)
        for start in range(0, len(x), _CHUNK):
            block = x[start: start + _CHUNK].astype(np.float64)
            block *= self.scale
            block += self.shift
            out[start: start + _CHUNK] = block
        return out


def _first(split: Split, count: int | None) -> Split:
    """The first `count` samples of `split` (all of them for None): data.subset and data.test_subset."""
    return Split(split.x[:count], split.y[:count])


def numbers_array(values: Any, where: str) -> np.ndarray:
    """Nested lists of numbers (or arrays) as an array, DataError naming the first item that is no number: NumPy
    pads every cell of a table holding a string to its length (100,000 numbers and 200,000 characters: 149 GiB)."""
    stack: list[tuple[Any, str]] = [(values, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, list):
            stack += reversed([(inner, f"{at}.{i}") for i, inner in enumerate(item)])
        elif not isinstance(item, int | float | np.ndarray):  # a bool is an int, as NumPy reads it
            raise DataError(f"{at}: {'null' if item is None else type(item).__name__}, not a number")
    return np.asarray(values)


def _check_target_kinds(y: np.ndarray, y_apart: np.ndarray, origin: str, split: str) -> None:
    """DataError when the training targets are integer class labels and the `split` ones float values, or the
    other way round."""
    if (y.dtype.kind in "iu") != (y_apart.dtype.kind in "iu"):
        kind = {True: "integers (class labels)", False: "floats (values)"}
        raise DataError(f"{origin}: the {split} targets are {kind[y_apart.dtype.kind in 'iu']} but the training "
                        f"targets {kind[y.dtype.kind in 'iu']}; store both splits' targets alike")


def _bool_labels(y: np.ndarray) -> np.ndarray:
    """Boolean targets, one per sample (what numpy's comparisons give), as the class labels 0 and 1 they stand for;
    rows of them stay 0/1 values (multi-label targets, one per output)."""
    return y.astype(np.int64) if y.dtype.kind == "b" and y.ndim == 1 else y


def _label_column(y: np.ndarray) -> np.ndarray:
    """Integer targets of shape (N, 1), a column of class labels as Keras's datasets give them (CIFAR-10's y_train),
    as the labels (N,) they are, one per sample."""
    return y[:, 0] if y.dtype.kind in "iu" and y.ndim == 2 and y.shape[1] == 1 else y


def _not_label(y: np.ndarray) -> str:
    """The first of `y` that is not a class number (a whole number from 0 to MAX_LABEL)."""
    bad = y[(y != np.round(y)) | (y < 0) | (y > MAX_LABEL)][0]
    return f"{bad:g}"


def _one_hot(y: np.ndarray) -> bool:
    """Whether integer targets (N, C) are one-hot rows: 0s and 1s with one 1 in each row."""
    return y.ndim == 2 and bool(((y == 0) | (y == 1)).all() and (y.sum(axis=1) == 1).all())


def channel_axis(sample_ndim: int) -> int:
    """The axis of a sample that data.normalize keeps statistics along: an image's (C, H, W) channels, a
    sequence's (T, F) features, a flat sample's (F,) features (a single value's () statistics are one pair)."""
    return 1 if sample_ndim == 2 else 0


def stats_shape(sample: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of data.normalize's statistics for samples of shape `sample`: 1 along all but the channel axis."""
    channel = channel_axis(len(sample))
    return tuple(n if axis == channel else 1 for axis, n in enumerate(sample))


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of each channel of the samples x (N, ...), over the samples and the other
    axes, shaped as stats_shape says."""
    keep = 1 + channel_axis(x.ndim - 1)
    axes = tuple(axis for axis in range(x.ndim) if axis != keep)
    mean = x.mean(axis=axes, dtype=np.float64, keepdims=True)
    var = x.var(axis=axes, dtype=np.float64, keepdims=True)
    std = np.sqrt(var)
    std[_constant(var, mean, x.size // mean.size)] = 1.0  # a constant channel is only centred
    shape = stats_shape(x.shape[1:])
    return mean.reshape(shape), std.reshape(shape)  # single values' samples: arrays of shape (), not scalars


def _constant(var: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Which channels of n values each hold one value: a variance within the rounding error of computing it
    (scikit-learn's bound), not merely a small one (a feature in metres of about 1e-9 is scaled too)."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * eps * mean) ** 2


DATASETS: Registry[DatasetSource] = Registry("dataset")


class EitherTargets(DatasetSource):
    """A source whose targets may be class labels or values (regression): data.targets says which; `auto` leaves
    it to `guess`. Both splits are read as the training targets were."""

    regression_hint = "set data.targets: values for regression"

    def __init__(self, targets: Literal["auto", "labels", "values"] = "auto", **kwargs):
        super().__init__(**kwargs)
        self.targets = targets

    def labels_hint(self, num_classes: int | None) -> str:
        return self.regression_hint

    def guess(self, y: np.ndarray) -> str | None:
        """What data.targets: auto reads the training targets `y` as: None for what their dtype says (integers
        labels, floats values), as arrays have one."""
        return None

    def what_targets(self, split: str) -> str:
        """The `split` targets as the error messages name them."""
        return f"the {split} targets"

    def targets_of(self, y: np.ndarray, y_test: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        y, y_test = super().targets_of(y, y_test)
        kind = self.guess(y) if self.targets == "auto" else self.targets
        if kind is not None:
            y = self._read_as(y, kind, "training")
            y_test = None if y_test is None else self._read_as(y_test, kind, "test")
        return _label_column(y), None if y_test is None else _label_column(y_test)

    def _read_as(self, y: np.ndarray, kind: str, split: str) -> np.ndarray:
        """`y` as int64 class labels or float values; DataError for labels that are not whole numbers from 0."""
        if y.dtype.kind not in "biuf" or y.size == 0 or (y.dtype.kind == "f" and not np.isfinite(y).all()):
            return y  # refused by _check, naming the split (and the first NaN)
        if kind == "values":
            return y.astype(np.float64) if y.dtype.kind in "biu" else y
        if not (np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= MAX_LABEL):
            said = ("data.targets is labels" if self.targets == "labels" else
                    f"the training targets were read as class labels ({self.regression_hint})")
            raise DataError(f"{self.origin(split)}: {said}, but {self.what_targets(split)} hold values that are not "
                            f"class numbers (whole numbers from 0 to {MAX_LABEL:,}), such as {_not_label(y)}")
        return y.astype(np.int64)


class FileSource(DatasetSource):
    """A dataset in the user's files: `file` (the config's path), and `test_file` (its test_path) for the test
    split where given."""

    file: str
    test_file: str | None = None

    def origin(self, split: str) -> str:
        return str(self.path(self.test_file if split == "test" and self.test_file else self.file))


class CachedSource(DatasetSource):
    """A dataset kept in `<data root>/<subfolder>/`; what is missing there is downloaded once from `mirror`,
    else from the source's own MIRRORS, checked against its MD5 and cached."""

    subfolder = ""
    mirrors: tuple[str, ...] = ()

    def __init__(self, root: str | None = None, mirror: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if mirror is not None and urllib.parse.urlsplit(mirror).scheme not in SCHEMES:
            raise ValueError(f"mirror must be a base URL over http:// or https://, such as "
                             f"https://host/{self.subfolder}/, got '{mirror}'")
        self.root, self.mirror = root, mirror

    def folder(self) -> Path:
        """The folder holding (or about to hold) the files."""
        folder = data_root(self.root, self.base_dir) / self.subfolder
        for path in (folder, *folder.parents):
            if path.exists() and not path.is_dir():
                raise DataError(f"{path}: a file, but the data of {self.registered_name} is kept in a folder "
                                f"({folder}); set data.root or NNCTL_DATA_DIR to a folder")
        return folder

    def origin(self, split: str) -> str:
        return str(self.folder())

    def download(self, name: str, md5: str, size: int, of_contents: bool, holding: str) -> None:
        """Fetches `name` (`size` bytes, of contents or as served) into the folder; the error says how to provide
        `holding` by hand instead."""
        try:
            fetch_first([self.mirror] if self.mirror else list(self.mirrors), name, self.folder() / name, md5,
                        size, of_contents)
        except DataError as exc:
            raise DataError(f"{exc}\nSet data.root or NNCTL_DATA_DIR to a folder holding {self.subfolder}/ with "
                            f"{holding}, or try again when a mirror can be reached.") from None


def data_root(root: str | None, base_dir: Path) -> Path:
    """data.root (relative to the config), else $NNCTL_DATA_DIR, else $XDG_CACHE_HOME/nnctl or ~/.cache/nnctl."""
    if root:
        return base_dir / Path(root).expanduser()
    if os.environ.get("NNCTL_DATA_DIR"):
        return Path(os.environ["NNCTL_DATA_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnctl"
