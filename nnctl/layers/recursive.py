"""The recursive neural network over binary trees: parent = act(W·[left; right] + b), batched by height."""

from typing import Any

import numpy as np

from nnctl.backend import as_indices, xp
from nnctl.errors import DataError
from nnctl.init import Initializer
from nnctl.kernels import add_rows_at_
from nnctl.layers.base import LAYERS, Layer, vocabulary_advice
from nnctl.schema import Count

EXAMPLE_TREES = [  # node tables as nnctl.data.trees encodes them: (word, left, right) in post-order, -1 padded
    [[1, -1, -1]] + [[-1, -1, -1]] * 6,  # a single word
    [[0, -1, -1], [2, -1, -1], [-1, 0, 1]] + [[-1, -1, -1]] * 4,  # (a b)
    [[1, -1, -1], [2, -1, -1], [-1, 0, 1], [3, -1, -1], [-1, 2, 3], [1, -1, -1], [-1, 4, 5]],  # ((a b) c) d
    [[3, -1, -1], [2, -1, -1], [0, -1, -1], [-1, 1, 2], [-1, 0, 3]] + [[-1, -1, -1]] * 2,  # a (b c)
    [[2, -1, -1], [2, -1, -1], [-1, 0, 1], [1, -1, -1], [3, -1, -1], [-1, 3, 4], [-1, 2, 5]],  # (a b) (c d)
]


def table_problem(table: np.ndarray) -> str | None:
    """What keeps the node tables (N, nodes, 3) from being binary trees in post-order with -1 padding after them,
    as nnctl.data.trees encodes them; None if nothing does."""
    n, m = table.shape[:2]
    words, left, right = table[..., 0], table[..., 1], table[..., 2]
    rows = xp.arange(m)
    padding = (words == -1) & (left == -1) & (right == -1)
    leaf = (words >= 0) & (left == -1) & (right == -1)
    inner = (words == -1) & (left >= 0) & (right >= 0) & (left < rows) & (right < rows)
    size = (~padding).sum(axis=1)
    offset = (xp.arange(n) * m)[:, None]
    children = xp.concatenate([(left + offset)[inner], (right + offset)[inner]])
    parents = xp.bincount(children, minlength=n * m).reshape(n, m)
    wanted = (~padding & (rows != (size - 1)[:, None])).astype(parents.dtype)  # the root, last, has no parent
    checks = [(~(padding | leaf | inner), "is neither a leaf (word, -1, -1), an inner node (-1, left, right) whose "
                                          "children are earlier rows, nor padding (-1, -1, -1)"),
              (~padding & (rows >= size[:, None]), "comes after padding, which must follow the whole tree"),
              (parents != wanted, "is a child of {} nodes; every node but the root (the last) is a child of one")]
    for bad, what in checks:
        if bad.any():
            tree, row = (int(i) for i in xp.argwhere(bad)[0])
            return (f"row {row} {table[tree, row].tolist()} of the batch's node table {tree} "
                    + what.format(int(parents[tree, row])))
    if not size.all():
        return f"the batch's node table {int(xp.argmin(size))} is all padding, no tree"
    return None


