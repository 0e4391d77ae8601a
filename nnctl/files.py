"""Reading a user's files: the real path of one, whether it is a regular file, its bytes up to a limit, and its
text."""

import os
import stat
from pathlib import Path

from nnctl.errors import NnctlError
from nnctl.limits import ENV, memory_limit, size_text, too_big


def real_path(path: Path) -> Path:
    """`path` made absolute with its links followed; a link loop is left as it is (the file's open then says so),
    where Path.resolve raises a RuntimeError."""
    return Path(os.path.realpath(path))


def regular_file(path: Path, error: type[NnctlError], noun: str) -> int:
    """The size of `path`, which must be a regular file (not a folder, device or FIFO, which could block or never
    end), or `error` saying why not."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such {noun}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {noun}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: a folder, not a {noun}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file (a device, FIFO or socket) but a {noun} must be one")
    return info.st_size


def read_bytes(path: Path, error: type[NnctlError], noun: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (default: limits.memory_limit()), or `error` saying
    "no such <noun>" or why it cannot be read."""
    size = regular_file(path, error, noun)
    limit = memory_limit() if limit is None else limit
    if size > limit:
        raise error(f"{path}: {size_text(size)}, more than a {noun} may hold ({size_text(limit)})"
                    + (f"; raise the limit with {ENV}=<size>" if limit == memory_limit() else ""))
    chunks, total = [], 0
    try:
        with open(path, "rb") as f:  # as much as it holds, not `limit` reserved up front (a memory cap refuses that)
            while total <= limit and (chunk := f.read(min(max(size, 1 << 16), limit + 1 - total))):
                chunks.append(chunk)
                total += len(chunk)
    except OSError as exc:
        raise error(f"{path}: cannot read {noun}: {exc.strerror or exc}") from None
    raw = b"".join(chunks)
    if len(raw) > limit:
        raise error(f"{path}: grew past {size_text(limit)} while it was read")
    return raw


def read_charged(path: Path, error: type[NnctlError], noun: str, cost: int, as_what: str) -> bytes:
    """`read_bytes`, refused where parsing them costs more than the memory limit at `cost` bytes of memory per byte
    of the file (`as_what` says what they become)."""
    raw = read_bytes(path, error, noun)
    if problem := too_big(len(raw) * cost, f"{path}: {len(raw):,} bytes of {as_what}"):
        raise error(problem)
    return raw


def read_text(path: Path, error: type[NnctlError], noun: str, cost: int, as_what: str) -> str:
    """The UTF-8 text of a regular file (`read_charged`), a leading BOM (Notepad's, Excel's) dropped and line ends
    made \\n as open() makes them."""
    raw = read_charged(path, error, noun, cost, as_what)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return newlines(text)


def newlines(text: str) -> str:
    """`text` with Windows' and old Macs' line ends made \\n, as open() reads them: they are no characters of a
    text."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
