"""The `nnctl` command line: parses arguments, calls the library, renders results.

Each command imports the modules it needs itself: `nnctl --help` or `nnctl runs list` need not load the layers,
the data sets and the kernels (about half of the start-up time)."""

# isort: off
# importing a module of commands registers them: this order is their order in `nnctl --help`
from nnctl.cli import train, models, runs, sweep  # noqa: F401
# isort: on
from nnctl.cli.entry import main
from nnctl.cli.group import app

__all__ = ["app", "main"]
