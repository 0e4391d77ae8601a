"""Token embeddings: integer ids -> rows of a learned table."""

from typing import Any

from nnctl.backend import as_indices
from nnctl.errors import DataError
from nnctl.init import Initializer
from nnctl.kernels import add_rows_at_
from nnctl.layers.base import LAYERS, Layer, vocabulary_advice
from nnctl.schema import Count


@LAYERS.register("embedding")
class Embedding(Layer):
    """ids (...) -> W[ids] (..., dim), W of shape (vocab_size, dim); ids given as floats are cast to integers."""

    example = {"config": {"vocab_size": 5, "dim": 3}, "input_shape": (4,)}
    per_step = True
    takes_indices = True
    weight_keys = ("W",)

    def __init__(self, vocab_size: Count, dim: Count, weight_init: Any = "uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = vocab_size, dim
        self.weight_init: Initializer = weight_init

    def output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def build(self, input_shape, rng, dtype):
        self.params["W"] = self.weight_init((self.vocab_size, self.dim), self.vocab_size, self.dim, rng, dtype)
        self._zero_grads()

    def forward(self, x, training):
        self.ids = as_indices(x, f"{self.name}: the token ids")
        if self.ids.size and not 0 <= self.ids.min() <= self.ids.max() < self.vocab_size:
            raise DataError(f"{self.name}: token ids range over [{self.ids.min()}, {self.ids.max()}], outside a "
                            f"vocabulary of {self.vocab_size}; "
                            + vocabulary_advice(training, "the dataset's vocabulary size"))
        return self.params["W"][self.ids]

    def backward(self, dy):
        grad = self.grads["W"]
        grad[...] = 0
        add_rows_at_(grad, self.ids.ravel(), dy.reshape(-1, self.dim))
        return None
