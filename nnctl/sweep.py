"""Sweeps: a base config and a grid or list of overrides, each member a normal run in one sweep directory,
run in parallel worker processes; finished members are skipped and stopped ones resumed when run again.
The sweep file's keys and parameter space are shared with the Ray engine (sweep_ray.py)."""

import copy
import fcntl
import itertools
import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import active_children, get_context
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from nnctl.config import (
    MAX_BYTES,
    MAX_NAME,
    Config,
    KeyPath,
    apply_override,
    check_top_level,
    dotted,
    is_path_name,
    key_path,
    load_config,
    parse_yaml,
    path_name_rule,
)
from nnctl.console import terminated
from nnctl.errors import ConfigError, NnctlError, quiet_arithmetic
from nnctl.experiment import check_reads_no_targets, trained_through
from nnctl.files import read_bytes, real_path
from nnctl.limits import capped_product
from nnctl.metrics import check_metric_name
from nnctl.outputs import missing_folders, remove_empty
from nnctl.runner import Runner
from nnctl.runs import DONE, Run, find_runs, load_run
from nnctl.schema import brief, construct, describe_value, finite, is_number
from nnctl.sections import resolved
from nnctl.threads import available as blas_threads_available
from nnctl.tracking import prepare_store
from nnctl.trained import UNTRUSTED

MAX_MEMBERS = 10_000
"""The most members one sweep may have (grid combinations, or samples, times the entries of `members`): a sweep
file that asks for more is refused, from the sizes alone, before any member is built."""
MAX_SEED = 2**31 - 1
"""The largest sweep seed: Optuna's TPE takes seeds below 2**32, and a re-run adds the members already drawn."""
LOCK = ".lock"
"""The file in a sweep's folder that the process running the sweep holds locked (fcntl.flock)."""
MAX_REDRAWS = 1000
"""How many draws in a row a random search makes that repeat earlier members before it stops short."""
INT64 = (-(2**63), 2**63 - 1)
"""The ends an integer range may have: what NumPy's generator draws."""
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


class SweepSpec:
    """The keys of a sweep file; its constructor is the file's schema."""

    def __init__(self, base: str | dict, name: str | None = None, overrides: dict | None = None,
                 grid: dict | None = None, members: list[dict] | None = None, metric: str = "loss",
                 samples: int | None = None, seed: int = 0, search: str | dict | None = None,
                 scheduler: str | dict | None = None, engine: Literal["local", "ray"] = "local",
                 address: str | None = None, cpus_per_member: int | None = None, gpus_per_member: float = 0,
                 max_concurrent: int | None = None, max_failures: int = 2):
        check_samples(samples)
        for key, value, least in (("cpus_per_member", cpus_per_member, 1), ("max_concurrent", max_concurrent, 1),
                                  ("gpus_per_member", gpus_per_member, 0), ("max_failures", max_failures, 0),
                                  ("seed", seed, 0)):
            if value is not None and value < least:
                raise ValueError(f"{key} must be at least {least}, got {value}")
        check_address(address)
        if seed > MAX_SEED:
            raise ValueError(f"seed must be at most {MAX_SEED:,} (2**31 - 1), got {brief(seed)}; pick a smaller one")
        self.base, self.name, self.overrides = base, name, overrides or {}
        self.grid, self.members, self.metric = grid or {}, members or [{}], metric
        self.samples, self.seed = samples, seed
        self.search, self.scheduler, self.engine, self.address = search, scheduler, engine, address
        self.cpus_per_member, self.gpus_per_member = cpus_per_member, gpus_per_member
        self.max_concurrent, self.max_failures = max_concurrent, max_failures


class Search:
    """How members are chosen from the grid: every combination, `samples` drawn at random, or `samples`
    proposed one after another by Optuna's TPE from the results so far (Ray engine)."""

    def __init__(self, type: Literal["grid", "random", "tpe"] = "grid", samples: int | None = None,
                 metric: str = "val_loss", mode: Literal["min", "max"] = "min"):
        check_samples(samples)
        self.type, self.samples, self.metric, self.mode = type, samples, metric, mode


