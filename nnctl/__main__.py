"""The `nnctl` command (and `python -m nnctl`): a Ctrl-C while nnctl's libraries load ends as one later does."""

import sys


def main() -> None:
    try:
        from nnctl.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    run()


if __name__ == "__main__":  # the guard keeps a sweep's worker processes, which import this module, from running it
    main()
