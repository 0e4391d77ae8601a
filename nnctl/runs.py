"""Reading run directories back: their config, summary and metric rows, for listing, comparing and plotting."""

import copy
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nnctl.config import MAX_BYTES
from nnctl.console import format_value
from nnctl.course import flatten
from nnctl.errors import ConfigError, NnctlError
from nnctl.files import read_bytes, read_charged
from nnctl.limits import JSON_COST
from nnctl.schema import describe_value, is_instance, is_number
from nnctl.yaml_loader import MAX_DEPTH, parse_yaml

_STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
ROW_KINDS = ("epoch", "step", "eval")
"""The kinds of metric rows a run records: one per epoch, per logged step (train.log_every_steps) and per
evaluation every N steps (train.eval_every_steps)."""
DONE = ("finished", "early_stopped")
"""The statuses of a run that has ended, its test metrics written; any other run can be resumed."""


def row_x(row: dict[str, Any]) -> int:
    """Where a metric row lies on its curve: an epoch row at its epoch, the others at their optimizer step."""
    return row["epoch"] if row["kind"] == "epoch" else row["step"]


def row_values(row: dict[str, Any]) -> dict[str, float]:
    """A metric row's numbers by name, without its kind, epoch and step."""
    return {key: value for key, value in row.items()
            if key not in ("kind", "epoch", "step") and isinstance(value, int | float)}


@dataclass
class Run:
    """One run directory as written by the runner."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    damage: list[str] = field(default_factory=list)
    """What could not be read (a broken file, a cut-off line); the rest of the run is shown without it."""

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

    def record(self, history: bool = False) -> dict[str, Any]:
        """The run as plain data for --json: where it is, when it started, its status, its summary.json (and
        config and metric rows with `history`), and what could not be read."""
        record: dict[str, Any] = {"path": str(self.path), "started": self.started.isoformat(),
                                  "status": self.status, "summary": self.summary}
        if history:
            record.update(config=self.config, history=self.history)
        return {**record, "damage": self.damage}

    @property
    def status(self) -> str:
        """As the summary says, except that a 'running' run whose process is gone is 'crashed'."""
        status = self.summary.get("status", "unknown")
        return "crashed" if status == "running" and not self._alive() else status

    def _alive(self) -> bool:
        """Whether the process that trains this run still runs: by its pid on this host, else by its heartbeat."""
        pid, host, beat = (self.summary.get(k) for k in ("pid", "host", "heartbeat"))
        if not isinstance(pid, int) or not isinstance(beat, int | float):
            return True  # written by an nnctl that did not record them: cannot tell
        if host == socket.gethostname():
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, OverflowError):  # OverflowError: a pid no process can have
                return False
            except OSError:
                return True
            return True
        longest = max((row.get("time_s", 0) for row in self.epochs() if isinstance(row.get("time_s"), int | float)),
                      default=0)
        return time.time() - beat < max(3600, 3 * longest)

    def epochs(self) -> list[dict[str, Any]]:
        """The per-epoch metric rows."""
        return [row for row in self.history if row["kind"] == "epoch"]

    def evals(self) -> list[dict[str, Any]]:
        """The rows of the evaluations every N steps (train.eval_every_steps)."""
        return [row for row in self.history if row["kind"] == "eval"]

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
        value = best.get("value")
        return f"{best.get('monitor')} {format_value(value)}" if is_real(value) else ""

    @property
    def checkpoint(self) -> Path:
        """best.pkl when there is one, else last.pkl."""
        return checkpoint_of(self.path)


def is_run(path: Path) -> bool:
    """Whether `path` holds a run: its summary.json and config.yaml, readable or damaged (shown in part)."""
    return (path / "summary.json").exists() and (path / "config.yaml").exists()


def holds_checkpoint(path: Path) -> bool:
    """Whether `path` is a folder with a run's checkpoints/best.pkl or last.pkl, whatever else it lost: a
    checkpoint is self-contained."""
    return any((path / "checkpoints" / name).is_file() for name in ("best.pkl", "last.pkl"))


def lost_summary(path: Path) -> bool:
    """Whether `path` holds a run whose summary.json is missing: its config.yaml, and its metrics or checkpoints."""
    return (not (path / "summary.json").exists() and (path / "config.yaml").exists()
            and ((path / "metrics.jsonl").exists() or (path / "checkpoints").is_dir()))


def holds_run(path: Path) -> bool:
    """Whether `path` is a run's folder, whole or in part: one that load_run or checkpoint_of reads as a run."""
    return is_run(path) or lost_summary(path) or holds_checkpoint(path)


