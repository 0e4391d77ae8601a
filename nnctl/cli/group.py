"""The nnctl command group: the Typer app, the options before a command, and the help every command writes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from nnctl import __version__, threads
from nnctl.cli.printing import err, out
from nnctl.errors import ConfigError, quiet_arithmetic


class _Nnctl(TyperGroup):
    """The nnctl command. Its --debug every command takes too (`nnctl train c.yaml --debug` as well as `nnctl --debug
    train c.yaml`); where it runs under a name of more words than one (`python -m nnctl`), its --install-completion
    and --show-completion refuse: a shell completes a command by its first word (python)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _add_option(next(param for param in self.params if param.name == "debug"), self.commands.values())

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and not ctx.resilient_parsing:  # `nnctl` alone: its help, on stderr as a command-line mistake's
            err.print(ctx.get_help())
            raise typer.Exit(2)
        if " " in (ctx.info_name or ""):
            for param in self.params:
                if param.name in ("install_completion", "show_completion"):
                    param.callback = _refuse_completion
        return super().parse_args(ctx, args)


def _add_option(option: Any, commands: Iterable[Any]) -> None:
    """Gives `option` (one that passes no value to the function) to `commands` and to their sub-commands."""
    for command in commands:
        command.params.append(option)
        _add_option(option, getattr(command, "commands", {}).values())


def _refuse_completion(ctx: Any, param: Any, value: Any) -> Any:
    """A completion option's callback under `python -m nnctl`: a ConfigError pointing at the nnctl command."""
    if value and not ctx.resilient_parsing:
        option = param.opts[0]
        raise ConfigError(f"{option}: tab completion completes the nnctl command, not python -m nnctl (a shell "
                          f"completes that as python); run: nnctl {option}")
    return value


class Command(TyperCommand):
    """A command whose help reads as click's: `CHECKPOINT INPUT...` in its usage line (not typer's `{CHECKPOINT}`),
    arguments listed by name and options by a word for their value (not `<list[Path]>`), and a default described in
    words as `[default: the config's device]` (not click's `(the config's device)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument | TyperOption) and isinstance(param.show_default, str):
                param.help = f"{param.help}  [default: {param.show_default}]"
                param.show_default = False
            if isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
                param.metavar = max(param.opts, key=len).lstrip("-").replace("-", "_").upper()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        arguments = [param for param in self.get_params(ctx) if param.param_type_name == "argument"]
        return [*filter(None, [self.options_metavar]), *(_argument_usage(param) for param in arguments)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and param.param_type_name in sections:
                name = _argument_usage(param, brackets=False) if param.param_type_name == "argument" else record[0]
                sections[param.param_type_name].append((name, record[1]))
        for title, records in zip(("Arguments", "Options"), sections.values(), strict=True):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def _argument_usage(param: Any, brackets: bool = True) -> str:
    """An argument as a usage line names it: 'CHECKPOINT', 'INPUT...', '[CONFIG]' where it may be left out (without
    `brackets`, as the list of arguments names it)."""
    name = param.metavar or param.name.upper()
    return (f"[{name}]" if brackets and not param.required else name) + ("..." if param.nargs != 1 else "")


app = typer.Typer(cls=_Nnctl, help="Train neural networks written in plain NumPy from YAML files.",
                  add_completion=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})  # inherited by every command

DEBUG = bool(os.environ.get("NNCTL_DEBUG"))
"""Whether an unexpected error shows its traceback and NumPy warns: NNCTL_DEBUG, or --debug (set by `_debug`)."""


def _version(value: bool) -> None:
    from nnctl import backend, kernels

    if value:
        out.print(f"nnctl {__version__}\n{kernels.describe()}\n{threads.describe()}")
        for key, text in backend.describe().items():
            out.print(f"{key}: {text}")
        raise typer.Exit()


def _debug(ctx: Any, param: Any, value: bool) -> None:
    """--debug, before the command or after it: the traceback of an unexpected error, and NumPy's warnings."""
    global DEBUG
    if value:
        DEBUG = True
        quiet_arithmetic(False)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", callback=_debug, expose_value=False, is_eager=True,
                                     help="Show the full traceback of unexpected errors, and NumPy's warnings "
                                     "(overflow, NaN) in nnctl's arithmetic."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """The options before the command: --debug (which every command takes after it too) and --version."""
