"""The errors a user can cause; the CLI turns each into one clear message and a non-zero exit."""

from pathlib import Path


class NnctlError(Exception):
    """A user-facing error: its message is shown as is, without a traceback."""

    exit_code = 1


class ConfigError(NnctlError):
    """A config that cannot be loaded, validated or built."""

    exit_code = 2


class DataError(NnctlError):
    """A dataset that cannot be found, downloaded, verified or parsed."""


class CheckpointError(NnctlError):
    """A checkpoint that is missing, corrupt, unsafe or not nnctl's."""


class TrainingError(NnctlError):
    """Training that cannot go on, such as a loss that became NaN."""


def read_bytes(path: Path, error: type[NnctlError], noun: str) -> bytes:
    """The file's bytes, or `error` saying "no such <noun>" or why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {noun}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {noun}: {exc.strerror or exc}") from None
