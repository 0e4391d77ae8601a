"""Reading run directories back: their config, summary and metric rows, for listing, comparing and plotting."""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from nnctl.errors import NnctlError, read_bytes

_STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")


@dataclass
class Run:
    """One run directory as written by the runner."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def started(self) -> datetime:
        """The time in the directory's name, else when its config was written."""
        match = _STAMP.search(self.path.name)
        if match:
            return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
        return datetime.fromtimestamp((self.path / "config.yaml").stat().st_mtime)

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")

    def epochs(self) -> list[dict[str, Any]]:
        """The per-epoch metric rows."""
        return [row for row in self.history if row["kind"] == "epoch"]

    def steps(self) -> list[dict[str, Any]]:
        """The per-step rows (written with train.log_every_steps)."""
        return [row for row in self.history if row["kind"] == "step"]

    def final_metrics(self) -> dict[str, float]:
        """The last epoch's metrics and the test metrics, by name."""
        final = {k: v for k, v in (self.summary.get("final") or {}).items()
                 if k not in ("kind", "epoch", "step", "lr", "time_s")}
        return {**final, **(self.summary.get("test") or {})}

    def best(self) -> str:
        """'val_loss 0.0712' or '' before the first evaluation."""
        best = self.summary.get("best") or {}
        return "" if best.get("value") is None else f"{best['monitor']} {best['value']:.4g}"

    @property
    def checkpoint(self) -> Path:
        """best.pkl when there is one, else last.pkl."""
        best = self.path / "checkpoints" / "best.pkl"
        return best if best.is_file() else self.path / "checkpoints" / "last.pkl"


def is_run(path: Path) -> bool:
    return (path / "summary.json").is_file() and (path / "config.yaml").is_file()


def load_run(path: str | Path) -> Run:
    """The run in directory `path` (a run's checkpoint path names its run too)."""
    path = Path(path)
    if path.suffix == ".pkl" and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not is_run(path):
        raise NnctlError(f"{path}: not a run directory (expected config.yaml and summary.json in it, as "
                         "nnctl train writes under runs/)")
    config = yaml.safe_load(read_bytes(path / "config.yaml", NnctlError, "run config")) or {}
    try:
        summary = json.loads(read_bytes(path / "summary.json", NnctlError, "run summary"))
        lines = (path / "metrics.jsonl").read_text().splitlines() if (path / "metrics.jsonl").is_file() else []
        history = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise NnctlError(f"{path}: a damaged summary.json or metrics.jsonl: {exc}") from None
    return Run(path, config, summary, history)


def find_runs(root: str | Path) -> list[Run]:
    """Every run under `root` (itself, or any depth below, such as a sweep's members), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise NnctlError(f"{root}: no such directory")
    if is_run(root):
        return [load_run(root)]
    runs = [load_run(summary.parent) for summary in root.rglob("summary.json") if is_run(summary.parent)]
    return sorted(runs, key=lambda run: (run.started, str(run.path)))


def expand(paths: list[Path]) -> list[Run]:
    """Runs named by run directories, checkpoints or folders of runs (a sweep), in the order given."""
    runs = []
    for path in paths:
        found = [load_run(path)] if path.suffix == ".pkl" else find_runs(path)
        if not found:
            raise NnctlError(f"{path}: holds no runs")
        runs += found
    return runs


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.1}} -> {'optimizer.lr': 0.1}; list items are numbered."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_diff(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every dotted config key that differs; a missing key is None."""
    fa, fb = flatten(a.config), flatten(b.config)
    return [(key, fa.get(key), fb.get(key)) for key in sorted(fa.keys() | fb.keys()) if fa.get(key) != fb.get(key)]
