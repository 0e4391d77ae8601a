"""predict, export, model.weights and TensorBoard logging through the real CLI, on a tiny real MNIST run."""

import csv
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hostile import XOR
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import CONFIGS, nnctl, ok
from nnctl import checkpoint
from nnctl.config import load_config
from nnctl.data.idx import read_idx
from nnctl.experiment import build
from nnctl.predict import predict_files
from nnctl.trained import Trained

pytestmark = [pytest.mark.slow,  # runs the CLI in subprocesses and trains real models
              pytest.mark.xdist_group("predict_export")]  # one worker: the module's run is trained once

SLICE = ["data.subset=3000", "data.test_subset=1000", "data.validation=500", "train.epochs=2", "optimizer.lr=2e-3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, mnist_root) -> Path:
    """One tiny real run of mnist_mlp, with TensorBoard events and a metrics row every 5 steps."""
    runs = tmp_path_factory.mktemp("io") / "runs"
    result = nnctl("train", str(CONFIGS / "mnist_mlp.yaml"), *SLICE, "train.log_every_steps=5", "--tensorboard",
                   "--runs-dir", str(runs), "-q")
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def digits(mnist_root) -> tuple[np.ndarray, np.ndarray]:
    """The first 20 MNIST test images (raw uint8, 28×28) and their labels."""
    folder = mnist_root / "mnist"
    return (read_idx(folder / "t10k-images-idx3-ubyte.gz")[:20],
            read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:20])


