"""The real CLI on real data: reference toys, an MNIST slice, eval, resume, Ctrl-C, NaN, unsafe checkpoints."""

import csv
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from helpers import CONFIGS, REPO, cifar_archive, cifar_batches, nnctl, shipped_overrides
from nnctl import checkpoint
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.data import cifar10
from nnctl.onnx_export import to_onnx
from nnctl.trained import Trained

pytestmark = pytest.mark.slow  # runs the CLI in subprocesses and trains real models

SLICE = ["data.subset=3000", "data.test_subset=1000", "data.validation=500"]


def train(tmp_path: Path, config: str, *overrides: str, expect: int = 0) -> Path:
    """Runs `nnctl train` into tmp_path/runs and returns the run directory."""
    runs = tmp_path / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    result = nnctl("train", str(CONFIGS / config), *overrides, "--runs-dir", str(runs))
    assert result.returncode == expect, result.stderr
    assert "Traceback" not in result.stderr
    (run_dir,) = set(runs.iterdir()) - before
    return run_dir


def model_of(path: Path):
    """The model a checkpoint holds, rebuilt from its config."""
    return Trained.load(path).model


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("config, weights, bias, predictions", [
    ("perceptron_and.yaml", [0.1, 0.2], -0.2, [1, 0, 0, 0]),
    ("perceptron_or.yaml", [0.1, 0.1], 0.0, [1, 0, 1, 1]),
])
def test_perceptron_reference_weights(tmp_path, config, weights, bias, predictions):
    run = train(tmp_path, config)
    model = model_of(run / "checkpoints" / "last.pkl")
    dense = model.layers[0]
    np.testing.assert_allclose(dense.params["W"][:, 0], weights, atol=1e-12)
    np.testing.assert_allclose(dense.params["b"], [bias], atol=1e-12)
    x = np.array([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=np.float64)
    assert model.forward(x)[:, 0].tolist() == predictions
    assert json.loads((run / "summary.json").read_text())["test"]["test_accuracy"] == 1.0


def test_linear_unit_salary_reference(tmp_path):
    model = model_of(train(tmp_path, "linear_salary.yaml") / "checkpoints" / "last.pkl")
    dense = model.layers[0]
    assert dense.params["W"][0, 0] == pytest.approx(1124.0634970262222, abs=1e-6)
    assert dense.params["b"][0] == pytest.approx(85.485289, abs=1e-6)
    predicted = model.forward(np.array([[3.4], [15.0], [1.5], [6.3]]))[:, 0]
    np.testing.assert_allclose(predicted, [3907.30, 16946.44, 1771.58, 7167.09], atol=0.005)


@pytest.mark.parametrize("units", [4, 2])
def test_xor_mlp_fits_xor(tmp_path, units):
    """The reference: a 2-4-1 or a 2-2-1 tanh network fits XOR (100 %)."""
    summary = json.loads((train(tmp_path, "xor_mlp.yaml", f"model.layers.0.units={units}") / "summary.json")
                         .read_text())
    assert summary["test"]["test_accuracy"] == 1.0


def test_a_single_perceptron_cannot_fit_xor(tmp_path):
    """The reference's other half: XOR is not linearly separable, so no epoch gets more than 3 of 4 right."""
    run = train(tmp_path, "perceptron_and.yaml", "data.op=xor", "train.epochs=100", "train.metrics=[accuracy]")
    accuracies = [float(row["accuracy"]) for row in rows(run)]
    assert len(accuracies) == 100 and max(accuracies) == 0.75


@pytest.mark.parametrize("activation, book", [("sigmoid", 0.9435), ("relu", 0.970)])
def test_the_two_layer_net_reaches_the_books_mnist_accuracy(tmp_path, activation, book):
    """REFERENCE_VALUES' anchor: 784-50-10, SGD 0.1, batches of 100, 10,000 iterations on all of MNIST, the final
    weights tested on its 10,000 test images: within a point of the book's figure (its init and order differ)."""
    run = train(tmp_path, "mnist_twolayer.yaml", "train.steps=10000", "train.test_on=last",
                f"model.layers.0.activation={activation}", "-q")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 10000 and summary["test_on"]["weights"] == "last"
    assert summary["test"]["test_accuracy"] == pytest.approx(book, abs=0.01)


def test_normalize_takes_each_channels_statistics_also_when_the_images_are_flattened(tmp_path):
    """mnist_mlp flattens its images: the statistics are still the one grey channel's (they were each pixel's,
    whose border pixels have a std near 1e-4, so validation and test inputs reached hundreds)."""
    run = train(tmp_path, "mnist_mlp.yaml", *SLICE, "train.epochs=1", "data.normalize=true", "-q")
    saved = checkpoint.load(run / "checkpoints" / "last.pkl")
    mean, std = saved.inputs.channel_stats
    assert mean.shape == std.shape == (1, 1, 1) and 0.1 < mean.item() < 0.2 and 0.2 < std.item() < 0.4
    exp = Trained.load(run / "checkpoints" / "last.pkl").experiment()
    assert max(float(np.abs(split.x).max()) for split in (exp.data.train, exp.data.val, exp.data.test)) < 3
    summary = json.loads((run / "summary.json").read_text())
    evaluated = json.loads(nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--json").stdout)
    assert summary["test"]["test_loss"] == pytest.approx(evaluated["loss"], rel=1e-6)

    raw = pickle.loads((run / "checkpoints" / "best.pkl").read_bytes())  # an earlier nnctl's per-pixel statistics
    pixels = exp.data.train.x * std.item() + mean.item()
    raw["inputs"]["channel_stats"] = [pixels.mean(axis=0), np.maximum(pixels.std(axis=0), 1e-8)]
    (tmp_path / "earlier.pkl").write_bytes(pickle.dumps(raw))
    earlier = nnctl("eval", str(tmp_path / "earlier.pkl"), "--json")
    assert earlier.returncode == 0 and json.loads(earlier.stdout)["loss"] > 0, earlier.stderr


def test_normalize_takes_each_features_statistics_of_sequences_over_samples_and_steps(tmp_path):
    run = train(tmp_path, "mnist_lstm.yaml", *SLICE, "train.epochs=1", "data.normalize=true", "-q")
    mean, std = checkpoint.load(run / "checkpoints" / "last.pkl").inputs.channel_stats
    exp = Trained.load(run / "checkpoints" / "last.pkl").experiment()
    assert mean.shape == std.shape == (1, 28) and exp.data.train.x.shape[1:] == (28, 28)
    np.testing.assert_allclose(exp.data.train.x.mean(axis=(0, 1), dtype=np.float64), 0, atol=1e-5)
    np.testing.assert_allclose(exp.data.train.x.std(axis=(0, 1), dtype=np.float64), 1, atol=1e-4)
    evaluated = json.loads(nnctl("eval", str(run / "checkpoints" / "last.pkl"), "--json").stdout)
    assert evaluated["accuracy"] > 0.3  # 1 epoch on 2,500 sequences; chance is 0.1


def test_normalize_takes_samples_of_single_values_as_one_feature(tmp_path):
    """An .npz x of shape (N,) was refused by data.normalize ('the samples have shape ()'), flatten: true or not."""
    x = np.linspace(0, 100, 50)
    np.savez(tmp_path / "one.npz", x=x, y=3 * x + 1)
    (tmp_path / "one.yaml").write_text("data: {type: npz, path: one.npz, normalize: true}\n"
                                       "model: {layers: [{type: dense, units: 1}]}\nloss: mse\n"
                                       "optimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 60, batch_size: full}\n")
    run = train(tmp_path, str(tmp_path / "one.yaml"), "-q")
    mean, std = checkpoint.load(run / "checkpoints" / "last.pkl").inputs.channel_stats
    assert mean.shape == std.shape == () and mean == pytest.approx(50) and std == pytest.approx(x.std())
    np.save(tmp_path / "q.npy", np.array([10.0, 50.0]))
    predicted = nnctl("predict", str(run), str(tmp_path / "q.npy"), "-o", str(tmp_path / "p.npy"))
    assert predicted.returncode == 0, predicted.stderr
    np.testing.assert_allclose(np.load(tmp_path / "p.npy")[:, 0], [31, 151], rtol=1e-3)  # as raw values, normalized


def test_a_csv_runs_log_says_how_its_targets_were_read_where_the_config_left_it_open(tmp_path):
    (tmp_path / "salary.csv").write_text("5,5500\n3,2300\n8,7600\n1.4,1800\n10.1,11400\n")
    (tmp_path / "ages.csv").write_text("0.1,30\n0.5,41\n0.9,65\n0.3,30\n")
    for name, line in (("salary", "data: salary.csv's targets read as values (regression; set data.targets: labels "
                                  "for classes)"),
                       ("ages", "data: ages.csv's targets read as class labels 0–65 (set data.targets: values for "
                                "regression)")):
        loss = "mse" if name == "salary" else "softmax_cross_entropy"
        units = 1 if name == "salary" else 66
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\ndata: {{type: csv, path: {name}.csv}}\nmodel: {{layers: [{{type: dense, units: {units}}}]}}"
            f"\nloss: {loss}\noptimizer: {{type: sgd, lr: 0.0001}}\ntrain: {{epochs: 1}}\n")
        run = train(tmp_path, str(tmp_path / f"{name}.yaml"), "-q")  # CONFIGS / an absolute path: that path
        assert line in (run / "train.log").read_text()


def test_integer_regression_targets_in_an_npz_train_eval_and_predict_as_values(tmp_path):
    """With data.targets: values an .npz of integer targets is a regression end to end: mse, no accuracy, and
    predict prints the output (it was read as 143 classes: accuracy 0, and predict named a class)."""
    x = np.random.default_rng(0).uniform(0, 1, (64, 2))
    y = np.rint(x @ [3.0, 5.0]).astype(np.int64)  # 0 to 8: integers, as counts are
    np.savez(tmp_path / "r.npz", x=x, y=y, x_test=x[:8], y_test=y[:8])
    (tmp_path / "r.yaml").write_text("data: {type: npz, path: r.npz, targets: values, validation: 8}\n"
                                     "model: {layers: [{type: dense, units: 1}]}\nloss: mse\n"
                                     "optimizer: {type: adam, lr: 0.1}\ntrain: {epochs: 30, batch_size: 8}\n")
    run = train(tmp_path, str(tmp_path / "r.yaml"), "-q")
    assert "val_mse" in (run / "metrics.csv").read_text().splitlines()[0]
    evaluated = json.loads(nnctl("eval", str(run), "--json").stdout)
    assert "accuracy" not in evaluated and evaluated["mse"] < 0.5, evaluated
    np.save(tmp_path / "q.npy", np.array([[1.0, 1.0]]))
    predicted = nnctl("predict", str(run), str(tmp_path / "q.npy"), "-o", str(tmp_path / "p.json"))
    assert predicted.returncode == 0, predicted.stderr
    output = json.loads((tmp_path / "p.json").read_text())
    assert "class" not in output[0] and abs(output[0]["outputs"][0] - 8) < 1, output


def test_a_validation_split_of_one_class_from_a_sorted_file_is_warned_of_and_can_be_drawn_at_random(tmp_path):
    """A file sorted by class trained against a validation split of its last class alone, without a word."""
    y = np.repeat(np.arange(3), 20)
    np.savez(tmp_path / "sorted.npz", x=np.random.default_rng(0).normal(size=(60, 2)) + y[:, None], y=y)
    (tmp_path / "s.yaml").write_text("data: {type: npz, path: sorted.npz, validation: 10}\n"
                                     "model: {layers: [{type: dense, units: 3}]}\nloss: softmax_cross_entropy\n"
                                     "optimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 1}\n")
    runs = tmp_path / "runs"
    result = nnctl("train", str(tmp_path / "s.yaml"), "-q", "--runs-dir", str(runs))
    warning = (f"warning: data.validation (the last 10 samples of {tmp_path / 'sorted.npz'}) holds only class 2, "
               "though the training part has 3 classes")
    assert result.returncode == 0 and warning in result.stderr, result.stderr
    assert warning in next(runs.glob("*/train.log")).read_text()
    drawn = nnctl("train", str(tmp_path / "s.yaml"), "data.validation_from=random", "-q", "--runs-dir", str(runs))
    assert drawn.returncode == 0 and drawn.stderr == "", drawn.stderr


def test_a_resume_takes_its_first_override_as_typed(tmp_path):
    """The first word after --resume RUN is an override, not a path: a URL keeps its '//' and its last '/'."""
    run = train(tmp_path, "mnist_mlp.yaml", *SLICE, "train.epochs=1", "-q")
    result = nnctl("train", "--resume", str(run), "data.mirror=http://127.0.0.1:9/", "train.epochs=2", "-q")
    assert result.returncode == 0, result.stderr
    assert "mirror: http://127.0.0.1:9/\n" in (run / "config.yaml").read_text()


def test_early_stopping_that_restores_the_best_weights_tests_them_under_their_name(tmp_path):
    """test_on: last after restore_best: the final weights are best.pkl's, and the test line says so."""
    run = train(tmp_path, "mnist_mlp.yaml", *SLICE, "optimizer.type=sgd", "optimizer.lr=0.5", "schedule=constant",
                "train.early_stopping={patience: 1}", "train.epochs=12", "train.test_on=last", "-q")
    summary = json.loads((run / "summary.json").read_text())
    best = checkpoint.load(run / "checkpoints" / "best.pkl").progress["epoch"]
    assert summary["status"] == "early_stopped" and summary["epochs"] > best
    assert summary["test_on"] == {"weights": "best", "epoch": best}
    evaluated = json.loads(nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--json").stdout)
    assert summary["test"]["test_loss"] == pytest.approx(evaluated["loss"], rel=1e-6)


def test_train_then_eval_on_an_mnist_slice(tmp_path):
    run = train(tmp_path, "mnist_mlp.yaml", *SLICE, "train.epochs=2", "optimizer.lr=2e-3")
    for name in ("config.yaml", "metrics.csv", "metrics.jsonl", "summary.json", "train.log",
                 "checkpoints/last.pkl", "checkpoints/best.pkl"):
        assert (run / name).is_file(), name
    assert "lr: 0.002" in (run / "config.yaml").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert summary["test"]["test_accuracy"] > 0.85
    assert [r["epoch"] for r in rows(run)] == ["1", "2"]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2

    assert summary["test_on"]["weights"] == "best"  # the default train.test_on
    result = nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] == 1000
    assert report["accuracy"] == pytest.approx(summary["test"]["test_accuracy"], abs=1e-9)
    assert report["error_rate"] == pytest.approx(1 - report["accuracy"])
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 1000
    assert np.trace(matrix) / 1000 == pytest.approx(report["accuracy"])

    table = nnctl("eval", str(run / "checkpoints" / "best.pkl"))
    assert table.returncode == 0 and "confusion matrix" in table.stdout


RESUME = [*SLICE, "train.batch_size=50", "optimizer.lr=2e-3", "schedule.type=constant"]  # cosine follows train.epochs


def test_resume_is_bit_for_bit(tmp_path):
    straight = train(tmp_path / "a", "mnist_mlp.yaml", *RESUME, "train.epochs=4")
    first = train(tmp_path / "b", "mnist_mlp.yaml", *RESUME, "train.epochs=2")
    result = nnctl("train", "--resume", str(first / "checkpoints" / "last.pkl"), "train.epochs=4")
    assert result.returncode == 0, result.stderr
    assert rows(first) == rows(straight)
    a = checkpoint.load(straight / "checkpoints" / "last.pkl")
    b = checkpoint.load(first / "checkpoints" / "last.pkl")
    for layer, entry in a.model.items():
        for key, value in entry["params"].items():
            np.testing.assert_array_equal(value, b.model[layer]["params"][key])
    assert b.progress["epoch"] == 4


def test_ctrl_c_stops_cleanly_and_resumes_mid_epoch_exactly(tmp_path):
    overrides = [*RESUME, "train.epochs=2", "train.batch_size=10", "train.log_every_steps=1"]
    straight = train(tmp_path / "a", "mnist_mlp.yaml", *overrides)
    runs = tmp_path / "b"
    process = subprocess.Popen([sys.executable, "-m", "nnctl", "train", str(CONFIGS / "mnist_mlp.yaml"),
                                *overrides, "--runs-dir", str(runs)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = list(runs.glob("*/metrics.csv"))
        if metrics and len(metrics[0].read_text().splitlines()) > 300:  # inside epoch 2 (250 steps each)
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "nnctl train --resume" in stdout
    (run,) = runs.iterdir()
    saved = checkpoint.load(run / "checkpoints" / "last.pkl")
    assert saved.progress["epoch"] == 1 and 0 < saved.progress["batch"] < 250
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"

    result = nnctl("train", "--resume", str(run / "checkpoints" / "last.pkl"))
    assert result.returncode == 0, result.stderr
    assert rows(run) == rows(straight)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    run = train(tmp_path, "mnist_mlp.yaml", *SLICE, "train.epochs=1", "optimizer.type=sgd")
    last = run / "checkpoints" / "last.pkl"
    good = last.read_bytes()
    metrics_before = (run / "metrics.csv").read_text()
    result = nnctl("train", "--resume", str(last), "train.epochs=2", "optimizer.lr=1e30")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "RuntimeWarning" not in result.stderr  # one message, nothing before
    assert "the loss became" in result.stderr and "epoch 2" in result.stderr
    assert str(last) in result.stderr and "optimizer.lr" in result.stderr
    assert last.read_bytes() == good
    assert (run / "metrics.csv").read_text() == metrics_before
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became" in summary["error"]
    debug = nnctl("--debug", "train", "--resume", str(last), "train.epochs=2", "optimizer.lr=1e30")
    assert debug.returncode == 1 and "RuntimeWarning: overflow" in debug.stderr  # NumPy's own words, when asked
    assert last.read_bytes() == good


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"format": "nnctl-checkpoint", "payload": _RunsCode(marker)}))
    result = nnctl("eval", str(evil))
    assert result.returncode == 1
    assert "refused to load" in result.stderr and "system" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("content, message", [
    (pickle.dumps({"weights": [1, 2, 3]}), "not an nnctl checkpoint"),
    (b"\x80\x05garbage", "corrupt or truncated"),
    (b"", "corrupt or truncated"),
    (zipped({"archive/data.pkl": pickle.dumps({"w": 1})}), "a zip archive (PyTorch's torch.save"),  # as torch.save
    (zipped({"x.npy": b"\x93NUMPY"}), "a zip archive (PyTorch's torch.save, a Keras .keras, a NumPy .npz), not a "
                                      "checkpoint of an nnctl run"),
    (b"\x93NUMPY\x01\x00", "a NumPy .npy array, not a checkpoint"),
    (b"\x89HDF\r\n\x1a\n\x00\x00", "an HDF5 file (such as Keras weights), not a checkpoint"),
    (safetensors.numpy.save({"fc.weight": np.ones((2, 3), np.float32)}),
     "a safetensors file (such as PyTorch weights), not a checkpoint; nnctl convert"),
    (to_onnx(build_model(from_dict({"model": {"layers": [{"type": "dense", "units": 2}]}}), (3,), np.float32,
                         np.random.default_rng(0))).SerializeToString(),
     "an ONNX model (as nnctl export --format onnx writes), not a checkpoint"),
    (zipped({"dense_1/W.npy": b"\x93NUMPY", "input_shape.npy": b"\x93NUMPY"}),
     "an .npz of nnctl's arrays by layer (as nnctl export and convert write), not a checkpoint; start a model from "
     "it with model.weights: "),
])
def test_foreign_and_corrupt_checkpoints(tmp_path, content, message):
    path = tmp_path / "x.pkl"
    path.write_bytes(content)
    for command in (["eval", str(path)], ["train", "--resume", str(path)],
                    ["train", str(CONFIGS / "xor_mlp.yaml"), "--init-from", str(path), "--runs-dir", str(tmp_path)]):
        result = nnctl(*command)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_truncated_real_checkpoint_and_missing_file(tmp_path):
    run = train(tmp_path, "xor_mlp.yaml", "train.epochs=2")
    data = (run / "checkpoints" / "last.pkl").read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    assert "corrupt or truncated" in nnctl("eval", str(cut)).stderr
    missing = nnctl("eval", str(tmp_path / "nope.pkl"))
    assert missing.returncode == 1 and "no such checkpoint" in missing.stderr


