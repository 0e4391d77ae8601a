"""A run's directory, made under a name of its own, and what the run writes into it as it trains: metric files,
summary.json, checkpoints (and the monitor that picks best.pkl), train.log with its console lines."""

import csv
import fcntl
import io
import json
import os
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nnctl import checkpoint
from nnctl.console import PlainConsole, format_value, stdout_closed
from nnctl.errors import NnctlError, TrainingError
from nnctl.files import regular_file
from nnctl.metrics import improves
from nnctl.outputs import replacing
from nnctl.runs import json_bytes, read_summary

WRITTEN = ("config.yaml", "metrics.csv", "metrics.jsonl", "summary.json", "summary.json.tmp", "train.log")
"""The files a run writes in its folder, beside checkpoints/*.pkl; summary.json.tmp is where earlier versions of
nnctl wrote the summary before renaming it, which a resume may still find (and remove)."""


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """runs/<name>-<YYYYmmdd-HHMMSS>, with -2, -3, ... when that exists already."""
    stem = f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = Path(runs_dir) / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            if Path(runs_dir).is_dir():
                continue
            raise NnctlError(f"{runs_dir}: a file, not a folder for runs; give --runs-dir a folder") from None
        except NotADirectoryError:
            raise NnctlError(f"{runs_dir}: a file (or inside one), not a folder for runs; give --runs-dir a "
                             "folder") from None
        except OSError as exc:
            raise NnctlError(f"{runs_dir}: cannot make a run directory in it: {exc.strerror or exc}") from None
    raise NnctlError(f"{runs_dir}: cannot make a new run directory for {stem}")


def check_run_files(run_dir: Path) -> None:
    """NnctlError naming the first file a run writes that is there but not a regular file (a folder, a FIFO, a
    device), which a write would fail on or block at, or any link in the folder, which a write would go through
    into another file; before anything is written."""
    linked = _first_link(run_dir)
    if linked is not None:
        what = (f"a link to {os.path.realpath(linked)}" if linked.is_symlink() else
                f"a file with {linked.stat().st_nlink - 1} other hard link(s), elsewhere")
        raise NnctlError(f"{linked}: {what}, which resuming would write through; nothing was changed. Copy the run "
                         f"with the files its links name (cp -rL {shlex.quote(str(run_dir))} COPY) and resume the "
                         "copy")
    for path in [*(run_dir / name for name in WRITTEN), *sorted((run_dir / "checkpoints").glob("*.pkl"))]:
        if path.exists():
            try:
                regular_file(path, NnctlError, "run file")
            except NnctlError as exc:
                raise NnctlError(f"{exc}; the run writes it, so nothing was changed: move it away and run the command "
                                 "again") from None


def leftovers(run_dir: Path) -> list[Path]:
    """The temporary files a kill can leave in a run folder while its files were replaced whole."""
    return [path for path in [*(run_dir / "checkpoints").glob(".*.tmp"), run_dir / "summary.json.tmp",
                              *(tmp for name in WRITTEN for tmp in run_dir.glob(f".{name}.*.tmp"))]
            if path.exists() and not path.is_dir()]


def _first_link(folder: Path) -> Path | None:
    """The first symbolic link, or file with hard links elsewhere, under `folder` (links not followed), or None."""
    for root, dirs, files in os.walk(folder):
        for path in sorted(Path(root) / name for name in dirs + files):
            if path.is_symlink() or (path.is_file() and path.stat().st_nlink > 1):
                return path
    return None


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Replaces summary.json whole, without a sync at every epoch: after a machine's crash a damaged summary is
    named by `runs list` and written again by the resume."""
    with replacing(run_dir / "summary.json", "the run's summary", TrainingError, sync=False) as f:
        f.write((json.dumps(summary, indent=2) + "\n").encode())


class RunLock:
    """A run folder held by the process training in it (an advisory lock the system drops when the process ends,
    killed or not), so that a second process, such as a resume of the same run, cannot write into it too."""

    def __init__(self, run_dir: Path):
        self.fd: int | None = None
        try:
            fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # the run's own checks and writes say what is wrong with the folder
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_summary(run_dir, []).get("pid")
            raise NnctlError(f"{run_dir}: another nnctl process{f' (pid {pid})' if pid else ''} is training this run "
                             "now; nothing was changed. Wait for it to end, or stop it (Ctrl-C, or kill PID) and "
                             "resume the run then") from None
        except OSError:  # a file system without locks: the run goes on unguarded
            os.close(fd)
            return
        self.fd = fd

    def release(self) -> None:
        """Lets another process train in the folder."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:  # a run that failed before it trained
        self.release()