def checkpoint_of(path: Path, last: bool = False) -> Path:
    """`path` itself, or for a run directory (or a folder holding a run's checkpoints) its best.pkl (else
    last.pkl), or its last.pkl when `last`."""
    if not (is_run(path) or holds_checkpoint(path)):
        return path
    best = path / "checkpoints" / "best.pkl"
    return best if best.is_file() and not last else path / "checkpoints" / "last.pkl"


SHOWN_CANDIDATES = 10
"""The most folders an ambiguous run name lists."""


def find_run(path: Path, runs_dir: Path) -> Path:
    """The path a RUN argument names: `path` itself where it exists (or is absolute), else `runs_dir`/`path`, else
    the one run beside that whose name starts with its last part (`mnist_mlp-2026` for `runs/mnist_mlp-2026...`;
    other folders there, such as MLflow's mlruns, are no candidates). NnctlError naming both places where there is
    none; ConfigError listing the candidates where there are more."""
    if path.is_absolute() or os.path.lexists(path):
        return path
    under = runs_dir / path
    if os.path.lexists(under):
        return under
    folder = under.parent
    found = sorted((p for p in folder.iterdir() if p.name.startswith(under.name) and holds_run(p)),
                   key=lambda p: p.name, reverse=True) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(p.name for p in found[:SHOWN_CANDIDATES])
        more = f" and {len(found) - SHOWN_CANDIDATES} more" if len(found) > SHOWN_CANDIDATES else ""
        raise ConfigError(f"{path}: {len(found)} runs in {folder} start with '{under.name}' ({names}{more}); give "
                          "more of the name")
    raise NnctlError(f"{path}: not found: neither {path} nor {under} exists"
                     + (f", and no run in {folder} starts with '{under.name}'" if folder.is_dir() else ""))


def load_run(path: str | Path) -> Run:
    """The run in directory `path` (a run's checkpoint path names its run too)."""
    path = Path(path)
    if path.suffix == ".pkl" and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not (is_run(path) or lost_summary(path)):
        raise NnctlError(f"{path}: not a run directory (expected config.yaml and summary.json in it, as "
                         "nnctl train writes under runs/)")
    damage: list[str] = []
    config = read_config(path, damage)
    summary = read_summary(path, damage)
    for key, kind in SUMMARY_KINDS.items():
        if summary.get(key) is not None and not _of_kind(summary[key], kind):
            damage.append(f"summary.json: its '{key}' is {describe_value(summary.pop(key))}")
    for key in ("final", "test"):
        if isinstance(summary.get(key), dict):
            summary[key] = _numeric_entries(summary[key], f"summary.json: its '{key}'", damage)
    history = _history(path / "metrics.jsonl", damage) if (path / "metrics.jsonl").exists() else []
    return Run(path, config, summary, history, damage)


SUMMARY_KINDS: dict[str, type | tuple[type, ...]] = {
    "status": str, "epochs": int, "steps": int, "wall_time_s": (int, float), "final": dict, "best": dict,
    "test": dict, "error": str, "seed": int, "num_params": int, "pid": int, "host": str, "heartbeat": (int, float)}
"""What summary.json holds; a value of another kind is left out and named as damage."""


def _of_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Whether a summary value is of `kind`: a bool is no int, and a number must fit a float."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return is_instance(value, kinds) and (float not in kinds or is_real(value))


