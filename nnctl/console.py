"""nnctl's consoles: text printed as it is, and a closed stdout (`nnctl train ... | head`) noticed, not fatal;
and why a command stopped early (its stdout closed, a SIGTERM, else a Ctrl-C)."""

import os
import sys
import threading

from rich.console import Console

_closed = threading.Event()
_terminated = threading.Event()


def stdout_closed() -> bool:
    """Whether stdout's reader has gone (a closed pipe): what is printed to it since goes nowhere."""
    return _closed.is_set()


def note_terminated() -> None:
    """Records that a SIGTERM (a cluster scheduler's, `kill`'s) asked the command to stop."""
    _terminated.set()


def terminated() -> bool:
    """Whether a SIGTERM asked the command to stop."""
    return _terminated.is_set()


def why_stopped() -> str:
    """The start of a stop's message where stdout's closing or a SIGTERM stopped the work (else nothing: Ctrl-C
    did)."""
    if stdout_closed():
        return "stdout was closed (the pipe's reader ended): "
    return "terminated (SIGTERM): " if terminated() else ""


class PlainConsole(Console):
    """A rich Console without markup, highlighting or emoji, so that paths and names print as they are
    ('runs/x [v2]' is no markup); on a closed pipe it goes quiet and says so through `stdout_closed()` (rich's
    own exits at once, leaving a run half written), and the command decides whether to stop."""

    def __init__(self, **kwargs):
        super().__init__(highlight=False, markup=False, emoji=False, soft_wrap=True, **kwargs)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        if not self.stderr:
            _closed.set()
        devnull = os.open(os.devnull, os.O_WRONLY)  # as rich does: Python's own flush at exit fails no more
        os.dup2(devnull, (sys.stderr if self.stderr else sys.stdout).fileno())
