"""Output files written whole or not at all: a temporary file beside the target, synced, then renamed onto it."""

import errno
import os
import shlex
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from nnctl.errors import NnctlError
from nnctl.files import real_path

REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ELOOP})
"""The errors by which the system refuses to write a file (full disk, quota, size limit, read-only, permissions) or
to follow its path (a symbolic link loop): the user's to fix, never a bug in nnctl."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


MODE = 0o666 & ~_umask()
"""The permissions `open` would give a new file; a temporary file starts private (0600)."""


def check_target(path: Path) -> None:
    """NnctlError when `path` exists but is not a regular file: a folder, or a FIFO, device or socket, which a
    write could block on forever or never fill."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there yet, or a folder above it that is missing: the write says so
        return
    if stat.S_ISDIR(mode):
        raise NnctlError(f"{path}: a folder; give the output file's name")
    if not stat.S_ISREG(mode):
        raise NnctlError(f"{path}: not a regular file (a FIFO, device or socket); an output must be a file, "
                         "give another name")


def check_folder(path: Path) -> None:
    """NnctlError, before any work, where the folder that `path` goes in is missing or is a file: an output never
    makes folders (`-o nodir/p.png` is more often a typo than a wish), as cp, NumPy and matplotlib make none."""
    folder = path.parent
    if folder.is_dir():
        return
    if folder.exists():
        raise NnctlError(f"{path}: {folder} is a file, not a folder")
    raise NnctlError(f"{path}: no folder {folder} to write it in; make it first (mkdir -p {shlex.quote(str(folder))})")


@contextmanager
def replacing(path: Path, what: str, error: type[NnctlError] = NnctlError, parents: bool = False,
              sync: bool = True) -> Iterator[BinaryIO]:
    """A binary file for `what`, renamed onto `path` (through a symlink, onto its target) once written and synced
    (not synced without `sync`: whole after a kill, not after a machine's crash); on any failure it is deleted and
    `path` left as it was. An OSError becomes `error` naming `path`."""
    check_target(path)
    target = real_path(path)
    tmp = None
    try:
        if parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp")
        # w+b makes no BufferedWriter: NumPy then writes through f.write, not through tofile, whose error for a
        # short write drops the system's reason (No space left on device)
        with os.fdopen(fd, "w+b") as f:
            os.fchmod(f.fileno(), MODE)
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise error(f"{path}: cannot write {what}: {exc.strerror or exc}") from None
        raise


def refusal(exc: OSError) -> str:
    """One line for an OSError of REFUSALS: the file, when the error names it, and the system's reason."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else f"cannot write a file: {reason}"


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and those above it that do not exist yet, deepest first: what making it will make."""
    return [each for each in (folder, *folder.parents) if not each.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Removes `folders` (from missing_folders) that work since made, deepest first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
