"""`nnctl runs` (list, show, diff) and `nnctl plot`: runs read back and drawn."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from nnctl.cli.group import Command, app
from nnctl.cli.options import (
    SPLITS,
    YAML,
    AsJson,
    Force,
    RunsDir,
    at_least,
    check_metric,
    check_split,
    fresh_output,
    located,
    offering,
)
from nnctl.cli.printing import out, print_json
from nnctl.cli.train import experiment_of
from nnctl.errors import ConfigError

if TYPE_CHECKING:
    from nnctl.experiment import Experiment
    from nnctl.model import Model
    from nnctl.runs import Run
    from nnctl.trained import Trained


class _ListByDefault(TyperGroup):
    """`nnctl runs`, `nnctl runs DIR` and `nnctl runs --json` mean `nnctl runs list ...`: a word that is no
    sub-command is a folder (unless it reads as a mistyped one), and an option other than -h is list's; but
    `nnctl runs <TAB>` completes the sub-commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        completing = ctx.resilient_parsing and not args
        if not completing and (not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names
                                            and not _mistyped(args[0], self.commands))):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _mistyped(word: str, commands: Iterable[str]) -> bool:
    """Whether `word` is a sub-command mistyped (`runs lst`): close to one, and no path that exists."""
    return not os.path.lexists(word) and bool(difflib.get_close_matches(word, list(commands)))


runs_app = typer.Typer(cls=_ListByDefault, help="List, show and compare runs (plain `nnctl runs` lists runs/).",
                       rich_markup_mode=None)
app.add_typer(runs_app, name="runs")


@runs_app.command("list", cls=Command)
def runs_list(
    root: Annotated[Path | None, typer.Argument(metavar="DIR", help="A folder of runs, such as a sweep's, or a run; "
                                                "where no such path exists here, looked for under --runs-dir as a "
                                                "RUN is.", show_default="--runs-dir")] = None,
    as_json: AsJson = False,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help="The folder of runs, as train and sweep "
                                           "take it: listed without DIR, and where DIR is looked for.")] = Path("runs"),
) -> None:
    """A table of the runs under DIR (default runs/, sweeps' members included)."""
    from nnctl import tables
    from nnctl.runs import find_run, find_runs

    root = runs_dir if root is None else find_run(root, runs_dir)
    runs = find_runs(root)
    if as_json:
        print_json([run.record() for run in runs])
        return
    if not runs:
        out.print(f"no runs under {root}")
        return
    out.print(tables.runs_table(runs, root))
    _damage(runs)


@runs_app.command("show", cls=Command)
def runs_show(run: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory or one of its checkpoints.")],
              as_json: AsJson = False, runs_dir: RunsDir = Path("runs")) -> None:
    """One run's summary, final and test metrics, and its per-epoch rows."""
    from nnctl import tables
    from nnctl.runs import load_run

    shown = load_run(located(run, runs_dir))
    if as_json:
        print_json(shown.record(history=True))
        return
    for table in tables.run_tables(shown):
        out.print(table)
    _damage([shown])


@runs_app.command("diff", cls=Command)
def runs_diff(runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="Two run directories (or their "
                                                         "checkpoints).")],
              as_json: AsJson = False, runs_dir: RunsDir = Path("runs")) -> None:
    """The config keys that differ between two runs, and their results side by side."""
    from nnctl import tables
    from nnctl.runs import diff_record, load_run

    if len(runs) != 2:
        raise ConfigError(f"expected two runs, got {len(runs)}: nnctl runs diff RUN RUN")
    pair = load_run(located(runs[0], runs_dir)), load_run(located(runs[1], runs_dir))
    if as_json:
        print_json({**diff_record(*pair), "damage": [run.damage for run in pair]})
        return
    for table in tables.diff_tables(*pair):
        out.print(table)
    _damage(pair)


def _damage(runs: Iterable[Run]) -> None:
    """Names what could not be read of each damaged run shown."""
    for run in runs:
        if run.damage:
            out.print(f"{run.path} is damaged, shown without: {'; '.join(run.damage)}")


