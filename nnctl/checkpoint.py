"""Checkpoints: pickles of plain data, written atomically and read through the restricted unpickler."""

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from nnctl import __version__
from nnctl.errors import CheckpointError, read_bytes
from nnctl.unpickle import UnsafePickleError, safe_unpickle

FORMAT = "nnctl-checkpoint"
FORMAT_VERSION = 1


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Writes the checkpoint to a temporary file in the same folder, syncs it, then renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "nnctl_version": __version__, **payload}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path) -> dict[str, Any]:
    """Reads a checkpoint nnctl wrote; CheckpointError for a missing, corrupt, unsafe or foreign file."""
    path = Path(path)
    raw = read_bytes(path, CheckpointError, "checkpoint")
    try:
        data = safe_unpickle(raw)
    except UnsafePickleError as exc:
        raise CheckpointError(f"{path}: refused to load: {exc}; it may have been made to run code, "
                              "so it was not opened") from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: {exc})") from None
    except Exception as exc:  # a damaged pickle can fail in many ways; all of them mean the same to the user
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: "
                              f"{type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a pickle, but not an nnctl checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {data.get('format_version')} is not the format "
                              f"{FORMAT_VERSION} this nnctl {__version__} reads")
    return data
