"""Losses: `forward(y, t)` returns the mean loss of a batch, `backward()` its gradient for y."""

from typing import Any, ClassVar

import numpy as np

from nnctl.backend import xp
from nnctl.layers.activations import sigmoid, softmax
from nnctl.registry import Registry
from nnctl.schema import Fraction, NonNegative

LOSSES: Registry = Registry("loss")


class Loss:
    """A loss over a batch; `l1` and `l2` configure the decay of the model's weights (never biases), see Decay."""

    registered_name: ClassVar[str] = "loss"
    applies: str | None = None
    """The output activation this loss applies itself (so the model must not end in it)."""

    example_targets: ClassVar[tuple[str, ...]] = ("labels",)
    """What the gradient check feeds as targets, each in turn: integer 'labels', 'values' shaped like y."""
    example: ClassVar[dict[str, Any]] = {}
    """Options that change the loss's gradient, which the gradient check tries as well (five outputs)."""

    def __init__(self, l1: NonNegative = 0.0, l2: NonNegative = 0.0):
        self.l1, self.l2 = l1, l2

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def train_targets(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The targets training descends towards (label smoothing changes them; evaluation never does)."""
        return t

    def train_forward(self, y: np.ndarray, t: np.ndarray) -> float:
        """The loss training descends: against train_targets."""
        return self.forward(y, self.train_targets(y, t))

    def labels(self, y: np.ndarray) -> np.ndarray:
        """The class each output row predicts: argmax, or a threshold for a single output."""
        return y.argmax(axis=-1) if y.shape[-1] > 1 else (y[..., 0] > 0.5).astype(xp.int64)

    def probabilities(self, y: np.ndarray) -> np.ndarray:
        """The model's outputs as this loss reads them (probabilities for classification losses)."""
        return y

    def check(self, output_shape: tuple[int, ...], target_shape: tuple[int, ...], num_classes: int | None) -> None:
        """ValueError when the model's outputs cannot be compared with the dataset's targets."""
        per_sample = target_shape == output_shape[:-1] and output_shape[-1] in (1, num_classes)
        if target_shape != output_shape and not per_sample:
            raise ValueError(f"the model outputs {list(output_shape)} per sample but the targets are "
                             f"{list(target_shape) or 'scalars'}"
                             + (f" with {num_classes} classes" if num_classes else ""))


class Decay:
    """L1/L2 decay of the weights it is bound to: penalty l1·Σ|w| + ½·l2·Σw², gradient l1·sign(w) + l2·w.
    False when neither is set."""

    def __init__(self, l1: float, l2: float, weights: list[np.ndarray], grads: list[np.ndarray]):
        if len(weights) != len(grads):
            raise ValueError(f"{len(weights)} weights but {len(grads)} gradients")
        self.l1, self.l2 = l1, l2
        self.weights, self.grads = weights, grads

    def __bool__(self) -> bool:
        return bool(self.l1 or self.l2)

    def penalty(self) -> float:
        """l1·Σ|w| + ½·l2·Σw² over the weights."""
        total = 0.0
        for w in self.weights:
            if self.l1:
                total += self.l1 * float(xp.abs(w).sum())
            if self.l2:
                total += 0.5 * self.l2 * float((w * w).sum())
        return total

    def add_grads(self) -> None:
        """Adds the decay's gradient to each weight's gradient, in place."""
        for w, g in zip(self.weights, self.grads, strict=True):
            if self.l1:
                g += self.l1 * xp.sign(w)
            if self.l2:
                g += self.l2 * w


def as_targets(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Targets shaped like y, in y's dtype: one-hot rows for integer labels, a column for one output per sample."""
    if t.shape == y.shape:
        return t if t.dtype == y.dtype else t.astype(y.dtype)  # integer one-hot rows or 0/1 columns
    if t.ndim == y.ndim - 1 and y.shape[-1] == 1:
        return t.reshape(y.shape).astype(y.dtype)
    if t.ndim == y.ndim - 1 and t.dtype.kind in "iu":
        return (t[..., None] == xp.arange(y.shape[-1])).astype(y.dtype)
    raise ValueError(f"targets of shape {t.shape} do not fit outputs of shape {y.shape}")


@LOSSES.register("softmax_cross_entropy")
class SoftmaxCrossEntropy(Loss):
    """−Σ t·log softmax(y), averaged over the batch; t is integer labels or one-hot/soft rows. `class_weights`
    scales each sample's term by its class's weight (t·w for soft rows); `label_smoothing` ε trains towards
    (1 − ε)·t + ε/C instead of t."""

    applies = "softmax"
    example_targets = ("labels", "values")  # values: soft rows, which need not sum to 1 (0.9/0.1 one-hot rows)
    example = {"class_weights": [1.0, 2.0, 0.5, 0.0, 3.0], "label_smoothing": 0.2}

    def __init__(self, class_weights: list[NonNegative] | None = None, label_smoothing: Fraction = 0.0, **kwargs):
        super().__init__(**kwargs)
        if class_weights is not None and not class_weights:
            raise ValueError("class_weights must list one weight per class, got []")
        if class_weights is not None and max(class_weights) == 0:
            raise ValueError("class_weights must not all be 0: every sample's loss would be 0, and nothing would "
                             "train")
        self.class_weights = None if class_weights is None else xp.asarray(class_weights, dtype=xp.float64)
        self.label_smoothing = label_smoothing

    def train_targets(self, y, t):
        if not self.label_smoothing:
            return t
        return (1 - self.label_smoothing) * as_targets(y, t) + self.label_smoothing / y.shape[-1]

    def labels(self, y):
        return y.argmax(axis=-1)

    def probabilities(self, y):
        return softmax(y)

    def check(self, output_shape, target_shape, num_classes):
        if output_shape[-1] < 2:
            raise ValueError("softmax_cross_entropy needs at least 2 outputs per sample; "
                             "use binary_cross_entropy for one")
        if self.class_weights is not None and len(self.class_weights) != output_shape[-1]:
            raise ValueError(f"class_weights has {len(self.class_weights)} weights, but the model has "
                             f"{output_shape[-1]} outputs (one weight per class)")
        super().check(output_shape, target_shape, num_classes)

    def train_forward(self, y, t):
        return self.forward(y, self.train_targets(y, t), weighed_by=t)

    def forward(self, y, t, weighed_by=None):
        """The loss against targets t, each sample's term weighed by the class weights of `weighed_by` (the true
        targets, where t are smoothed ones), else of t."""
        self.t = as_targets(y, t)
        shifted = y - y.max(axis=-1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        self.p = xp.exp(log_p)
        self.n = y.size // y.shape[-1]
        terms = self.t * log_p
        if self.class_weights is None:
            self.s = None
            return float(-terms.sum() / self.n)
        weighed = self.t if weighed_by is None else as_targets(y, weighed_by)
        self.s = (weighed @ self.class_weights.astype(y.dtype))[..., None]  # each sample's weight, t·w
        return float(-(terms * self.s).sum() / self.n)

    def backward(self):
        # d/dy of −Σ t·log p is p·Σt − t: p − t only for rows that sum to 1
        dy = (self.p * self.t.sum(axis=-1, keepdims=True) - self.t) / self.n
        return dy if self.s is None else dy * self.s


@LOSSES.register("binary_cross_entropy")
class BinaryCrossEntropy(Loss):
    """Cross-entropy of sigmoid(y) against targets in [0, 1], on logits, averaged over all outputs."""

    applies = "sigmoid"

    example_targets = ("values",)

    def labels(self, y):
        return (y[..., 0] > 0).astype(xp.int64) if y.shape[-1] == 1 else y.argmax(axis=-1)

    def check(self, output_shape, target_shape, num_classes):
        if output_shape[-1] == 1 and (num_classes or 0) > 2 and target_shape == output_shape[:-1]:
            raise ValueError(f"one sigmoid output tells 2 classes apart (labels 0 and 1), but the labels run to "
                             f"{num_classes - 1}; use softmax_cross_entropy with {num_classes} outputs")
        super().check(output_shape, target_shape, num_classes)

    def probabilities(self, y):
        return sigmoid(y)

    def forward(self, y, t):
        self.y, self.t = y, as_targets(y, t)
        return float((xp.maximum(y, 0) - y * self.t + xp.log1p(xp.exp(-xp.abs(y)))).mean())

    def backward(self):
        return (sigmoid(self.y) - self.t) / self.y.size


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    """Mean of (y − t)² over every output."""

    example_targets = ("values",)

    def forward(self, y, t):
        self.diff = y - as_targets(y, t)
        return float((self.diff * self.diff).mean())

    def backward(self):
        return 2 * self.diff / self.diff.size


@LOSSES.register("half_sse")
class HalfSumOfSquares(Loss):
    """½·Σ(t − y)² over a sample's outputs, averaged over the batch (the classic texts' E)."""

    example_targets = ("values",)

    def forward(self, y, t):
        self.diff = y - as_targets(y, t)
        self.n = y.size // y.shape[-1]
        return float(0.5 * (self.diff * self.diff).sum() / self.n)

    def backward(self):
        return self.diff / self.n
