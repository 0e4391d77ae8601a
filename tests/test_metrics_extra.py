"""Class weights and label smoothing in the loss (gradient-checked), top-k accuracy, and per-class precision,
recall and F1 in eval."""

import json
import math

import numpy as np
import pytest

from helpers import CONFIGS, nnctl
from nnctl.config import load_config
from nnctl.errors import ConfigError
from nnctl.experiment import build, report
from nnctl.gradcheck import numerical_gradient, relative_error
from nnctl.losses import LOSSES, SoftmaxCrossEntropy
from nnctl.metrics import MetricSums, per_class

RNG = np.random.default_rng(0)
Y, T = RNG.standard_normal((6, 4)), np.array([0, 1, 2, 3, 1, 1])


@pytest.mark.parametrize("kwargs", [{"class_weights": [1.0, 3.0, 0.5, 2.0]}, {"label_smoothing": 0.2},
                                    {"class_weights": [1.0, 3.0, 0.5, 2.0], "label_smoothing": 0.1}])
def test_weighted_and_smoothed_cross_entropy_gradients(kwargs):
    loss = SoftmaxCrossEntropy(**kwargs)
    y = Y.copy()
    loss.train_forward(y, T)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.train_forward(y, T), y)
    assert relative_error(analytic, numeric) < 1e-7


def test_class_weights_scale_each_sample_by_its_class():
    weights = [1.0, 3.0, 0.5, 2.0]
    per_sample = [SoftmaxCrossEntropy().forward(Y[i:i + 1], T[i:i + 1]) for i in range(6)]
    expected = np.mean([weights[c] * v for c, v in zip(T, per_sample, strict=True)])
    assert SoftmaxCrossEntropy(class_weights=weights).forward(Y, T) == pytest.approx(expected, rel=1e-12)
    assert SoftmaxCrossEntropy(class_weights=[1.0] * 4).forward(Y, T) == pytest.approx(
        SoftmaxCrossEntropy().forward(Y, T), rel=1e-12)


def test_with_label_smoothing_each_sample_still_weighs_as_its_true_class():
    """Keras's rule: the sample's class weight times its smoothed cross-entropy (the weight came from the smoothed
    target, (1 − ε)·w_class + ε·mean(w), and diluted the weights)."""
    weights, eps = [1.0, 3.0, 0.5, 2.0], 0.2
    smoothed = SoftmaxCrossEntropy(label_smoothing=eps)
    per_sample = [smoothed.train_forward(Y[i:i + 1], T[i:i + 1]) for i in range(6)]
    expected = np.mean([weights[c] * v for c, v in zip(T, per_sample, strict=True)])
    both = SoftmaxCrossEntropy(class_weights=weights, label_smoothing=eps)
    assert both.train_forward(Y, T) == pytest.approx(expected, rel=1e-12)


def test_label_smoothing_changes_training_targets_only():
    loss = SoftmaxCrossEntropy(label_smoothing=0.2)
    smoothed = loss.train_targets(Y, T)
    np.testing.assert_allclose(smoothed[0], [0.85, 0.05, 0.05, 0.05])
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert loss.forward(Y, T) == SoftmaxCrossEntropy().forward(Y, T)  # evaluation reads the true labels


def test_top_k_accuracy_counts_targets_among_the_k_highest_outputs():
    sums = MetricSums(["accuracy", "top_1_accuracy", "top_2_accuracy", "top_4_accuracy"])
    sums.add(SoftmaxCrossEntropy(), 1.0, Y, T)
    result = sums.result()
    rank = (Y[np.arange(6), T][:, None] < Y).sum(axis=1)  # how many outputs beat the target's
    assert result["top_1_accuracy"] == result["accuracy"] == pytest.approx(np.mean(rank == 0))
    assert result["top_2_accuracy"] == pytest.approx(np.mean(rank < 2))
    assert result["top_4_accuracy"] == 1.0


