"""The Ray engine of `nnctl sweep`: members as Ray Tune trials on this machine or a cluster, each an ordinary run
in the sweep's directory; epochs reported to Tune, last.pkl as the trial's checkpoint, ASHA and Optuna's TPE."""

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from nnctl.config import expand_path, key_path
from nnctl.errors import NnctlError, TrainingError, quiet_arithmetic
from nnctl.experiment import most_epochs, unrecorded
from nnctl.outputs import replacing
from nnctl.run_files import write_summary
from nnctl.runner import Runner
from nnctl.runs import DONE, Run, find_runs, is_run, load_run, row_values
from nnctl.sweep import Sweep
from nnctl.sweep_members import Member, Outcome
from nnctl.sweep_space import Range
from nnctl.sweep_workers import THREAD_VARS
from nnctl.tracking import prepare_store

INSTALL = "pip install 'nnctl[ray]'"
# Tune's own progress tables and metric checks: nnctl prints its own lines, and a failed member's last report
# carries its error instead of the metric.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
try:
    import grpc  # type: ignore[import-untyped]  # the ray extra installs it: Ray itself no longer needs it
    import ray
    from ray import tune
    from ray._private import services
    from ray.tune.schedulers import ASHAScheduler
except ImportError as exc:
    raise NnctlError(f"the Ray engine needs Ray Tune ({exc}); install it with {INSTALL}") from None


def run(sweep: Sweep, todo: list[Member], address: str | None, jobs: int | None,
        report: Callable[[Outcome], None], say: Callable[[str], None]) -> list[Outcome]:
    """Runs the grid's or random search's `todo` (from Sweep.plan), or the rest of a TPE search, as Tune trials;
    every member's outcome, in sweep order (a TPE search's ranked by its metric). Ctrl-C: KeyboardInterrupt."""
    done = done_runs(sweep) if sweep.search.type == "tpe" else []
    stopped = [run for run in find_runs(sweep.dir) if run.status not in (*DONE, "failed")] \
        if sweep.search.type == "tpe" and sweep.dir.is_dir() else []
    remaining = (sweep.search.samples or 0) - len(done) if sweep.search.type == "tpe" else len(todo)
    members = _Members(sweep, report, say)
    if remaining > 0:
        _check_recorded(sweep)
        _connect(address, sweep.spec.cpus_per_member or 1)
        try:
            _check_resources(sweep, joined=address not in (None, "local"))
            sweep.make_dir()
            prepare_store(sweep.dir, [sweep.base, *(member.config for member in todo)])
            _fit(sweep, todo, done, stopped, remaining, jobs, members)
        finally:
            ray.shutdown()
    if sweep.search.type != "tpe":
        return sweep.in_order(members.outcomes)
    session = {str(o.run.path) for o in members.outcomes.values() if o.run}
    outcomes = list(members.outcomes.values()) + [Outcome(_member_of(sweep, run), "skipped", run)
                                                  for run in done if str(run.path) not in session]
    return rank(outcomes, sweep.search.metric, sweep.search.mode)


def rank(outcomes: list[Outcome], metric: str, mode: str) -> list[Outcome]:
    """Best first by the final `metric`; members without it last."""
    def key(outcome: Outcome) -> tuple[bool, float]:
        value = _final(outcome.run, metric)
        return value is None, 0.0 if value is None else value if mode == "min" else -value
    return sorted(outcomes, key=key)


def _watched(sweep: Sweep) -> list[tuple[tuple[str, ...], str]]:
    """The metrics Tune reads from each report, with their place in the sweep file: TPE's and ASHA's."""
    search = [(("search", "metric"), sweep.search.metric)] if sweep.search.type == "tpe" else []
    return search + ([(("scheduler", "metric"), sweep.scheduler.metric)] if sweep.scheduler else [])


def _check_recorded(sweep: Sweep) -> None:
    """ConfigError where a member's runs cannot record a metric Tune reads (Optuna would fail on the driver, ASHA
    would never stop a member)."""
    for where, metric in _watched(sweep):
        for member in sweep.examples():
            why = unrecorded(member.config, metric)
            if why:
                raise sweep.file.error(where, f"{metric} is not recorded by the runs of {sweep.naming(member)}: "
                                              f"{why}")


