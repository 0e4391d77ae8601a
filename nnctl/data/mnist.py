"""MNIST: the four IDX files, read from the data directory or downloaded once and cached there."""

import os
from pathlib import Path

import numpy as np

from nnctl.data.idx import read_idx
from nnctl.data.source import DATASETS, Arrays, CachedSource
from nnctl.errors import DataError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FILES = {  # file -> MD5 and size of its decompressed contents, the same on every mirror
    "train-images-idx3-ubyte.gz": ("6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    "train-labels-idx1-ubyte.gz": ("a25bea736e30d166cdddb491f175f624", 60_008),
    "t10k-images-idx3-ubyte.gz": ("2646ac647ad5339dbf082846283269ea", 7_840_016),
    "t10k-labels-idx1-ubyte.gz": ("27ae3e4e09519cfbb04c329615203637", 10_008),
}


@DATASETS.register("mnist")
class MNIST(CachedSource):
    """70,000 handwritten digits, 28×28 grey pixels scaled into [0, 1]; 60,000 to train, 10,000 to test.
    Flattened to 784 values, or with `flatten: false` images of one channel (1, 28, 28).

    Read from `<data root>/mnist/`; missing files are downloaded from `mirror`, else from the public mirrors."""

    num_classes = 10
    raw_shape: tuple[int, ...] = (1, 28, 28)
    subfolder = "mnist"
    mirrors = MIRRORS

    def __init__(self, root: str | None = None, mirror: str | None = None, scale: float = 1 / 255, **kwargs):
        super().__init__(root=root, mirror=mirror, scale=scale, **kwargs)

    def read(self) -> Arrays:
        paths = [self._file(name) for name in FILES]
        arrays = [read_idx(path) for path in paths]
        for path, array, sample in zip(paths, arrays, ((28, 28), (), (28, 28), ()), strict=True):
            if array.dtype != np.uint8 or array.shape[1:] != sample:
                raise DataError(f"{path}: expected MNIST's {'images' if sample else 'labels'}, uint8 of shape "
                                f"[{', '.join(['N', *map(str, sample)])}], found {array.dtype.name} of shape "
                                f"{list(array.shape)}; delete it to download it again")
        return arrays[0][:, None], arrays[1], arrays[2][:, None], arrays[3]  # images as (1, 28, 28): NCHW

    def _file(self, name: str) -> Path:
        """The folder's file `name`, else the same decompressed (no .gz), else `name` downloaded."""
        folder = self.folder()
        for path in (folder / name, folder / name.removesuffix(".gz")):
            if os.path.lexists(path):  # a broken link is read (and named), not downloaded over
                return path
        self.download(name, *FILES[name], of_contents=True,
                      holding=f"the files {', '.join(FILES)} (or decompressed, without .gz)")
        return folder / name
