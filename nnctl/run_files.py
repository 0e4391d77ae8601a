"""What a run writes into its directory as it trains: metric files, checkpoints (and the monitor that picks
best.pkl), train.log with its console lines."""

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from tqdm import tqdm

from nnctl import checkpoint


class MetricFiles:
    """metrics.csv and metrics.jsonl: one row per epoch, and per N steps when asked."""

    def __init__(self, run_dir: Path, columns: list[str]):
        self.csv_path, self.jsonl_path = run_dir / "metrics.csv", run_dir / "metrics.jsonl"
        self.columns = columns

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Both files from scratch, holding exactly `history` (used when a run starts or resumes)."""
        with open(self.csv_path, "w", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writeheader()
        self.jsonl_path.write_text("")
        for row in history:
            self.append(row)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")


class Checkpoints:
    """checkpoints/last.pkl after every epoch (and on a clean stop), best.pkl when the monitor improves, and
    epoch-NNNN.pkl every `train.keep_every` epochs."""

    def __init__(self, run_dir: Path):
        self.folder = run_dir / "checkpoints"
        self.last, self.best = self.folder / "last.pkl", self.folder / "best.pkl"

    def save_last(self, payload: checkpoint.Checkpoint) -> None:
        checkpoint.save(self.last, payload)

    def save_best(self, payload: checkpoint.Checkpoint) -> None:
        checkpoint.save(self.best, payload)

    def save_numbered(self, payload: checkpoint.Checkpoint, epoch: int) -> None:
        """checkpoints/epoch-0005.pkl, kept beside last and best (train.keep_every)."""
        checkpoint.save(self.folder / f"epoch-{epoch:04d}.pkl", payload)


class Monitor:
    """Tracks the best value of one metric and how many evaluations have passed without improvement."""

    def __init__(self, name: str, mode: str, min_delta: float = 0.0, best: float | None = None, wait: int = 0):
        self.name, self.mode, self.min_delta = name, mode, min_delta
        self.best, self.wait = best, wait

    def update(self, value: float) -> bool:
        """Records a new value; True when it improves on the best by more than min_delta."""
        if self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                 else value > self.best + self.min_delta):
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}


class Progress:
    """A progress bar per epoch (only on a terminal) and one line per epoch, also written to train.log."""

    def __init__(self, log_path: Path | None, quiet: bool = False):
        self.console = Console(highlight=False, markup=False, emoji=False)
        self.log_path, self.quiet = log_path, quiet

    def bar(self, total: int, initial: int, epoch: int, epochs: int) -> tqdm:
        return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                    disable=True if self.quiet else None, dynamic_ncols=True)

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, soft_wrap=True)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(text + "\n")

    def epoch(self, row: dict[str, Any], epochs: int) -> None:
        shown = [f"{k} {format_value(v)}" for k, v in row.items() if k not in ("kind", "epoch", "step")]
        self.say(f"epoch {row['epoch']}/{epochs}  " + "  ".join(shown))


def format_value(value: Any) -> str:
    """A metric for one line of output: 4 significant digits, seconds with one decimal."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
