"""The errors a user can cause; the CLI turns each into one clear message and a non-zero exit."""

import warnings


class NnctlError(Exception):
    """A user-facing error: its message is shown as is, without a traceback."""

    exit_code = 1


class ConfigError(NnctlError):
    """A config that cannot be loaded, validated or built, or another mistake on the command line."""

    exit_code = 2


class KeyValueError(ConfigError):
    """A config value found wrong where the config's lines are not known (by the data, or by a constructor of a
    nested mapping); the code that holds the config names the file and line of `key` (see experiment.load_data)."""

    def __init__(self, key: tuple[str | int, ...], problem: str):
        super().__init__(f"{'.'.join(map(str, key))}: {problem}")
        self.key, self.problem = key, problem


class DataError(NnctlError):
    """A dataset that cannot be found, downloaded, verified or parsed."""


class CheckpointError(NnctlError):
    """A checkpoint that is missing, corrupt, unsafe or not nnctl's."""


class TrainingError(NnctlError):
    """Training that cannot go on, such as a loss that became NaN."""


def quiet_arithmetic(quiet: bool = True) -> None:
    """Silences NumPy's RuntimeWarnings (overflow, invalid values) raised in nnctl's own modules: a run that diverges
    ends with the NaN check's one message, not after stray warnings with source lines; `quiet` False shows them
    again (--debug)."""
    warnings.filterwarnings("ignore" if quiet else "default", category=RuntimeWarning, module=r"nnctl(\.|$)")