def test_predict_prepares_inputs_as_the_training_data(run, digits, tmp_path):
    images, _ = digits
    np.save(tmp_path / "x.npy", images)
    ok("predict", str(run / "checkpoints" / "last.pkl"), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"))
    probabilities = np.load(tmp_path / "p.npy")
    exp = Trained.load(run / "checkpoints" / "last.pkl").experiment()
    expected = exp.loss.probabilities(exp.model.forward(exp.data.test.x[:20]))  # scaled by the dataset itself
    assert probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_a_run_directory_stands_for_its_best_checkpoint_and_to_resume_for_its_last(run, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits[0])
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    best, last = copy / "checkpoints" / "best.pkl", copy / "checkpoints" / "last.pkl"
    for args in (["eval", "--json"], ["predict"], ["export", "-o", str(tmp_path / "w.npz"), "--force"]):
        inputs = [str(tmp_path / "x.npy")] if args == ["predict"] else []
        assert ok(args[0], str(copy), *inputs, *args[1:]) == ok(args[0], str(best), *inputs, *args[1:]).replace(
            str(best), str(copy / "checkpoints" / "best.pkl"))
    best.write_bytes(b"not a pickle")  # which file a run directory stands for shows in what reading it says
    assert "best.pkl: not a readable checkpoint" in nnctl("eval", str(copy)).stderr
    resumed = nnctl("train", "--resume", str(copy), "train.epochs=3", "-q")  # from last.pkl, in the same run
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((copy / "summary.json").read_text())["epochs"] == 3
    best.unlink()
    assert json.loads(ok("eval", str(copy), "--json"))["checkpoint"] == str(last)


def test_a_run_folder_that_lost_its_config_or_summary_still_stands_for_its_checkpoint(run, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits[0][:3])
    best = str(run / "checkpoints" / "best.pkl")
    for lost in ("config.yaml", "summary.json"):
        copy = tmp_path / f"without_{Path(lost).stem}"
        shutil.copytree(run, copy)
        (copy / lost).unlink()
        assert json.loads(ok("eval", str(copy), "--json"))["checkpoint"] == str(copy / "checkpoints" / "best.pkl")
        assert ok("predict", str(copy), str(tmp_path / "x.npy")) == ok("predict", best, str(tmp_path / "x.npy"))
        ok("export", str(copy), "-o", str(tmp_path / f"{lost}.npz"))
        ok("train", str(CONFIGS / "mnist_mlp.yaml"), *SLICE, "train.epochs=1", "--init-from", str(copy),
           "--runs-dir", str(tmp_path / "runs"), "-q")
        resumed = nnctl("train", "--resume", str(copy), "train.epochs=3", "-q")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads((copy / "summary.json").read_text())["epochs"] == 3


def test_predict_table_csv_and_json_agree(run, digits, tmp_path):
    images, labels = digits
    np.savetxt(tmp_path / "x.csv", images[:4].reshape(4, -1), delimiter=",", fmt="%d")
    np.savez(tmp_path / "x.npz", x=images[:4])
    ckpt = str(run / "checkpoints" / "best.pkl")
    table = ok("predict", ckpt, str(tmp_path / "x.csv"), str(tmp_path / "x.npz"), "--top", "2")
    assert "x.csv[3]" in table and "x.npz[0]" in table and "top 2 (class probability)" in table
    ok("predict", ckpt, str(tmp_path / "x.csv"), "-o", str(tmp_path / "p.csv"))
    ok("predict", ckpt, str(tmp_path / "x.npz"), "-o", str(tmp_path / "p.json"), "-k", "3")
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    records = json.loads((tmp_path / "p.json").read_text())
    assert [r["input"] for r in rows] == [f"{tmp_path / 'x.csv'}[{i}]" for i in range(4)]
    assert [int(r["class"]) for r in rows] == [r["class"] for r in records] == labels[:4].tolist()
    for row, record in zip(rows, records, strict=True):
        assert len(record["top"]) == 3 and record["top"][0]["class"] == record["class"]
        assert float(row[f"p{record['class']}"]) == pytest.approx(record["top"][0]["probability"], rel=1e-5)
    # --json prints what -o FILE.json writes, as eval, summary and the others print their results
    assert json.loads(ok("predict", ckpt, str(tmp_path / "x.npz"), "-k", "3", "--json")) == records
    both = nnctl("predict", ckpt, str(tmp_path / "x.npz"), "--json", "-o", str(tmp_path / "q.json"))
    assert both.returncode == 2 and "give one of them" in both.stderr and not (tmp_path / "q.json").exists()


def test_a_png_digit_is_resized_greyed_and_classified(run, digits, tmp_path):
    images, labels = digits
    Image.fromarray(images[0]).save(tmp_path / "seven.png")
    Image.fromarray(images[1]).resize((56, 56)).convert("RGB").save(tmp_path / "two_rgb_56.png")
    Image.fromarray(images[2]).save(tmp_path / "one.jpg", quality=95)
    ckpt = str(run / "checkpoints" / "last.pkl")
    ok("predict", ckpt, *(str(tmp_path / n) for n in ("seven.png", "two_rgb_56.png", "one.jpg")),
       "-o", str(tmp_path / "p.json"))
    records = json.loads((tmp_path / "p.json").read_text())
    assert labels[:3].tolist() == [7, 2, 1]
    assert [r["class"] for r in records] == [7, 2, 1]
    np.save(tmp_path / "seven.npy", images[0])
    ok("predict", ckpt, str(tmp_path / "seven.npy"), "-o", str(tmp_path / "q.json"))
    same = json.loads((tmp_path / "q.json").read_text())[0]["probabilities"]
    assert records[0]["probabilities"] == pytest.approx(same, rel=1e-4, abs=1e-9)  # float32 sums in other batches


def test_a_folder_of_images_predicts_every_input_file_in_it_and_its_subfolders(run, digits, tmp_path):
    """A folder was 'unknown kind of input': every image had to be named on the command line."""
    images, labels = digits
    (tmp_path / "scans" / "b").mkdir(parents=True)
    (tmp_path / "scans" / ".thumbs").mkdir()
    Image.fromarray(images[0]).save(tmp_path / "scans" / "A.PNG")
    Image.fromarray(images[1]).save(tmp_path / "scans" / "b" / "two.bmp")
    Image.fromarray(images[2]).save(tmp_path / "scans" / ".thumbs" / "one.png")  # hidden: left out
    (tmp_path / "scans" / "._A.PNG").write_bytes(b"\x00\x05\x16\x07")  # macOS's metadata beside A.PNG: left out
    (tmp_path / "scans" / "notes.txt").write_text("scanned on Monday")  # not an input kind: left out
    ok("predict", str(run), str(tmp_path / "scans"), "-o", str(tmp_path / "p.json"))
    records = json.loads((tmp_path / "p.json").read_text())
    assert [(Path(r["input"]).name, r["class"]) for r in records] == [("A.PNG", labels[0]), ("two.bmp", labels[1])]
    (tmp_path / "none").mkdir()
    result = nnctl("predict", str(run), str(tmp_path / "none"))
    assert result.returncode == 1 and "none: a folder without input files (.npy, .npz" in result.stderr


def test_exported_then_imported_weights_give_the_same_outputs(run, digits, tmp_path):
    ckpt = run / "checkpoints" / "last.pkl"
    weights = tmp_path / "weights.npz"
    stdout = ok("export", str(ckpt), "-o", str(weights))
    assert "dense_1/W" in stdout
    with np.load(weights, allow_pickle=False) as archive:
        arrays = dict(archive)
    saved = checkpoint.load(ckpt).model
    assert sorted(arrays) == ["dense_1/W", "dense_1/b", "dense_2/W", "dense_2/b", "dense_3/W", "dense_3/b",
                              "input_shape", "output_shape"]
    np.testing.assert_array_equal(arrays["dense_2/W"], saved["dense_2"]["params"]["W"])
    assert arrays["input_shape"].tolist() == [784] and arrays["output_shape"].tolist() == [10]

    np.save(tmp_path / "x.npy", digits[0])
    ok("predict", str(ckpt), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"))
    imported = build(load_config(CONFIGS / "mnist_mlp.yaml", [*SLICE, f"model.weights={weights}"]))
    trained = Trained.load(ckpt)
    trained.model = imported.model  # the imported weights in place of the checkpoint's own
    np.testing.assert_array_equal(predict_files(trained, [tmp_path / "x.npy"]).values, np.load(tmp_path / "p.npy"))

    from_weights = json.loads(ok("eval", str(CONFIGS / "mnist_mlp.yaml"), *SLICE, f"model.weights={weights}",
                                 "--json"))
    from_checkpoint_ = json.loads(ok("eval", str(ckpt), "--json"))
    for key in ("samples", "loss", "accuracy", "confusion_matrix"):
        assert from_weights[key] == from_checkpoint_[key], key


def test_train_and_eval_start_from_weights_made_elsewhere(tmp_path):
    solved = tmp_path / "and.npz"  # the perceptron's AND solution, written by hand as another tool would
    np.savez(solved, **{"dense_1/W": np.array([[0.1], [0.2]]), "dense_1/b": np.array([-0.2])})
    wrong = tmp_path / "or.npz"
    np.savez(wrong, **{"dense_1/W": np.array([[0.1], [0.1]]), "dense_1/b": np.array([-0.05])})
    config = str(CONFIGS / "perceptron_and.yaml")
    assert json.loads(ok("eval", config, f"model.weights={solved}", "--json"))["accuracy"] == 1.0
    assert json.loads(ok("eval", config, f"model.weights={wrong}", "--json"))["accuracy"] == 0.5

    runs = tmp_path / "runs"
    ok("train", config, f"model.weights={solved}", "train.epochs=1", "--runs-dir", str(runs), "-q")
    (run_dir,) = runs.iterdir()
    layer = checkpoint.load(run_dir / "checkpoints" / "last.pkl").model["dense_1"]["params"]
    assert layer["W"][:, 0].tolist() == [0.1, 0.2] and layer["b"].tolist() == [-0.2]  # no mistake, no update
    assert f"weights: {solved}" in (run_dir / "config.yaml").read_text()


def trained_two_classes(tmp_path: Path, data: str) -> Path:
    """The run folder of a one-epoch dense softmax model of two classes, trained on the data section `data` (its
    paths in tmp_path)."""
    (tmp_path / "c.yaml").write_text(f"data: {data}\nmodel: {{layers: [{{type: dense, units: 2}}]}}\n"
                                     "loss: softmax_cross_entropy\noptimizer: {type: sgd, lr: 0.1}\n"
                                     "train: {epochs: 1}\n")
    ok("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_predict_reads_an_npz_datasets_inputs_from_its_x_key(tmp_path):
    """A run trained on an .npz of 'inputs' and 'targets' (data.x_key, y_key) refused that very file as input:
    'expected one array, or one named x or x_test'."""
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.savez(tmp_path / "d.npz", inputs=x, targets=(x.sum(axis=1) > 0).astype(np.int64))
    run_dir = trained_two_classes(tmp_path, "{type: npz, path: d.npz, x_key: inputs, y_key: targets}")
    ok("predict", str(run_dir), str(tmp_path / "d.npz"), "-o", str(tmp_path / "p.npy"))
    assert np.load(tmp_path / "p.npy").shape == (20, 2)
    np.savez(tmp_path / "other.npz", a=x, b=x)
    result = nnctl("predict", str(run_dir), str(tmp_path / "other.npz"))
    assert result.returncode == 1 and "other.npz: holds the arrays a, b; expected one array, or one named inputs, " \
                                      "x or x_test" in result.stderr, result.stderr


def test_predict_reads_a_csv_datasets_inputs_with_its_delimiter(tmp_path):
    """A model trained on a ';' CSV (data.delimiter, as Excel writes in much of Europe) refused its inputs in the same
    format: 'the file looks separated by ';', not ','; predict reads its .csv inputs with ','."""
    (tmp_path / "t.csv").write_text("a;b;label\n" + "".join(f"{i};{-i};{i % 2}\n" for i in range(10)))
    (tmp_path / "in.csv").write_text("a;b\n1;-1\n2;-2\n3;-3\n")
    run_dir = trained_two_classes(tmp_path, "{type: csv, path: t.csv, delimiter: ';'}")
    ok("predict", str(run_dir), str(tmp_path / "in.csv"), "-o", str(tmp_path / "p.npy"))
    assert np.load(tmp_path / "p.npy").shape == (3, 2)


def test_a_relative_path_in_an_override_starts_from_the_current_folder_not_the_configs(tmp_path):
    """As a shell user expects: `nnctl eval configs/perceptron_and.yaml model.weights=and.npz` reads ./and.npz
    (it looked for configs/and.npz); a path written in a config file still starts from the file's folder."""
    np.savez(tmp_path / "and.npz", **{"dense_1/W": np.array([[0.1], [0.2]]), "dense_1/b": np.array([-0.2])})
    (tmp_path / "xor.csv").write_text("0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    for weights in ("model.weights=and.npz", "model.weights={path: and.npz, layers: [dense_1]}",
                    "model.weights.path=and.npz"):
        evaluated = nnctl("eval", str(CONFIGS / "perceptron_and.yaml"), weights, "--json", cwd=tmp_path)
        assert evaluated.returncode == 0, (weights, evaluated.stderr)
        assert json.loads(evaluated.stdout)["accuracy"] == 1.0
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "xor.yaml").write_text(XOR.replace("{type: logic, op: xor}", "{type: csv, path: x.csv}"))
    trained = nnctl("train", "configs/xor.yaml", "data.path=xor.csv", "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    missing = nnctl("train", "configs/xor.yaml", "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert missing.returncode != 0 and str(tmp_path / "configs" / "x.csv") in missing.stderr, missing.stderr


def test_a_config_whose_weights_leave_layers_untrained_is_refused_where_a_trained_model_is_meant(tmp_path):
    """model.weights with only some layers' arrays is a start for training (a frozen base under a new head), not a
    trained model: eval, predict and export would judge the initializers' layers (chance accuracy, no warning)."""
    np.savez(tmp_path / "base.npz", **{"dense_1/W": np.ones((2, 4)), "dense_1/b": np.zeros(4)})
    (tmp_path / "head.yaml").write_text(XOR.replace("layers:", "weights: {path: base.npz, layers: [dense_1]}"
                                                                      "\n  layers:"))
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    message = "model.weights: leaves dense_2 with its initial, untrained weights (a start for training)"
    for args in (["eval"], ["predict", "--", str(tmp_path / "x.npy")], ["export", "-o", str(tmp_path / "w.npz")]):
        command, *rest = args
        result = nnctl(command, str(tmp_path / "head.yaml"), *rest)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "w.npz").exists()
    features = nnctl("predict", str(tmp_path / "head.yaml"), str(tmp_path / "x.npy"), "--layer", "dense_1", "-o",
                     str(tmp_path / "f.npy"))  # the trained base's outputs
    assert features.returncode == 0 and np.load(tmp_path / "f.npy").shape == (3, 4), features.stderr
    typo = nnctl("predict", str(tmp_path / "head.yaml"), str(tmp_path / "x.npy"), "--layer", "dens_1", "-o",
                 str(tmp_path / "g.npy"))
    assert typo.returncode == 2 and "no layer 'dens_1' (did you mean 'dense_1'?)" in typo.stderr, typo.stderr
    trained = nnctl("train", str(tmp_path / "head.yaml"), "train.epochs=1", "-q", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr


@pytest.mark.parametrize("arrays, message", [
    ({"dense_1/W": np.zeros((3, 1)), "dense_1/b": np.zeros(1)},
     "array 'dense_1/W' has shape [3, 1], but this model's dense_1/W has shape [2, 1]"),
    ({"dense_1/W": np.zeros((2, 1))}, "missing 'dense_1/b' [1]"),
    ({"dense_1/W": np.zeros((2, 1)), "dense_1/b": np.zeros(1), "dense_2/W": np.zeros((1, 1))},
     "not in this model 'dense_2/W' [1, 1]"),
    ({"dense_1/W": np.zeros((2, 1)), "dense_1/b": np.zeros(1), "input_shape": np.array([784])},
     "exported from a model with input shape [784], but this model's is [2]"),
    ({"dense_1/W": np.full((2, 1), np.nan), "dense_1/b": np.zeros(1)}, "'dense_1/W' holds NaN or infinite"),
])
def test_weights_that_do_not_fit_are_refused_by_name_and_shape(tmp_path, arrays, message):
    np.savez(tmp_path / "w.npz", **arrays)
    result = nnctl("eval", str(CONFIGS / "perceptron_and.yaml"), f"model.weights={tmp_path / 'w.npz'}")
    assert result.returncode == 2
    assert "model.weights" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_inputs_exit_with_a_message(run, tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((3, 100)))
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "x.txt").write_text("1 2 3\n")
    np.save(tmp_path / "ok.npy", np.zeros((1, 784)))
    np.save(tmp_path / "empty.npy", np.zeros((0, 784)))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), np.uint8)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:400])  # of 880 bytes
    ckpt = str(run / "checkpoints" / "last.pkl")
    cases = [
        (["wide.npy"], "an array of shape [3, 100] does not fit this model, which was trained on samples of "
                       "shape [1, 28, 28] (784 values)"),
        (["missing.npy"], "missing.npy: no such file"),
        (["corrupt.npz"], "corrupt.npz: not a readable .npz file"),
        (["corrupt.png"], "corrupt.png: not a readable image (not in a format Pillow knows"),
        (["cut.png"], "cut.png: not a readable image"),
        (["x.txt"], "unknown kind of input '.txt'; expected one of: .npy, .npz, .csv, .png, .jpg, .jpeg, .bmp, .gif, "
                    ".tif, .tiff, .webp"),
        (["words.npy"], "the inputs are not numbers"),
        (["empty.npy"], "empty.npy: holds no samples (an array of shape [0, 784])"),
    ]
    for files, message in cases:
        result = nnctl("predict", ckpt, *(str(tmp_path / f) for f in files))
        assert result.returncode == 1, (files, result.stdout)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    result = nnctl("predict", ckpt, str(tmp_path / "ok.npy"), "-o", str(tmp_path / "p.txt"))
    assert result.returncode == 2 and "name the file *.csv, *.npy or *.json" in result.stderr
    assert not (tmp_path / "p.txt").exists()
    result = nnctl("export", str(tmp_path / "none.pkl"), "-o", str(tmp_path / "w.npz"))
    assert result.returncode == 1 and "none.pkl: no such checkpoint" in result.stderr


