"""A sweep file read and checked, its members built and planned (finished ones skipped, stopped ones resumed), its
folder locked, and its members run by the local engine (workers.py) or Ray's (ray_engine.py)."""

import copy
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from nnctl.config import (
    MAX_BYTES,
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
from nnctl.errors import ConfigError, NnctlError
from nnctl.experiment import check_reads_no_targets, trained_through
from nnctl.files import read_bytes, real_path
from nnctl.limits import capped_product
from nnctl.metrics import check_metric_name
from nnctl.outputs import missing_folders, remove_empty
from nnctl.runs import DONE, Run, find_runs
from nnctl.schema import brief, construct, describe_value, is_number
from nnctl.sections import resolved
from nnctl.sweep.labels import distinct_labels, member_label
from nnctl.sweep.members import Member, Outcome
from nnctl.sweep.space import RANGES, Range, Space, as_text, bounds_problem, draw_count, grid_values
from nnctl.sweep.spec import MAX_MEMBERS, Scheduler, Search, SweepSpec
from nnctl.sweep.workers import run_members
from nnctl.threads import available as blas_threads_available
from nnctl.tracking import prepare_store

LOCK = ".lock"
"""The file in a sweep's folder that the process running the sweep holds locked (fcntl.flock)."""


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
            for text in map(as_text, values):
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
        problem = bounds_problem(kind, low, high)
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
            draws = draw_count(space, self.search.samples or 0)
            if draws * variants > MAX_MEMBERS:
                raise self.file.error(("members",), f"{draws:,} samples times {variants:,} members make "
                                      f"{draws * variants:,} members, more than the {MAX_MEMBERS:,} a sweep may "
                                      "have; lower samples or list fewer members")
            return
        combinations = capped_product(v.size if isinstance(v, Range) else len(v) for v in space.values())
        if combinations * variants > MAX_MEMBERS:
            raise self.file.error(*_too_many(combinations, variants))

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
        grid = grid_values(self.space, self.spec.seed, self.search.samples or 0, self.search.type == "random")
        members = [self.member(values, i) for i in range(len(self.spec.members)) for values in grid]
        for member, label in zip(members, distinct_labels([m.label for m in members]), strict=True):
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
        label = config.data["name"] = member_label(group, values, self.name)
        check_top_level(config)
        return Member(label, config, values, group)

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
        self.make_dir()
        if not todo:
            return self.in_order({})
        prepare_store(self.dir, [self.base, *(member.config for member in todo)])  # once, not raced by workers
        threads = self.spec.cpus_per_member or max(1, blas_threads_available() // jobs)
        return self.in_order(run_members(todo, self.dir, self.name, jobs, threads, report))

    def in_order(self, outcomes: dict[str, Outcome]) -> list[Outcome]:
        """Every member's outcome by its label, in sweep order; those that did not run are skipped."""
        return [outcomes.get(m.label) or Outcome(m, "skipped", m.previous) for m in self.members]


def _lock_file(path: Path) -> IO[str]:
    """The sweep's lock file, opened for reading and writing (made where missing)."""
    try:
        return open(path, "a+")
    except OSError as exc:
        raise NnctlError(f"{path}: cannot open the sweep's lock: {exc.strerror or exc}") from None


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
