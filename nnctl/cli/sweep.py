"""`nnctl sweep`: a sweep's members trained, then its table and plots."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nnctl.cli.group import Command, app
from nnctl.cli.options import Quiet, RunDevice, check_metric, offering
from nnctl.cli.printing import err, out
from nnctl.cli.signals import stopped_status
from nnctl.console import stdout_closed, why_stopped
from nnctl.errors import ConfigError, NnctlError

if TYPE_CHECKING:
    from nnctl.sweep import Member, Outcome, Sweep


@app.command("sweep", cls=Command)
def sweep_command(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP.yaml", help="A sweep: a base config and a grid or "
                                                                          "members of overrides.")],
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Members trained at once.",
                                             show_default="the sweep's max_concurrent, else 1 locally and as many as "
                                             "fit on Ray")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help="The sweep's directory is "
                                           "DIR/<name>.")] = Path("runs"),
    metric: Annotated[str | None, typer.Option("--metric", help="The metric of the table and plots.",
                                               show_default="the sweep's metric, else loss")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="local (worker processes here) or ray (Ray Tune, "
                                               "pip install 'nnctl[ray]').",
                                               show_default="the sweep's engine, else local",
                                               autocompletion=offering("local", "ray"))] = None,
    address: Annotated[str | None, typer.Option("--address", metavar="HOST:PORT", help="The Ray cluster: auto or "
                                                "HOST:PORT (its head's GCS).", show_default="the sweep's address, "
                                                "else a cluster started here for this sweep")] = None,
    device: RunDevice = None,
    quiet: Quiet = False,
) -> None:
    """Train every member of a sweep as a normal run in one directory, then a table and the overlay plot; a
    failing member does not stop the others, and running it again skips finished members."""
    from nnctl import tables
    from nnctl.config import apply_overrides
    from nnctl.sweep import Sweep

    out.quiet = quiet  # the plan, a line per member, the table and the plots' names; what failed goes to stderr
    _check_sweep_options(jobs, engine, metric, address)
    sweep = Sweep(sweep_file, runs_dir)
    engine = engine or ("ray" if address else sweep.spec.engine)
    sweep.check_engine(engine)
    if device:  # the base too: a tpe search draws its members from it later
        for config in [sweep.base, *(member.config for member in sweep.members)]:
            apply_overrides(config, [f"device={device}"])
    sweep.check_configs()
    with sweep.lock():
        todo = sweep.plan()
        _describe_plan(sweep, todo, engine, jobs)
        outcomes = _run_sweep(sweep, todo, engine, address or sweep.spec.address, jobs)
        metric = _sweep_metric(outcomes, metric or sweep.metric)
        out.print(tables.sweep_table(sweep, outcomes, metric))
        _sweep_plots(sweep, outcomes, metric)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        err.print(f"{len(failed)} of {_members(len(outcomes))} failed: {', '.join(o.member.label for o in failed)}")
        raise typer.Exit(1)


def _check_sweep_options(jobs: int | None, engine: str | None, metric: str | None, address: str | None) -> None:
    """ConfigError for a value of --jobs, --engine, --metric or --address that no sweep could take."""
    from nnctl.sweep import check_address

    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if engine not in (None, "local", "ray"):
        raise ConfigError(f"--engine must be local or ray, not '{engine}'")
    check_metric(metric or "loss")
    try:
        check_address(address)
    except ValueError as exc:  # its message starts with its key, as a sweep file's line reads it: "address ..."
        raise ConfigError(f"--{exc}") from None


def _describe_plan(sweep: Sweep, todo: list[Member], engine: str, jobs: int | None) -> None:
    """One line: how many members the sweep has, how many are done, and where the rest will run."""
    if sweep.search.type == "tpe":
        from nnctl.sweep import ray_engine

        done = len(ray_engine.done_runs(sweep))
        out.print(f"sweep {sweep.name}: a tpe search of {_members(sweep.search.samples or 0)}, {done} already done, "
                  f"{max(0, (sweep.search.samples or 0) - done)} to run on Ray in {sweep.dir}")
    else:
        where = "on Ray" if engine == "ray" else f"with {jobs or sweep.spec.max_concurrent or 1} job(s)"
        out.print(f"sweep {sweep.name}: {_members(len(sweep.members))}, {len(sweep.members) - len(todo)} already "
                  f"done, {len(todo)} to run {where} in {sweep.dir}{_short_draws(sweep)}")


def _members(count: int) -> str:
    """'1 member', '6 members'."""
    return f"{count:,} member{'s' if count != 1 else ''}"


def _short_draws(sweep: Sweep) -> str:
    """'; 2 of the 6 samples would repeat a member and are left out', for a random search with fewer members."""
    asked = (sweep.search.samples or 0) * len(sweep.spec.members) if sweep.search.type == "random" else 0
    short = asked - len(sweep.members)
    return f"; {short:,} of the {asked:,} samples would repeat a member and are left out" if short > 0 else ""


def _run_sweep(sweep: Sweep, todo: list[Member], engine: str, address: str | None,
               jobs: int | None) -> list[Outcome]:
    """Runs `todo` on the engine, a line per member as it ends; every member's outcome. Ctrl-C: exit 130."""
    def say_outcome(outcome: Outcome) -> None:
        where = f" ({outcome.run.path})" if outcome.run else ""
        out.print(f"  {outcome.member.label}: {outcome.status}{where}"
                  + (f": {outcome.error}" if outcome.error else ""))
        if stdout_closed():  # `nnctl sweep ... | head` has read enough: the sweep stops as at Ctrl-C
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (`cmd &`)
    try:
        if engine == "ray":
            from nnctl.sweep import ray_engine

            return ray_engine.run(sweep, todo, address, jobs, say_outcome, out.print)
        return sweep.run(todo, jobs or sweep.spec.max_concurrent or 1, say_outcome)
    except KeyboardInterrupt:
        # Tune stops a member once it reports an epoch, unless Ctrl-C reached its worker (on this machine) first
        stop = "by the end of their current epoch and resume from the last one they finished" if engine == "ray" \
            else "after their current step"
        err.print(f"{why_stopped()}sweep interrupted; members stop {stop}. Run the sweep again to resume them.")
        raise typer.Exit(stopped_status()) from None


def _sweep_metric(outcomes: list[Outcome], metric: str) -> str:
    """The metric of the sweep's table and plots as `plot --metric` takes it (val_loss is loss); NnctlError when
    no member that trained records it."""
    from nnctl import plot as plots

    runs = [o.run for o in outcomes if o.run is not None and o.run.history]
    return plots.recorded_metric(runs, metric)


def _sweep_plots(sweep: Sweep, outcomes: list[Outcome], metric: str) -> None:
    from nnctl import plot as plots
    from nnctl.sweep import by_value

    runs = [o.run for o in outcomes if o.run is not None and o.run.epochs()]
    if not runs:
        return
    try:  # the plots come after the members' report: a sweep whose members all diverged still ends with it
        plots.pyplot()
        out.print(f"wrote {plots.curves(runs, metric, sweep.dir / 'curves.png')}")
        shown = f"val_{metric}" if any(f"val_{metric}" in run.epochs()[-1] for run in runs) else metric
        for key, groups in by_value(outcomes, metric).items():
            name = "by_" + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_") + ".png"
            out.print(f"wrote {plots.by_value(groups, key, shown, sweep.dir / name, f'{sweep.name}: final {shown}')}")
    except NnctlError as exc:
        err.print(f"no plots: {exc}")
