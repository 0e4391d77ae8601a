"""On the driver: Tune's trial events as the sweep's member outcomes (a member ASHA stopped marked
early_stopped, a lost worker said), and the runs left running after a Ctrl-C marked stopped."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnctl.run_files import write_summary
from nnctl.runs import Run, find_runs, load_run
from nnctl.sweep.members import Outcome
from nnctl.sweep.ray_params import member_of_params
from nnctl.sweep.ray_tune import tune
from nnctl.sweep.sweep import Sweep


class Members(tune.Callback):
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
        label = member_of_params(self.sweep, trial.config).label
        self.say(f"  {label}: its worker was lost ({cause(trial)}); restarting it "
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
                f"time by {cause(trial)}"
        if run is not None:
            run = _mark(run, "failed", error)
        self._end(trial, "failed", run, error)

    def _run(self, trial: Any) -> Run | None:
        path = self.run_dirs.get(trial.trial_id) or (trial.last_result or {}).get("run_dir")
        return load_run(path) if path and Path(path, "summary.json").is_file() else None

    def _end(self, trial: Any, status: str, run: Run | None, error: str | None) -> None:
        self.ended += 1
        member = member_of_params(self.sweep, trial.config)
        key = str(run.path) if run and self.sweep.search.type == "tpe" else member.label
        self.outcomes[key] = Outcome(member, status, run, error)
        self.report(self.outcomes[key])

    def stop_the_rest(self) -> None:
        """After Ctrl-C: the sweep's runs still marked running are stopped (their last.pkl resumes them); found
        on disk, as a member may not have reported its first epoch yet."""
        for run in find_runs(self.sweep.dir):
            if run.summary.get("status") in ("running", "crashed"):
                _mark(run, "stopped", "the sweep was interrupted; run it again to resume from last.pkl")


def cause(trial: Any) -> str:
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
