"""Sequence datasets: MNIST read row by row."""

from nnctl.data.mnist import MNIST
from nnctl.data.source import DATASETS, Arrays


@DATASETS.register("mnist_rows")
class MNISTRows(MNIST):
    """MNIST as sequences of 28 rows of 28 pixels, (N, 28, 28), for recurrent layers."""

    raw_shape = (28, 28)

    def __init__(self, flatten: bool = False, **kwargs):
        super().__init__(flatten=flatten, **kwargs)

    def read(self) -> Arrays:
        x, y, x_test, y_test = super().read()
        # the images' one channel dropped: (28 steps, 28 features)
        return x[:, 0], y, None if x_test is None else x_test[:, 0], y_test