def check_address(address: str | None) -> None:
    """ValueError unless `address` is auto, local or HOST:PORT; also for a Ray Client address (ray://): there Ray
    Tune runs the sweep's driver on the cluster, and the callbacks that write and report each member's outcome
    cannot reach this process."""
    if address is None or address in ("auto", "local"):
        return
    if address.lower().startswith("ray://"):
        raise ValueError(f"address {address} is a Ray Client address, which cannot run a sweep: Ray Tune would run "
                         "its driver on the cluster, out of nnctl's reach; give the head's HOST:PORT (6379 by "
                         "default: open that port to this machine, or start the sweep on one of the cluster's)")
    host, _, port = address.rpartition(":")
    if not host.strip("[]") or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"address {address!r}: expected auto or HOST:PORT, the port from 1 to 65535 (a Ray head's "
                         "GCS port: 6379 unless `ray start --head --port` said otherwise)")


def check_samples(samples: int | None) -> None:
    """ValueError when `samples` asks for no member, or for more than a sweep may have."""
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if samples is not None and samples > MAX_MEMBERS:
        raise ValueError(f"samples must be at most {MAX_MEMBERS:,} (the most members a sweep may have), got "
                         f"{brief(samples)}; draw fewer")


class Scheduler:
    """Early stopping across members (Ray engine): ASHA stops the members whose `metric` trails the others'
    at the same epoch, first after `grace_period` epochs, keeping 1/`reduction_factor` at each rung."""

    def __init__(self, type: Literal["asha"], metric: str = "val_loss", mode: Literal["min", "max"] = "min",
                 grace_period: int = 1, reduction_factor: float = 3):
        if grace_period < 1:
            raise ValueError(f"grace_period must be at least 1, got {grace_period}")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be above 1, got {reduction_factor}")
        self.type, self.metric, self.mode = type, metric, mode
        self.grace_period, self.reduction_factor = grace_period, reduction_factor


@dataclass(frozen=True)
class Range:
    """A range of values of one grid key: uniform or log-uniform floats, or integers with both ends included."""

    kind: str
    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float | int:
        if self.kind == "integer":
            return int(rng.integers(int(self.low), int(self.high), endpoint=True))
        if self.kind == "loguniform":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def ends(self) -> list[float | int]:
        """The lowest and highest value a draw may take."""
        cast = int if self.kind == "integer" else float
        return [cast(self.low), cast(self.high)]

    @property
    def size(self) -> int:
        """How many values an integer range holds."""
        return int(self.high) - int(self.low) + 1


