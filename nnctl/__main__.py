"""The `nnctl` command (and `python -m nnctl`): a Ctrl-C while nnctl's libraries load ends as one later does, and
one while Python shuts down after the command ends it there."""

import os
import signal
import sys


def main() -> None:
    try:
        _main()
    finally:
        # A Ctrl-C that interrupted an exec() of a string (dataclasses build their methods so, at import) leaves
        # Python's flag of an unhandled Ctrl-C set even where nnctl handled it, and `python -m nnctl` would then end
        # killed by SIGINT instead of with its exit status; an exec() of a string clears the flag.
        exec("")
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, _interrupted_while_leaving)


def _interrupted_while_leaving(signum: int, frame: object) -> None:
    """Ctrl-C after the command's end, while Python joins threads and shuts down: exit 130 there, where a
    KeyboardInterrupt would print as an ignored exception of the threading module."""
    os._exit(130)


def _main() -> None:
    loading = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not where the shell ignores it
    if loading:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
        sys.unraisablehook = _unraisable_while_loading
    try:
        from nnctl.cli import main as run
        if _interrupted:  # its KeyboardInterrupt was raised where Python drops it (see _interrupted_while_loading)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    if loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = sys.__unraisablehook__
    try:
        run()
    except KeyboardInterrupt:  # one between the handlers, before cli's main could catch it (or one it said)
        if not getattr(sys.modules.get("nnctl.cli.signals"), "announced", False):
            sys.stderr.write("interrupted\n")
        sys.exit(130)


_interrupted = False


def _interrupted_while_loading(signum: int, frame: object) -> None:
    """Ctrl-C while the libraries load: a KeyboardInterrupt, remembered too, since one raised inside a callback of
    the import machinery (a module lock's weakref callback) is dropped, and the import goes on."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _unraisable_while_loading(unraisable: "sys.UnraisableHookArgs") -> None:
    """Says nothing of a dropped KeyboardInterrupt (main says 'interrupted'); anything else as Python says it."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


if __name__ == "__main__":  # the guard keeps a sweep's worker processes, which import this module, from running it
    main()
