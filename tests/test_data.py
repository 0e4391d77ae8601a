"""Datasets on real files: IDX parsing, every source's options, and downloads from a server on 127.0.0.1."""

import csv
import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import Server, nnctl
from nnctl.config import from_dict
from nnctl.data import DATASETS
from nnctl.data.download import fetch
from nnctl.data.idx import parse_idx, read_idx
from nnctl.data.inputs import read_inputs
from nnctl.data.logic import INPUTS
from nnctl.data.mnist import FILES
from nnctl.errors import ConfigError, DataError
from nnctl.trained import Trained


def load(spec: dict, base_dir: Path = Path("."), dtype=np.float32):
    config = from_dict({"data": spec})
    return DATASETS.build(spec, config, ("data",), base_dir=str(base_dir)).load(dtype)


# IDX files


def test_real_mnist_idx_files(mnist_root):
    folder = mnist_root / "mnist"
    images, labels = read_idx(folder / "train-images-idx3-ubyte.gz"), read_idx(folder / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels[0] == 5 and set(np.unique(labels)) == set(range(10))
    assert read_idx(folder / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    test_labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert test_labels.shape == (10000,) and set(np.unique(test_labels)) == set(range(10))


def test_raw_idx_file(tmp_path, mnist_root):
    raw = gzip.decompress((mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "labels-idx1-ubyte").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "labels-idx1-ubyte")),
                                  read_idx(mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz"))


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "promises 5 bytes.*holds 3 .truncated or corrupt"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "truncated or corrupt"),
    (b"\x12\x34\x08\x01\x00\x00\x00\x01a", "bad magic number 12340801"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01a", "bad magic number"),
    (b"\x00\x00", "bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"\x00\x00\x08\x00", "no dimensions"),
    (b"", r"empty \(0 bytes once decompressed\), so not an IDX file"),
])
def test_broken_idx_files(tmp_path, raw, message):
    path = tmp_path / "broken-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_not_gzip_and_missing(tmp_path, mnist_root):
    data = (mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "x.gz").write_bytes(b"plain bytes")
    for name in ("cut.gz", "x.gz"):
        with pytest.raises(DataError, match=f"{name}: not a readable gzip file"):
            read_idx(tmp_path / name)
    with pytest.raises(DataError, match="missing.gz: no such file"):
        read_idx(tmp_path / "missing.gz")


def test_an_mnist_file_that_is_a_link_loop_is_named_not_downloaded_over(tmp_path, mnist_root):
    folder = tmp_path / "mnist"
    shutil.copytree(mnist_root / "mnist", folder)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    (folder / "train-labels-idx1-ubyte.gz").symlink_to(folder / "a")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot read file: Too many levels of symbolic"):
        load({"type": "mnist", "root": str(tmp_path), "mirror": "http://127.0.0.1:9/"})


def test_a_data_root_that_is_a_link_loop_is_a_data_error_not_a_crash(tmp_path):
    (tmp_path / "root").symlink_to(tmp_path / "root")
    with pytest.raises(DataError, match="Too many levels of symbolic links"):
        load({"type": "mnist", "root": str(tmp_path / "root"), "mirror": "http://127.0.0.1:9/"})


def idx_file(array: np.ndarray, code: int = 0x08) -> bytes:
    """`array` as a gzipped IDX file, its type code `code` (0x08 uint8, 0x0C int32, 0x0D float32)."""
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(bytes([0, 0, code, array.ndim]) + dims + array.astype(array.dtype.newbyteorder(">")).tobytes())


@pytest.mark.parametrize("name, array, code, found", [
    ("train-images-idx3-ubyte.gz", np.zeros((4, 28, 27), np.uint8), 0x08, "uint8 of shape \\[4, 28, 27\\]"),
    ("train-images-idx3-ubyte.gz", np.full((4, 28, 28), 1000, np.int32), 0x0C, "int32 of shape \\[4, 28, 28\\]"),
    ("t10k-labels-idx1-ubyte.gz", np.full(2, 1.5, np.float32), 0x0D, "float32 of shape \\[2\\]"),
    ("train-labels-idx1-ubyte.gz", np.zeros((4, 1), np.uint8), 0x08, "uint8 of shape \\[4, 1\\]"),
])
def test_mnist_files_that_do_not_hold_mnists_arrays_are_refused(tmp_path, name, array, code, found):
    """Only the number of dimensions was checked: 28x27 images trained as 756 pixels, int32 pixels of 1000 were
    scaled to 3.9 'in [0, 1]', and float labels of 1.5 stopped at the loss as a config mistake."""
    files = {"train-images-idx3-ubyte.gz": idx_file(np.zeros((4, 28, 28), np.uint8)),
             "train-labels-idx1-ubyte.gz": idx_file(np.arange(4, dtype=np.uint8)),
             "t10k-images-idx3-ubyte.gz": idx_file(np.zeros((2, 28, 28), np.uint8)),
             "t10k-labels-idx1-ubyte.gz": idx_file(np.arange(2, dtype=np.uint8)), name: idx_file(array, code)}
    (tmp_path / "mnist").mkdir()
    for file, raw in files.items():
        (tmp_path / "mnist" / file).write_bytes(raw)
    what = "images, uint8 of shape \\[N, 28, 28\\]" if "images" in name else "labels, uint8 of shape \\[N\\]"
    with pytest.raises(DataError, match=f"{name}: expected MNIST's {what}, found {found}; delete it to download"):
        load({"type": "mnist", "root": str(tmp_path)})


def test_mnist_files_decompressed_are_read_not_downloaded_again(tmp_path):
    """Files gunzipped in place (as tutorials do; torchvision keeps both) were taken as missing: nnctl tried to
    download the .gz files and, offline, stopped."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, array in (("train-images-idx3-ubyte", np.full((4, 28, 28), 255, np.uint8)),
                        ("train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8)),
                        ("t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))):
        (folder / name).write_bytes(gzip.decompress(idx_file(array)))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_file(np.arange(2, dtype=np.uint8)))  # one still zipped
    data = load({"type": "mnist", "root": str(tmp_path), "mirror": "http://127.0.0.1:9/"})
    assert data.train.y.tolist() == [0, 1, 2, 3] and data.train.x.max() == 1 and data.test.y.tolist() == [0, 1]


def test_parse_idx_values():
    raw = b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03" + bytes(range(6))
    np.testing.assert_array_equal(parse_idx(raw, "x"), [[0, 1, 2], [3, 4, 5]])
    big_endian = b"\x00\x00\x0b\x01\x00\x00\x00\x02\x01\x00\xff\xff"
    np.testing.assert_array_equal(parse_idx(big_endian, "x"), [256, -1])


# the common options, on MNIST and on small sources


def test_mnist_source_options(mnist_root):
    data = load({"type": "mnist", "subset": 1000, "test_subset": 200, "validation": 0.1, "one_hot": True,
                 "on_value": 0.9, "off_value": 0.1})
    assert (len(data.train), len(data.val), len(data.test)) == (900, 100, 200)
    assert data.input_shape == (784,) and data.num_classes == 10 and data.shuffle
    assert data.train.x.dtype == np.float32 and data.train.x.min() == 0.0 and data.train.x.max() == 1.0
    assert data.train.y.shape == (900, 10) and set(np.unique(data.train.y)) == {np.float32(0.1), np.float32(0.9)}
    assert data.train.y[0].argmax() == 5


def test_mnist_whole_unflattened_with_test_as_validation(mnist_root):
    data = load({"type": "mnist", "flatten": False, "validation": "test", "shuffle": False}, dtype=np.float64)
    assert (len(data.train), len(data.test)) == (60000, 10000) and data.val is data.test
    assert data.input_shape == (1, 28, 28) and data.train.x.dtype == np.float64 and not data.shuffle
    assert data.train.y.dtype == np.int64 and data.train.y[0] == 5
    raw = read_idx(mnist_root / "mnist" / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(data.train.x[:10, 0], raw[:10].astype(np.float64) * (1 / 255))


def test_validation_count_and_test():
    spec = {"type": "inline", "x": [[i] for i in range(10)], "y": list(range(10))}
    data = load({**spec, "validation": 3})
    assert data.train.y.tolist() == list(range(7)) and data.val.y.tolist() == [7, 8, 9]
    assert load({**spec, "validation": 0.25}).val.y.tolist() == [7, 8, 9]  # ceil(2.5)
    with pytest.raises(DataError, match="no test split"):
        load({**spec, "validation": "test"})
    with pytest.raises(ConfigError, match="leaving none"):
        load({**spec, "validation": 10})
    data = load({"type": "logic", "op": "xor", "validation": "test"})
    assert data.val is data.test and len(data.train) == 4


def test_a_validation_split_drawn_at_random_follows_the_seed_and_a_sorted_files_last_samples_are_warned_of():
    """The validation split was always the last samples: a file sorted by class gave one of class 2 alone, without a
    word, and no way to draw it otherwise."""
    spec = {"type": "inline", "x": [[i] for i in range(30)], "y": [i // 10 for i in range(30)], "validation": 6}

    def source(seed: int = 0, **options):
        return DATASETS.build({**spec, **options}, from_dict({"data": spec}), ("data",), base_dir=".", run_seed=seed)

    end = source()
    assert end.load(np.float32).val.y.tolist() == [2] * 6
    assert end.warnings == ["data.validation (the last 6 samples of data.x/y) holds only class 2, though the training "
                            "part has 3 classes: are the samples sorted by class? val_loss, val_accuracy and early "
                            "stopping would not measure what they should; set data.validation_from: random to draw "
                            "the validation split at random (with the run's seed)"]
    unseen = source(validation=10)
    unseen.load(np.float32)
    assert "(the last 10 samples of data.x/y) holds class 2, which no sample of the training part has" in \
        unseen.warnings[0]
    small = source(validation=2)
    assert small.load(np.float32).val.y.tolist() == [2, 2] and not small.warnings  # a random split may give that too
    drawn = [source(seed, validation_from="random") for seed in (0, 0, 1)]
    first, again, other = (s.load(np.float32) for s in drawn)
    assert not drawn[0].warnings and sorted({*first.val.y.tolist()}) == [0, 1, 2]
    assert first.val.x.tolist() == again.val.x.tolist() != other.val.x.tolist()
    rows = first.train.x[:, 0].tolist()
    assert rows == sorted(rows) and sorted(rows + first.val.x[:, 0].tolist()) == list(range(30))
    with pytest.raises(ConfigError, match="validation_from: expected 'end' or 'random'"):
        source(validation_from="shuffled")


def test_scale_shift_flatten_and_derived_classes():
    data = load({"type": "inline", "x": [[[0, 255], [255, 0]]], "y": [1], "scale": 0.5, "shift": 1.0,
                 "flatten": False})
    assert data.input_shape == (2, 2) and data.num_classes == 2
    np.testing.assert_array_equal(data.train.x[0], [[1.0, 128.5], [128.5, 1.0]])
    data = load({"type": "inline", "x": [1, 2, 3], "y": [0.5, 1.0, 1.5], "test_x": [4], "test_y": [2.0]})
    assert data.input_shape == (1,) and data.num_classes is None and data.train.y.dtype == np.float32
    data = load({"type": "inline", "x": [[0], [1]], "y": [0, 4], "test_x": [[2]], "test_y": [4], "one_hot": True})
    assert data.num_classes == 5 and data.test.y.tolist() == [[0, 0, 0, 0, 1]]


@pytest.mark.parametrize("spec, message", [
    ({"x": [[1, 2], [3]], "y": [0, 1]}, "data.x: not a rectangular table"),
    ({"x": [[1], ["b"]], "y": [0, 1]}, "data.x.1.0: str, not a number"),
    ({"x": [[1], [2]], "y": [0, None]}, "data.y.1: null, not a number"),
    ({"x": [[1], [2]], "y": [0, -1]}, "negative integer -1"),
    ({"x": [[1], [2]], "y": [0.5, 1.5], "one_hot": True}, "one_hot needs integer class labels"),
    ({"x": [[1], [2]], "y": [0, 1, 1]}, "inputs have shape \\(2, 1\\) but the targets \\(3,\\)"),
    ({"x": [[1], [2]], "y": [0, 1], "test_x": [[1]], "test_y": [[0, 1]]},
     re.escape("data.test_x/test_y: test samples of shape (1,) with targets of shape (2,), but training")),
    ({"x": [], "y": []}, "training split is empty"),
    ({"x": [[1.0], [float("nan")]], "y": [0, 1]}, r"NaN or infinite values, the first at index \[1, 0\] \(sample 1\)"),
])
def test_bad_inline_data(spec, message):
    with pytest.raises(DataError, match=message):
        load({"type": "inline", **spec})


@pytest.mark.parametrize("spec, message", [
    ({"type": "logic", "validation": "half"}, "data.validation: expected a number in (0, 1) or an integer ≥ 1 or "
                                              "'test' or null, got str 'half'"),
    ({"type": "logic", "validation": 1.5}, "in (0, 1) or an integer ≥ 1 or 'test' or null, got 1.5"),
    ({"type": "logic", "validation": 0}, "data.validation: expected a number in (0, 1) or an integer ≥ 1 or 'test' "
                                         "or null, got 0"),
    ({"type": "logic", "validation": True}, "or null, got bool True"),
    ({"type": "logic", "subset": 0}, "data.subset: expected an integer ≥ 1 or null, got 0"),
    ({"type": "logic", "scale": "big"}, "data.scale: expected float"),
    ({"type": "logic", "op": "xnor"}, "data.op: expected 'and' or 'or' or 'nand' or 'nor' or 'xor', got str 'xnor'"),
    ({"type": "logic", "flaten": True}, "did you mean 'flatten'"),
    ({"type": "mnist", "mirror": "example.com/mnist"}, "mirror must be a base URL"),
    ({"type": "csv", "path": "a.csv", "delimiter": ";;"}, "delimiter must be one character"),
    ({"type": "inline", "x": [[1]], "y": [1], "test_x": [[1]]}, "give both test_x and test_y"),
    ({"type": "npz"}, "missing required key 'path'"),
])
def test_bad_options_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(spec)


@pytest.mark.parametrize("op, labels", [
    ("and", [1, 0, 0, 0]), ("or", [1, 0, 1, 1]), ("nand", [0, 1, 1, 1]), ("nor", [0, 1, 0, 0]), ("xor", [0, 0, 1, 1]),
])
def test_logic_tables_in_the_classic_order(op, labels):
    data = load({"type": "logic", "op": op})
    assert data.train.x.tolist() == INPUTS == [[1, 1], [0, 0], [1, 0], [0, 1]]
    assert data.train.y.tolist() == labels and data.train.y.dtype == np.int64
    assert data.test.y.tolist() == labels and data.num_classes == 2 and data.input_shape == (2,)


# files: npz and csv


def test_npz_sources(tmp_path):
    x = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(6) % 2, x_test=x[:2], y_test=np.array([0, 1]))
    data = load({"type": "npz", "path": "a.npz"}, tmp_path)
    assert len(data.train) == 6 and len(data.test) == 2 and data.num_classes == 2
    np.savez(tmp_path / "b.npz", inputs=x, targets=x.sum(axis=1))
    np.savez(tmp_path / "b_test.npz", inputs=x[:3], targets=x[:3].sum(axis=1))
    data = load({"type": "npz", "path": str(tmp_path / "b.npz"), "x_key": "inputs", "y_key": "targets",
                 "test_path": "b_test.npz"}, tmp_path)
    assert len(data.test) == 3 and data.num_classes is None and data.test.y.tolist() == [1.0, 5.0, 9.0]


def test_the_arrays_of_an_npz_that_no_split_is_read_from_are_named_for_the_runs_log(tmp_path):
    """A Keras-style file's x_val and y_val were ignored without a word: the run validated on nothing (or on its
    training file's end), its own validation split unread."""
    x, y = np.zeros((6, 2)), np.arange(6) % 2
    np.savez(tmp_path / "k.npz", x_train=x, y_train=y, x_val=x[:2], y_val=y[:2], x_test=x[:2], y_test=y[:2])
    np.savez(tmp_path / "t.npz", x=x[:2], y=y[:2], ids=np.arange(2))
    spec = {"type": "npz", "path": "k.npz"}
    source = DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(tmp_path))
    source.load(np.float32)
    assert source.notes == ["data: k.npz holds arrays that no split is read from: x_val, y_val (the splits are read "
                            "from data.x_key and y_key, here x and y, else x_train and y_train, x_test and y_test; "
                            "data.validation: file validates on x_val and y_val)"]
    spec = {"type": "npz", "path": "k.npz", "test_path": "t.npz", "x_key": "x_train", "y_key": "y_train"}
    source = DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(tmp_path))
    with pytest.raises(DataError, match="t.npz: expected arrays 'x_train' and 'y_train' or 'x_test' and 'y_test'"):
        source.load(np.float32)
    np.savez(tmp_path / "t.npz", x_train=x[:2], y_train=y[:2], ids=np.arange(2))
    source.load(np.float32)
    assert [note.split(" (")[0] for note in source.notes] == [
        "data: t.npz holds arrays that no split is read from: ids",
        "data: k.npz holds arrays that no split is read from: x_val, y_val, x_test, y_test"]
    spec = {"type": "npz", "path": "t.npz", "x_key": "x_train", "y_key": "y_train"}
    source = DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(tmp_path))
    source.load(np.float32)
    assert source.notes[0].startswith("data: t.npz holds arrays that no split is read from: ids (")