def test_early_stopping_restores_the_best_model(tmp_path):
    # mode max on a falling loss: epoch 1 stays the best, so patience 2 stops after epoch 3
    run = train(tmp_path, "xor_mlp.yaml", "train.epochs=50", "train.monitor=loss", "train.mode=max",
                "train.early_stopping={patience: 2, restore_best: true}")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and summary["epochs"] == 3
    assert summary["best"]["value"] == float(rows(run)[0]["loss"])
    best = checkpoint.load(run / "checkpoints" / "best.pkl")
    assert best.progress["epoch"] == 1
    report = json.loads(nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--json").stdout)
    assert report["loss"] == pytest.approx(summary["test"]["test_loss"], rel=1e-12)

    # resuming from best.pkl branches into a new run: the original run's later metrics stay as they were
    before = (run / "metrics.csv").read_text()
    branch = nnctl("train", "--resume", str(run / "checkpoints" / "best.pkl"), "train.early_stopping=null",
                   "train.epochs=2", "--runs-dir", str(tmp_path / "runs"))
    assert branch.returncode == 0, branch.stderr
    assert (run / "metrics.csv").read_text() == before
    (other,) = set((tmp_path / "runs").iterdir()) - {run}
    assert [r["epoch"] for r in rows(other)] == ["1", "2"]


def test_best_pkl_is_the_best_epoch_also_by_less_than_early_stoppings_min_delta(tmp_path):
    # XOR's loss falls every epoch, each time by far less than min_delta: early stopping counts no improvement and
    # stops after epoch 4, but best.pkl, the summary's best and the test line are the lowest loss's, epoch 4's
    run = train(tmp_path, "xor_mlp.yaml", "train.epochs=20", "train.monitor=loss",
                "train.early_stopping={patience: 3, min_delta: 10}")
    losses = [float(row["loss"]) for row in rows(run)]
    assert len(losses) == 4 and losses == sorted(losses, reverse=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "early_stopped"
    assert summary["best"]["value"] == losses[-1]
    assert summary["test_on"] == {"weights": "best", "epoch": 4}
    best = checkpoint.load(run / "checkpoints" / "best.pkl")
    assert best.progress["epoch"] == 4 and best.monitor == {"best": losses[-1], "wait": 3, "reference": losses[0]}



def test_same_seed_same_numbers(tmp_path):
    a = train(tmp_path / "a", "mnist_mlp.yaml", *SLICE, "train.epochs=1")
    b = train(tmp_path / "b", "mnist_mlp.yaml", *SLICE, "train.epochs=1")
    c = train(tmp_path / "c", "mnist_mlp.yaml", *SLICE, "train.epochs=1", "seed=1")
    assert rows(a) == rows(b)
    assert rows(a) != rows(c)


def test_gradcheck_command(tmp_path):
    result = nnctl("gradcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("dense", "relu", "softmax", "dropout", "softmax_cross_entropy", "half_sse"):
        assert name in result.stdout
    assert "perceptron rule" in result.stdout
    model = nnctl("gradcheck", str(CONFIGS / "mnist_mlp.yaml"), "loss.l2=0.001")
    assert model.returncode == 0, model.stdout + model.stderr
    assert "dense_3" in model.stdout and "input" in model.stdout
    failing = nnctl("gradcheck", "--layer", "tanh", "--tol", "1e-30")
    assert failing.returncode == 1 and "FAIL" in failing.stdout
    unknown = nnctl("gradcheck", "--layer", "rleu")
    assert unknown.returncode == 2 and "did you mean 'relu'?" in unknown.stderr
    perceptron = nnctl("gradcheck", str(CONFIGS / "perceptron_and.yaml"))
    assert perceptron.returncode == 0 and "checks passed" not in perceptron.stdout, perceptron.stdout
    assert "nothing compared: every gradient passes through a step's perceptron rule" in perceptron.stdout


@pytest.mark.parametrize("config, overrides", [
    ("mnist_cnn.yaml", []),
    ("mnist_deep_cnn.yaml", ["model.layers.13.rate=0"]),  # dropout on the logits would zero most sampled entries
    ("mnist_bn_compare.yaml", []),
    ("transfer/base_digits04.yaml", []),
    ("perceptron_and.yaml", []),
])
def test_gradcheck_of_conv_and_batch_norm_models_on_real_images(config, overrides):
    result = nnctl("gradcheck", str(CONFIGS / config), *overrides, "--samples", "4", "--per-tensor", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "input" in result.stdout and "FAIL" not in result.stdout


@pytest.mark.parametrize("config, overrides, total", [
    ("mnist_mlp.yaml", ["model.layers.2.units=512"], "669,706"),
    ("mnist_784_300_10_sigmoid.yaml", [], "238,510"),
])
def test_summary_parameter_counts(config, overrides, total):
    result = nnctl("summary", str(CONFIGS / config), *overrides)
    assert result.returncode == 0, result.stderr
    assert f"total parameters: {total}" in result.stdout


def test_summary_marks_a_frozen_layer_without_parameters_too():
    """A frozen dropout runs as in evaluation (it drops nothing), so the table says it is frozen."""
    result = nnctl("summary", str(CONFIGS / "mnist_mlp.yaml"), "model.layers.1.trainable=false")
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[2].strip(): line.split("│")[6].strip() for line in result.stdout.splitlines()
            if line.count("│") == 8}
    assert rows == {"dense_1": "yes", "dropout_1": "frozen", "dense_2": "yes", "dropout_2": "", "dense_3": "yes"}


def test_help_for_every_command():
    for command in ([], ["train"], ["eval"], ["gradcheck"], ["summary"]):
        result = nnctl(*command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


@pytest.fixture
def data_dir(tmp_path, mnist_root) -> Path:
    """A data directory with the real MNIST files and a CIFAR-10 archive of random pixels in the real format
    (the real CIFAR-10 cannot be downloaded on these machines)."""
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    (tmp_path / "data" / "mnist").symlink_to(mnist_root / "mnist")
    cifar_archive(tmp_path / "data" / "cifar10" / cifar10.ARCHIVE, cifar_batches(per_batch=20))
    return tmp_path / "data"


def test_every_shipped_config_builds(data_dir, tmp_path):
    for config in sorted(CONFIGS.glob("*.yaml")):
        result = nnctl("summary", str(config), *shipped_overrides(config, tmp_path),
                       env={"NNCTL_DATA_DIR": str(data_dir)})
        assert result.returncode == 0, f"{config.name}: {result.stderr}"


@pytest.mark.parametrize("config, samples", [
    ("images_cnn.yaml", "7 training, 1 validation samples"),  # of the 8 images shipped_overrides makes
    ("spirals_mlp.yaml", "1,000 training, 250 validation, 250 test samples"),  # x_val and y_val: validation: file
])
def test_the_configs_of_folders_and_files_pass_check(tmp_path, config, samples):
    """images_cnn.yaml reads the user's folder, given as data.path on the command line as the README shows."""
    result = nnctl("check", str(CONFIGS / config), *shipped_overrides(CONFIGS / config, tmp_path))
    assert result.returncode == 0 and samples in result.stdout, result.stdout + result.stderr


def test_cifar10_config_trains_through_the_cli(tmp_path, data_dir):
    result = nnctl("train", str(CONFIGS / "cifar10_cnn.yaml"), "train.epochs=2",
                   "--runs-dir", str(tmp_path / "runs"), env={"NNCTL_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert [row["epoch"] for row in rows(run_dir)] == ["1", "2"]
    assert json.loads((run_dir / "summary.json").read_text())["test"]["test_accuracy"] >= 0


@pytest.mark.parametrize("config, overrides", [
    ("mnist_784_300_10_sigmoid.yaml", ["data.subset=3000", "data.test_subset=1000"]),
    ("mnist_twolayer.yaml", ["data.subset=6000", "data.test_subset=1000", "train.epochs=4"]),
])
def test_classic_mnist_configs_learn_on_a_slice(tmp_path, config, overrides):
    history = rows(train(tmp_path, config, *overrides))
    errors = [float(row["error_rate"]) for row in history]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:], strict=False)), errors
    assert float(history[-1]["val_error_rate"]) < float(history[0]["val_error_rate"]) - 0.02


def test_batch_norm_trains_where_the_plain_deep_net_stalls(tmp_path):
    slice_ = ["data.subset=3000", "data.validation=500", "data.test_subset=500", "train.epochs=3"]
    with_bn = rows(train(tmp_path / "bn", "mnist_bn_compare.yaml", *slice_))
    plain = rows(train(tmp_path / "plain", "mnist_bn_compare_plain.yaml", *slice_))
    assert float(with_bn[-1]["val_accuracy"]) > 0.8
    assert float(plain[-1]["loss"]) > 2.29 and float(plain[-1]["val_accuracy"]) < 0.2  # chance is 0.1