RANGES = ("uniform", "loguniform", "integer")
Space = dict[str, list | Range]
"""The grid: each key's list of values (choices) or Range."""


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
        text = read_bytes(self.path, ConfigError, "sweep file", MAX_BYTES).decode("utf-8", errors="replace")
        data, origins = parse_yaml(text, str(self.path))
        self.file = Config(data if isinstance(data, dict) else {}, str(self.path), origins)
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: a sweep file must be a mapping with base and grid or members, "
                              f"got {describe_value(data)}")
        self.spec = construct(SweepSpec, data, self.file, (), "a sweep file")
        self.name = self.spec.name or self.path.stem
        if not is_path_name(self.name):
            where = self.file.where(("name",)) if self.spec.name else str(self.path)
            raise ConfigError(f"{where}: name: '{self.name}' cannot name the sweep's directory; "
                              f"{path_name_rule(self.name)}")
        self.dir = real_path(Path(runs_dir) / self.name)  # Ray workers run elsewhere
        self.metric = self.spec.metric
        self.search = self._search()
        self.scheduler = self._section(Scheduler, "scheduler", "asha")
        self._check_metrics()
        self.space = self._space()
        self.base = self._base()
        self._check_members()
        self.members = [] if self.search.type == "tpe" else self._members()

    def _section(self, cls: type, key: str, short: str) -> Any:
        """A mapping of the sweep file (or its `type` alone) as an instance of `cls`, checked by its signature."""
        value = getattr(self.spec, key)
        if value is None:
            return None
        data = {"type": value} if isinstance(value, str) else value
        return construct(cls, data, self.file, (key,), f"a sweep's {key} (such as {{type: {short}}})")

    def _check_metrics(self) -> None:
        """ConfigError at its line for a `metric` (of the file, its search or its scheduler) no run records."""
        given = [(("metric",), self.spec.metric), (("search", "metric"), self.search.metric)]
        if self.scheduler:
            given.append((("scheduler", "metric"), self.scheduler.metric))
        for where, metric in given:
            try:
                check_metric_name(metric)
            except ValueError as exc:
                raise self.file.error(where, str(exc)) from None

    def _search(self) -> Search:
        search = self._section(Search, "search", "tpe, samples: 20") or Search()
        if self.spec.samples is not None:
            if self.spec.search is not None and search.samples is not None:
                raise self.file.error(("samples",), "give samples once: here or in search")
            search.samples = self.spec.samples
            search.type = search.type if self.spec.search is not None else "random"
        if search.type != "grid" and search.samples is None:
            raise self.file.error(("search",), f"a {search.type} search needs samples: N, the number of members "
                                               "to draw")
        if search.type == "tpe" and len(self.spec.members) > 1:
            raise self.file.error(("members",), "a tpe search proposes its members from the grid's space; list "
                                                "variants as a choice in the grid instead of members")
        return search

    def _space(self) -> Space:
        """The grid's lists and ranges; a grid search's integer ranges as lists, once the sweep's size is checked."""
        space = {key: self._values(key, values) for key, values in self.spec.grid.items()}
        self._check_size(space)
        if self.search.type != "grid":
            return space
        return {key: list(range(int(v.low), int(v.high) + 1)) if isinstance(v, Range) else v
                for key, v in space.items()}

    def _values(self, key: str, values: Any) -> list | Range:
        """One grid key's non-empty list of values, or its range, checked."""
        if isinstance(values, list) and values:
            seen: set[str] = set()
            for text in map(_text, values):
                if text in seen:
                    raise self.file.error(("grid", key), f"{text} is listed twice; each value makes a member, so "
                                                         "list each once")
                seen.add(text)
            return values
        kind, bounds = next(iter(values.items())) if isinstance(values, dict) and len(values) == 1 else ("", 0)
        if kind not in RANGES or not (isinstance(bounds, list) and len(bounds) == 2 and all(map(is_number, bounds))):
            raise self.file.error(("grid", key), "expected a non-empty list of values, or a range: {uniform: "
                                  "[low, high]}, {loguniform: [low, high]} or {integer: [low, high]}; got "
                                  f"{describe_value(values)}")
        low, high = bounds
        problem = _bounds_problem(kind, low, high)
        if problem:
            raise self.file.error(("grid", key), f"{kind}: [{brief(low)}, {brief(high)}]: {problem}")
        if self.search.type == "grid" and kind != "integer":
            raise self.file.error(("grid", key), f"a {kind} range has no list of values to try them all; "
                                  "draw from it with samples: N (a random search) or search: {type: tpe, "
                                  "samples: N}")
        return Range(kind, low, high)

    def _check_size(self, space: Space) -> None:
        """ConfigError when the sweep would have more than MAX_MEMBERS members, counted from the sizes alone."""
        if self.search.type == "tpe":
            return  # `samples` members at most, proposed one at a time
        variants = len(self.spec.members)
        if self.search.type == "random":
            draws = self._draws(space)
            if draws * variants > MAX_MEMBERS:
                raise self.file.error(("members",), f"{draws:,} samples times {variants:,} members make "
                                      f"{draws * variants:,} members, more than the {MAX_MEMBERS:,} a sweep may "
                                      "have; lower samples or list fewer members")
            return
        combinations = capped_product(v.size if isinstance(v, Range) else len(v) for v in space.values())
        if combinations * variants > MAX_MEMBERS:
            raise self.file.error(*_too_many(combinations, variants))

    def _draws(self, space: Space) -> int:
        """How many grid values a random search draws: `samples`, or all combinations where there are fewer."""
        samples = self.search.samples or 0
        if any(isinstance(v, Range) for v in space.values()):
            return samples  # each member's values drawn on their own
        return min(samples, capped_product(len(v) for v in space.values() if isinstance(v, list)))

    def check_engine(self, engine: str) -> None:
        """What only Ray can do is refused for the local engine, naming the sweep file's line."""
        if engine == "ray":
            return
        needs = [(("search",), "search type tpe", self.search.type == "tpe"),
                 (("scheduler",), "a scheduler", self.scheduler is not None),
                 (("gpus_per_member",), "gpus_per_member", self.spec.gpus_per_member > 0),
                 (("address",), "an address", self.spec.address is not None)]
        for where, what, needed in needs:
            if needed:
                raise self.file.error(where, f"{what} needs the Ray engine: set engine: ray in the sweep file or "
                                             "run with --engine ray (pip install 'nnctl[ray]')")

    def _base(self) -> Config:
        base = self.spec.base
        if isinstance(base, str):
            return load_config(self.path.parent / base)
        origins = {key[1:]: line for key, line in self.file.origins.items() if key[:1] == ("base",)}
        config = Config(copy.deepcopy(base), str(self.path), origins, real_path(self.path).parent)
        config.data.setdefault("name", self.name)
        return config

    def _check_members(self) -> None:
        """Each entry of `members` is a mapping, its name (if any) a run name no other entry has."""
        named: set[str] = set()
        for i, member in enumerate(self.spec.members):
            if not isinstance(member, dict):
                raise self.file.error(("members", i), f"expected a mapping of overrides, got {describe_value(member)}")
            name = str(member.get("name", ""))
            if name and not is_path_name(name):
                raise self.file.error(("members", i, "name"), f"'{name}' cannot name a run directory; "
                                                              f"{path_name_rule(name)}")
            if name in named:
                which = f"named '{name}'" if name else "unnamed"
                raise self.file.error(("members", i), f"another entry of members is {which} too; give each entry "
                                                      "its own name")
            named.add(name)

    def _members(self) -> list[Member]:
        """Every member, in the sweep's order, each with a label of its own."""
        members = [self.member(values, i) for i in range(len(self.spec.members)) for values in self._grid()]
        for member, label in zip(members, _distinct_labels([m.label for m in members]), strict=True):
            member.label = member.config.data["name"] = label
        return members

    def check_configs(self) -> None:
        """ConfigError, before any work, naming the first member and key whose config a run would refuse; checked
        as `nnctl config` checks a config (every section's keys and values; no data read)."""
        for member in self.examples():
            try:
                resolved(member.config)
                check_reads_no_targets(member.config)
            except ConfigError as exc:
                raise ConfigError(f"{self.naming(member)}: {exc}") from None

    def examples(self) -> list[Member]:
        """The members whose configs stand for the sweep's before any runs: all of them, or, for a tpe search (whose
        members are proposed as it goes), one per list value and range end, the other keys at their first."""
        if self.members:
            return self.members
        ends = {key: values if isinstance(values, list) else values.ends() for key, values in self.space.items()}
        firsts = {key: values[0] for key, values in ends.items()}
        return [self.member({**firsts, key: value}) for key, values in ends.items() for value in values] or \
            [self.member({})]

    def naming(self, member: Member) -> str:
        """How a message names one of `examples`: by its entry's name in `members` and its grid values as
        key=value (by its label where it has neither), or a tpe search's by the values it may draw."""
        values = ", ".join(f"{key}={value}" for key, value in member.values.items())
        if not self.members:
            return f"a member the tpe search may draw ({values})"
        return f"member {', '.join(filter(None, [member.group, values])) or member.label}"

    def member(self, values: dict[str, Any], variant: int = 0) -> Member:
        """The member with these grid values, of the `variant`-th entry of `members`."""
        overrides = self.spec.members[variant]
        group = str(overrides.get("name", ""))
        config = copy.deepcopy(self.base)
        settings: list[tuple[KeyPath, str, Any]] = [(("overrides", k), k, v) for k, v in self.spec.overrides.items()]
        settings += [(("members", variant, k), k, v) for k, v in overrides.items() if k != "name"]
        settings += [(("grid", k), k, v) for k, v in values.items()]
        for where, key, value in settings:
            self._override(config, where, key, value)
        label = config.data["name"] = _label(group, values, self.name)
        check_top_level(config)
        return Member(label, config, values, group)

    def _grid(self) -> list[dict[str, Any]]:
        """The grid values of each member: every combination, or `samples` of them drawn at random (a random
        search: without repeats from lists of values, each key on its own where a key has a range)."""
        keys, rng, samples = list(self.space), np.random.default_rng(self.spec.seed), self.search.samples or 0
        if any(isinstance(v, Range) for v in self.space.values()):
            return self._drawn(rng, samples)
        lists = [v for v in self.space.values() if isinstance(v, list)]
        sizes = [len(v) for v in lists]
        total = capped_product(sizes)  # at most MAX_MEMBERS for a grid search (_check_size); any for a random one
        if self.search.type == "random" and samples < total:
            chosen = _distinct(rng, sizes, samples)
            return [dict(zip(keys, (v[i] for v, i in zip(lists, c, strict=True)), strict=True)) for c in chosen]
        return [dict(zip(keys, c, strict=True)) for c in itertools.product(*lists)]

    def _drawn(self, rng: np.random.Generator, samples: int) -> list[dict[str, Any]]:
        """`samples` draws of each key on its own, none the same as an earlier one: a repeat is drawn again, and
        after MAX_REDRAWS repeats in a row (the grid has no more combinations) the draws end short."""
        drawn: list[dict[str, Any]] = []
        seen: set[str] = set()
        repeats = 0
        while len(drawn) < samples and repeats < MAX_REDRAWS:
            values = {k: v.draw(rng) if isinstance(v, Range) else v[rng.integers(len(v))]
                      for k, v in self.space.items()}
            text = _text(values)
            repeats = repeats + 1 if text in seen else 0
            if not repeats:
                seen.add(text)
                drawn.append(values)
        return drawn

    def _override(self, config: Config, where: KeyPath, key: str, value: Any) -> None:
        apply_override(config, key_path(str(key)), value, f"{self.file.where(where)} ({dotted(where)})")

    def plan(self) -> list[Member]:
        """The members still to run: finished ones are left out; stopped or crashed ones resume."""
        previous = find_runs(self.dir) if self.dir.is_dir() else []
        return [member for member in self.members if self.prepare(member, previous)]

    def prepare(self, member: Member, previous: list[Run]) -> bool:
        """Finds the member's newest earlier run (the same resolved config) and its last.pkl to resume from;
        False when that run is done: ended, or trained through with no last.pkl to finish it from."""
        same = [run for run in previous if run.config == member.config.data]
        run = member.previous = same[-1] if same else None
        member.resume = None
        if run is None:
            return True
        if run.status in DONE:
            return False
        last = run.path / "checkpoints" / "last.pkl"
        member.resume = last if run.status != "failed" and last.is_file() else None
        return member.resume is not None or not trained_through(member.config, run.epochs())

    def make_dir(self) -> None:
        """Makes the sweep's folder (and its parents) before any member runs; NnctlError where it cannot be."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise NnctlError(f"{self.dir}: a file (or inside one), not a folder for the sweep's runs; give "
                             "--runs-dir a folder") from None
        except OSError as exc:
            raise NnctlError(f"{self.dir}: cannot make the sweep's folder: {exc.strerror or exc}") from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Makes the sweep's folder and holds it for this process (an exclusive flock on its .lock, which holds
        this process's id); NnctlError naming the process that holds it already. A sweep refused before any
        member ran (a metric no run records, a cluster too small) leaves no folder it made."""
        made = missing_folders(self.dir)
        self.make_dir()
        try:
            with _lock_file(self.dir / LOCK) as file:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    file.seek(0)
                    raise NnctlError(f"{self.dir}: the sweep is being run by process {file.read().strip() or '?'}; "
                                     "run it again once that one has ended") from None
                file.truncate(0)
                file.write(f"{os.getpid()}\n")
                file.flush()
                yield
        except BaseException:
            if made and [p.name for p in self.dir.iterdir()] == [LOCK]:
                (self.dir / LOCK).unlink()
                remove_empty(made)
            raise

    def run(self, todo: list[Member], jobs: int = 1, report: Callable[[Outcome], None] | None = None
            ) -> list[Outcome]:
        """Runs `todo` (from plan) in `jobs` worker processes; returns every member's outcome, in sweep order."""
        outcomes: dict[str, Outcome] = {}
        self.make_dir()
        if todo:
            prepare_store(self.dir, [self.base, *(member.config for member in todo)])  # once, not raced by workers
            threads = self.spec.cpus_per_member or max(1, blas_threads_available() // jobs)
            context = get_context("spawn")
            interrupted = context.Event()
            with _blas_threads(threads), \
                    ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context,
                                        initializer=_in_worker, initargs=(interrupted,)) as pool:
                futures = {pool.submit(run_member, member, self.dir, self.name): member for member in todo}
                try:
                    for future in as_completed(futures):
                        status, error, run_dir = future.result()
                        member = futures[future]
                        run = load_run(run_dir) if run_dir else None
                        outcomes[member.label] = Outcome(member, status, run, error)
                        if report:
                            report(outcomes[member.label])
                except KeyboardInterrupt:
                    _stop_members(interrupted, list(futures))
                    raise
        return self.in_order(outcomes)

    def in_order(self, outcomes: dict[str, Outcome]) -> list[Outcome]:
        """Every member's outcome by its label, in sweep order; those that did not run are skipped."""
        return [outcomes.get(m.label) or Outcome(m, "skipped", m.previous) for m in self.members]