def test_an_image_bomb_meets_nnctls_limit_without_pillows_warning(run, tmp_path):
    """A PNG header declaring 10,000×10,000 pixels (no pixel data): Pillow warned of a bomb on stderr, with its
    source line, and refused past 179 M pixels whatever NNCTL_MAX_MEMORY said; nnctl's own limit decides."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)  # RGB, 8 bits
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    result = nnctl("predict", str(run / "checkpoints" / "last.pkl"), str(tmp_path / "bomb.png"),
                   env={"NNCTL_MAX_MEMORY": "100M"})
    assert result.returncode == 1, result.stdout
    assert ("bomb.png: an image of 10000×10000 (RGB) resized to 28×28 would need 476.8 MiB, more than the 100.0 MiB"
            in result.stderr)
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_inputs_are_counted_against_the_limit_as_prepared_not_only_as_read(run, tmp_path):
    """20,000 bytes-per-pixel images read in 15 MiB but become 60 MiB of float32 beside them: an .npz of
    compressed zeros made 2 GB into 7 GB this way."""
    np.savez_compressed(tmp_path / "many.npz", x=np.zeros((20_000, 784), np.uint8))
    result = nnctl("predict", str(run / "checkpoints" / "last.pkl"), str(tmp_path / "many.npz"), "-o",
                   str(tmp_path / "p.npy"), env={"NNCTL_MAX_MEMORY": "64M"})
    assert result.returncode == 1 and not (tmp_path / "p.npy").exists(), result.stderr
    assert ("many.npz: 20,000 inputs (read, joined, prepared as the training samples were, and their outputs) "
            "would need" in result.stderr and "Traceback" not in result.stderr), result.stderr


def test_tensorboard_events_hold_the_metrics(run):
    events = EventAccumulator(str(run))
    events.Reload()
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    epochs = [r for r in rows if r["kind"] == "epoch"]
    steps = [r for r in rows if r["kind"] == "step"]
    assert len(epochs) == 2 and len(steps) == 8  # 2,500 samples in batches of 128: 20 steps an epoch
    for tag, kind, selected in (("epoch/val_accuracy", "epoch", epochs), ("step/loss", "step", steps)):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [int(r[kind]) for r in selected]
        column = tag.split("/")[1]
        np.testing.assert_allclose([s.value for s in scalars], [float(r[column]) for r in selected], rtol=1e-6)
    assert {"epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/lr", "step/lr"} <= set(events.Tags()["scalars"])


def test_an_output_never_replaces_an_input_and_replaces_another_file_only_with_force(run, digits, tmp_path):
    ckpt = str(run / "checkpoints" / "last.pkl")
    np.savetxt(tmp_path / "x.csv", digits[0][:3].reshape(3, -1), delimiter=",", fmt="%d")
    np.save(tmp_path / "x.npy", digits[0][:3])
    (tmp_path / "kept.json").write_text("{}")
    (tmp_path / "kept.npz").write_bytes(b"kept")
    (tmp_path / "link.npy").symlink_to(tmp_path / "x.npy")
    inputs = {name: (tmp_path / name).read_bytes() for name in ("x.csv", "x.npy", "kept.json", "kept.npz")}
    for args, phrase in [(["predict", ckpt, str(tmp_path / "x.csv"), "-o", str(tmp_path / "x.csv"), "--force"],
                          "this is one of the command's inputs"),
                         (["predict", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "link.npy"), "--force"],
                          "this is one of the command's inputs"),
                         (["predict", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "kept.json")],
                          "kept.json exists; give --force to replace it"),
                         (["export", ckpt, "-o", str(tmp_path / "kept.npz")], "kept.npz exists; give --force"),
                         (["convert", ckpt, "-c", str(CONFIGS / "mnist_mlp.yaml"), "-o", str(tmp_path / "kept.npz")],
                          "kept.npz exists; give --force")]:
        result = nnctl(*args)
        assert result.returncode == 1 and phrase in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert {name: (tmp_path / name).read_bytes() for name in inputs} == inputs, "nothing was written over"
    ok("predict", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "kept.json"), "--force")
    assert len(json.loads((tmp_path / "kept.json").read_text())) == 3


def test_predict_names_the_labels_of_data_classes_not_their_places(digits, tmp_path):
    """A model trained on data.classes [5, 6, 7, 8, 9] calls a 7 a 7 (its output 2) in the table, csv and json."""
    runs = tmp_path / "runs"
    ok("train", str(CONFIGS / "mnist_mlp.yaml"), *SLICE, "data.classes=[5, 6, 7, 8, 9]", "model.layers.4.units=5",
       "--runs-dir", str(runs), "-q")
    images, labels = digits
    high = labels >= 5
    np.save(tmp_path / "x.npy", images[high])
    run = str(next(runs.iterdir()))
    ok("predict", run, str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"))
    ok("predict", run, str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.csv"))
    ok("predict", run, str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.json"))
    expected = (5 + np.load(tmp_path / "p.npy").argmax(axis=1)).tolist()
    assert np.mean(np.array(expected) == labels[high]) > 0.8
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[2:] == ["p5", "p6", "p7", "p8", "p9"]
    assert [int(r["class"]) for r in rows] == expected
    records = json.loads((tmp_path / "p.json").read_text())
    assert [r["class"] for r in records] == [r["top"][0]["class"] for r in records] == expected
    assert all(5 <= t["class"] <= 9 for r in records for t in r["top"])
    table = nnctl("predict", run, str(tmp_path / "x.npy"), env={"COLUMNS": "200"}).stdout
    cells = [line.split("│")[1:-1] for line in table.splitlines() if "x.npy[" in line]
    assert [int(row[1]) for row in cells] == expected
    assert all(5 <= int(c) <= 9 for row in cells for c in row[3].split()[::2])
    report = json.loads(ok("eval", run, "--json"))  # eval names the classes as predict does
    assert report["classes"] == [5, 6, 7, 8, 9] == [row["class"] for row in report["per_class"]]
    shown = nnctl("eval", run, env={"COLUMNS": "200"}).stdout.split("confusion matrix")[1]
    assert [line.split("│")[1].strip() for line in shown.splitlines() if line.startswith("│")][:5] == \
        ["5", "6", "7", "8", "9"]


def test_a_csv_of_predictions_reads_back_as_the_very_values(run, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits[0])
    ckpt = str(run / "checkpoints" / "best.pkl")
    ok("predict", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"))
    ok("predict", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.csv"))
    values = np.load(tmp_path / "p.npy")
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    read = np.array([[row[f"p{j}"] for j in range(10)] for row in rows], dtype=values.dtype)
    np.testing.assert_array_equal(read, values)


def test_a_16_bit_png_predicts_as_the_same_image_in_8_bits(run, digits, tmp_path):
    """Pillow's convert('L') clips 16-bit grey at 255 (a black and white digit); nnctl scales it to 0–255."""
    seven = digits[0][0]
    Image.fromarray(seven).save(tmp_path / "seven8.png")
    Image.fromarray(seven.astype(np.uint16) * 257).save(tmp_path / "seven16.png")
    ckpt = str(run / "checkpoints" / "best.pkl")
    ok("predict", ckpt, str(tmp_path / "seven8.png"), str(tmp_path / "seven16.png"), "-o", str(tmp_path / "p.npy"))
    eight, sixteen = np.load(tmp_path / "p.npy")
    np.testing.assert_array_equal(sixteen, eight)
    Image.fromarray(seven.astype(np.float32)).save(tmp_path / "float.png", format="TIFF")
    result = nnctl("predict", ckpt, str(tmp_path / "float.png"))
    assert result.returncode == 1 and "float.png: an image of 32-bit float pixels" in result.stderr, result.stderr


def test_the_kind_of_output_file_is_checked_before_any_input_is_read(tmp_path):
    missing = str(tmp_path / "missing.pkl")  # were it read first, its absence would be the error (exit 1)
    config = str(CONFIGS / "mnist_mlp.yaml")
    q, w, p = (str(tmp_path / name) for name in ("q.txt", "w.txt", "w.npz"))
    for args, phrase in [(["convert", str(tmp_path / "missing.safetensors"), "-c", config, "-o", q],
                          "q.txt: the weights are written as an .npz archive; name the file *.npz"),
                         (["export", missing, "-o", w], "w.txt: the weights are written as an .npz archive"),
                         (["export", missing, "--format", "onnx", "-o", p], "w.npz: name the ONNX file *.onnx"),
                         (["predict", missing, missing, "-o", q], "q.txt")]:
        result = nnctl(*args)
        assert result.returncode == 2 and phrase in result.stderr, (args, result.stderr)
        assert result.stdout == "" and "missing" not in result.stderr, (args, result.stderr)
