"""Sweeps: a base config and a grid or list of overrides, each member a normal run in one sweep directory,
run in parallel worker processes; finished members are skipped and stopped ones resumed when run again."""

import copy
import itertools
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.config import Config, KeyPath, apply_override, check_top_level, dotted, key_path, load_config, parse_yaml
from nnctl.errors import ConfigError, NnctlError, read_bytes
from nnctl.runner import Runner
from nnctl.runs import Run, find_runs, load_run
from nnctl.schema import construct, describe_value

DONE = ("finished", "early_stopped")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


class SweepSpec:
    """The keys of a sweep file; its constructor is the file's schema."""

    def __init__(self, base: str | dict, name: str | None = None, overrides: dict | None = None,
                 grid: dict | None = None, members: list[dict] | None = None, metric: str = "loss",
                 samples: int | None = None, seed: int = 0):
        if samples is not None and samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        self.base, self.name, self.overrides = base, name, overrides or {}
        self.grid, self.members, self.metric = grid or {}, members or [{}], metric
        self.samples, self.seed = samples, seed


@dataclass
class Member:
    """One run of a sweep: its label (also its config name), its config, and what to do with it."""

    label: str
    config: Config
    values: dict[str, Any]
    """The grid values of this member, by grid key."""
    group: str
    """The member's name from `members`, or ''."""
    resume: Path | None = None
    """The last.pkl of a stopped earlier run of this member, set by Sweep.plan."""
    previous: Run | None = None
    """The newest earlier run of this member (the same resolved config) in the sweep directory."""


@dataclass
class Outcome:
    """How a member ended in this sweep: skipped, finished, early_stopped, stopped or failed."""

    member: Member
    status: str
    run: Run | None = None
    error: str | None = None


