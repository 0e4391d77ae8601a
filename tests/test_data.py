"""Datasets on real files: IDX parsing, every source's options, and downloads from a server on 127.0.0.1."""

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from nnctl.config import from_dict
from nnctl.data import DATASETS
from nnctl.data.idx import parse_idx, read_idx
from nnctl.data.mnist import FILES
from nnctl.errors import ConfigError, DataError


def load(spec: dict, base_dir: Path = Path("."), dtype=np.float32):
    config = from_dict({"data": spec})
    return DATASETS.build(spec, config, ("data",), base_dir=str(base_dir)).load(dtype)


def test_real_mnist_idx_files(mnist_root):
    images = read_idx(mnist_root / "mnist" / "train-images-idx3-ubyte.gz")
    labels = read_idx(mnist_root / "mnist" / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels[0] == 5 and set(np.unique(labels)) == set(range(10))
    assert read_idx(mnist_root / "mnist" / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "truncated or corrupt"),
    (b"\x12\x34\x08\x01\x00\x00\x00\x01a", "bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
])
def test_broken_idx_files(tmp_path, raw, message):
    path = tmp_path / "broken-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_not_gzip_and_missing(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(tmp_path / "x.gz")
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "missing.gz")


def test_parse_idx_values():
    raw = b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03" + bytes(range(6))
    np.testing.assert_array_equal(parse_idx(raw, "x"), [[0, 1, 2], [3, 4, 5]])


def test_mnist_source_options(mnist_root):
    data = load({"type": "mnist", "subset": 1000, "test_subset": 200, "validation": 0.1, "one_hot": True,
                 "on_value": 0.9, "off_value": 0.1})
    assert (len(data.train), len(data.val), len(data.test)) == (900, 100, 200)
    assert data.input_shape == (784,) and data.num_classes == 10
    assert data.train.x.dtype == np.float32 and data.train.x.min() >= 0.0 and data.train.x.max() == 1.0
    assert data.train.y.shape == (900, 10) and set(np.unique(data.train.y)) == {np.float32(0.1), np.float32(0.9)}
    assert data.train.y[0].argmax() == 5


def test_validation_count_and_test():
    spec = {"type": "inline", "x": [[i] for i in range(10)], "y": list(range(10))}
    data = load({**spec, "validation": 3})
    assert data.train.y.tolist() == list(range(7)) and data.val.y.tolist() == [7, 8, 9]
    with pytest.raises(DataError, match="no test split"):
        load({**spec, "validation": "test"})
    with pytest.raises(DataError, match="leaving none"):
        load({**spec, "validation": 10})


@pytest.mark.parametrize("option, message", [
    ({"validation": "half"}, "validation must be a fraction"),
    ({"validation": 1.5}, "between 0 and 1"),
    ({"subset": 0}, "subset must be at least 1"),
    ({"op": "xnor"}, "unknown op 'xnor'"),
    ({"flaten": True}, "did you mean 'flatten'"),
])
def test_bad_options_are_config_errors(option, message):
    with pytest.raises(ConfigError, match=message):
        load({"type": "logic", **option})


def test_logic_tables_in_the_classic_order():
    assert load({"type": "logic", "op": "and"}).train.y.tolist() == [1, 0, 0, 0]
    assert load({"type": "logic", "op": "or"}).train.y.tolist() == [1, 0, 1, 1]
    data = load({"type": "logic", "op": "xor"})
    assert data.train.x.tolist() == [[1, 1], [0, 0], [1, 0], [0, 1]] and data.train.y.tolist() == [0, 0, 1, 1]


def test_scale_shift_and_flatten():
    data = load({"type": "inline", "x": [[[0, 255], [255, 0]]], "y": [1], "scale": 0.5, "shift": 1.0,
                 "flatten": False})
    assert data.input_shape == (2, 2)
    np.testing.assert_array_equal(data.train.x[0], [[1.0, 128.5], [128.5, 1.0]])


def test_npz_and_csv_sources(tmp_path):
    x = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(6) % 2, x_test=x[:2], y_test=np.array([0, 1]))
    data = load({"type": "npz", "path": "a.npz"}, tmp_path)
    assert len(data.train) == 6 and len(data.test) == 2 and data.num_classes == 2
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,2\n")
    data = load({"type": "csv", "path": "t.csv"}, tmp_path)
    np.testing.assert_array_equal(data.train.x, [[1, 2], [3, 4], [5, 6]])
    assert data.train.y.tolist() == [0, 1, 2] and data.num_classes == 3
    (tmp_path / "r.csv").write_text("0.5,1.25\n1.5,2.75\n")
    assert load({"type": "csv", "path": "r.csv"}, tmp_path).train.y.dtype == np.float32


@pytest.mark.parametrize("content, message", [
    ("1,2,0\n3,x,1\n", "t.csv:2: column 2: 'x' is not a number"),
    ("1,2,0\n3,4\n", "t.csv:2: 2 columns, expected 3"),
    ("a,b\n", "no data rows"),
])
def test_bad_csv(tmp_path, content, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load({"type": "csv", "path": "t.csv"}, tmp_path)


def test_missing_and_mismatched_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load({"type": "npz", "path": "nope.npz"}, tmp_path)
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match="3 samples but the targets 4"):
        load({"type": "npz", "path": "b.npz"}, tmp_path)
    np.savez(tmp_path / "c.npz", inputs=np.zeros((3, 2)))
    with pytest.raises(DataError, match="it holds inputs"):
        load({"type": "npz", "path": "c.npz"}, tmp_path)


class _Server:
    """A real HTTP server on 127.0.0.1 serving one folder, for the download tests."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def test_download_from_a_local_mirror(tmp_path, mnist_root):
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        shutil.copy(mnist_root / "mnist" / name, served / name)
    with _Server(served) as server:
        data = load({"type": "mnist", "root": "cache", "mirror": server.url, "subset": 100}, tmp_path)
    assert len(data.train) == 100 and len(data.test) == 10000
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(FILES)


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, mnist_root):
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        shutil.copy(mnist_root / "mnist" / name, served / name)
    shutil.copy(mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz", served / "train-labels-idx1-ubyte.gz")
    with _Server(served) as server, pytest.raises(DataError) as info:
        load({"type": "mnist", "root": "cache", "mirror": server.url}, tmp_path)
    assert "checksum mismatch" in str(info.value) and "a25bea736e30d166cdddb491f175f624" in str(info.value)
    assert "NNCTL_DATA_DIR" in str(info.value)
    names = [p.name for p in (tmp_path / "cache" / "mnist").iterdir()]
    assert "train-labels-idx1-ubyte.gz" not in names and not any(n.endswith(".part") for n in names)


def test_missing_file_on_the_mirror(tmp_path):
    with _Server(tmp_path) as server, pytest.raises(DataError) as info:
        load({"type": "mnist", "root": "cache", "mirror": server.url}, tmp_path)
    assert "HTTP 404" in str(info.value) and server.url in str(info.value)
    assert not any((tmp_path / "cache" / "mnist").iterdir())
