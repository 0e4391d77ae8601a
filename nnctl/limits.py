"""How much one input may make nnctl read, decompress or allocate: from the machine's memory, raised on purpose.

Every size a file declares (an array header, a gzip stream, a tar member, a layer's width, a label's one-hot) is
checked against `memory_limit()` before anything is allocated, so a 500-byte file cannot ask for a terabyte."""

import io
import os
import re
import zlib
from collections.abc import Iterable

from nnctl.errors import ConfigError

ENV = "NNCTL_MAX_MEMORY"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_FALLBACK = 8 << 30  # where the machine does not say how much memory it has
MAX_DIMS = 32
"""The most dimensions an array in a file may declare (NumPy 1 allows 32, NumPy 2 64; no dataset needs 10)."""


JSON_COST = 32
"""What parsing JSON costs in memory per byte of it at most: `{},` (3 bytes) is a dict of 64 bytes and its slot of 8."""


def machine_memory() -> int:
    """The machine's physical memory in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK


def memory_limit() -> int:
    """The most bytes one input may need: $NNCTL_MAX_MEMORY (such as 64G), else 3/4 of the machine's memory."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return machine_memory() * 3 // 4
    match = re.fullmatch(r"(\d{1,15}(?:\.\d{1,15})?)\s*([KMGT]?)(?:i?B)?", text, re.IGNORECASE)
    if not match or not (limit := int(float(match.group(1)) * _UNITS[match.group(2).upper()])):
        raise ConfigError(f"{ENV} must be a size above 0 such as 64G, 512M or 2.5G, got '{text[:40]}'; "
                          "unset it for 3/4 of the machine's memory")
    return limit


def size_text(nbytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def capped_product(sizes: Iterable[int], cap: int = 1 << 70) -> int:
    """The product of `sizes`, exact up to `cap`, else `cap`: a forged list of huge sizes stays cheap to multiply."""
    count = 1
    for size in sizes:
        count = min(count * size, cap)
    return count


def too_big(nbytes: float, what: str) -> str | None:
    """Why `what` needing `nbytes` is refused, or None when it fits the limit."""
    limit = memory_limit()
    if nbytes <= limit:
        return None
    source = f"set by {ENV}" if os.environ.get(ENV) else "3/4 of this machine's memory"
    return (f"{what} would need {size_text(nbytes)}, more than the {size_text(limit)} nnctl allows one input "
            f"({source}); if that is what you mean, raise it with {ENV}=<size>, such as {ENV}=64G")


GUNZIP_STEP = 4096
"""The compressed bytes gunzip hands zlib at a time: zlib copies what follows the end of a gzip member, so
handing it the whole rest of the file would make a file of many small members quadratic."""


def gunzip(raw: bytes, limit: int) -> tuple[bytes, bool]:
    """The gzip stream's contents, at most `limit` bytes, and whether that was all of it (else it holds more).
    zlib.error or EOFError when it is not gzip or is cut short."""
    pieces, size, stream = [], 0, None
    view = memoryview(raw)
    for start in range(0, len(raw), GUNZIP_STEP):
        data: bytes | memoryview = view[start:start + GUNZIP_STEP]
        while data:
            stream = stream or zlib.decompressobj(zlib.MAX_WBITS | 16)
            pieces.append(stream.decompress(data, limit + 1 - size))
            size += len(pieces[-1])
            if size > limit:
                return b"".join(pieces)[:limit], False
            data, stream = (stream.unused_data, None) if stream.eof else (b"", stream)
    if stream is not None:
        raise EOFError("the compressed data is cut short")
    return b"".join(pieces), True


class Exceeded(ValueError):
    """A stream went past its limit while it was read."""


class BoundedReader(io.BufferedIOBase):
    """A read-only file object over `f` that raises Exceeded rather than read past `limit` bytes."""

    def __init__(self, f: io.BufferedIOBase, limit: int):
        super().__init__()
        self.f, self.limit, self.count = f, limit, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        room = self.limit + 1 - self.count
        data = self.f.read(room if size is None or size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise Exceeded(f"more than {size_text(self.limit)}")
        return data
