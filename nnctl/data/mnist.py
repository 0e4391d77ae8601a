"""MNIST: the four IDX files, read from the data directory or downloaded once and cached there."""

from nnctl.data import DATASETS
from nnctl.data.download import fetch
from nnctl.data.idx import read_idx
from nnctl.data.source import Arrays, DatasetSource, data_root
from nnctl.errors import DataError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FILES = {  # file -> MD5 of its decompressed contents, the same on every mirror
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}


@DATASETS.register("mnist")
class MNIST(DatasetSource):
    """70,000 handwritten digits, 28×28 grey pixels scaled into [0, 1]; 60,000 to train, 10,000 to test."""

    num_classes = 10

    def __init__(self, root: str | None = None, mirror: str | None = None, scale: float = 1 / 255, **kwargs):
        super().__init__(scale=scale, **kwargs)
        self.root, self.mirror = root, mirror

    def read(self) -> Arrays:
        folder = data_root(self.root, self.base_dir) / "mnist"
        for name, md5 in FILES.items():
            if not (folder / name).exists():
                self._download(name, folder, md5)
        train_x, train_y, test_x, test_y = (read_idx(folder / name) for name in FILES)
        return train_x, train_y, test_x, test_y

    def _download(self, name: str, folder, md5: str) -> None:
        failures = []
        for base in [self.mirror] if self.mirror else MIRRORS:
            try:
                fetch(base.rstrip("/") + "/" + name, folder / name, md5)
                return
            except DataError as exc:
                failures.append(str(exc))
        raise DataError(f"{folder / name} is missing and could not be downloaded:\n  " + "\n  ".join(failures)
                        + f"\nSet data.root or NNCTL_DATA_DIR to a folder holding mnist/{name} and the other "
                          "MNIST files, or try again when the mirrors can be reached.")
