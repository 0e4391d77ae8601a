"""NumPy's .npy and .npz files, read without pickles and without trusting their headers: no objects, records or
dates, and the declared size must be what the file (or the archive member) holds, checked before allocating.
Whether the values are numbers is for the reader's user to say (it knows what they should be)."""

import math
import tokenize
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from nnctl.errors import DataError
from nnctl.files import regular_file
from nnctl.limits import MAX_DIMS, size_text, too_big

_REFUSED = {"O": "Python objects (pickles are never loaded)", "V": "records with fields", "M": "dates",
            "m": "time spans", "T": "strings of any length (NumPy's StringDType, which holds pointers)"}


def read_npy(path: Path) -> np.ndarray:
    """The array of an .npy file."""
    size = regular_file(path, DataError, "file")
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise DataError(f"{path}: an .npz archive, not a single .npy array; name it *.npz")
            f.seek(0)
            return _read_array(f, size, str(path))
    except _Unreadable as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive by name."""
    regular_file(path, DataError, "file")
    try:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise DataError(f"{path}: a single .npy array, not an .npz archive of named arrays")
        with zipfile.ZipFile(path) as archive:
            arrays: dict[str, np.ndarray] = {}
            held = 0  # the bytes of the arrays read so far: summed as they come, as an archive can hold a million
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if info.is_dir() or not info.filename.endswith(".npy"):
                    raise DataError(f"{path}: holds '{info.filename}', which is not an .npy array")
                if info.flag_bits & 0x1:
                    raise DataError(f"{path}: its array '{name}' is encrypted; save it again without a password")
                with archive.open(info) as f:
                    try:
                        arrays[name] = _read_array(f, info.file_size, f"{path}: array '{name}'", held)
                        held += arrays[name].nbytes
                    except _Unreadable as exc:
                        raise DataError(f"{path}: not a readable .npz file (array '{name}' {exc})") from None
            return arrays
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every array of an .npz archive, from the arrays' headers alone."""
    regular_file(path, DataError, "file")
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = {}
            for name in archive.namelist():
                with archive.open(name) as f:
                    try:
                        shapes[name.removesuffix(".npy")] = _header(f)[0]
                    except _Unreadable as exc:
                        raise DataError(f"{path}: not a readable .npz file (array '{name}' {exc})") from None
            return shapes
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


class _Unreadable(ValueError):
    """Why an .npy stream is refused, for the caller to say where."""


def _header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, Fortran order and dtype an .npy stream's header declares, or _Unreadable saying why none."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(f)
        if version in read_header:
            return read_header[version](f)
    except (ValueError, SyntaxError, tokenize.TokenError) as exc:  # NumPy tokenizes what Python cannot parse
        raise _Unreadable(f"has no readable .npy header: {exc.args[0] if exc.args else exc}") from None
    raise _Unreadable(f"is in .npy format version {version}, not one nnctl reads")


def _read_array(f: IO[bytes], size: int, where: str, held: int = 0) -> np.ndarray:
    """One .npy stream of `size` bytes: its header checked against `size`, then its values read into place; `held`
    bytes (an archive's arrays read before it) count against the memory limit with it."""
    shape, fortran, dtype = _checked_header(f)
    nbytes = math.prod(shape) * dtype.itemsize
    available = size - f.tell()
    if nbytes != available:
        raise _Unreadable(f"declares shape {list(shape)} ({nbytes:,} bytes of data), but the file holds "
                          f"{max(available, 0):,}: a forged header, or a "
                          f"{'truncated file' if nbytes > available else 'file with bytes after its array'}")
    before = f", with the {size_text(held)} of the arrays before it in the archive," if held else ""
    if problem := too_big(held + nbytes, f"{where} of shape {list(shape)}{before}"):
        raise DataError(problem)
    return np.frombuffer(_read_exactly(f, nbytes), dtype).reshape(shape, order="F" if fortran else "C")


def _checked_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, Fortran order and dtype an .npy header declares; _Unreadable for a header nnctl does not read, a
    shape no array has, or values that are not plain numbers."""
    shape, fortran, dtype = _header(f)
    if len(shape) > MAX_DIMS or any(n < 0 for n in shape):
        raise _Unreadable(f"declares shape {list(shape)[:MAX_DIMS + 1]}, which no array has")
    if dtype.kind in _REFUSED or dtype.fields is not None or dtype.subdtype is not None:
        raise _Unreadable(f"holds {_REFUSED.get(dtype.kind, 'records')} (dtype {dtype.str}), not plain numbers")
    if not dtype.itemsize:
        raise _Unreadable(f"holds values of no bytes (dtype {dtype.str}), which no array is made of")
    return shape, fortran, dtype


def _read_exactly(f: IO[bytes], nbytes: int) -> bytearray:
    """The next `nbytes` bytes of f, read in chunks of 16 MiB; _Unreadable where the stream ends before them."""
    buffer, filled = bytearray(nbytes), 0
    while filled < nbytes:
        chunk = f.read(min(nbytes - filled, 1 << 24))
        if not chunk:
            raise _Unreadable(f"is cut short after {filled:,} of {nbytes:,} bytes")
        buffer[filled: filled + len(chunk)] = chunk
        filled += len(chunk)
    return buffer
