"""The Ray engine of `nnctl sweep`: members as Ray Tune trials on this machine or a cluster, each an ordinary run
in the sweep's directory; epochs reported to Tune, last.pkl as the trial's checkpoint, ASHA and Optuna's TPE."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nnctl.errors import NnctlError
from nnctl.experiment import most_epochs, unrecorded
from nnctl.runs import DONE, Run, find_runs
from nnctl.sweep.members import Member, Outcome
from nnctl.sweep.ray_cluster import check_resources, connect
from nnctl.sweep.ray_members import Members
from nnctl.sweep.ray_params import encode, member_of_run, param_space, tpe_space
from nnctl.sweep.ray_trials import train_member, watched
from nnctl.sweep.ray_tune import INSTALL, ASHAScheduler, ray, tune
from nnctl.sweep.sweep import Sweep
from nnctl.tracking import prepare_store


def run(sweep: Sweep, todo: list[Member], address: str | None, jobs: int | None,
        report: Callable[[Outcome], None], say: Callable[[str], None]) -> list[Outcome]:
    """Runs the grid's or random search's `todo` (from Sweep.plan), or the rest of a TPE search, as Tune trials;
    every member's outcome, in sweep order (a TPE search's ranked by its metric). Ctrl-C: KeyboardInterrupt."""
    done = done_runs(sweep) if sweep.search.type == "tpe" else []
    stopped = [run for run in find_runs(sweep.dir) if run.status not in (*DONE, "failed")] \
        if sweep.search.type == "tpe" and sweep.dir.is_dir() else []
    remaining = (sweep.search.samples or 0) - len(done) if sweep.search.type == "tpe" else len(todo)
    members = Members(sweep, report, say)
    if remaining > 0:
        _check_recorded(sweep)
        connect(address, sweep.spec.cpus_per_member or 1)
        try:
            check_resources(sweep, joined=address not in (None, "local"))
            sweep.make_dir()
            prepare_store(sweep.dir, [sweep.base, *(member.config for member in todo)])
            _fit(sweep, todo, done, stopped, remaining, jobs, members)
        finally:
            ray.shutdown()
    if sweep.search.type != "tpe":
        return sweep.in_order(members.outcomes)
    session = {str(o.run.path) for o in members.outcomes.values() if o.run}
    outcomes = list(members.outcomes.values()) + [Outcome(member_of_run(sweep, run), "skipped", run)
                                                  for run in done if str(run.path) not in session]
    return rank(outcomes, sweep.search.metric, sweep.search.mode)


def rank(outcomes: list[Outcome], metric: str, mode: str) -> list[Outcome]:
    """Best first by the final `metric`; members without it last."""
    def key(outcome: Outcome) -> tuple[bool, float]:
        value = _final(outcome.run, metric)
        return value is None, 0.0 if value is None else value if mode == "min" else -value
    return sorted(outcomes, key=key)


def _check_recorded(sweep: Sweep) -> None:
    """ConfigError where a member's runs cannot record a metric Tune reads (Optuna would fail on the driver, ASHA
    would never stop a member)."""
    for where, metric in watched(sweep):
        for member in sweep.examples():
            why = unrecorded(member.config, metric)
            if why:
                raise sweep.file.error(where, f"{metric} is not recorded by the runs of {sweep.naming(member)}: "
                                              f"{why}")


def _fit(sweep: Sweep, todo: list[Member], done: list[Run], stopped: list[Run], remaining: int, jobs: int | None,
         members: Members) -> None:
    spec = sweep.spec
    trainable = tune.with_resources(tune.with_parameters(train_member, sweep=sweep),
                                    {"cpu": spec.cpus_per_member or 1, "gpu": spec.gpus_per_member})
    tpe = sweep.search.type == "tpe"
    tuner = tune.Tuner(trainable, param_space=None if tpe else param_space(sweep, todo), tune_config=tune.TuneConfig(
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
    resume = [point for point in (encode(sweep, run) for run in stopped) if point is not None]
    searcher = OptunaSearch(tpe_space(sweep), metric=sweep.search.metric, mode=sweep.search.mode,
                            sampler=optuna.samplers.TPESampler(seed=sweep.spec.seed + len(done) + len(stopped)),
                            points_to_evaluate=resume)  # another seed on a re-run, or it draws its first points again
    for run in done:
        point, value = encode(sweep, run), _final(run, sweep.search.metric)
        if point is not None and value is not None:
            searcher.add_evaluated_point(point, value)
    return searcher


def done_runs(sweep: Sweep) -> list[Run]:
    """A TPE sweep's runs that count as drawn: finished, early stopped or failed."""
    if not sweep.dir.is_dir():
        return []
    return [run for run in find_runs(sweep.dir) if run.status in (*DONE, "failed")]


def _final(run: Run | None, metric: str) -> float | None:
    epochs = run.epochs() if run else []
    value = epochs[-1].get(metric) if epochs else None
    return value if isinstance(value, int | float) else None