def _stop_members(interrupted: Any, futures: list[Future]) -> None:
    """After a Ctrl-C or SIGTERM: the members not started are cancelled (those queued in a worker already see
    `interrupted` and do not start), and after a SIGTERM the running ones get one too, stopping after their step."""
    interrupted.set()
    for future in futures:
        future.cancel()
    if terminated():  # a Ctrl-C reaches the workers from the terminal; a `kill` of this one does not
        for worker in active_children():
            worker.terminate()


def _lock_file(path: Path) -> IO[str]:
    """The sweep's lock file, opened for reading and writing (made where missing)."""
    try:
        return open(path, "a+")
    except OSError as exc:
        raise NnctlError(f"{path}: cannot open the sweep's lock: {exc.strerror or exc}") from None


_INTERRUPTED: Any = None
"""In a worker process: the sweep's event, set once Ctrl-C stopped the sweep."""


def _in_worker(interrupted: Any) -> None:
    global _INTERRUPTED
    _INTERRUPTED = interrupted
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()


def _stop_when_orphaned(parent: int) -> None:
    """In a worker, once the sweep's process is gone (killed with -9): no member starts, and a SIGTERM every
    second stops the one in flight after its step, as a SIGTERM to the sweep would, then ends the idle worker,
    which would otherwise wait for members forever."""
    while os.getppid() == parent:
        time.sleep(1)
    _INTERRUPTED.set()
    while True:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)