class Sweep:
    """A loaded sweep file: its members in order and the directory their runs go to."""

    def __init__(self, path: str | Path, runs_dir: Path):
        self.path = Path(path)
        text = read_bytes(self.path, ConfigError, "sweep file").decode("utf-8", errors="replace")
        data, origins = parse_yaml(text, str(self.path))
        self.file = Config(data if isinstance(data, dict) else {}, str(self.path), origins)
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: a sweep file must be a mapping with base and grid or members, "
                              f"got {describe_value(data)}")
        self.spec = construct(SweepSpec, data, self.file, (), "a sweep file", value_error_at=("samples",))
        self.name = self.spec.name or self.path.stem
        self.dir = Path(runs_dir) / self.name
        self.metric = self.spec.metric
        self.members = self._members()

    def _base(self) -> Config:
        base = self.spec.base
        if isinstance(base, str):
            return load_config(self.path.parent / base)
        origins = {key[1:]: line for key, line in self.file.origins.items() if key[:1] == ("base",)}
        config = Config(copy.deepcopy(base), str(self.path), origins, self.path.resolve().parent)
        config.data.setdefault("name", self.name)
        return config

    def _members(self) -> list[Member]:
        base = self._base()
        for key, values in self.spec.grid.items():
            if not isinstance(values, list) or not values:
                raise self.file.error(("grid", key), f"expected a non-empty list of values, got "
                                                     f"{describe_value(values)}")
        for i, member in enumerate(self.spec.members):
            if not isinstance(member, dict):
                raise self.file.error(("members", i), f"expected a mapping of overrides, got {describe_value(member)}")
        members = []
        for i, member in enumerate(self.spec.members):
            group = str(member.get("name", ""))
            for combination in self._grid():
                values = dict(zip(self.spec.grid, combination, strict=True))
                config = copy.deepcopy(base)
                settings: list[tuple[KeyPath, str, Any]] = [(("overrides", k), k, v)
                                                            for k, v in self.spec.overrides.items()]
                settings += [(("members", i, k), k, v) for k, v in member.items() if k != "name"]
                settings += [(("grid", k), k, v) for k, v in values.items()]
                for where, key, value in settings:
                    self._override(config, where, key, value)
                label = "_".join(p for p in [group, *(_short(v, k) for k, v in values.items())] if p) or self.name
                config.data["name"] = label
                check_top_level(config)
                members.append(Member(label, config, values, group))
        labels = [m.label for m in members]
        for label in labels:
            if labels.count(label) > 1:
                raise self.file.error(("members",), f"two members are both labelled '{label}'; give each "
                                                    "member of `members` its own name")
        return members

    def _grid(self) -> list[tuple]:
        """Every combination of the grid's values, or `samples` of them drawn at random (a random search)."""
        combinations = list(itertools.product(*self.spec.grid.values()))
        if self.spec.samples is None or self.spec.samples >= len(combinations):
            return combinations
        rng = np.random.default_rng(self.spec.seed)
        return [combinations[i] for i in sorted(rng.choice(len(combinations), self.spec.samples, replace=False))]

    def _override(self, config: Config, where: KeyPath, key: str, value: Any) -> None:
        apply_override(config, key_path(str(key)), value, f"{self.file.where(where)} ({dotted(where)})")

    def plan(self) -> list[Member]:
        """The members still to run: finished ones are left out; stopped or crashed ones resume."""
        previous = find_runs(self.dir) if self.dir.is_dir() else []
        todo = []
        for member in self.members:
            same = [run for run in previous if run.config == member.config.data]
            member.previous = same[-1] if same else None
            if member.previous and member.previous.status in DONE:
                continue
            member.resume = None
            if member.previous and member.previous.status != "failed":
                last = member.previous.path / "checkpoints" / "last.pkl"
                member.resume = last if last.is_file() else None
            todo.append(member)
        return todo

    def run(self, todo: list[Member], jobs: int = 1, report: Callable[[Outcome], None] | None = None
            ) -> list[Outcome]:
        """Runs `todo` (from plan) in `jobs` worker processes; returns every member's outcome, in sweep order."""
        outcomes: dict[str, Outcome] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        if todo:
            with _blas_threads(max(1, (os.cpu_count() or 1) // jobs)), \
                    ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(run_member, member, self.dir): member for member in todo}
                for future in as_completed(futures):
                    status, error, run_dir = future.result()
                    member = futures[future]
                    run = load_run(run_dir) if run_dir else None
                    outcomes[member.label] = Outcome(member, status, run, error)
                    if report:
                        report(outcomes[member.label])
        return [outcomes.get(m.label) or Outcome(m, "skipped", m.previous) for m in self.members]


def run_member(member: Member, sweep_dir: Path) -> tuple[str, str | None, Path | None]:
    """Trains one member (in a worker process); its status, why it failed, and its run directory if made."""
    runner = None
    try:
        if member.resume is not None:
            runner = Runner.resume(member.resume, [], sweep_dir, quiet=True)
        else:
            runner = Runner.start(member.config, sweep_dir, quiet=True)
        return runner.fit()["status"], None, runner.run_dir
    except NnctlError as exc:
        return "failed", str(exc), runner.run_dir if runner else None
    except Exception as exc:  # one member's bug must not stop the others; it is reported with the rest
        return "failed", f"internal error: {type(exc).__name__}: {exc}", runner.run_dir if runner else None
    except KeyboardInterrupt:
        return "stopped", "interrupted", runner.run_dir if runner else None


def by_value(outcomes: list[Outcome], metric: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """For each numeric grid key: the final `metric` (validation if recorded) against the key's value,
    grouped by the member's other values."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for outcome in outcomes:
        run = outcome.run
        if run is None or not run.epochs():
            continue
        final = run.epochs()[-1]
        value = final.get(f"val_{metric}", final.get(metric))
        for key, x in outcome.member.values.items():
            if isinstance(x, int | float) and not isinstance(x, bool) and value is not None:
                others = [outcome.member.group] + [_short(v, k) for k, v in outcome.member.values.items() if k != key]
                curves.setdefault(key, {}).setdefault(" ".join(o for o in others if o), []).append((x, value))
    return {key: groups for key, groups in curves.items() if max(len(xy) for xy in groups.values()) > 1}


def _short(value: Any, key: str) -> str:
    """A grid value as part of a directory name: 'adam', '0.01'; a mapping's type or the key's last part."""
    if isinstance(value, dict):
        value = value.get("type", key.split(".")[-1])
    text = re.sub(r"[^A-Za-z0-9._-]", "", str(value))
    return text or key.split(".")[-1]


@contextmanager
def _blas_threads(count: int) -> Iterator[None]:
    """Worker processes started inside get `count` BLAS threads each, so parallel members do not oversubscribe."""
    saved = {name: os.environ.get(name) for name in THREAD_VARS}
    os.environ.update({name: str(count) for name in THREAD_VARS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

