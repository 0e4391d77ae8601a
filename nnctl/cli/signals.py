"""Ctrl-C and SIGTERM outside a training, and the exit status of a command stopped before its end."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from nnctl.cli.printing import err
from nnctl.console import note_terminated, stdout_closed, terminated

CLOSED = 141
"""The exit status of a command stopped because its stdout was closed: a shell's for death by SIGPIPE."""
TERMINATED = 143
"""The exit status of a command a SIGTERM stopped: a shell's for death by it."""


def stopped_status() -> int:
    """The exit status of a command stopped before its end: 141 where stdout's closing stopped it, 143 where a
    SIGTERM did, 130 (Ctrl-C)."""
    return CLOSED if stdout_closed() else TERMINATED if terminated() else 130


def interrupted(signum: int, frame: Any) -> None:
    """Ctrl-C or SIGTERM outside a training (which says what it keeps): one line, then exit 130 or 143; a sweep
    stops its members after their step."""
    global announced
    if signum == signal.SIGTERM:
        note_terminated()
    if not announced:
        err.print("terminated" if signum == signal.SIGTERM else "interrupted")
        threading.Thread(target=_again, args=(signum,), name="nnctl-interrupt", daemon=True).start()
    announced = True
    raise KeyboardInterrupt


announced = False
"""Whether `interrupted` has said why the command stops."""
AGAIN_AFTER = 1.0
"""Seconds after which a command that a signal did not stop gets it again."""


def _again(signum: int) -> None:
    """Sends the signal again while the command runs on under `interrupted`: its KeyboardInterrupt can be lost, raised
    where Python drops it (a weakref callback of the import machinery, as commands import their libraries) or
    where a library swallows it."""
    while True:
        time.sleep(AGAIN_AFTER)
        if signal.getsignal(signum) is not interrupted:  # leaving, or a training or sweep handles it now
            return
        os.kill(os.getpid(), signum)


def dropped(unraisable: sys.UnraisableHookArgs) -> None:
    """Says nothing of a KeyboardInterrupt that Python dropped (_again sends the signal again); anything else as
    Python says it."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