def test_an_npz_validates_on_its_own_x_val_and_y_val_with_validation_file(tmp_path):
    """A Keras-style file's x_val and y_val could only be named in the log: no setting made them the validation
    split."""
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 3
    np.savez(tmp_path / "k.npz", x_train=x, y_train=y, x_val=x[:4] + 100, y_val=y[:4], x_test=x[:2], y_test=y[:2])
    spec = {"type": "npz", "path": "k.npz", "validation": "file", "subset": 8}
    source = DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(tmp_path))
    data = source.load(np.float32)
    assert source.notes == [] and len(data.train) == 8 and len(data.test) == 2
    np.testing.assert_array_equal(data.val.x, x[:4] + 100)
    np.testing.assert_array_equal(data.val.y, y[:4])


@pytest.mark.parametrize("arrays, spec, message", [
    ({"x": np.zeros((4, 2)), "y": np.arange(4)}, {},
     "k.npz (data.validation: file): expected arrays 'x_val' and 'y_val'; it holds x, y"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_val": np.zeros((2, 3)), "y_val": np.arange(2)}, {},
     "k.npz: validation samples of shape (3,) with targets of shape (), but training samples of shape (2,)"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_val": np.zeros((2, 2)), "y_val": np.array([1, 7])}, {},
     "k.npz: the validation targets hold the label 7, past the training labels (0 to 3)"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_val": np.zeros((2, 2)), "y_val": np.array([0.5, 1.5])}, {},
     "k.npz: the validation targets are floats (values) but the training targets integers (class labels)"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_val": np.zeros((3, 2)), "y_val": np.arange(2)}, {},
     "k.npz: the validation inputs have shape (3, 2) but the targets (2,)"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_val": np.zeros((2, 2)), "y_val": np.arange(2)},
     {"validation_from": "random"}, "data: validation_from: random draws the validation split from the training "
                                    "samples, but validation: file reads it from the file's x_val and y_val"),
])
def test_validation_from_the_file_that_does_not_fit_is_refused(tmp_path, arrays, spec, message):
    np.savez(tmp_path / "k.npz", **arrays)
    with pytest.raises((DataError, ConfigError)) as info:
        load({"type": "npz", "path": "k.npz", "validation": "file", **spec}, tmp_path)
    assert message in str(info.value)


