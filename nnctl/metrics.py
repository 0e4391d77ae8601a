"""Metrics over batches: running sums during an epoch, and a whole-split evaluation."""

import re
from typing import Any

import numpy as np

from nnctl.backend import to_device, xp
from nnctl.errors import DataError, NnctlError
from nnctl.layers.recurrent import Recurrent
from nnctl.limits import too_big
from nnctl.losses import Loss, as_targets
from nnctl.model import Model

METRICS = ("accuracy", "error_rate", "mse")
TOP_K = re.compile(r"top_([1-9][0-9]*)_accuracy")
"""Also known: top_2_accuracy, top_5_accuracy, ...: the share of targets among the k highest outputs."""
LOWER_IS_BETTER = ("loss", "error_rate", "mse")


def improves(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    """Whether a monitored value beats the best so far (None: none yet) by more than min_delta, in `mode` (min
    or max)."""
    return best is None or (value < best - min_delta if mode == "min" else value > best + min_delta)


def is_metric(name: str) -> bool:
    """Whether `name` is a metric train.metrics may list: one of METRICS or a top_K_accuracy."""
    return name in METRICS or bool(TOP_K.fullmatch(name))


def check_metric_name(name: str) -> None:
    """ValueError unless `name` is a metric a run can record: loss or a known metric, bare or with val_/test_."""
    bare = name.removeprefix("val_").removeprefix("test_")
    if bare != "loss" and not is_metric(bare):
        raise ValueError(f"unknown metric '{name}'; a run records loss, {', '.join(METRICS)} or top_K_accuracy, "
                         "each also as val_... and test_...")


def target_labels(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The class of each target, read against the outputs y: rows shaped like y are one-hot (or 0.9/0.1, or one
    0/1 output) and give their argmax (or threshold); otherwise t holds one label per row of y (integers, or
    0/1 targets of a single output), per sample or per time step."""
    if t.shape == y.shape:
        return t.argmax(axis=-1) if y.shape[-1] > 1 else (t[..., 0] > 0.5).astype(np.int64)
    t = t.reshape(y.shape[:-1])
    return t if t.dtype.kind in "iu" else (t > 0.5).astype(np.int64)


class MetricSums:
    """Sums that give an epoch's loss and `metrics` exactly, however the batches fell; with `penalty`, also the
    mean L1/L2 penalty, recorded beside the data loss (which alone compares with val_loss)."""

    def __init__(self, metrics: list[str], sums: dict[str, float] | None = None, penalty: bool = False):
        self.metrics, self.penalty = metrics, penalty
        self.sums = {"loss": 0.0, "penalty": 0.0, "correct": 0.0, "sq_err": 0.0, "n": 0.0, "n_out": 0.0,
                     **(sums or {})}

    def add(self, loss: Loss, loss_value: float, y: np.ndarray, t: np.ndarray, penalty: float = 0.0) -> None:
        """Adds one batch: its outputs y, targets t, the mean data loss the loss function gave them and the
        weights' penalty at that step."""
        n = len(y)
        self.sums["loss"] += loss_value * n
        self.sums["penalty"] += penalty * n
        self.sums["n"] += n
        if "accuracy" in self.metrics or "error_rate" in self.metrics:
            predicted = loss.labels(y)
            hits = (predicted == target_labels(t, y)).sum()  # stays on y's device: read once an epoch, in totals
            self.sums["correct"] += hits if predicted.ndim == 1 else hits * n / predicted.size  # per-step labels
        for name in self.metrics:
            if match := TOP_K.fullmatch(name):
                labels = target_labels(t, y)
                k = int(match.group(1))  # below the outputs: the config's check
                top = np.argpartition(-y, k - 1, axis=-1)[..., :k]
                hits = (top == labels[..., None]).any(axis=-1).sum()
                self.sums[name] = self.sums.get(name, 0.0) + hits * n / labels.size
        if "mse" in self.metrics:
            diff = loss.probabilities(y) - as_targets(y, t)
            self.sums["sq_err"] += (diff * diff).sum(dtype=np.float64)  # a float32 epoch sum would drift
            self.sums["n_out"] += diff.size

    def totals(self) -> dict[str, float]:
        """The sums as plain floats (what a checkpoint holds); on a GPU, the one read back of the metrics' sums."""
        return {name: float(value) for name, value in self.sums.items()}

    def result(self, prefix: str = "") -> dict[str, float]:
        s = self.totals()
        n = max(s["n"], 1)
        values = {"loss": s["loss"] / n, "penalty": s["penalty"] / n, "accuracy": s["correct"] / n,
                  "error_rate": 1 - s["correct"] / n, "mse": s["sq_err"] / max(s["n_out"], 1),
                  **{m: s.get(m, 0.0) / n for m in self.metrics if TOP_K.fullmatch(m)}}
        return {prefix + k: values[k] for k in ["loss", *(["penalty"] if self.penalty else []), *self.metrics]}


def scores(loss: Loss, y: np.ndarray, t: np.ndarray, metrics: list[str], prefix: str = "") -> dict[str, float]:
    """Loss and metrics of outputs y against targets t."""
    sums = MetricSums(metrics)
    sums.add(loss, loss.forward(y, t), y, t)
    return sums.result(prefix)


def evaluate(model: Model, loss: Loss, x: np.ndarray, t: np.ndarray, metrics: list[str],
             batch_size: int = 1000, prefix: str = "") -> dict[str, float]:
    """Loss and metrics of the model over a whole split, in eval mode, as training records them: NaN or infinite
    outputs give such metrics (parameters that became NaN are caught after the epoch)."""
    return scores(loss, predict(model, x, batch_size, finite=False), to_device(t), metrics, prefix)


def predict(model: Model, x: np.ndarray, batch_size: int = 1000, finite: bool = True,
            depth: int | None = None) -> np.ndarray:
    """The model's raw outputs (or its first `depth` layers') for every row of x, in eval mode, on the model's
    device (a split too large for the device stays on the host and goes over a batch at a time); NnctlError if one
    is NaN or infinite, unless not `finite`."""
    _check_whole(model, x, min(batch_size, len(x)), depth)
    y = xp.concatenate([_forward(model, to_device(x[i:i + batch_size]), depth) for i in range(0, len(x), batch_size)])
    return check_finite(y) if finite else y


def _forward(model: Model, x: np.ndarray, depth: int | None) -> np.ndarray:
    """The outputs of the model (or of its first `depth` layers) for x in eval mode; sequences longer than its
    input, where those layers carry their recurrent state, a window of its input's steps at a time: the same
    outputs in the memory of one window."""
    window = _window(model)
    if not _longer(x, window) or not model.carries_state(depth):
        return model.forward(x, training=False, depth=depth)
    states: list = [None] * len(model.layers[:depth])
    pieces = []
    for start in range(0, x.shape[1], window):
        y, states = model.forward_from(x[:, start:start + window], states, depth)
        pieces.append(y)
    return xp.concatenate(pieces, axis=1)


def _window(model: Model) -> int:
    """The steps of the model's input: a window of a longer sequence."""
    return model.input_shape[0] if model.input_shape else 0


def _longer(x: np.ndarray, window: int) -> bool:
    """Whether x holds sequences longer than the window."""
    return x.ndim >= 2 and x.shape[1] > window


def _check_whole(model: Model, x: np.ndarray, rows: int, depth: int | None) -> None:
    """DataError where sequences longer than the model's input are to be read whole (a layer that cannot carry its
    state from window to window, as a bidirectional one, reads them so) and `rows` of them at once would need more
    memory than one input may take: the layers' outputs and caches, as the training memory check counts them."""
    window, layer = _window(model), model.whole_reader(depth)
    if not _longer(x, window) or layer is None:
        return
    outputs, working = model.kept_values(depth)
    need = (outputs + working) * rows * -(-x.shape[1] // window) * model.itemsize
    kind = "bidirectional " if isinstance(layer, Recurrent) and layer.bidirectional else ""
    sequences = f"{len(x):,} sequence{'s' * (len(x) != 1)} of {x.shape[1]:,} steps"
    at_once = f" ({rows:,} at a time)" if rows < len(x) else ""
    if problem := too_big(need, f"{sequences}{at_once}, read whole as layer '{layer.name}' must ({kind}"
                                f"{layer.registered_name} layers cannot carry their state from one window of {window} "
                                "steps to the next)"):
        raise DataError(problem)


def check_finite(y: np.ndarray, what: str = "the model's outputs") -> np.ndarray:
    """y, or NnctlError when it holds NaN or infinite values: weights that overflow the dtype on these inputs."""
    if not bool(xp.isfinite(y).all()):
        raise NnctlError(f"{what} for these inputs are NaN or infinite: its weights overflow in "
                         f"{np.dtype(y.dtype).name}, so they cannot give meaningful predictions or metrics")
    return y


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: samples of class i predicted as class j."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


def per_class(counts: np.ndarray, labels: list[int | str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each class, named by its label, from a confusion matrix (0 where
    undefined)."""
    tp = np.diag(counts).astype(np.float64)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return [{"class": labels[i], "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(actual[i])} for i in range(len(counts))]


def macro_f1(counts: np.ndarray, rows: list[dict[str, float]]) -> float:
    """The mean F1 of per_class's rows over the classes the split holds or the model predicts, as sklearn's
    f1_score(average="macro"): a class with neither has nothing to score, and its 0 would only pull the mean down."""
    scored = [row["f1"] for row, seen in zip(rows, counts.sum(axis=0) + counts.sum(axis=1) > 0, strict=True) if seen]
    return sum(scored) / max(len(scored), 1)
