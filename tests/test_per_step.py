"""Per-step targets (Elman's pattern task, integer labels per step from an npz), the data loss beside the L1/L2
penalty, and which weights the test line evaluates."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import CONFIGS, nnctl
from nnctl import checkpoint
from nnctl.config import from_dict, load_config
from nnctl.console import shown_label
from nnctl.data import DATASETS
from nnctl.experiment import build


def run_of(tmp_path: Path, *args: str) -> tuple[Path, dict]:
    result = nnctl("train", *args, "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    return run, json.loads((run / "summary.json").read_text())


def test_pattern_ends_flags_the_last_letter_of_each_pattern_and_is_deterministic():
    config = from_dict({"data": {"type": "pattern_ends", "pattern": "ab", "alphabet": "abc", "seq_len": 6,
                                 "samples": 50, "test_samples": 10, "rate": 0.3}})
    source = DATASETS.build(config.data["data"], config, ("data",))
    x, y, x_test, y_test = source.read()
    assert x.shape == (50, 6, 3) and y.shape == (50, 6) and x_test.shape == (10, 6, 3)
    letters = x.argmax(-1)
    ends = np.zeros_like(y)
    ends[:, 1:] = (letters[:, :-1] == 0) & (letters[:, 1:] == 1)  # an 'a' then a 'b', within one sequence
    np.testing.assert_array_equal(y, ends)
    assert 0 < y.mean() < 0.5
    again = DATASETS.build(config.data["data"], config, ("data",)).read()
    np.testing.assert_array_equal(again[0], x)


@pytest.mark.slow
def test_elman_config_learns_per_step_flags_and_tests_its_best_weights(tmp_path):
    run, summary = run_of(tmp_path, str(CONFIGS / "elman_pattern_ends.yaml"), "train.epochs=4")
    y_test = DATASETS.build({"type": "pattern_ends"}, from_dict({}), ("data",)).read()[3]
    majority = 1 - y_test.mean()
    assert summary["test"]["test_accuracy"] > majority + 0.5 * (1 - majority)
    assert summary["test_on"]["weights"] == "best"
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best_epoch = min(epochs, key=lambda row: row["val_loss"])["epoch"]
    assert summary["test_on"]["epoch"] == best_epoch
    evaluated = nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["loss"] == pytest.approx(summary["test"]["test_loss"], rel=1e-6)
    matrix = np.array(report["confusion_matrix"])  # one 0/1 output per step: two classes, every step counted
    assert matrix.shape == (2, 2) and matrix.sum() == y_test.size and matrix[1].sum() == y_test.sum()
    assert report["error_rate"] == pytest.approx(1 - report["accuracy"])
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["accuracy"])


@pytest.mark.slow
def test_per_step_integer_labels_from_an_npz_train_and_evaluate(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, (120, 5))
    np.savez(tmp_path / "steps.npz", x=np.eye(3)[ids], y=np.roll(ids, 1, axis=1))  # the previous step's class
    (tmp_path / "steps.yaml").write_text(
        "data: {type: npz, path: steps.npz, flatten: false, validation: 20}\n"
        "model: {layers: [{type: gru, units: 8, return_sequences: true}, {type: dense, units: 3}]}\n"
        "loss: softmax_cross_entropy\noptimizer: {type: adam, lr: 0.05}\n"
        "train: {epochs: 30, batch_size: 50, metrics: [accuracy]}\n")
    run, summary = run_of(tmp_path, str(tmp_path / "steps.yaml"))
    assert summary["final"]["val_accuracy"] > 0.7  # 1/3 by chance; step 0 wraps around and stays a guess
    report = json.loads(nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--split", "val", "--json").stdout)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 20 * 5
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["accuracy"])


@pytest.mark.slow
def test_training_loss_is_the_data_loss_and_the_penalty_is_its_own_column(tmp_path):
    run, _ = run_of(tmp_path, str(CONFIGS / "xor_mlp.yaml"), "train.epochs=1", "loss.l2=0.1")
    with open(run / "metrics.csv") as f:
        (row,) = list(csv.DictReader(f))
    exp = build(load_config(CONFIGS / "xor_mlp.yaml", ["loss.l2=0.1"]))  # the run's initial weights
    x, t = exp.data.train.x, exp.data.train.y
    assert float(row["loss"]) == pytest.approx(exp.loss.forward(exp.model.forward(x, training=True), t), rel=1e-9)
    weights = exp.model.decayed_arrays()[0]
    assert float(row["penalty"]) == pytest.approx(0.05 * sum(float((w * w).sum()) for w in weights), rel=1e-9)
    assert "penalty" in (run / "train.log").read_text()
    plain, _ = run_of(tmp_path / "plain", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=1")
    assert "penalty" not in (plain / "metrics.csv").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("test_on, epoch", [("best", 1), ("last", 3)])
def test_test_on_chooses_the_weights_of_the_test_line(tmp_path, test_on, epoch):
    # mode max on a falling loss: epoch 1 stays the best
    run, summary = run_of(tmp_path, str(CONFIGS / "xor_mlp.yaml"), "train.epochs=3", "train.monitor=loss",
                          "train.mode=max", f"train.test_on={test_on}")
    assert summary["test_on"] == {"weights": test_on, "epoch": epoch}
    report = json.loads(nnctl("eval", str(run / "checkpoints" / f"{test_on}.pkl"), "--json").stdout)
    assert report["loss"] == pytest.approx(summary["test"]["test_loss"], rel=1e-12)
    other_name = "last.pkl" if test_on == "best" else "best.pkl"
    other = json.loads(nnctl("eval", str(run / "checkpoints" / other_name), "--json").stdout)
    assert other["loss"] != pytest.approx(summary["test"]["test_loss"], rel=1e-6)
    assert f"test ({test_on} weights, epoch {epoch})" in (run / "train.log").read_text()


@pytest.mark.slow
def test_predict_gives_a_text_models_class_and_probabilities_at_every_step(tmp_path):
    run, _ = run_of(tmp_path, str(CONFIGS / "char_lstm.yaml"), "model.layers.1.units=16", "data.subset=200",
                    "data.seq_len=20", "train.epochs=1", "-q")
    ids = np.random.default_rng(0).integers(0, 65, (2, 20))
    np.save(tmp_path / "ids.npy", ids)
    outputs = {suffix: nnctl("predict", str(run), str(tmp_path / "ids.npy"), "-o", str(tmp_path / f"p{suffix}"))
               for suffix in (".npy", ".csv", ".json")}
    assert all(r.returncode == 0 for r in outputs.values()), [r.stderr for r in outputs.values()]
    probabilities = np.load(tmp_path / "p.npy")
    assert probabilities.shape == (2, 20, 65)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, rtol=1e-5)
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["input"], int(r["step"])) for r in rows] == [(f"{tmp_path / 'ids.npy'}[{i}]", t)
                                                           for i in range(2) for t in range(20)]
    vocab = checkpoint.load(run / "checkpoints" / "last.pkl").inputs.vocab
    assert vocab is not None
    assert [r["class"] for r in rows] == [shown_label(vocab[c]) for c in probabilities.argmax(-1).ravel()]
    records = json.loads((tmp_path / "p.json").read_text())
    assert [[s["class"] for s in r["steps"]] for r in records] == [[vocab[c] for c in row]
                                                                  for row in probabilities.argmax(-1)]
    assert records[1]["steps"][19]["probabilities"] == pytest.approx(probabilities[1, 19].tolist(), rel=1e-6)
    table = nnctl("predict", str(run), str(tmp_path / "ids.npy"), env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "the first and last 5 of 20 steps; -o writes all" in table.stdout and "…" in table.stdout


@pytest.mark.slow
def test_predict_gives_a_per_step_binary_models_probabilities_not_its_logits(tmp_path):
    run, _ = run_of(tmp_path, str(CONFIGS / "elman_pattern_ends.yaml"), "train.epochs=1", "-q")
    x = DATASETS.build({"type": "pattern_ends"}, from_dict({}), ("data",)).read()[2][:2]
    np.save(tmp_path / "seq.npy", x)
    result = nnctl("predict", str(run), str(tmp_path / "seq.npy"), "-o", str(tmp_path / "p.npy"))
    assert result.returncode == 0, result.stderr
    probabilities = np.load(tmp_path / "p.npy")  # P(0) and P(1) at each step, as one sigmoid output per sample
    assert probabilities.shape == (2, 20, 2)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, rtol=1e-6)
    table = nnctl("predict", str(run), str(tmp_path / "seq.npy"), env={"COLUMNS": "200"})
    assert table.returncode == 0 and "probability" in table.stdout and "outputs" not in table.stdout