def read_config(run_dir: Path, damage: list[str]) -> dict[str, Any]:
    """A run folder's config.yaml, or {} with what is wrong with it added to `damage`; at most as large as a config
    file may be (parsing YAML takes 500 bytes of memory and 15 µs per byte of it)."""
    path = run_dir / "config.yaml"
    return _part(path, damage, lambda text: parse_yaml(text, str(path))[0],
                 lambda path: read_bytes(path, NnctlError, "run file", MAX_BYTES))


def read_summary(run_dir: Path, damage: list[str]) -> dict[str, Any]:
    """A run folder's summary.json, or {} with what is wrong with it (or that it is missing) added to `damage`."""
    if not (run_dir / "summary.json").exists():
        damage.append("summary.json: missing (the run's status and test metrics are unknown)")
        return {}
    return _part(run_dir / "summary.json", damage, shallow_json, lambda path: json_bytes(path, "run file"))


def shallow_json(text: str) -> Any:
    """JSON text as Python values, ValueError where it nests deeper than MAX_DEPTH levels: json.loads takes nearly
    1,000, which whatever walks the values afterwards (`runs list --json` printing them) cannot follow."""
    value = json.loads(text)
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        inner = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack += [(child, depth + 1) for child in inner if isinstance(child, dict | list)]
    return value


def json_bytes(path: Path, noun: str) -> bytes:
    """The bytes of a run's JSON file (summary.json, metrics.jsonl); NnctlError when it cannot be read, or when
    parsing it could pass the memory limit."""
    return read_charged(path, NnctlError, noun, JSON_COST, "JSON as Python values")


