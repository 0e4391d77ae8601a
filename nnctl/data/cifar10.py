"""CIFAR-10: the python-pickle batches in cifar-10-python.tar.gz, read from the data directory or downloaded once."""

import gzip
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from nnctl.data.source import DATASETS, Arrays, CachedSource, numbers_array
from nnctl.errors import DataError
from nnctl.files import read_bytes, regular_file
from nnctl.limits import BoundedReader, Exceeded, memory_limit, too_big
from nnctl.unpickle import UnsafePickleError, safe_unpickle

MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
ARCHIVE = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # of the archive as served
SIZE = 170_498_071  # of the archive as served
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@DATASETS.register("cifar10")
class CIFAR10(CachedSource):
    """60,000 colour images of 32×32 pixels in 10 classes, as (3, 32, 32) in [0, 1]; 50,000 train, 10,000 test.

    Read from `<data root>/cifar10/` (the archive, or the cifar-10-batches-py/ folder extracted from it);
    the archive is downloaded from `mirror`, else from its home, when neither is there."""

    num_classes = 10
    raw_shape = (3, 32, 32)
    subfolder = "cifar10"
    mirrors = MIRRORS

    def __init__(self, root: str | None = None, mirror: str | None = None, scale: float = 1 / 255,
                 flatten: bool = False, **kwargs):
        super().__init__(root=root, mirror=mirror, scale=scale, flatten=flatten, **kwargs)

    def read(self) -> Arrays:
        folder = self.folder()
        if (folder / FOLDER).is_dir():
            batches = {name: self._unpickle(folder / FOLDER / name, read_bytes(folder / FOLDER / name, DataError,
                                                                               "CIFAR-10 batch file"))
                       for name in [*TRAIN_BATCHES, "test_batch"] if (folder / FOLDER / name).exists()}
        else:
            if not os.path.lexists(folder / ARCHIVE):  # a broken link is read (and named), not downloaded over
                self.download(ARCHIVE, MD5, SIZE, of_contents=False,
                              holding=f"{ARCHIVE} (or the {FOLDER}/ folder from it)")
            batches = self._from_archive(folder / ARCHIVE)
        missing = [name for name in [*TRAIN_BATCHES, "test_batch"] if name not in batches]
        if missing:
            raise DataError(f"{folder}: the batches {', '.join(missing)} are missing")
        x, y = zip(*(batches[name] for name in TRAIN_BATCHES), strict=True)
        return np.concatenate(x), np.concatenate(y), *batches["test_batch"]

    def _from_archive(self, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        regular_file(path, DataError, "CIFAR-10 archive")
        batches = {}
        try:  # streamed through a reader that stops at the memory limit: a bomb is cut off, not unpacked
            with gzip.open(path) as unzipped, tarfile.open(fileobj=BoundedReader(unzipped, memory_limit()),
                                                           mode="r|") as tar:
                for member in tar:
                    name = Path(member.name).name
                    if name in [*TRAIN_BATCHES, "test_batch"] and (file := tar.extractfile(member)) is not None:
                        batches[name] = self._unpickle(path / member.name, file.read())  # None: not a regular file
            return batches
        except Exceeded:
            raise DataError(f"{too_big(memory_limit() + 1, f'{path}: unpacking it')} (a corrupt archive, or a "
                            "decompression bomb)") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a readable tar.gz archive ({exc}); delete it to download it again") from None

    @staticmethod
    def _unpickle(where: Path, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
        """One batch: its b'data' rows (N, 3072) as images (N, 3, 32, 32) and its b'labels'."""
        try:
            batch = safe_unpickle(raw, encoding="bytes")
            x, y = numbers_array(batch[b"data"], f"{where}: data"), numbers_array(batch[b"labels"], f"{where}: labels")
        except UnsafePickleError as exc:
            raise DataError(f"{where}: refused to read the batch: {exc}") from None
        except DataError:
            raise
        except Exception as exc:  # a damaged or foreign pickle fails in many ways; all mean the same to the user
            raise DataError(f"{where}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
        if (x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.dtype.kind != "i" or y.ndim != 1
                or len(x) != len(y)):
            raise DataError(f"{where}: expected uint8 rows of 3072 pixels and one integer label each, found data "
                            f"{x.dtype} {x.shape} and labels {y.dtype} {y.shape}")
        return x.reshape(-1, 3, 32, 32), y.astype(np.int64)