@pytest.mark.slow
def test_a_run_validates_on_the_npz_x_val_and_y_val(tmp_path):
    x = np.random.default_rng(0).random((40, 2))
    np.savez(tmp_path / "k.npz", x_train=x, y_train=(x.sum(axis=1) > 1).astype(np.int64), x_val=x[:5],
             y_val=np.zeros(5, np.int64))  # all of class 0: its accuracy tells it from the training samples'
    (tmp_path / "c.yaml").write_text("data: {type: npz, path: k.npz, validation: file}\nmodel: {layers: [{type: dense, "
                                     "units: 2}]}\nloss: softmax_cross_entropy\noptimizer: sgd\ntrain: {epochs: 1}\n")
    result = nnctl("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    with open(run / "metrics.csv") as f:
        (row,) = csv.DictReader(f)
    model = Trained.load(run / "checkpoints" / "last.pkl").model
    predicted = model.forward(x[:5].astype(np.float32), training=False).argmax(axis=1)
    assert float(row["val_accuracy"]) == pytest.approx((predicted == 0).mean())


def test_inputs_of_raw_bytes_that_nothing_scales_are_noted_for_the_runs_log(tmp_path):
    """Keras's mnist.npz holds pixels 0–255 as uint8: they trained as they were, losses in the tens, without a word."""
    images = np.full((4, 28, 28), 255, np.uint8)
    np.savez(tmp_path / "m.npz", x_train=images, y_train=np.arange(4) % 2)
    np.savez(tmp_path / "mask.npz", x=np.eye(4, dtype=np.uint8), y=np.arange(4) % 2)  # 0/1 bytes: left alone
    notes = {}
    for name, options in (("raw", {}), ("scaled", {"scale": 1 / 255}), ("normalized", {"normalize": True}),
                          ("mask", {"path": "mask.npz"})):
        spec = {"type": "npz", "path": "m.npz", **options}
        source = DATASETS.build(spec, from_dict({"data": spec}), ("data",), base_dir=str(tmp_path))
        source.load(np.float32)
        notes[name] = source.notes
    assert notes["raw"] == [f"data: the inputs of {tmp_path / 'm.npz'} are bytes (uint8, up to 255), taken as they "
                            "are; for pixels in [0, 1] set data.scale: 0.00392156862745098 (1/255), or "
                            "data.normalize: true"]
    assert notes["scaled"] == notes["normalized"] == notes["mask"] == []


def test_bad_npz_files(tmp_path):
    with pytest.raises(DataError, match="nope.npz: no such file"):
        load({"type": "npz", "path": "nope.npz"}, tmp_path)
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match="b.npz: the training inputs have shape \\(3, 2\\) but the targets \\(4,\\)"):
        load({"type": "npz", "path": "b.npz"}, tmp_path)
    np.savez(tmp_path / "c.npz", inputs=np.zeros((3, 2)))
    with pytest.raises(DataError, match="c.npz: expected arrays 'x' and 'y' or 'x_train' and 'y_train'; it holds in"):
        load({"type": "npz", "path": "c.npz"}, tmp_path)
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), y=np.zeros(2), x_test=np.zeros((1, 1)))
    with pytest.raises(DataError, match="'x_test' and 'y_test'"):
        load({"type": "npz", "path": "d.npz"}, tmp_path)
    np.savez(tmp_path / "e.npz", x=np.array([[{}], [{}]], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="e.npz: not a readable .npz file"):
        load({"type": "npz", "path": "e.npz"}, tmp_path)
    np.save(tmp_path / "f.npy", np.zeros(3))
    with pytest.raises(DataError, match="not an .npz archive"):
        load({"type": "npz", "path": "f.npy"}, tmp_path)
    (tmp_path / "g.npz").write_text("not a zip")
    with pytest.raises(DataError, match="g.npz: not a readable .npz file"):
        load({"type": "npz", "path": "g.npz"}, tmp_path)


def test_integer_labels_beside_float_targets_in_the_other_split_are_refused(tmp_path):
    """Labels 0-2 to train on beside a test split of 0.0, 1.0, 2.0 stopped at the loss ('probabilities in [0, 1]')
    or the model ('the targets are scalars'), as config mistakes."""
    x = np.zeros((4, 1))
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(4) % 3, x_test=x, y_test=np.arange(4.0) % 3)
    with pytest.raises(DataError, match=r"a.npz: the test targets are floats \(values\) but the training targets "
                                        r"integers \(class labels\); store both splits' targets alike"):
        load({"type": "npz", "path": "a.npz"}, tmp_path)
    with pytest.raises(DataError, match=r"the test targets are integers \(class labels\) but the training targets "
                                        r"floats \(values\)"):
        load({"type": "inline", "x": [[0], [1]], "y": [0.5, 1.0], "test_x": [[0]], "test_y": [1]})