def _part(path: Path, damage: list[str], parse: Callable[[str], Any], read: Callable[[Path], bytes]) -> dict[str, Any]:
    """A run file read by `read` and parsed into a mapping, or {} with what is wrong with it added to `damage`."""
    try:
        value = parse(read(path).decode("utf-8"))
    except (NnctlError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        damage.append(f"{path.name}: {exc}")
        return {}
    if not isinstance(value, dict):
        damage.append(f"{path.name}: holds {describe_value(value)}, not a mapping")
        return {}
    return value


def _history(path: Path, damage: list[str]) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl that can be read, each with its kind and the values that are numbers; a cut-off
    last line (what a kill leaves), bad rows and values that are not numbers are named in `damage`."""
    try:
        text = json_bytes(path, "metrics file").decode("utf-8", errors="replace")
    except NnctlError as exc:
        damage.append(str(exc))
        return []
    rows, problems = [], _Problems()
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            cut = number == len(lines) and not text.endswith("\n")
            problems.add("its last line is cut off (the run was stopped while writing it)" if cut
                         else "not a JSON row", number)
            continue
        if not isinstance(row, dict) or row.get("kind") not in ROW_KINDS:
            problems.add("a row without kind 'epoch', 'step' or 'eval'", number)
            continue
        kept, bad = _real_entries(row)
        for key in bad:
            problems.add(f"{_key_text(key)} is {_kind_of(row[key])}; left out", number)
        rows.append(kept)
    damage += problems.messages()
    return rows


def is_real(value: Any) -> bool:
    """An int or float (not a bool) that a float can hold: NaN and infinities as written, no int past ±1.8e308."""
    if not is_number(value):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _real_entries(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The entries of a mapping of metrics that are numbers (and its 'kind'), and the keys of the others."""
    kept: dict[str, Any] = {}
    bad = []
    for key, value in values.items():
        if key == "kind" or is_real(value):
            kept[key] = value
        else:
            bad.append(key)
    return kept, bad


def _numeric_entries(values: dict[str, Any], where: str, damage: list[str]) -> dict[str, Any]:
    """The entries of a mapping of metrics that are numbers (and its 'kind'); the others are named in `damage`."""
    kept, bad = _real_entries(values)
    for key in bad[:5]:
        damage.append(f"{where}: {_key_text(key)} is {_kind_of(values[key])}; left out")
    if len(bad) > 5:
        damage.append(f"{where}: {len(bad) - 5} more values that are not numbers; left out")
    return kept


def _kind_of(value: Any) -> str:
    """Why a JSON value is no metric, for a message: 'a list, not a number', 'an integer past float's range'."""
    if is_instance(value, int):
        return "an integer past float's range (±1.8e308)"
    kinds = {bool: "a boolean", dict: "a mapping", list: "a list", str: "a string", type(None): "null"}
    return f"{kinds.get(type(value), type(value).__name__)}, not a number"


def _key_text(key: str) -> str:
    """A metric's name for a message, quoted, a long one cut short."""
    return repr(key) if len(key) <= 40 else repr(key[:37]) + "..."


class _Problems:
    """What is wrong with the rows of metrics.jsonl: each problem once, with its first line and how often."""

    LIMIT = 5
    """The most problems named; the rest are counted."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, int]] = {}

    def add(self, problem: str, line: int) -> None:
        first, count = self.seen.get(problem, (line, 0))
        self.seen[problem] = (first, count + 1)

    def messages(self) -> list[str]:
        """'metrics.jsonl:3: not a JSON row (and 2 more rows like it)', for the first LIMIT problems."""
        shown = [f"metrics.jsonl:{first}: {problem}" + (f" (and {count - 1} more rows like it)" if count > 1 else "")
                 for problem, (first, count) in list(self.seen.items())[:self.LIMIT]]
        rest = len(self.seen) - self.LIMIT
        return shown + ([f"metrics.jsonl: {rest} more problems of other kinds or keys"] if rest > 0 else [])


TRACKING_STORES = {"mlartifacts", "mlruns"}
"""MLflow's local stores beside the runs: they hold copies of each tracked run's files, not runs."""


def find_runs(root: str | Path) -> list[Run]:
    """Every run under `root` (itself, or any depth below, such as a sweep's members), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise NnctlError(f"{root}: a file, not a folder of runs" if root.exists() else
                         f"{root}: no such directory (no runs yet? `nnctl train CONFIG` writes them to runs/)")
    if is_run(root) or lost_summary(root):
        return [load_run(root)]
    runs = [load_run(config.parent) for config in root.rglob("config.yaml")
            if (is_run(config.parent) or lost_summary(config.parent))
            and not TRACKING_STORES & set(config.relative_to(root).parts)]
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


def config_diff(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every dotted config key that differs, defaults written out (a key given
    at its default is no difference); a missing key is None."""
    fa, fb = flatten(with_defaults(a.config)), flatten(with_defaults(b.config))
    return [(key, fa.get(key), fb.get(key)) for key in sorted(fa.keys() | fb.keys()) if fa.get(key) != fb.get(key)]


def diff_record(a: Run, b: Run) -> dict[str, Any]:
    """Two runs compared, as plain data for --json and the tables of `runs diff`: their paths, each config key that
    differs (`config_diff`) and each result (status, epochs, the final and test metrics, wall time), all as
    [value in a, value in b], None where one lacks it."""
    fa, fb = a.final_metrics(), b.final_metrics()
    results = {"status": [a.status, b.status], "epochs": [a.summary.get("epochs"), b.summary.get("epochs")],
               **{key: [fa.get(key), fb.get(key)] for key in [*fa, *(k for k in fb if k not in fa)]},
               "wall_time_s": [a.summary.get("wall_time_s", 0), b.summary.get("wall_time_s", 0)]}
    return {"runs": [str(a.path), str(b.path)], "config": {key: [x, y] for key, x, y in config_diff(a, b)},
            "results": results}


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config with every default written out, as `nnctl config` prints it; as saved where it cannot be (a
    damaged or older config)."""
    from nnctl.config import from_dict
    from nnctl.sections import resolved  # builds the registries: only when two runs are compared

    try:
        return resolved(from_dict(copy.deepcopy(config)))
    except (NnctlError, ValueError, TypeError):
        return config
