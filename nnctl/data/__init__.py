"""Datasets, registered by name; importing this package registers every source."""

from nnctl.data import (  # noqa: F401  (they register)
    cifar10,
    images,
    logic,
    mnist,
    patterns,
    sequences,
    tabular,
    text,
    trees,
)
from nnctl.data.dataset import Dataset, Split
from nnctl.data.source import DATASETS, DatasetSource

__all__ = ["DATASETS", "Dataset", "DatasetSource", "Split"]