def test_a_test_label_past_the_training_labels_is_refused_naming_the_test_file(tmp_path):
    """Test labels set the class count too: a test label 5 beside training labels 0-2 made 6 classes, and the error
    blamed the model's last layer ('the targets are scalars with 6 classes', exit 2), or with 6 outputs it trained."""
    x = np.zeros((4, 1))
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 2, 0]), x_test=x, y_test=np.array([0, 1, 5, 2]))
    with pytest.raises(DataError, match=r"a.npz: the test targets hold the label 5, past the training labels \(0 to "
                                        r"2\): no training sample has that class"):
        load({"type": "npz", "path": "a.npz"}, tmp_path)
    (tmp_path / "train.csv").write_text("1,0\n2,1\n3,2\n")
    (tmp_path / "test.csv").write_text("1,2\n")
    spec = {"type": "csv", "path": "train.csv", "test_path": "test.csv", "subset": 1}
    assert load(spec, tmp_path).num_classes == 3  # data.subset's first samples may lack a class: the file has it


def test_a_column_of_labels_as_keras_stores_them_is_one_label_per_sample(tmp_path):
    """Keras's CIFAR-10 y_train is (N, 1): it was read as labels per time step of 1 step, and a softmax over the
    classes stopped at 'the model outputs [3] per sample but the targets are [1] with 3 classes'."""
    x = np.zeros((4, 2))
    np.savez(tmp_path / "k.npz", x_train=x, y_train=np.array([[0], [2], [1], [2]], np.uint8), x_test=x[:2],
             y_test=np.array([[1], [0]]))
    data = load({"type": "npz", "path": "k.npz"}, tmp_path)
    assert data.train.y.tolist() == [0, 2, 1, 2] and data.test.y.tolist() == [1, 0] and data.num_classes == 3
    np.savez(tmp_path / "v.npz", x=x, y=np.array([[0.5], [2.0], [1.0], [2.0]]))  # one value per sample: kept (N, 1)
    assert load({"type": "npz", "path": "v.npz"}, tmp_path).train.y.shape == (4, 1)


