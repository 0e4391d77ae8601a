"""The Layer contract every layer follows, and the registry of layers by name."""

from typing import Any, ClassVar

import numpy as np

from nnctl.backend import xp
from nnctl.registry import Registry
from nnctl.schema import NonNegative


class Layer:
    """`forward(x, training)` caches what `backward(dy)` needs; backward fills `grads` and returns dx.

    Shapes exclude the batch axis. Parameters live in `params`, their gradients in `grads` (same keys),
    non-trainable state in `state`. `input_grad` is False where no layer before this one trains, since nobody
    uses that dx. `trainable: false` (any layer) freezes its parameters: the model gives them no updates and
    runs the layer as in evaluation (batch norm on its running statistics), and backward still through it where
    a trainable layer comes before it (`input_grad`), so it keeps what backward needs then too.

    A constructor's arguments are the layer's config; their hints say what the config gives, while the builder
    passes `activation` and `*_init` values already built (an activation layer, an initializer).
    """

    registered_name: ClassVar[str] = "layer"
    example: ClassVar[dict[str, Any]] = {"config": {}, "input_shape": (5,)}
    """A small config and input shape: the gradient check every registered layer gets for free. An optional
    "x" gives the input batch itself, for layers whose inputs are not arbitrary numbers (integer indices)."""
    weight_keys: ClassVar[tuple[str, ...]] = ()
    """The params that count as weights for L1/L2 decay (biases and scales do not)."""
    surrogate_gradient: ClassVar[bool] = False
    """True when backward is a chosen rule, not the derivative (the perceptron's step)."""
    takes_indices: ClassVar[bool] = False
    """True when the inputs are integer indices (token ids, tree node tables): they have no gradient, and the
    layer must come first; its example draws ids below its `vocab_size` unless it gives "x"."""
    per_step: ClassVar[bool] = False
    """True when each time step's output depends on that step's input alone (the layer works on the last axis,
    keeping the leading ones): with one-way recurrent layers, a model of such layers can run a step at a time."""
    deals_threads: ClassVar[bool] = False
    """True when the layer can deal its work among threads itself (`threads.share`), each running BLAS on one;
    it does so on `self.threads` threads, which the model sets (1 until then)."""

    def __init__(self, name: str | None = None, trainable: bool = True, lr_mult: NonNegative = 1.0):
        self.name = name or ""
        self.trainable = trainable
        self.lr_mult = lr_mult
        """This layer's learning rate as a multiple of the optimizer's (Caffe's lr_mult)."""
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.rng: np.random.Generator | None = None
        self.input_grad = True
        self.threads = 1

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one output sample; ValueError when the input does not fit."""
        return input_shape

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: type) -> None:
        """Create the parameters for this input shape (most layers have none)."""

    def multiply_adds(self, output_shape: tuple[int, ...]) -> int:
        """About how many multiply-adds one sample costs forward: each parameter used once, unless the layer says."""
        return sum(p.size for p in self.params.values())

    def working_values(self) -> int:
        """About how many values one sample's forward and backward keep besides the layer's output and its gradient
        (a recurrent layer's gates at every step), for the memory check before training."""
        return 0

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def _zero_grads(self) -> None:
        self.grads = {key: xp.zeros_like(value) for key, value in self.params.items()}


LAYERS: Registry[Layer] = Registry("layer")

VARIANCES = ("running_var",)
"""Layer arrays that are variances (batch norm's): a negative entry makes its output NaN."""


def array_problem(key: str, value: np.ndarray) -> str | None:
    """What makes a layer's array `key` unusable as loaded from a file: NaN or infinity, or a negative variance."""
    if not np.isfinite(value).all():
        return "holds NaN or infinite values"
    if key in VARIANCES and (value < 0).any():
        return f"holds negative values ({float(value.min()):g}), which a variance cannot have"
    return None


def range_problem(value: np.ndarray, dtype: np.dtype) -> str | None:
    """What makes `value` unusable in the model's float `dtype`: values past its range, which would become infinite."""
    if value.size and (largest := float(np.abs(value).max())) > np.finfo(dtype).max:
        return f"holds values up to {largest:.3g}, beyond {np.dtype(dtype).name}'s range, the model's dtype"
    return None


def vocabulary_advice(training: bool, vocabulary: str) -> str:
    """What to do about an index beyond an index-reading layer's table: while training, size the table to the
    `vocabulary`; a trained model's table is fixed, so its inputs must use the ids it was trained with."""
    if training:
        return f"set vocab_size to {vocabulary}"
    return "a trained model reads only the ids of the vocabulary it was trained on; give inputs encoded with it"
