"""Two-input logic gates as four-row truth tables: the classic first problems for a perceptron."""

from typing import Literal

import numpy as np

from nnctl.data.source import DATASETS, Arrays, DatasetSource

INPUTS = [[1, 1], [0, 0], [1, 0], [0, 1]]  # this row order is part of the reference results
OPS = {"and": [1, 0, 0, 0], "or": [1, 0, 1, 1], "nand": [0, 1, 1, 1], "nor": [0, 1, 0, 0], "xor": [0, 0, 1, 1]}


@DATASETS.register("logic")
class Logic(DatasetSource):
    """The truth table of `op` (and, or, nand, nor, xor) with integer labels; the test split is the same table."""

    num_classes = 2
    raw_shape = (2,)

    def __init__(self, op: Literal["and", "or", "nand", "nor", "xor"] = "and", **kwargs):
        super().__init__(**kwargs)
        self.op = op

    def read(self) -> Arrays:
        x = np.array(INPUTS, dtype=np.float64)
        y = np.array(OPS[self.op], dtype=np.int64)
        return x, y, x.copy(), y.copy()
