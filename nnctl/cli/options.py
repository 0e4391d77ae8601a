"""The arguments and options that commands share, and the checks of their values."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import typer

from nnctl.errors import ConfigError, NnctlError
from nnctl.outputs import check_folder, check_target

OVERRIDES_HELP = "Dotted KEY=VALUE overrides of the config, such as optimizer.lr=3e-4 train.epochs=2."
CHECKPOINT_HELP = "A checkpoint written by a run, or its run directory (best.pkl, else last.pkl)"


YAML = (".yaml", ".yml")
"""The suffixes of a config, where a command takes a config or a checkpoint."""
DEVICE_HELP = "Where to compute: cpu, cuda or cuda:N (an NVIDIA GPU through CuPy: pip install 'nnctl[gpu]')."


SPLITS = ("test", "val", "train")
DEVICES = ("cpu", "cuda")
"""The devices tab completion offers (cuda:N too is taken)."""


def offering(*choices: str) -> Callable[[str], list[str]]:
    """Tab completion of an option's value from `choices`; the command checks the value, with its own message."""
    def complete(incomplete: str) -> list[str]:
        return [choice for choice in choices if choice.startswith(incomplete)]
    return complete


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"--split must be test, val or train, not '{split}'")


def check_metric(metric: str) -> None:
    """ConfigError naming --metric when it names no metric a run can record."""
    from nnctl.metrics import check_metric_name

    try:
        check_metric_name(metric)
    except ValueError as exc:
        raise ConfigError(f"--metric: {exc}") from None


def _device_option(value: str | None) -> str | None:
    """--device as given, refused by its own name (not as the override it becomes) when it names no device."""
    from nnctl import backend

    if value is not None:
        try:
            backend.parse_device(value)
        except ValueError as exc:
            raise ConfigError(f"--device: {exc}") from None
    return value


def _cwd_overrides(overrides: list[str] | None) -> list[str] | None:
    """Overrides as typed: a relative path in one starts from the current folder, not the config's."""
    from nnctl.config import paths_from_cwd

    return None if overrides is None else paths_from_cwd(overrides, Path.cwd())


Overrides = Annotated[list[str] | None, typer.Argument(metavar="KEY=VALUE", help=OVERRIDES_HELP, show_default=False,
                                                       callback=_cwd_overrides)]
Device = Annotated[str, typer.Option("--device", help=DEVICE_HELP, callback=_device_option,
                                     autocompletion=offering(*DEVICES))]
Force = Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of tables.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
RunDevice = Annotated[str | None, typer.Option("--device", help=DEVICE_HELP, show_default="the config's device",
                                               callback=_device_option,
                                               autocompletion=offering(*DEVICES))]
CommandDevice = Annotated[str | None, typer.Option("--device", help=DEVICE_HELP, show_default="cpu, or a device= "
                                                   "override (never the config's or checkpoint's device)",
                                                   callback=_device_option, autocompletion=offering(*DEVICES))]
RUNS_DIR_HELP = ("Where to look for a RUN or CHECKPOINT given by name when no such path exists here: DIR/NAME, or "
                 "the one run there whose name starts with NAME.")
RunsDir = Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)]
ON_CPU = "device=cpu"
"""The device of eval and gradcheck unless their command line names one (an override after it, or --device)."""


def located(path: Path, runs_dir: Path) -> Path:
    """A RUN or CHECKPOINT argument as a path: as given where it exists, else found under --runs-dir (see
    runs.find_run); a config (.yaml) is a config wherever it is, taken as given."""
    from nnctl.runs import find_run

    return path if path.suffix in YAML else find_run(path, runs_dir)


def device_overrides(device: str | None) -> list[str]:
    """The override --device stands for; none without it, so the config's device (or an override's) holds."""
    return [f"device={device}"] if device else []


def fresh_output(path: Path, inputs: Iterable[Path], force: bool) -> None:
    """Refuses to write over one of the command's own inputs, over anything but a regular file, into a folder that
    does not exist, or over an existing file without --force."""
    if path.exists() and any(same_file(path, each) for each in inputs):
        raise NnctlError(f"{path}: this is one of the command's inputs; write the output to another file")
    check_target(path)
    check_folder(path)
    if path.exists() and not force:
        raise NnctlError(f"{path} exists; give --force to replace it, or another -o")


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def at_least(option: str, value: float, low: float, above: bool = False) -> None:
    """ConfigError unless `value` is a finite number >= low (or > low with `above`)."""
    if not math.isfinite(value) or value < low or (above and value == low):
        raise ConfigError(f"{option} must be a finite number {'above' if above else 'of at least'} {low:g}, "
                          f"got {value}")


def at_most(option: str, value: float, high: float) -> None:
    """ConfigError when `value` is above `high`."""
    if value > high:
        raise ConfigError(f"{option} may be at most {high:,}, got {value:,}")
