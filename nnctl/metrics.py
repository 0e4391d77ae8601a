"""Metrics over batches: running sums during an epoch, and a whole-split evaluation."""

import numpy as np

from nnctl.backend import xp
from nnctl.losses import Loss, as_targets
from nnctl.model import Model

METRICS = ("accuracy", "error_rate", "mse")
LOWER_IS_BETTER = ("loss", "error_rate", "mse")


def target_labels(t: np.ndarray) -> np.ndarray:
    """Class labels from integer labels (one per sample or per time step), one-hot (or 0.9/0.1) rows, or a
    0/1 target per sample."""
    if t.dtype.kind in "iu":
        return t[..., 0] if t.ndim > 1 and t.shape[-1] == 1 else t
    if t.ndim > 1 and t.shape[-1] > 1:
        return t.argmax(axis=-1)
    return (t.reshape(len(t)) > 0.5).astype(np.int64)


class MetricSums:
    """Sums that give an epoch's loss and `metrics` exactly, however the batches fell."""

    def __init__(self, metrics: list[str], sums: dict[str, float] | None = None):
        self.metrics = metrics
        self.sums = dict(sums or {"loss": 0.0, "correct": 0.0, "sq_err": 0.0, "n": 0.0, "n_out": 0.0})

    def add(self, loss: Loss, loss_value: float, y: np.ndarray, t: np.ndarray) -> None:
        """Adds one batch: its outputs y, targets t, and the mean loss the loss function gave them."""
        n = len(y)
        self.sums["loss"] += loss_value * n
        self.sums["n"] += n
        if "accuracy" in self.metrics or "error_rate" in self.metrics:
            predicted = loss.labels(y)
            hits = float((predicted == target_labels(t).reshape(predicted.shape)).sum())
            self.sums["correct"] += hits if predicted.ndim == 1 else hits * n / predicted.size  # per-step labels
        if "mse" in self.metrics:
            diff = loss.probabilities(y) - as_targets(y, t)
            self.sums["sq_err"] += float((diff * diff).sum())
            self.sums["n_out"] += diff.size

    def result(self, prefix: str = "") -> dict[str, float]:
        s, n = self.sums, max(self.sums["n"], 1)
        values = {"loss": s["loss"] / n, "accuracy": s["correct"] / n, "error_rate": 1 - s["correct"] / n,
                  "mse": s["sq_err"] / max(s["n_out"], 1)}
        return {prefix + k: values[k] for k in ["loss", *self.metrics]}


def scores(loss: Loss, y: np.ndarray, t: np.ndarray, metrics: list[str], prefix: str = "") -> dict[str, float]:
    """Loss and metrics of outputs y against targets t."""
    sums = MetricSums(metrics)
    sums.add(loss, loss.forward(y, t), y, t)
    return sums.result(prefix)


def evaluate(model: Model, loss: Loss, x: np.ndarray, t: np.ndarray, metrics: list[str],
             batch_size: int = 1000, prefix: str = "") -> dict[str, float]:
    """Loss and metrics of the model over a whole split, in eval mode."""
    return scores(loss, predict(model, x, batch_size), t, metrics, prefix)


def predict(model: Model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's raw outputs for every row of x, in eval mode."""
    return xp.concatenate([model.forward(x[i:i + batch_size], training=False)
                           for i in range(0, len(x), batch_size)])


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: samples of class i predicted as class j."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts
