"""nnctl's consoles: text printed as it is, and a closed stdout (`nnctl train ... | head`) noticed, not fatal;
and why a command stopped early (its stdout closed, a SIGTERM, else a Ctrl-C)."""

import io
import math
import os
import re
import stat
import sys
import threading
from typing import Any

from rich.console import Console
from rich.text import Text

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


_CONTROL = re.compile(r"[\x00-\x06\x0e-\x1f\x7f-\x9f]")
"""The control characters rich passes through (it strips bell, backspace, \\v, \\f and \\r): ESC and CSI start a
terminal's escape sequences."""


class PlainConsole(Console):
    """A rich Console without markup, highlighting or emoji, so that paths and names print as they are
    ('runs/x [v2]' is no markup), but for control characters, which print as \\x1b-style escapes (a folder named
    with an escape sequence cannot drive the terminal); on a closed pipe it goes quiet and says so through
    `stdout_closed()` (rich's own exits at once, leaving a run half written), and the command decides whether to
    stop."""

    def __init__(self, **kwargs):
        super().__init__(highlight=False, markup=False, emoji=False, soft_wrap=True, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """As rich's, each control character of _CONTROL written as its \\x escape (every str printed, a table's
        cells and titles included, comes through here)."""
        return super().render_str(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text), **kwargs)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        if not self.stderr:
            _closed.set()
        devnull = os.open(os.devnull, os.O_WRONLY)  # as rich does: Python's own flush at exit fails no more
        os.dup2(devnull, (sys.stderr if self.stderr else sys.stdout).fileno())


class _WholeWrites(io.RawIOBase):
    """A file descriptor written to the last byte, or an OSError naming `name`: Python's text layer ignores a short
    write, such as a file's at a full disk, and drops the rest of what was printed without a word."""

    def __init__(self, fd: int, name: str):
        self.fd, self.name = fd, name
        self.failed = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, data) -> int:
        """All of `data`, or an OSError once; what is printed after that goes nowhere (the error has been said)."""
        view, done = memoryview(data).cast("B"), 0
        try:
            while done < len(view) and not self.failed:
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            self.failed = True
            raise OSError(exc.errno, exc.strerror, self.name) from None
        return len(view)


def prepare_stdout() -> None:
    """stdout as nnctl prints to it: characters its encoding lacks (a cp1252 console's, PYTHONIOENCODING=ascii) as
    \\x escapes, as Python's stderr prints them, instead of failing the command (sampled text, file names); and,
    where it is a regular file (`nnctl runs list --json > runs.json`), what cannot be written to it (a full disk) an
    OSError rather than output cut short and a success."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        regular = stat.S_ISREG(os.fstat(sys.stdout.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no stdout, or one that is no file (a test's capture)
        return
    if regular:
        sys.stdout.flush()
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_WholeWrites(sys.stdout.fileno(), "stdout")),
                                      encoding=sys.stdout.encoding, errors=sys.stdout.errors, line_buffering=True)


def format_value(value: Any, digits: int = 4) -> str:
    """A number for output: `digits` significant digits, and as many more as it takes for a value that is not whole
    to read so (an accuracy of 0.99996 is 0.99996, never a perfect 1); anything else as str() writes it."""
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    for places in range(digits, 18):
        text = f"{value:.{places}g}"
        if not float(text).is_integer() or float(text) == value or abs(value) >= 10 ** (digits - 1):
            return text
    return repr(value)


def shown_label(label: int | str) -> str:
    """A class label as tables, CSV files and plots show it: a number as it is; a token as it is, or quoted with
    escapes where it is or holds whitespace or a control character ('\\n', ' ')."""
    if isinstance(label, int) or label.isprintable() and not any(c.isspace() for c in label):
        return str(label)
    return repr(label)