def _fit(sweep: Sweep, todo: list[Member], done: list[Run], stopped: list[Run], remaining: int, jobs: int | None,
         members: "_Members") -> None:
    spec = sweep.spec
    trainable = tune.with_resources(tune.with_parameters(train_member, sweep=sweep),
                                    {"cpu": spec.cpus_per_member or 1, "gpu": spec.gpus_per_member})
    tpe = sweep.search.type == "tpe"
    tuner = tune.Tuner(trainable, param_space=None if tpe else _param_space(sweep, todo), tune_config=tune.TuneConfig(
        scheduler=_scheduler(sweep), search_alg=_searcher(sweep, done, stopped) if tpe else None,
        num_samples=remaining if tpe else 1, max_concurrent_trials=jobs or spec.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=str(sweep.dir / ".tune"), name=f"{sweep.search.type}-{datetime.now():%Y%m%d-%H%M%S}",
            verbose=0, callbacks=[members], failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    tuner.fit()
    if members.ended < remaining:
        members.stop_the_rest()
        raise KeyboardInterrupt


def _connect(address: str | None, threads: int) -> None:
    """Joins the cluster at `address` (after checking it answers, as Ray would wait minutes), or starts one here."""
    answer = _check_answers(address) if address not in (None, "auto", "local") else None
    env = {"env_vars": {name: str(threads) for name in THREAD_VARS}}
    here: dict[str, Any] = {"include_dashboard": False} if address in (None, "local") else {}
    try:
        if address is not None and address != "local" and "RAY_AUTH_MODE" not in os.environ:  # a running cluster
            if answer is None:  # auto: the cluster started on this machine
                answer = _gcs_answer(services.get_ray_address_from_environment("auto", None))
            os.environ["RAY_AUTH_MODE"] = "token" if _needs_token(answer, address) else "disabled"
            ray._raylet.Config.initialize("")  # type: ignore[attr-defined]  # Ray read the mode on import
        ray.init(address=address or "local", runtime_env=env, logging_level=logging.ERROR, log_to_driver=False, **here)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise NnctlError(f"--address {address}: cannot join the Ray cluster: {exc}") from None
    logging.getLogger("ray").setLevel(logging.CRITICAL)  # a lost worker is reported by _Members, not a traceback


def _check_resources(sweep: Sweep, joined: bool) -> None:
    """An error where a member asks for more CPUs or GPUs than the whole cluster has (Tune would wait for them
    forever): a ConfigError for the cluster started here, an NnctlError for a `joined` one (short of machines)."""
    has = ray.cluster_resources()
    for key, kind, asked in (("cpus_per_member", "CPU", sweep.spec.cpus_per_member or 1),
                             ("gpus_per_member", "GPU", sweep.spec.gpus_per_member)):
        if asked > has.get(kind, 0):
            where = "the Ray cluster joined" if joined else "this machine's Ray cluster"
            problem = f"each member asks for {asked:g} {kind}{'' if asked == 1 else 's'}, but {where} has " \
                      f"{has.get(kind, 0):g}"
            if joined:
                raise NnctlError(f"{key}: {problem}; add machines with {kind}s to the cluster or lower {key}")
            raise sweep.file.error((key,), f"{problem}; lower it")


def _check_answers(address: str) -> grpc.StatusCode:
    """The GCS's answer at `address` (HOST:PORT), or NnctlError where none answers: Ray waits minutes on a port
    where nothing listens, or something else does (a web server)."""
    host, _, port = address.rpartition(":")  # checked by sweep.check_address
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise NnctlError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
                         "`ray start --head --port PORT` and give its address, or leave --address out to "
                         "run on this machine alone") from None
    answer = _gcs_answer(address)
    if answer not in (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED):
        raise NnctlError(f"--address {address}: something listens there, but it does not answer as a Ray head's GCS "
                         f"does (gRPC: {answer.name.lower().replace('_', ' ')}); give the address that `ray start "
                         "--head` printed (HOST:6379 by default)")
    return answer


def _gcs_answer(address: str) -> grpc.StatusCode:
    """The status of a call of the GCS method GetClusterId at `address` (HOST:PORT) within 5 s: OK from a Ray GCS,
    UNAUTHENTICATED from one that wants its token; UNIMPLEMENTED from another gRPC server, and UNAVAILABLE or
    DEADLINE_EXCEEDED from no gRPC server."""
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")(b"", timeout=5)  # a valid empty request
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def _needs_token(answer: grpc.StatusCode, given: str) -> bool:
    """Whether to send Ray's token to the cluster at --address `given`, from its GCS's `answer` to a call without
    one: a token another cluster left in ~/.ray must not go to one that runs without (Ray would send it to
    `auto`'s)."""
    if answer != grpc.StatusCode.UNAUTHENTICATED:
        return False
    if not os.environ.get("RAY_AUTH_TOKEN") and \
            not Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").is_file():
        raise NnctlError(f"--address {given}: the Ray cluster there requires its token; copy ~/.ray/auth_token "
                         "from its head machine to this one, or set RAY_AUTH_TOKEN")
    return True


def _param_space(sweep: Sweep, todo: list[Member]) -> dict[str, Any]:
    """The grid's and random search's members, by their index."""
    labels = [m.label for m in sweep.members]
    return {"member": tune.grid_search([labels.index(m.label) for m in todo])}


def _space(sweep: Sweep) -> dict[str, Any]:
    """TPE's space as Tune's distributions; a list of values as the index of the value (Optuna's choices must
    be plain scalars)."""
    space = {}
    for key, values in sweep.space.items():
        if isinstance(values, Range):
            space[key] = {"uniform": tune.uniform, "loguniform": tune.loguniform}.get(
                values.kind, lambda low, high: tune.randint(low, high + 1))(values.low, values.high)
        else:
            space[key] = tune.choice(list(range(len(values))))
    return space


def _scheduler(sweep: Sweep) -> Any:
    s = sweep.scheduler
    if s is None:
        return None
    epochs = max(most_epochs(m.config) for m in sweep.examples())
    # past the last epoch: ASHA stops a member that reaches max_t, before its run could write its test metrics
    return ASHAScheduler(time_attr="epoch", metric=s.metric, mode=s.mode, max_t=max(epochs, s.grace_period) + 1,
                         grace_period=s.grace_period, reduction_factor=s.reduction_factor)


def _searcher(sweep: Sweep, done: list[Run], stopped: list[Run]) -> Any:
    """Optuna's TPE, seeded, told the results of the members done in earlier runs of the sweep; the members
    stopped by Ctrl-C come first, to be resumed."""
    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        raise NnctlError(f"search type tpe needs Optuna ({exc}); install it with {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    resume = [point for point in (_encode(sweep, run) for run in stopped) if point is not None]
    searcher = OptunaSearch(_space(sweep), metric=sweep.search.metric, mode=sweep.search.mode,
                            sampler=optuna.samplers.TPESampler(seed=sweep.spec.seed + len(done) + len(stopped)),
                            points_to_evaluate=resume)  # another seed on a re-run, or it draws its first points again
    for run in done:
        point, value = _encode(sweep, run), _final(run, sweep.search.metric)
        if point is not None and value is not None:
            searcher.add_evaluated_point(point, value)
    return searcher


def train_member(params: dict[str, Any], sweep: Sweep) -> None:
    """One trial (in a Ray worker): the member's run, started, resumed from a stopped earlier run of the sweep,
    or restored from the trial's checkpoint after its worker died; each epoch is reported to Tune."""
    quiet_arithmetic()
    member = _member(sweep, params)
    runner = None
    try:
        runner = _runner(sweep, member, tune.get_checkpoint())
        if runner is None:
            return
        runner.on_epoch = lambda row: _report(sweep, runner, row)
        runner.fit()
    except NnctlError as exc:
        _report_error(sweep, runner, str(exc))
    except Exception as exc:  # one member's bug must not stop the others, nor be retried as a lost worker
        _report_error(sweep, runner, f"internal error: {type(exc).__name__}: {exc}")


def _report_error(sweep: Sweep, runner: Runner | None, error: str) -> None:
    """A failed member's last report: its error, and NaN for the metrics TPE and ASHA read (a failed trial)."""
    metrics = {s.metric: float("nan") for s in (sweep.search, sweep.scheduler) if s is not None}
    tune.report({**metrics, "nnctl_error": error, "run_dir": str(runner.run_dir) if runner else ""})


def _runner(sweep: Sweep, member: Member, restored: Any) -> Runner | None:
    if restored is not None:
        with restored.as_directory() as folder:
            run_dir = Path((Path(folder) / "run").read_text())
            last = run_dir / "checkpoints" / "last.pkl"
            with open(Path(folder) / "last.pkl", "rb") as saved, replacing(last, "the checkpoint", TrainingError) as f:
                shutil.copyfileobj(saved, f)
        runner = Runner.resume(last, [], sweep.dir, quiet=True, sweep=sweep.name)
        runner.progress.say(f"the sweep restarted this member from its last.pkl (epoch {runner.epoch}) after "
                            "its worker was lost")
        return runner
    if sweep.search.type == "tpe":  # a proposed member: its earlier run, if TPE proposed it before
        # only this member's runs: the others' metrics.jsonl may be half-written at this moment
        previous = [load_run(path) for path in sorted(sweep.dir.glob(f"{member.label}-*")) if is_run(path)]
        if not sweep.prepare(member, previous) and member.previous:
            tune.report({**member.previous.epochs()[-1], "run_dir": str(member.previous.path)})
            return None
    if member.resume is not None:
        return Runner.resume(member.resume, [], sweep.dir, quiet=True, sweep=sweep.name)
    return Runner.start(member.config, sweep.dir, quiet=True, sweep=sweep.name)


def _report(sweep: Sweep, runner: Runner, row: dict[str, Any]) -> None:
    """The epoch's metrics, with a copy of last.pkl as the trial's checkpoint; TrainingError where the run does
    not record one that Tune reads (a default metric, which the config cannot tell; val_ ones come every
    train.eval_every epochs)."""
    missing = [metric for _, metric in _watched(sweep) if metric.removeprefix("val_") not in row]
    if missing:
        raise TrainingError(f"the sweep reads {', '.join(missing)}, which this run does not record; it records "
                         f"{', '.join(row_values(row))}")
    folder = Path(tempfile.mkdtemp(prefix="nnctl-checkpoint-"))
    try:
        shutil.copyfile(runner.checkpoints.last, folder / "last.pkl")
        (folder / "run").write_text(str(runner.run_dir))
        metrics = {k: v for k, v in row.items() if isinstance(v, int | float)}
        tune.report({**metrics, "run_dir": str(runner.run_dir)}, checkpoint=tune.Checkpoint.from_directory(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Members(tune.Callback):
    """On the driver: each member's run directory from its reports; a member that ASHA stopped is marked
    early_stopped (by the sweep), and each ended member is reported."""

    def __init__(self, sweep: Sweep, report: Callable[[Outcome], None], say: Callable[[str], None]):
        self.sweep, self.report, self.say = sweep, report, say
        self.run_dirs: dict[str, str] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.ended = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "report": None, "say": None}  # Tune saves callbacks with the experiment, not printers

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("run_dir"):
            self.run_dirs[trial.trial_id] = result["run_dir"]

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run = self._run(trial)
        where = f"from {run.path / 'checkpoints' / 'last.pkl'}" if run else "from the start"
        self.say(f"  {_member(self.sweep, trial.config).label}: its worker was lost ({_cause(trial)}); restarting it "
                 f"{where} (failure {trial.num_failures} of at most {self.sweep.spec.max_failures})")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run = self._run(trial)
        if run is not None and run.summary.get("status") == "running":  # its worker is gone: `status` says crashed
            metric = self.sweep.scheduler.metric if self.sweep.scheduler else "its metric"
            run = _mark(run, "early_stopped", f"stopped early by the sweep's scheduler: {metric} trailed the "
                                              f"other members' after epoch {run.summary['epochs']}", by="sweep")
        error = (trial.last_result or {}).get("nnctl_error")
        self._end(trial, "failed" if error else run.status if run else "failed", run, error)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run = self._run(trial)
        error = f"its worker was lost more than max_failures ({self.sweep.spec.max_failures}) times, the last " \
                f"time by {_cause(trial)}"
        if run is not None:
            run = _mark(run, "failed", error)
        self._end(trial, "failed", run, error)

    def _run(self, trial: Any) -> Run | None:
        path = self.run_dirs.get(trial.trial_id) or (trial.last_result or {}).get("run_dir")
        return load_run(path) if path and Path(path, "summary.json").is_file() else None

    def _end(self, trial: Any, status: str, run: Run | None, error: str | None) -> None:
        self.ended += 1
        member = _member(self.sweep, trial.config)
        key = str(run.path) if run and self.sweep.search.type == "tpe" else member.label
        self.outcomes[key] = Outcome(member, status, run, error)
        self.report(self.outcomes[key])

    def stop_the_rest(self) -> None:
        """After Ctrl-C: the sweep's runs still marked running are stopped (their last.pkl resumes them); found
        on disk, as a member may not have reported its first epoch yet."""
        for run in find_runs(self.sweep.dir):
            if run.summary.get("status") in ("running", "crashed"):
                _mark(run, "stopped", "the sweep was interrupted; run it again to resume from last.pkl")


def _cause(trial: Any) -> str:
    """Tune's record of the trial's latest failure in a line: a dead actor's first line, or a traceback's last
    (the exception raised in the worker)."""
    try:
        # the trial's local file: Tune's get_error reads the experiment's storage, which is synced only later
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.rpartition("Failure # ")[2].splitlines()[1:] if line.strip()]
    if not lines:
        return "no error recorded"
    return (lines[-1] if lines[0].startswith("ray::") else lines[0])[:300]


def _mark(run: Run, status: str, note: str, by: str | None = None) -> Run:
    """Rewrites the run's summary.json with a status the sweep gave it."""
    summary = {**run.summary, "status": status, "error": note, **({"stopped_by": by} if by else {})}
    write_summary(run.path, summary)
    return load_run(run.path)


def _member(sweep: Sweep, params: dict[str, Any]) -> Member:
    if "member" in params:
        return sweep.members[params["member"]]
    return sweep.member({key: params[key] if isinstance(values, Range) else values[params[key]]
                         for key, values in sweep.space.items()})


def done_runs(sweep: Sweep) -> list[Run]:
    """A TPE sweep's runs that count as drawn: finished, early stopped or failed."""
    if not sweep.dir.is_dir():
        return []
    return [run for run in find_runs(sweep.dir) if run.status in (*DONE, "failed")]


def _values(sweep: Sweep, config: dict[str, Any]) -> dict[str, Any]:
    """A run's values of the grid's keys (a `*` key: its first match), None where the config lacks one."""
    values: dict[str, Any] = {}
    for key in sweep.space:
        paths = expand_path(config, key_path(key))
        node: Any = config
        try:
            for part in paths[0] if paths else ():
                node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        values[key] = node
    return values


def _encode(sweep: Sweep, run: Run) -> dict[str, Any] | None:
    """An earlier member's point in TPE's space, or None when its values are not in the space."""
    point = {}
    for key, value in _values(sweep, run.config).items():
        values = sweep.space[key]
        if isinstance(values, Range):
            point[key] = value
        elif value in values:
            point[key] = values.index(value)
        else:
            return None
    return point


def _member_of(sweep: Sweep, run: Run) -> Member:
    return sweep.member(_values(sweep, run.config))


def _final(run: Run | None, metric: str) -> float | None:
    epochs = run.epochs() if run else []
    value = epochs[-1].get(metric) if epochs else None
    return value if isinstance(value, int | float) else None