def run_member(member: Member, sweep_dir: Path, sweep: str) -> tuple[str, str | None, Path | None]:
    """Trains one member of the sweep named `sweep` (in a worker process); its status, why it failed, and its run
    directory if made."""
    if _INTERRUPTED is not None and _INTERRUPTED.is_set():
        return "stopped", "the sweep was interrupted before it started", None
    quiet_arithmetic()  # a diverging member is one row of the report, not warnings among the others' lines
    runner = None
    try:
        if member.resume is not None:
            data = member.config.data.get("data")
            here = [f"data.{key}={json.dumps(data[key])}" for key in UNTRUSTED  # the sweep file's, not the checkpoint's
                    if isinstance(data, dict) and data.get(key) is not None]
            runner = Runner.resume(member.resume, here, sweep_dir, quiet=True, sweep=sweep)
        else:
            runner = Runner.start(member.config, sweep_dir, quiet=True, sweep=sweep)
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
        value: Any = final.get(f"val_{metric}", final.get(metric))
        if not (is_number(value) and finite(value)):
            continue
        for key, x in outcome.member.values.items():
            if is_number(x) and finite(x):
                others = [outcome.member.group] + [_short(v, k) for k, v in outcome.member.values.items() if k != key]
                curves.setdefault(key, {}).setdefault(" ".join(o for o in others if o), []).append((x, value))
    return {key: groups for key, groups in curves.items() if max(len(xy) for xy in groups.values()) > 1}


