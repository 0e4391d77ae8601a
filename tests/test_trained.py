"""A checkpoint comes back by itself: predict, export, sample, plot --filters and summary read no data;
format-1 checkpoints still load and give the numbers format 1 gave."""

import csv
import json
import pickle
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from helpers import CONFIGS, cifar_archive, cifar_batches, nnctl, ok, shipped_overrides
from nnctl import checkpoint
from nnctl.config import from_dict, load_config
from nnctl.data import DATASETS, cifar10
from nnctl.data.idx import read_idx
from nnctl.errors import CheckpointError, DataError
from nnctl.experiment import build, initial_model
from nnctl.trained import Trained

FORMAT1 = Path(__file__).resolve().parent / "fixtures" / "format1"
EXPECTED = json.loads((FORMAT1 / "expected.json").read_text())


def closed_port_url() -> str:
    """A mirror on 127.0.0.1 where nothing listens, so any download attempt fails at once and loudly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def empty(tmp_path) -> dict[str, str]:
    """The environment of a machine without any data: NNCTL_DATA_DIR is an empty folder."""
    (tmp_path / "no-data").mkdir()
    return {"NNCTL_DATA_DIR": str(tmp_path / "no-data")}


# -- format 1 ----------------------------------------------------------------------------------------------------

@pytest.fixture
def old(tmp_path) -> Path:
    """A copy of the format-1 files, so nothing the commands write lands in the repository."""
    return Path(shutil.copytree(FORMAT1, tmp_path / "format1"))


def test_format1_eval_gives_what_format1_gave(old, mnist_root):
    for name, split, expected in (("mnist_twolayer", "test", "eval_mnist"), ("xor_mlp", "train", "eval_xor")):
        result = json.loads(ok("eval", str(old / f"{name}.pkl"), "--split", split, "--json"))
        result.pop("checkpoint")
        assert {key: result[key] for key in EXPECTED[expected]} == EXPECTED[expected], name
        assert set(result) - set(EXPECTED[expected]) <= {"per_class", "macro_f1", "classes"}  # eval added them since


def test_format1_predict_export_and_sample_without_data(old, empty):
    ok("predict", str(old / "mnist_twolayer.pkl"), str(old / "digits.npy"), "-o", str(old / "p.npy"), env=empty)
    np.testing.assert_array_equal(np.load(old / "p.npy"), np.array(EXPECTED["predict_mnist"], np.float32))
    ok("predict", str(old / "xor_mlp.pkl"), str(old / "xor.npy"), "-o", str(old / "q.npy"), env=empty)
    np.testing.assert_array_equal(np.load(old / "q.npy"), np.array(EXPECTED["predict_xor"]))
    ok("export", str(old / "mnist_twolayer.pkl"), "-o", str(old / "w.npz"), env=empty)
    with np.load(old / "w.npz") as got, np.load(old / "expected_export.npz") as expected:
        assert sorted(got.files) == sorted(expected.files)
        for key in expected.files:
            np.testing.assert_array_equal(got[key], expected[key])
    text = ok("sample", str(old / "char_lstm.pkl"), "--prime", "And God", "--length", "40", "--seed", "0", env=empty)
    assert text == EXPECTED["sample"]


def test_format1_resume_continues_as_format1_did(old, mnist_root):
    runs = old / "runs"
    ok("train", "--resume", str(old / "mnist_twolayer.pkl"), "train.epochs=2", "--runs-dir", str(runs), "-q")
    (run,) = runs.iterdir()
    with open(run / "metrics.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]
    assert rows == EXPECTED["resume_history"]
    resumed = checkpoint.load(run / "checkpoints" / "last.pkl")  # written again in format 2
    assert resumed.inputs.sample_shape == (1, 28, 28) and resumed.progress["epoch"] == 2


def test_format1_is_converted_on_load():
    saved = checkpoint.load(FORMAT1 / "mnist_twolayer.pkl")
    assert saved.inputs.input_shape == (784,) and saved.inputs.num_classes == 10
    assert saved.inputs.sample_shape is None and saved.inputs.channel_stats is None  # format 1 never kept them
    trained = Trained.load(FORMAT1 / "mnist_twolayer.pkl")
    assert trained.source.sample_shape == (1, 28, 28)  # from the dataset's declared shape, nothing read
    assert len(checkpoint.load(FORMAT1 / "char_lstm.pkl").inputs.vocab) == 65


# -- a checkpoint by itself --------------------------------------------------------------------------------------

def test_predict_and_export_read_no_data(tmp_path, empty, mnist_root):
    """A normalized conv model: the checkpoint keeps the raw sample shape and the per-channel statistics."""
    runs = tmp_path / "runs"
    ok("train", str(CONFIGS / "mnist_cnn.yaml"), "data.subset=600", "data.test_subset=100", "data.validation=100",
       "data.normalize=true", f"data.mirror={closed_port_url()}", "train.epochs=1", "--runs-dir", str(runs), "-q")
    (run,) = runs.iterdir()
    ckpt = run / "checkpoints" / "last.pkl"
    saved = checkpoint.load(ckpt)
    assert saved.inputs.sample_shape == (1, 28, 28) and saved.inputs.channel_stats[0].shape == (1, 1, 1)

    exp = Trained.load(ckpt).experiment()  # with the data: the statistics computed again from the training split
    np.save(tmp_path / "x.npy", read_idx(mnist_root / "mnist" / "t10k-images-idx3-ubyte.gz")[:10])
    ok("predict", str(ckpt), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"), env=empty)
    expected = exp.loss.probabilities(exp.model.forward(exp.data.test.x[:10]))
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-4, atol=1e-6)

    ok("export", str(ckpt), "-o", str(tmp_path / "w.npz"), env=empty)
    with np.load(tmp_path / "w.npz") as arrays:
        np.testing.assert_array_equal(arrays["conv2d_1/W"], saved.model["conv2d_1"]["params"]["W"])
    assert "filters.png" in ok("plot", str(ckpt), "--filters", "-o", str(tmp_path / "filters.png"), env=empty)
    assert (tmp_path / "filters.png").stat().st_size > 0
    assert not any(Path(empty["NNCTL_DATA_DIR"]).iterdir())  # nothing was downloaded or cached


def test_a_download_attempt_would_fail_loudly(tmp_path, empty):
    """The check above means something: with the same empty folder, reading MNIST tries the closed mirror."""
    result = nnctl("check", str(CONFIGS / "mnist_mlp.yaml"), f"data.mirror={closed_port_url()}", env=empty)
    assert result.returncode == 1 and "127.0.0.1" in result.stderr and "Traceback" not in result.stderr


# -- summary without data ----------------------------------------------------------------------------------------

def _no_download(config: Path) -> list[str]:
    kind = load_config(config, []).data["data"]["type"]
    return [f"data.mirror={closed_port_url()}"] if kind in ("mnist", "mnist_rows", "cifar10") else []


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_summary_of_every_shipped_config_reads_no_data(config, empty, tmp_path):
    out = ok("summary", str(config), *_no_download(config), *shipped_overrides(config, tmp_path), env=empty)
    assert "total parameters:" in out
    assert not any(Path(empty["NNCTL_DATA_DIR"]).iterdir())


def test_summary_model_is_the_trained_model(tmp_path, mnist_root, monkeypatch):
    """The shapes a dataset gives without reading are the shapes its loaded data has."""
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "mnist").symlink_to(mnist_root / "mnist")
    cifar_archive(tmp_path / "cifar10" / cifar10.ARCHIVE, cifar_batches(per_batch=4))
    monkeypatch.setenv("NNCTL_DATA_DIR", str(tmp_path))
    for path in sorted(CONFIGS.glob("*.yaml")):
        small = ["data.subset=50", "data.test_subset=10", "data.validation=10"]
        sliced = small if path.stem.startswith(("mnist", "cifar")) else []
        config = load_config(path, [*sliced, *shipped_overrides(path, tmp_path)])
        quick = initial_model(config)
        built = build(config).model
        assert quick.input_shape == built.input_shape and quick.shapes == built.shapes, path.name
        assert quick.num_params == built.num_params, path.name


def _source(data: dict, tmp_path: Path):
    config = from_dict({"data": data})
    return DATASETS.build(config.data["data"], config, ("data",), base_dir=str(tmp_path))


def test_npz_and_csv_shapes_from_headers_and_first_row(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((7, 3, 4)), y=np.arange(7))
    source = _source({"type": "npz", "path": "d.npz", "flatten": False}, tmp_path)
    assert source.peek() == (3, 4) == source.load(np.float64).input_shape
    (tmp_path / "t.csv").write_text("a,b,c,label\n1,2,3,0\n4,5,6,1\nnot,a,number,row\n")  # only row 1 is read
    source = _source({"type": "csv", "path": "t.csv"}, tmp_path)
    assert source.peek() == (3,)
    with pytest.raises(DataError, match="not a number"):
        source.load(np.float64)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="not a readable .npz file"):
        _source({"type": "npz", "path": "bad.npz"}, tmp_path).peek()


# -- the format's checks -----------------------------------------------------------------------------------------

def _raw(path: Path) -> dict:
    return checkpoint.safe_unpickle(path.read_bytes())


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("optimizer"), "its 'optimizer' is missing, expected dict"),
    (lambda d: d.update(history="many"), "its 'history' is str, expected list"),
    (lambda d: d["inputs"].update(sample_shape=3), "its 'inputs.sample_shape' is int, expected list or None"),
    (lambda d: d["inputs"].update(channel_stats=[np.zeros(1)]), "'inputs.channel_stats' is not a pair of arrays"),
    (lambda d: d.update(format_version=7), "checkpoint format 7 is not one this nnctl"),
])
def test_a_checkpoint_that_lacks_or_mistypes_a_key_is_named(tmp_path, change, message):
    runs = tmp_path / "runs"
    ok("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=2", "--runs-dir", str(runs), "-q")
    (run,) = runs.iterdir()
    data = _raw(run / "checkpoints" / "last.pkl")
    assert data["format_version"] == checkpoint.FORMAT_VERSION == 2
    change(data)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(data))
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")):
        checkpoint.load(bad)
    result = nnctl("predict", str(bad), str(FORMAT1 / "xor.npy"))
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
