"""The IDX format of MNIST: a magic number, the dimensions, then the values."""

import math
import zlib
from pathlib import Path

import numpy as np

from nnctl.errors import DataError
from nnctl.files import read_bytes
from nnctl.limits import MAX_DIMS, gunzip, too_big

_TYPES: dict[int, type | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, gzip-compressed (a name ending in .gz) or raw."""
    path = Path(path)
    raw = read_bytes(path, DataError, "file")
    if path.suffix == ".gz":
        try:
            head, _ = gunzip(raw, 4 + 4 * 255)
            size = declared_size(head, str(path))  # decompress no more than the header says the data is
            if problem := too_big(size, f"{path}: the array its header declares"):
                raise DataError(problem)
            raw, whole = gunzip(raw, size)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc})") from None
        if not whole:
            raise DataError(f"{path}: decompresses to more than the {size:,} bytes its IDX header declares "
                            "(truncated or corrupt, or a decompression bomb)")
    return parse_idx(raw, str(path))


def declared_size(raw: bytes, source: str) -> int:
    """The bytes an IDX file should have, header included, as its header declares."""
    if not raw:
        raise DataError(f"{source}: empty (0 bytes{' once decompressed' if source.endswith('.gz') else ''}), so "
                        "not an IDX file; delete it to download it again")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{source}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    if ndim == 0:
        raise DataError(f"{source}: not an IDX file (it declares no dimensions)")
    if ndim > MAX_DIMS:
        raise DataError(f"{source}: not an IDX file nnctl reads (it declares {ndim} dimensions, more than "
                        f"{MAX_DIMS})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header")
    dims = np.frombuffer(raw, ">u4", ndim, 4)
    return header + math.prod(int(d) for d in dims) * np.dtype(_TYPES[raw[2]]).itemsize


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decodes IDX bytes; DataError on a bad magic number or a size that does not match the header."""
    total = declared_size(raw, source)
    header = 4 + 4 * raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", raw[3], 4))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = total - header
    if len(raw) - header != expected:
        raise DataError(f"{source}: the header promises {expected} bytes of data for shape {list(dims)}, "
                        f"the file holds {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)