def _text(value: Any) -> str:
    """A grid value (or a member's values) as JSON text, which tells 1 from 1.0 and True, and 0.0 from -0.0."""
    return json.dumps(value, sort_keys=True, default=str)


def _bounds_problem(kind: str, low: int | float, high: int | float) -> str | None:
    """Why [low, high] cannot be a range of `kind`, or None."""
    if kind == "integer":
        if not (isinstance(low, int) and isinstance(high, int) and low < high):
            return "expected integers low < high"
        if low < INT64[0] or high > INT64[1]:
            return f"expected ends from {INT64[0]:,} to {INT64[1]:,} (64-bit integers, what NumPy draws)"
        return None
    if not (finite(low) and finite(high)):
        return "expected finite numbers within float's range (±1.8e308)"
    if not low < high or (kind == "loguniform" and low <= 0):
        return "expected 0 < low < high" if kind == "loguniform" else "expected low < high"
    if not math.isfinite(float(high) - float(low)):
        return "expected high - low within float's range (±1.8e308)"
    return None


def _too_many(combinations: int, variants: int) -> tuple[KeyPath, str]:
    """Where and why a grid search of `combinations` times `variants` members is refused."""
    more = f"more than the {MAX_MEMBERS:,} members a sweep may have"
    if combinations == 1:
        return ("members",), f"members lists {variants:,} entries, {more}; list fewer or split them over sweeps"
    times = f", times {variants:,} entries of members" if variants > 1 else ""
    return ("grid",), (f"the grid has {_amount(combinations)} combinations{times}, {more}; narrow the grid (fewer "
                       "values, shorter integer ranges), draw some of its combinations with samples: N (a random "
                       "search) or list fewer members")


