"""The IDX format of MNIST: a magic number, the dimensions, then the values."""

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from nnctl.errors import DataError, read_bytes

_TYPES: dict[int, type | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, gzip-compressed (a name ending in .gz) or raw."""
    path = Path(path)
    raw = read_bytes(path, DataError, "file")
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decodes IDX bytes; DataError on a bad magic number or a size that does not match the header."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{source}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    if ndim == 0:
        raise DataError(f"{source}: not an IDX file (it declares no dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{source}: the header promises {expected} bytes of data for shape {list(dims)}, "
                        f"the file holds {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)