def test_per_class_scores_from_a_confusion_matrix():
    counts = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # class 2: never seen, never predicted
    rows = per_class(counts, [0, 1, 2])
    assert rows[0] == pytest.approx({"class": 0, "precision": 5 / 7, "recall": 5 / 6,
                                     "f1": 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), "support": 6})
    assert rows[1]["precision"] == 0.75 and rows[1]["recall"] == 0.6
    assert rows[2] == {"class": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert [row["class"] for row in per_class(counts, [5, 7, 9])] == [5, 7, 9]


def test_eval_macro_f1_leaves_out_classes_the_split_neither_holds_nor_is_predicted(tmp_path):
    # a model of zero weights predicts class 0 for all; the test split holds classes 0 and 1 of 3: class 2 has
    # nothing to score, so the macro F1 is that of sklearn's f1_score(average="macro"), (0.8 + 0) / 2
    path = tmp_path / "three.yaml"
    path.write_text("data: {type: inline, x: [[0], [1], [2]], y: [0, 1, 2], test_x: [[0], [1], [2]],\n"
                    "       test_y: [0, 0, 1]}\n"
                    "model: {layers: [{type: dense, units: 3, weight_init: zeros}]}\n"
                    "loss: softmax_cross_entropy\noptimizer: sgd\ntrain: {epochs: 1}\n")
    result = report(build(load_config(path)), "test")
    assert result["confusion_matrix"] == [[2, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert [row["f1"] for row in result["per_class"]] == pytest.approx([0.8, 0.0, 0.0])
    assert result["macro_f1"] == pytest.approx(0.4)


def test_class_weights_must_match_the_outputs(tmp_path):
    config = load_config(CONFIGS / "xor_mlp.yaml", ["loss={type: softmax_cross_entropy, class_weights: [1, 2, 3]}",
                                                    "model.layers.1.units=2"])
    with pytest.raises(ConfigError, match="class_weights has 3 weights, but the model has 2 outputs"):
        build(config)


@pytest.mark.slow
def test_shipped_config_records_top_3_and_eval_reports_per_class(tmp_path):
    result = nnctl("train", str(CONFIGS / "mnist_mlp_smoothed.yaml"), "data.subset=2000", "data.test_subset=500",
                   "data.validation=500", "train.epochs=1", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert row["val_top_3_accuracy"] >= row["val_accuracy"] > 0.5
    report = json.loads(nnctl("eval", str(run / "checkpoints" / "best.pkl"), "--json").stdout)
    counts = np.array(report["confusion_matrix"])
    assert len(report["per_class"]) == 10 and sum(r["support"] for r in report["per_class"]) == 500
    for r in report["per_class"]:
        c = r["class"]
        assert r["recall"] == pytest.approx(counts[c, c] / counts[c].sum())
        assert r["precision"] == pytest.approx(counts[c, c] / counts[:, c].sum())
    assert report["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in report["per_class"]]))
    test = json.loads((run / "summary.json").read_text())["test"]  # eval gives the run's own metrics, top-3 too
    assert report["top_3_accuracy"] == pytest.approx(test["test_top_3_accuracy"])
    assert report["top_3_accuracy"] >= report["accuracy"]
    table = nnctl("eval", str(run / "checkpoints" / "best.pkl")).stdout
    assert "per class" in table and "precision" in table and "macro_f1" in table and "top_3_accuracy" in table


def test_an_epochs_mse_is_summed_in_float64_from_float32_batches():
    """NumPy 2 keeps a Python float plus a float32 sum in float32: over an epoch of batches the mse drifted (6e-7
    relative over 469 MNIST batches) from the float64 sum it is recorded as."""
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((50, 10)).astype(np.float32), rng.standard_normal((50, 10)).astype(np.float32))
               for _ in range(2000)]
    sums = MetricSums(["mse"])
    for y, t in batches:
        sums.add(LOSSES.get("mse")(), 0.0, y, t)
    exact = math.fsum(math.fsum(((y - t) ** 2).ravel().tolist()) for y, t in batches) / (2000 * 500)
    assert sums.result()["mse"] == pytest.approx(exact, rel=1e-12)