@app.command("plot", cls=Command)
def plot_command(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="Run directories, folders of runs (a sweep) "
                                               "or checkpoints; a config for --activations at initialization.")],
    metric: Annotated[str, typer.Option("--metric", help="The metric of the learning curves.")] = "loss",
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="The PNG to write.",
                                                show_default="<kind>.png in the one folder given, else here")] = None,
    confusion: Annotated[bool, typer.Option("--confusion", help="The confusion matrix of the run's model.")] = False,
    filters: Annotated[bool, typer.Option("--filters", help="The first conv layer's filters as images.")] = False,
    activations: Annotated[bool, typer.Option("--activations", help="A histogram of each layer's outputs for a "
                                              "batch.")] = False,
    split: Annotated[str, typer.Option("--split", help="The split for --confusion and --activations.",
                                       autocompletion=offering(*SPLITS))] = "test",
    samples: Annotated[int, typer.Option("--samples", help="The batch size for --activations.")] = 1000,
    smooth: Annotated[float, typer.Option("--smooth", help="Smoothing of per-step curves, 0 to 0.999.")] = 0.9,
    force: Force = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Learning curves of runs overlaid (per epoch, and per step smoothed), or a confusion matrix, filters or
    activation histograms of one run, as a PNG (needs matplotlib: pip install 'nnctl[plot]')."""
    from nnctl import plot as plots
    from nnctl.runs import expand

    kinds = [k for k, on in (("confusion", confusion), ("filters", filters), ("activations", activations)) if on]
    if len(kinds) > 1:
        raise ConfigError(f"give one of --confusion, --filters and --activations, not {' and '.join(kinds)}")
    check_split(split)
    check_metric(metric)
    if not 0 <= smooth < 1:
        raise ConfigError(f"--smooth must be in [0, 1), got {smooth}")
    at_least("--samples", samples, 1)
    kind = kinds[0] if kinds else "curves"
    runs = [located(run, runs_dir) for run in runs]
    plots.pyplot()
    if kind != "curves" and len(runs) != 1:
        raise ConfigError(f"--{kind} shows one run; got {len(runs)}")
    default_dir = runs[0] if len(runs) == 1 and runs[0].is_dir() else Path(".")
    path = output or default_dir / f"{kind}.png"
    plots.check_output(path)
    fresh_output(path, runs, force)
    if kind == "curves":
        written = plots.curves(expand(runs), metric, path, smooth)
    elif kind == "filters":
        model, title = _model(runs[0])
        written = plots.filters(model, path, title)
    else:
        exp, title = _experiment(runs[0])
        written = (plots.confusion(exp, split, path, title) if kind == "confusion"
                   else plots.activations(exp, split, samples, path, title))
    out.print(f"wrote {written}")


def _experiment(path: Path) -> tuple[Experiment, str]:
    """The experiment of a run (its best.pkl, else last.pkl), of a checkpoint, or of a config at initialization."""
    if path.suffix in YAML:
        return experiment_of(path, []), f"{path.name} (initial weights)"
    trained, title = _trained(path)
    return trained.experiment(), title


def _model(path: Path) -> tuple[Model, str]:
    """The model of a run, a checkpoint or a config, as _experiment's, without reading the data."""
    from nnctl.config import load_config
    from nnctl.experiment import initial_model

    if path.suffix in YAML:
        return initial_model(load_config(path, [])), f"{path.name} (initial weights)"
    trained, title = _trained(path)
    return trained.model, title


def _trained(path: Path) -> tuple[Trained, str]:
    """A checkpoint's trained model, or a run's (its best.pkl, else last.pkl), and its title."""
    from nnctl.files import real_path
    from nnctl.runs import load_run
    from nnctl.trained import Trained

    if path.suffix == ".pkl":
        return Trained.load(path), f"{path.parent.parent.name}/{path.name}"
    return Trained.load(load_run(path).checkpoint), real_path(path).name