def _amount(count: int) -> str:
    """A member count for a message: '9,000,000', or 'more than 10**18'."""
    return f"{count:,}" if count <= 10**18 else "more than 10**18"


def _distinct(rng: np.random.Generator, sizes: list[int], samples: int) -> list[tuple[int, ...]]:
    """`samples` distinct combinations of indices into lists of `sizes`, in the grid's order (the last list's
    index changes fastest): drawn by their number in that order where NumPy can, else key by key."""
    total = capped_product(sizes)
    if total <= INT64[1]:
        numbers = sorted(int(n) for n in rng.choice(total, samples, replace=False))
        return [_digits(n, sizes) for n in numbers]
    chosen: set[tuple[int, ...]] = set()  # among more than 9e18 combinations a repeat is all but impossible
    while len(chosen) < samples:
        chosen.add(tuple(int(rng.integers(size)) for size in sizes))
    return sorted(chosen)


def _digits(number: int, sizes: list[int]) -> tuple[int, ...]:
    """The indices of combination `number` of itertools.product over lists of `sizes`."""
    digits = []
    for size in reversed(sizes):
        number, digit = divmod(number, size)
        digits.append(digit)
    return tuple(reversed(digits))


def _label(group: str, values: dict[str, Any], fallback: str) -> str:
    """A member's run name: its group and values ('plain_sgd_0.1'), else `fallback`; one that would start with
    a sign or a dot starts with the first key ('seed_-42'); cut to MAX_NAME characters."""
    label = "_".join(p for p in [group, *(_short(v, k) for k, v in values.items())] if p) or fallback
    if not label[0].isalnum():  # only a value's part can: a group is a run name
        key = _key_part(next(iter(values)))
        label = f"{key if key[:1].isalnum() else fallback}_{label}"
    return label[:MAX_NAME]


def _short(value: Any, key: str) -> str:
    """A grid value as part of a run name: 'adam', '0.01', '-42'; a mapping's type or the key's last part."""
    if isinstance(value, dict):
        value = value.get("type", str(key).split(".")[-1])
    text = f"{value:.4g}" if isinstance(value, float) and len(str(value)) > 8 else str(value)  # a drawn value
    return _cleaned(text) or _key_part(key)


def _key_part(key: str) -> str:
    """A grid key's last part ('optimizer.lr' -> 'lr') as part of a run name."""
    return _cleaned(str(key).split(".")[-1])


def _cleaned(text: str) -> str:
    """`text` with only the characters a run name may hold, and no '..'."""
    return re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]", "", text))


def _distinct_labels(labels: list[str]) -> list[str]:
    """`labels` made distinct, in order: a repeat (values that read the same, such as 'a/b' and 'ab', or two
    draws of 0.012341 and 0.012344) gets the first free suffix -2, -3, ...: '0.01234', '0.01234-2'."""
    given, used, distinct = set(labels), set(), []
    for label in labels:
        name, count = label, 1
        while name in used or (count > 1 and name in given):
            count += 1
            name = f"{label[:MAX_NAME - len(str(count)) - 1]}-{count}"
        used.add(name)
        distinct.append(name)
    return distinct


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

