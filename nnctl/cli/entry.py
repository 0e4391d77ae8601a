"""The entry point: runs the command, and ends each error it raises as one message and an exit status."""

from __future__ import annotations

import signal
import sys
import traceback

import typer

from nnctl import threads
from nnctl.cli import group, signals
from nnctl.cli.printing import err
from nnctl.cli.signals import dropped, interrupted, stopped_status
from nnctl.console import prepare_stdout
from nnctl.errors import NnctlError, quiet_arithmetic
from nnctl.limits import memory_limit
from nnctl.outputs import REFUSALS, refusal


def main() -> None:
    """Entry point: user errors become one message and a non-zero exit, never a traceback."""
    try:  # from here on, every KeyboardInterrupt (`interrupted`'s, said) ends below
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the shell ignores it (`cmd &`)
            signal.signal(signal.SIGINT, interrupted)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, interrupted)
        sys.unraisablehook = dropped
        prepare_stdout()
        threads.apply_override()
        memory_limit()  # a malformed NNCTL_MAX_MEMORY stops here, before any work
        quiet_arithmetic(not group.DEBUG)
        status = _run_command()
    except typer.TyperException as exc:  # the base of the (vendored) click's UsageError and ClickException
        err.print(_click_error(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:  # click's way to stop a command (a prompt's Ctrl-D, a confirmation declined): not a bug
        err.print("aborted")
        sys.exit(1)
    except KeyboardInterrupt:  # one that came before typer ran the command
        if not signals.announced:  # Ctrl-C's default handler's, before `interrupted` was installed
            err.print("interrupted")
        sys.exit(stopped_status())
    except NnctlError as exc:
        err.print(f"error: {exc}")
        sys.exit(exc.exit_code)
    except MemoryError as exc:  # the machine's memory (or a cap on it) ran out below nnctl's own limit
        err.print(f"error: out of memory{f' ({exc})' if str(exc) else ''}; free some, or make the work smaller "
                  "(a smaller train.batch_size, model or input)")
        sys.exit(1)
    except RecursionError:
        err.print("error: an input nests too deeply to follow (a cycle, or thousands of levels)")
        sys.exit(1)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in REFUSALS:  # a full disk, a read-only folder: not a bug
            err.print(f"error: {refusal(exc)}")
            sys.exit(1)
        if group.DEBUG:
            traceback.print_exc()
        else:
            err.print(f"internal error: {type(exc).__name__}: {exc}\n"
                      "This is a bug in nnctl; run again with --debug for the traceback and report it.")
        sys.exit(3)
    if status:  # typer.Exit's code; typer ends a KeyboardInterrupt with 130, whichever signal raised it
        sys.exit(stopped_status() if status == 130 else status)


def _run_command() -> int | None:
    """Runs the command line, click's errors raised, not printed in its four lines; typer.Exit's status. An EOFError
    that typer turned into an Abort (as at a prompt, which nnctl has none of) is raised as itself: a bug."""
    try:
        return group.app(standalone_mode=False)
    except typer.Abort as exc:
        if isinstance(exc.__cause__, EOFError):
            raise exc.__cause__ from None
        raise


def _click_error(exc: typer.TyperException) -> str:
    """A mistake click found on the command line (a missing argument, an unknown option or command, a value of the
    wrong type) as two lines: the error, then the command's usage and where its help is."""
    ctx = getattr(exc, "ctx", None)  # a UsageError's; typer exports no such class to tell one by
    if ctx is None:
        return f"error: {exc.format_message()}"
    usage = " ".join(ctx.get_usage().split())  # click wraps a long one
    return f"error: {exc.format_message()}\n{usage}  ({ctx.command_path} -h for help)"