def test_class_names_as_targets_are_refused_saying_to_number_them(tmp_path):
    np.savez(tmp_path / "n.npz", x=np.zeros((2, 1)), y=np.array(["cat", "dog"]))
    with pytest.raises(DataError, match=r"n.npz: the training targets are not numbers \(dtype <U3\); class labels are "
                                        "integers from 0: number the class names 0, 1, ..."):
        load({"type": "npz", "path": "n.npz"}, tmp_path)


def test_boolean_targets_are_the_labels_0_and_1_and_rows_of_them_stay_values(tmp_path):
    """Labels saved from a comparison (y = x > 0.5) are bool: they were read as float values, so a softmax over two
    classes stopped at 'the targets are scalars'."""
    x = np.arange(6.0)[:, None]
    np.savez(tmp_path / "b.npz", x=x, y=x[:, 0] > 2, x_test=x[:2], y_test=np.array([True, False]))
    data = load({"type": "npz", "path": "b.npz"}, tmp_path)
    assert data.train.y.dtype == np.int64 and data.train.y.tolist() == [0, 0, 0, 1, 1, 1] and data.num_classes == 2
    assert data.test.y.tolist() == [1, 0]
    assert load({"type": "npz", "path": "b.npz", "classes": [1]}, tmp_path).train.x[:, 0].tolist() == [3, 4, 5]
    np.savez(tmp_path / "m.npz", x=x, y=np.eye(6, 3, dtype=bool))  # multi-label rows: one 0/1 value per output
    multi = load({"type": "npz", "path": "m.npz"}, tmp_path)
    assert multi.train.y.dtype == np.float32 and multi.num_classes is None


def test_uint64_targets_past_int64_are_refused_not_wrapped(tmp_path):
    """Labels were cast to int64 unchecked: a uint64 target of 2**64 - 1 trained as -1 (with mse, no error)."""
    y = np.array([0, 2**64 - 1, 1, 2**63], dtype=np.uint64)
    np.savez(tmp_path / "u.npz", x=np.zeros((4, 2)), y=y, x_test=np.zeros((4, 2)), y_test=y)
    with pytest.raises(DataError, match="u.npz: the training targets hold the integer 18446744073709551615, past "
                                        "int64's range; class labels go up to 2,147,483,647"):
        load({"type": "npz", "path": "u.npz"}, tmp_path)
    np.savez(tmp_path / "t.npz", x=np.zeros((2, 2)), y=np.array([0, 1], dtype=np.uint64),
             x_test=np.zeros((4, 2)), y_test=y)
    with pytest.raises(DataError, match="t.npz: the test targets hold the integer 18446744073709551615"):
        load({"type": "npz", "path": "t.npz"}, tmp_path)
    np.savez(tmp_path / "v.npz", x=np.zeros((2, 2)), y=np.array([0, 2**63 - 1], dtype=np.uint64))
    assert load({"type": "npz", "path": "v.npz"}, tmp_path).train.y.tolist() == [0, 2**63 - 1]


def test_npz_and_inline_targets_are_labels_or_values_as_data_targets_says(tmp_path):
    """An .npz of integer regression targets was read as class labels, with no option to say otherwise: an mse model
    trained on it reported accuracy 0 and 143 'classes'. data.targets is csv's option, from the same code."""
    np.savez(tmp_path / "r.npz", x=np.zeros((3, 1)), y=np.array([30, 41, 65]), x_test=np.zeros((1, 1)),
             y_test=np.array([7]))
    assert load({"type": "npz", "path": "r.npz"}, tmp_path).num_classes == 66  # auto: the dtype says labels
    values = load({"type": "npz", "path": "r.npz", "targets": "values"}, tmp_path)
    assert values.num_classes is None and values.train.y.dtype == np.float32 and values.test.y.tolist() == [7.0]
    np.savez(tmp_path / "f.npz", x=np.zeros((2, 1)), y=np.array([0.0, 2.0]))
    labels = load({"type": "npz", "path": "f.npz", "targets": "labels"}, tmp_path)
    assert labels.num_classes == 3 and labels.train.y.dtype == np.int64
    inline = load({"type": "inline", "x": [[0], [1]], "y": [5500, -2300], "targets": "values"})
    assert inline.num_classes is None and inline.train.y.tolist() == [5500.0, -2300.0]
    with pytest.raises(DataError, match=r"data.x/y: the training targets hold the negative integer -2300; class labels"
                                        r" count from 0 \(set data.targets: values for regression\)"):
        load({"type": "inline", "x": [[0], [1]], "y": [5500, -2300]})
    with pytest.raises(DataError, match=r"data.test_x/test_y: data.targets is labels, but the test targets hold "
                                        r"values that are not class numbers .*such as 0.5"):
        load({"type": "inline", "x": [[0]], "y": [1], "test_x": [[0]], "test_y": [0.5], "targets": "labels"})
    np.savez(tmp_path / "n.npz", x=np.zeros((2, 1)), y=np.array([0.0, np.nan]))
    with pytest.raises(DataError, match=r"n.npz: the training targets hold NaN or infinite values, the first at index "
                                        r"\[1\]"):
        load({"type": "npz", "path": "n.npz", "targets": "labels"}, tmp_path)
    with pytest.raises(ConfigError, match="data.targets: expected .auto. or .labels. or .values., got str .floats."):
        load({"type": "npz", "path": "r.npz", "targets": "floats"}, tmp_path)


