"""Sequence datasets: MNIST read row by row."""

from nnctl.data import DATASETS
from nnctl.data.mnist import MNIST


@DATASETS.register("mnist_rows")
class MNISTRows(MNIST):
    """MNIST as sequences of 28 rows of 28 pixels, (N, 28, 28), for recurrent layers."""

    def __init__(self, flatten: bool = False, **kwargs):
        super().__init__(flatten=flatten, **kwargs)