class MetricFiles:
    """metrics.csv and metrics.jsonl: one row per epoch, and per N steps when asked."""

    def __init__(self, run_dir: Path, columns: list[str]):
        self.csv_path, self.jsonl_path = run_dir / "metrics.csv", run_dir / "metrics.jsonl"
        self.columns = columns

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Both files from scratch, holding exactly `history` (used when a run starts or resumes); each replaced
        whole, so a full disk or a kill midway leaves the old one as it was."""
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
        for path, text in ((self.csv_path, table.getvalue()),
                           (self.jsonl_path, "".join(json.dumps(row) + "\n" for row in history))):
            with replacing(path, "the run's metrics") as f:
                f.write(text.encode())

    def recorded_epochs(self) -> tuple[list[dict[str, Any]], bool] | None:
        """The epoch rows metrics.jsonl holds up to its first unreadable line (a kill can cut the last one), and
        whether that was all of it; None when it is missing or cannot be read."""
        try:
            lines = json_bytes(self.jsonl_path, "metrics file").decode("utf-8").splitlines()
        except (NnctlError, UnicodeDecodeError):
            return None
        rows: list[dict[str, Any]] = []
        for line in filter(str.strip, lines):
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                return rows, False
            if isinstance(row, dict) and row.get("kind") == "epoch":
                rows.append(row)
        return rows, True

    def append(self, row: dict[str, Any]) -> None:
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")


class Checkpoints:
    """checkpoints/last.pkl after every epoch (and on a clean stop), best.pkl when the monitor improves,
    epoch-NNNN.pkl every `train.keep_every` epochs and step-NNNNNNNN.pkl every `train.keep_every_steps` steps."""

    def __init__(self, run_dir: Path):
        self.folder = run_dir / "checkpoints"
        self.last, self.best = self.folder / "last.pkl", self.folder / "best.pkl"

    def save_last(self, payload: checkpoint.Checkpoint) -> None:
        checkpoint.save(self.last, payload)

    def save_best(self, payload: checkpoint.Checkpoint) -> None:
        checkpoint.save(self.best, payload)

    def save_kept(self, payload: checkpoint.Checkpoint, stem: str) -> None:
        """checkpoints/<stem>.pkl (epoch-0005, step-00001200), kept beside last and best (train.keep_every,
        train.keep_every_steps)."""
        checkpoint.save(self.folder / f"{stem}.pkl", payload)


class Monitor:
    """Tracks the best value of one metric (best.pkl's, however little it improved) and how many evaluations have
    passed without improving by more than min_delta on `reference`, the value that last did (early stopping's)."""

    def __init__(self, name: str, mode: str, min_delta: float = 0.0):
        self.name, self.mode, self.min_delta = name, mode, min_delta
        self.best: float | None = None
        self.reference: float | None = None
        self.wait = 0

    def update(self, value: float) -> bool:
        """Records a new value; True when it is the best so far (by any margin): the epoch best.pkl keeps."""
        if improves(value, self.reference, self.mode, self.min_delta):
            self.reference, self.wait = value, 0
        else:
            self.wait += 1
        if not improves(value, self.best, self.mode, 0.0):
            return False
        self.best = value
        return True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "reference": self.reference}

    def load(self, state: dict[str, Any]) -> None:
        """Takes up what state() gave (a checkpoint's)."""
        self.best, self.wait, self.reference = state["best"], state["wait"], state["reference"]


class Progress:
    """A progress bar per epoch (only on a terminal) and one line per epoch, also written to train.log."""

    def __init__(self, log_path: Path, quiet: bool = False):
        self.console = PlainConsole()
        self.errors = PlainConsole(stderr=True)
        self.log_path, self.quiet = log_path, quiet

    def bar(self, total: int, initial: int, epoch: int, epochs: int) -> tqdm:
        return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                    disable=True if self.quiet else None, dynamic_ncols=True)

    def say(self, text: str) -> None:
        """TEXT on stdout (on stderr once stdout is closed), unless quiet, and in train.log."""
        if not self.quiet:
            (self.errors if stdout_closed() else self.console).print(text)
        self._log(text)

    def warn(self, text: str) -> None:
        """'warning: TEXT' on stderr, quiet or not, and in train.log."""
        self.errors.print(f"warning: {text}")
        self._log(f"warning: {text}")

    def _log(self, line: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def epoch(self, row: dict[str, Any], epochs: int) -> None:
        shown = [f"{k} {format_value(v)}" for k, v in row.items() if k not in ("kind", "epoch", "step")]
        self.say(f"epoch {row['epoch']}/{epochs}  " + "  ".join(shown))
