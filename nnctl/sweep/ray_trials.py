"""A sweep's member as a Tune trial, in a Ray worker: its run started, resumed or restored from the trial's
checkpoint, each epoch reported to Tune with last.pkl as the checkpoint, an error as the last report."""

import shutil
import tempfile
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError, TrainingError, quiet_arithmetic
from nnctl.outputs import replacing
from nnctl.runner import Runner
from nnctl.runs import is_run, load_run, row_values
from nnctl.sweep.members import Member
from nnctl.sweep.ray_params import member_of_params
from nnctl.sweep.ray_tune import tune
from nnctl.sweep.sweep import Sweep


def watched(sweep: Sweep) -> list[tuple[tuple[str, ...], str]]:
    """The metrics Tune reads from each report, with their place in the sweep file: TPE's and ASHA's."""
    search = [(("search", "metric"), sweep.search.metric)] if sweep.search.type == "tpe" else []
    return search + ([(("scheduler", "metric"), sweep.scheduler.metric)] if sweep.scheduler else [])


def train_member(params: dict[str, Any], sweep: Sweep) -> None:
    """One trial (in a Ray worker): the member's run, started, resumed from a stopped earlier run of the sweep,
    or restored from the trial's checkpoint after its worker died; each epoch is reported to Tune."""
    quiet_arithmetic()
    member = member_of_params(sweep, params)
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
    missing = [metric for _, metric in watched(sweep) if metric.removeprefix("val_") not in row]
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