def test_csv_sources(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n\n3,4,1\n5,6,2\n")
    data = load({"type": "csv", "path": "t.csv"}, tmp_path)
    np.testing.assert_array_equal(data.train.x, [[1, 2], [3, 4], [5, 6]])
    assert data.train.y.tolist() == [0, 1, 2] and data.train.y.dtype == np.int64 and data.num_classes == 3
    (tmp_path / "r.csv").write_text("0.5;1.25\n1.5;2.75\n")
    (tmp_path / "r_test.csv").write_text("-1;0.5\n")
    data = load({"type": "csv", "path": "r.csv", "target": 0, "delimiter": ";", "test_path": "r_test.csv"}, tmp_path)
    assert data.train.y.tolist() == [0.5, 1.5] and data.train.y.dtype == np.float32 and data.num_classes is None
    assert data.train.x.tolist() == [[1.25], [2.75]] and data.test.y.tolist() == [-1.0]
    (tmp_path / "n.csv").write_text("1,-1\n2,3\n")  # negative integers are regression targets, not labels
    assert load({"type": "csv", "path": "n.csv"}, tmp_path).train.y.dtype == np.float32
    (tmp_path / "h.csv").write_text("1,1e300\n2,3\n")  # so are whole numbers past int32: never wrapped to -2**63
    assert load({"type": "csv", "path": "h.csv"}, tmp_path, np.float64).train.y.tolist() == [1e300, 3.0]
    with pytest.raises(DataError, match="h.csv: the targets hold values beyond float32's range"):
        load({"type": "csv", "path": "h.csv"}, tmp_path)


def test_csv_targets_are_labels_or_values_as_said_and_guessed_only_below_1000_classes(tmp_path):
    """Whole-number targets such as salaries (5500, 2300, ...) were 11,401 'classes' (and eval's confusion matrix
    of 130 million cells); `targets` says which, and `auto` takes labels only below 1,000."""
    (tmp_path / "s.csv").write_text("5,5500\n3,2300\n8,7600\n10,11400\n")
    assert load({"type": "csv", "path": "s.csv"}, tmp_path).num_classes is None  # auto: values
    (tmp_path / "a.csv").write_text("1,30\n2,41\n3,65\n")
    assert load({"type": "csv", "path": "a.csv"}, tmp_path).num_classes == 66  # auto: labels below 1,000
    values = load({"type": "csv", "path": "a.csv", "targets": "values"}, tmp_path)
    assert values.num_classes is None and values.train.y.tolist() == [30.0, 41.0, 65.0]
    assert load({"type": "csv", "path": "s.csv", "targets": "labels"}, tmp_path).num_classes == 11401
    (tmp_path / "f.csv").write_text("1,0.5\n2,1\n")
    with pytest.raises(DataError, match=r"f.csv: data.targets is labels, but the training targets \(column -1\) hold "
                                        r"values that are not class numbers \(whole numbers from 0 to 2,147,483,647\), "
                                        r"such as 0.5"):
        load({"type": "csv", "path": "f.csv", "targets": "labels"}, tmp_path)


def test_a_csv_test_file_reads_its_targets_as_the_training_file_did(tmp_path):
    """Each file was guessed alone: labels 0-2 to train on with a test target of 1.5 stopped at the loss as a config
    mistake ('probabilities in [0, 1]'), and a test file of whole numbers beside float training targets gave labels."""
    (tmp_path / "labels.csv").write_text("1,0\n2,1\n3,2\n")
    (tmp_path / "half.csv").write_text("1,0\n2,1.5\n")
    with pytest.raises(DataError, match=r"half.csv: the training targets were read as class labels \(set "
                                        r"data.targets: values for regression\), but the test targets \(column -1\) "
                                        r"hold values that are not class numbers .*such as 1.5"):
        load({"type": "csv", "path": "labels.csv", "test_path": "half.csv"}, tmp_path)
    (tmp_path / "whole.csv").write_text("1,0\n2,1\n")
    data = load({"type": "csv", "path": "half.csv", "test_path": "whole.csv"}, tmp_path)
    assert data.test.y.dtype == data.train.y.dtype == np.float32 and data.test.y.tolist() == [0.0, 1.0]
    assert load({"type": "csv", "path": "labels.csv", "test_path": "whole.csv"}, tmp_path).test.y.tolist() == [0, 1]


@pytest.mark.parametrize("content, option, message", [
    ("1,2,0\n\n3,x,1\n", {}, "t.csv:3: column 2 is not a number"),
    ("x,y,species\n1,2,setosa\n", {}, r"t.csv:2: column 3 is not a number; every cell must be one \(class names too: "
                                       r"number them 0, 1, ...\)"),
    ("a,b,c\n1,2,0\n3,4,\n", {}, "t.csv:3: column 3 is empty"),
    ("a,b,c\n1,2,0\n", {"header": False}, "t.csv:1: column 1 is not a number"),
    ("1,2,0\n3,4\n", {}, "t.csv:2: 2 columns, expected 3"),
    ("a,b\n", {}, "t.csv: no data rows"),
    ("1\n2\n", {}, "one column only"),
    # a file separated by another delimiter took its first row for a header, then said 'column 1 is not a number'
    ("a;b;c\n1;2;0\n", {}, "t.csv:1: one column, whose cells hold ';': the file looks separated by ';', not ','"),
    ("1;2;0\n3;4;1\n", {}, "t.csv:1: one column, whose cells hold ';'"),
    ("1\t2\t0\n", {}, r"t.csv:1: one column, whose cells hold '\\t'"),
    ("1,2,0\n", {"delimiter": "|"}, "t.csv:1: one column, whose cells hold ',': the file looks separated by ','"),
    ("1,2\n3,4\n", {"target": 2}, "data.target 2 is not one of its 2 columns"),
    ("a,b,c\n1,2,0\n\n3,nan,1\n", {}, "t.csv:4: column 2 is NaN, not a finite number; fill it in or drop the row"),
    ("1,2,0\n3,4,1e400\n", {}, "t.csv:2: column 3 is infinite"),  # past float's range
    ("1,2,0\n-inf,4,1\n", {}, "t.csv:2: column 1 is infinite"),
    ("1,2O,0\n3,4,1\n", {}, "t.csv:1: the first row holds numbers but column 2 is not one"),  # not a header
    ("id,2,0\n3,4,1\n", {}, "t.csv:1: the first row holds numbers but column 1"),
])
def test_bad_csv(tmp_path, content, option, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load({"type": "csv", "path": "t.csv", **option}, tmp_path)


def test_a_csv_test_file_of_other_columns_is_named_by_its_column_counts(tmp_path):
    """The message spoke of 'test samples of shape (3,) with targets of shape ()', counting inputs, not columns."""
    (tmp_path / "train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    (tmp_path / "test.csv").write_text("1,2,3,0\n")
    with pytest.raises(DataError, match=r"test.csv: 4 columns, but the training file train.csv has 3; the test file "
                                        "needs the same columns"):
        load({"type": "csv", "path": "train.csv", "test_path": "test.csv"}, tmp_path)


@pytest.mark.parametrize("content, delimiter, reason", [
    ("a;b;label\n1,5;2,25;0\n", ";", "it has a comma .a decimal comma, or one between thousands.., and nnctl reads "
                                      "plain numbers with a decimal point"),
    ('a,b,label\n"1,5",2,0\n', ",", "it has a comma .a decimal comma"),
    ("a,b\n1,5;2\n3,0;1\n", ",", "it holds ';': is the file separated by ';', not ','"),
    ("x,label\n1,cat\n2,dog\n", ",", "every cell must be one .class names too: number them 0, 1, ...."),
])
def test_a_csv_cell_that_is_no_number_is_told_why_it_may_not_be(tmp_path, content, delimiter, reason):
    """A European file (decimal commas, ';' between cells) was told 'every cell must be one (class names too...)'."""
    (tmp_path / "e.csv").write_text(content)
    with pytest.raises(DataError, match=f"e.csv:[12]: column [12] is not a number; {reason}"):
        load({"type": "csv", "path": "e.csv", "delimiter": delimiter}, tmp_path)


def test_predict_names_the_separator_its_csv_inputs_need(tmp_path):
    (tmp_path / "x.csv").write_text("1;2\n3;4\n")
    with pytest.raises(DataError, match="looks separated by ';', not ','.*data.delimiter says which, for the .csv "
                                        "inputs of its predict too; other models' are read with ','"):
        read_inputs(tmp_path / "x.csv", (2,))
    assert read_inputs(tmp_path / "x.csv", (2,), delimiter=";").tolist() == [[1, 2], [3, 4]]


def test_predict_names_a_csv_inputs_target_column(tmp_path):
    """The training CSV given to predict, target column and all, was 'an array of shape [4, 3] does not fit'."""
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match="t.csv: 3 columns, one more than the model's 2 inputs: a target column"):
        read_inputs(tmp_path / "t.csv", (2,))


def test_a_csv_that_starts_with_a_byte_order_mark_keeps_its_first_row(tmp_path):
    """Excel writes a BOM; read as part of the first cell, it made the first data row look like a header."""
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf1,2,0\n3,4,1\n5,6,0\n")
    assert load({"type": "csv", "path": "t.csv"}, tmp_path).train.x.tolist() == [[1, 2], [3, 4], [5, 6]]
    (tmp_path / "h.csv").write_bytes(b"\xef\xbb\xbfa,b,label\n1,2,0\n")
    assert load({"type": "csv", "path": "h.csv"}, tmp_path).train.x.tolist() == [[1, 2]]


def test_an_image_with_transparent_pixels_is_refused_not_read_as_the_colour_under_them(tmp_path):
    """A digit drawn as ink on a transparent canvas (alpha the ink, the colour white) read as a blank white image:
    Pillow's conversion drops the alpha. Predict classified it, a '2' at 0.97."""
    from PIL import Image

    ink = np.zeros((28, 28), np.uint8)
    ink[4:24, 12:16] = 255
    canvas = np.full((28, 28, 4), 255, np.uint8)
    canvas[..., 3] = ink
    Image.fromarray(canvas, "RGBA").save(tmp_path / "drawn.PNG")
    grey = Image.fromarray(ink)
    grey.save(tmp_path / "keyed.png", transparency=0)  # a grey PNG whose black is transparent (a tRNS chunk)
    grey.convert("RGBA").save(tmp_path / "opaque.png")
    for name in ("drawn.PNG", "keyed.png"):
        with pytest.raises(DataError, match=f"{name}: has transparent pixels, whose colour nnctl cannot know; flatten"):
            read_inputs(tmp_path / name, (1, 28, 28))
    np.testing.assert_array_equal(read_inputs(tmp_path / "opaque.png", (1, 28, 28))[0, 0], ink)


@pytest.mark.parametrize("name", ["d.bmp", "d.GIF", "d.tif", "d.TIFF", "d.webp"])
def test_images_in_the_other_formats_pillow_reads_are_inputs_too(tmp_path, name):
    """Only .png, .jpg and .jpeg were taken: a digit saved as .bmp or .tif was 'unknown kind of input'."""
    from PIL import Image

    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / name, format=Image.registered_extensions()[Path(name).suffix.lower()])
    pixels = read_inputs(tmp_path / name, (1, 28, 28))[0, 0]
    assert np.abs(pixels.astype(int) - digit).max() <= (40 if name.endswith("webp") else 0)  # webp: lossy


def test_a_photo_turned_by_its_exif_orientation_is_read_upright_as_viewers_show_it(tmp_path):
    """A phone stores a portrait photo as landscape pixels with an EXIF Orientation; it was read sideways."""
    from PIL import Image

    bar = np.zeros((28, 28), np.uint8)
    bar[2:6, :] = 255  # a bar along the top, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise: the bar along the right side
    Image.fromarray(bar).save(tmp_path / "photo.png", exif=exif)
    np.testing.assert_array_equal(read_inputs(tmp_path / "photo.png", (28, 28))[0], np.rot90(bar, -1))
    for damaged in (b"garbage", b"II*\x00\xff\xff\xff\xff"):  # an EXIF block that does not parse is ignored
        Image.fromarray(bar).save(tmp_path / "odd.png", exif=damaged)
        np.testing.assert_array_equal(read_inputs(tmp_path / "odd.png", (28, 28))[0], bar)


def test_missing_csv(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load({"type": "csv", "path": "nope.csv"}, tmp_path)



# downloads from a real HTTP server on 127.0.0.1


@pytest.fixture
def served(tmp_path, mnist_root) -> Path:
    """A folder holding copies of the four MNIST files, to serve."""
    folder = tmp_path / "served"
    folder.mkdir()
    for name in FILES:
        shutil.copy(mnist_root / "mnist" / name, folder / name)
    return folder


def test_download_from_a_local_mirror(tmp_path, served):
    with Server(served) as server:
        data = load({"type": "mnist", "root": "cache", "mirror": server.url, "subset": 100}, tmp_path)
    assert len(data.train) == 100 and len(data.test) == 10000 and data.train.y[0] == 5
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(FILES)
    data = load({"type": "mnist", "root": str(tmp_path / "cache"), "mirror": "http://127.0.0.1:9/", "subset": 5})
    assert len(data.train) == 5  # cached: nothing is fetched again


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, served):
    shutil.copy(served / "t10k-labels-idx1-ubyte.gz", served / "train-labels-idx1-ubyte.gz")
    with Server(served) as server, pytest.raises(DataError) as info:
        load({"type": "mnist", "root": "cache", "mirror": server.url}, tmp_path)
    message = str(info.value)
    assert f"{server.url}train-labels-idx1-ubyte.gz: checksum mismatch" in message
    assert "27ae3e4e09519cfbb04c329615203637, expected a25bea736e30d166cdddb491f175f624" in message
    assert "NNCTL_DATA_DIR" in message and "data.root" in message
    names = [p.name for p in (tmp_path / "cache" / "mnist").iterdir()]
    assert "train-labels-idx1-ubyte.gz" not in names and not any(n.endswith(".part") for n in names)


def test_not_gzip_and_404(tmp_path):
    (tmp_path / "page.gz").write_text("<html>not found</html>")
    with Server(tmp_path) as server:
        with pytest.raises(DataError, match="page.gz: the download is not a valid gzip file"):
            fetch(server.url + "page.gz", tmp_path / "out" / "page.gz", "0" * 32, 100)
        with pytest.raises(DataError) as info:
            load({"type": "mnist", "root": "cache", "mirror": server.url}, tmp_path)
    assert f"{server.url}train-images-idx3-ubyte.gz: HTTP 404" in str(info.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # no file, no empty folder


def test_unreachable_mirror(tmp_path):
    with pytest.raises(DataError, match="http://127.0.0.1:9/x.gz: download failed"):
        fetch("http://127.0.0.1:9/x.gz", tmp_path / "x.gz", "0" * 32, 100, timeout=5)
    assert not any(tmp_path.iterdir())


def test_data_classes_keeps_and_relabels_by_place_in_the_list_and_refuses_labels_past_int32():
    spec = {"type": "inline", "x": [[i] for i in range(8)], "y": [3, 9, 5, 9, 0, 7, 5, 3]}
    data = load({**spec, "classes": [9, 3, 5]})
    assert data.train.x[:, 0].tolist() == [0, 1, 2, 3, 6, 7] and data.train.y.tolist() == [1, 0, 2, 0, 2, 1]
    assert data.num_classes == 3
    for classes in ([0, 2**31], [0, 10**23], [-1]):
        with pytest.raises(ConfigError, match=r"data.classes: expected a list of integers in \[0, 2147483647\]"):
            load({**spec, "classes": classes})
    with pytest.raises(ConfigError, match=r"data.classes: classes must list distinct class labels, got \[1, 1\]"):
        load({**spec, "classes": [1, 1]})


def test_data_classes_refuses_a_class_no_training_sample_has(tmp_path):
    """A class that only the config names (a typo, or 11 of MNIST's 0-9) kept an output that could never be learnt,
    and the run reported 100 % accuracy on what was one class."""
    np.savez(tmp_path / "d.npz", x=np.arange(8.0)[:, None], y=np.array([3, 9, 5, 9, 0, 7, 5, 3]),
             x_test=np.arange(2.0)[:, None], y_test=np.array([3, 3]))
    spec = {"type": "npz", "path": "d.npz"}
    for classes, named in (([3, 11], "11, but no training sample has that label"),
                           ([12, 3, 1], "1, 12, but no training sample has those labels")):
        with pytest.raises(DataError, match=rf"d.npz: data.classes lists {named} \(they run from 0 to 9\)"):
            load({**spec, "classes": classes}, tmp_path)
    assert load({**spec, "classes": [3, 9]}, tmp_path).test.y.tolist() == [0, 0]  # the test split may lack one


def test_a_sources_own_seed_key_is_not_the_runs_seed():
    """pattern_ends draws its data from its own data.seed, which the run's seed (given to every source for a random
    validation split) must neither replace nor hide from the config."""
    from nnctl.experiment import data_source

    def letters(data_seed: int, run_seed: int) -> np.ndarray:
        config = from_dict({"seed": run_seed, "data": {"type": "pattern_ends", "samples": 20, "test_samples": 0,
                                                        "seed": data_seed}})
        return data_source(config).load(np.float32).train.x

    assert np.array_equal(letters(0, 0), letters(0, 5))
    assert not np.array_equal(letters(0, 0), letters(1, 0))