@LAYERS.register("recursive")
class Recursive(Layer):
    """Node tables (N, nodes, 3) -> root vectors (N, dim): a leaf is its word's row of E, an inner node
    act(W·[left; right] + b). All nodes of one height, across the batch, take one matrix product."""

    example = {"config": {"vocab_size": 4, "dim": 3}, "input_shape": (7, 3), "x": EXAMPLE_TREES}
    takes_indices = True
    weight_keys = ("W",)

    def __init__(self, vocab_size: Count, dim: Count, activation: str = "tanh", weight_init: Any = "glorot_uniform",
                 bias_init: Any = "zeros", embedding_init: Any = "uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = vocab_size, dim
        self.act_type = type(activation)  # the builder has made the name an activation layer
        self.weight_init: Initializer = weight_init
        self.bias_init: Initializer = bias_init
        self.embedding_init: Initializer = embedding_init

    def output_shape(self, input_shape):
        if len(input_shape) != 2 or input_shape[1] != 3:
            raise ValueError("expected tree node tables of shape (nodes, 3), as the trees dataset gives them "
                             "(with flatten: false)")
        return (self.dim,)

    def build(self, input_shape, rng, dtype):
        d = self.dim
        self.params["E"] = self.embedding_init((self.vocab_size, d), self.vocab_size, d, rng, dtype)
        self.params["W"] = self.weight_init((2 * d, d), 2 * d, d, rng, dtype)
        self.params["b"] = self.bias_init((d,), 2 * d, d, rng, dtype)
        self._zero_grads()
        self.nodes = input_shape[0]

    def working_values(self):
        # per node: its vector and gradient, and an inner node's children side by side, pre-activation and gradients
        return self.nodes * self.dim * 6

    def forward(self, x, training):
        self._read_tables(x, training)
        E, W, b = self.params["E"], self.params["W"], self.params["b"]
        self.h = xp.zeros((self.words.size, self.dim), E.dtype)
        self.h[self.leaves] = E[self.words[self.leaves]]
        self.steps = []
        for nodes in self.levels:
            children = xp.concatenate([self.h[self.left[nodes]], self.h[self.right[nodes]]], axis=1)
            act = self.act_type()  # one per level: each keeps what its backward needs
            self.h[nodes] = act.forward(children @ W + b, training)
            self.steps.append((nodes, children, act))
        return self.h[self.roots]

    def backward(self, dy):
        dh = xp.zeros_like(self.h)
        dh[self.roots] = dy
        W, d = self.params["W"], self.dim
        for grad in self.grads.values():
            grad[...] = 0
        for nodes, children, act in reversed(self.steps):
            dz = act.backward(dh[nodes])
            self.grads["W"] += children.T @ dz
            self.grads["b"] += dz.sum(axis=0)
            dchildren = dz @ W.T
            dh[self.left[nodes]] += dchildren[:, :d]  # each node has one parent: no index repeats in a level
            dh[self.right[nodes]] += dchildren[:, d:]
        add_rows_at_(self.grads["E"], self.words[self.leaves], dh[self.leaves])
        return None

    def _read_tables(self, x: np.ndarray, training: bool) -> None:
        """Flat node indices over the batch: leaves, inner nodes grouped by height, and each tree's root."""
        table = as_indices(xp.asarray(x), f"layer {self.name}: the node tables")
        n, m = table.shape[:2]
        if problem := table_problem(table):
            raise DataError(f"layer {self.name}: {problem}; a node table lists (word id, left row, right row) per "
                            "node in post-order, as the trees dataset writes it (see Trees in the README)")
        offset = (xp.arange(n) * m)[:, None]
        self.words = table[..., 0].ravel()
        inner = (table[..., 1] >= 0).ravel()
        self.left, self.right = (table[..., 1] + offset).ravel(), (table[..., 2] + offset).ravel()
        self.leaves = xp.flatnonzero(self.words >= 0)
        if int(self.words.max()) >= self.vocab_size:
            advice = vocabulary_advice(training, "the dataset's vocabulary size (for trees: the training file's "
                                                 "different words, plus 1 for <unk>)")
            raise DataError(f"layer {self.name}: word id {int(self.words.max())} is beyond its vocab_size "
                            f"{self.vocab_size} (word ids 0 to {self.vocab_size - 1}); {advice}")
        self.roots = xp.arange(n) * m + (table != -1).any(axis=2).sum(axis=1) - 1
        height = xp.zeros(n * m, xp.int64)
        parents = xp.flatnonzero(inner)
        for _ in range(m):  # a node is one above its higher child; converges after the tallest tree's height
            above = 1 + xp.maximum(height[self.left[parents]], height[self.right[parents]])
            if xp.array_equal(above, height[parents]):
                break
            height[parents] = above
        self.levels = [xp.flatnonzero(height == h) for h in range(1, int(height.max()) + 1)]
