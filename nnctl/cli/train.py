"""The commands on a config and its data: train, eval (a run's model on its data), gradcheck, check, summary,
config and schema."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nnctl.cli.group import Command, app
from nnctl.cli.options import (
    CHECKPOINT_HELP,
    ON_CPU,
    SPLITS,
    YAML,
    AsJson,
    CommandDevice,
    Overrides,
    Quiet,
    RunDevice,
    RunsDir,
    at_least,
    check_split,
    device_overrides,
    located,
    offering,
)
from nnctl.cli.printing import err, out, print_json, stdout_is_utf
from nnctl.cli.signals import stopped_status
from nnctl.errors import ConfigError

if TYPE_CHECKING:
    from nnctl.experiment import Experiment
    from nnctl.gradcheck import Check
    from nnctl.runner import Runner


SHOWN_CLASSES = 20
"""The most classes whose confusion matrix eval prints as a table (more columns do not fit a terminal)."""


def experiment_of(config: Path, overrides: list[str] | None) -> Experiment:
    from nnctl.config import load_config
    from nnctl.experiment import build

    return build(load_config(config, overrides or []))


@app.command(cls=Command)
def train(
    config: Annotated[str | None, typer.Argument(metavar="CONFIG", help="The YAML config to train.",
                                                 show_default=False)] = None,
    overrides: Overrides = None,
    resume: Annotated[Path | None, typer.Option("--resume", metavar="RUN", help="Continue from a checkpoint of a "
                                                "run, or from a run directory's last.pkl.", show_default=False)] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help="Where new run directories are made "
                                           "(also when resuming from a checkpoint other than a run's last.pkl), and "
                                           "where --resume and --init-from look for a run given by name.")] = Path(
        "runs"),
    quiet: Quiet = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard event files into the "
                                              "run directory (train.tensorboard=true).")] = False,
    init_from: Annotated[Path | None, typer.Option("--init-from", metavar="CHECKPOINT", help="Start a new run of "
                                                   "CONFIG from this checkpoint's weights (a run directory: its "
                                                   "best.pkl, else last.pkl); everything else starts fresh.",
                                                   show_default=False)] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow", help="Also track the run in MLflow (train.tracking=mlflow): "
                                         "MLFLOW_TRACKING_URI, else <runs-dir>/mlflow.db.")] = False,
    device: RunDevice = None,
) -> None:
    """Train the model a config describes; writes runs/<name>-<time>/ (config, metrics, checkpoints, summary)."""
    overrides = [*(overrides or []), *(["train.tensorboard=true"] if tensorboard else []),
                 *(["train.tracking=mlflow"] if mlflow else []), *device_overrides(device)]
    runner = _runner(config, overrides, resume, init_from, runs_dir, quiet)
    if not quiet:
        out.print(f"run directory: {runner.run_dir}")
    summary = _fit(runner)
    if summary["status"] == "stopped":
        raise typer.Exit(stopped_status())
    if not quiet:
        epochs = summary["epochs"]
        out.print(f"{summary['status']} after {epochs} epoch{'s' * (epochs != 1)} in {summary['wall_time_s']:.1f} s; "
                  f"checkpoints in {runner.checkpoints.folder}")


def _runner(config: str | None, overrides: list[str], resume: Path | None, init_from: Path | None, runs_dir: Path,
            quiet: bool) -> Runner:
    """The run `nnctl train` asks for: a resumed one (--resume), else a new one of CONFIG, from --init-from's
    weights when given; ConfigError for a combination of the three that says neither."""
    from nnctl.config import load_config, paths_from_cwd
    from nnctl.runner import Runner
    from nnctl.runs import checkpoint_of

    if init_from is not None and (resume is not None or config is None):
        raise ConfigError("--init-from starts a new run of a config: nnctl train CONFIG --init-from CHECKPOINT "
                          "(use --resume alone to continue a run)")
    if resume is not None and config is not None and "=" not in config:
        raise ConfigError(f"--resume continues the run with its own config, so drop {config}; to start a new run of "
                          f"it from the run's weights, use: nnctl train {config} --init-from {resume}")
    if resume is not None:
        extra = paths_from_cwd([config], Path.cwd()) if config is not None else []  # with --resume: the first override
        return Runner.resume(checkpoint_of(located(resume, runs_dir), last=True), extra + overrides, runs_dir, quiet)
    if config is None:
        raise ConfigError("give a config to train (nnctl train configs/mnist_mlp.yaml) or --resume CHECKPOINT")
    weights = None if init_from is None else checkpoint_of(located(init_from, runs_dir))
    return Runner.start(load_config(Path(config), overrides), runs_dir, quiet, weights)


def _fit(runner: Runner) -> dict[str, Any]:
    """The run's summary once it ends; at a second Ctrl-C, the checkpoint to resume from and exit status 130."""
    try:
        return runner.fit()
    except KeyboardInterrupt:  # a second Ctrl-C: the step was cut short, so last.pkl is the last epoch's end
        last = runner.checkpoints.last
        if last.exists():
            err.print("interrupted at once; resume from the end of the last finished epoch with: nnctl train "
                      f"--resume {shlex.quote(str(last))}")
        else:
            err.print("interrupted at once; no epoch had finished, so there is nothing to resume")
        raise typer.Exit(130) from None


@app.command("eval", cls=Command)
def evaluate_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=f"{CHECKPOINT_HELP}, or a config "
                                                    "(.yaml) whose model.weights names exported weights.")],
    overrides: Overrides = None,
    split: Annotated[str, typer.Option("--split", help="Which split to evaluate: test, val or train.",
                                       autocompletion=offering(*SPLITS))] = "test",
    as_json: AsJson = False,
    device: CommandDevice = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Evaluate a checkpoint: loss, accuracy, error rate, the confusion matrix and per-class precision, recall
    and F1."""
    import numpy as np

    from nnctl import tables
    from nnctl.experiment import report
    from nnctl.runs import checkpoint_of
    from nnctl.trained import Trained, trained_experiment

    check_split(split)
    overrides = [ON_CPU, *(overrides or []), *device_overrides(device)]
    checkpoint_path = checkpoint_of(located(checkpoint_path, runs_dir))
    exp = (trained_experiment(checkpoint_path, overrides) if checkpoint_path.suffix in YAML
           else Trained.load(checkpoint_path).experiment(overrides))
    for line in [*exp.source.notes, *(f"warning: {warning}" for warning in exp.source.warnings)]:
        err.print(line)  # as train says them, beside the results (stdout, a --json reader's)
    result = {"checkpoint": str(checkpoint_path), **report(exp, split)}
    if as_json:
        print_json(result)
        return
    out.print(tables.eval_table(result, f"{checkpoint_path} on {split}"))
    if "confusion_matrix" in result:
        counts = np.array(result["confusion_matrix"])
        if len(counts) <= SHOWN_CLASSES:
            out.print(tables.confusion_table(counts, result["classes"]))
        else:
            out.print(f"confusion matrix: {len(counts)} classes, too many columns to read here; --json holds it")
        out.print(tables.per_class_table(result["per_class"]))


@app.command(cls=Command)
def gradcheck(
    config: Annotated[Path | None, typer.Argument(metavar="CONFIG", help="Check the model this config builds, on a "
                                                    "few real samples; without it, every registered layer and loss.",
                                         show_default=False)] = None,
    overrides: Overrides = None,
    eps: Annotated[float, typer.Option("--eps", help="Central-difference step.", show_default="1e-6")] = 1e-6,
    tol: Annotated[float, typer.Option("--tol", help="Largest relative error that passes.",
                                       show_default="1e-6")] = 1e-6,
    layer: Annotated[str | None, typer.Option("--layer", help="Check only this registered layer or loss; with a "
                                              "config, the model's layers of this name or type.",
                                     show_default=False)] = None,
    samples: Annotated[int, typer.Option("--samples", help="Training samples used with a config.")] = 8,
    per_tensor: Annotated[int, typer.Option("--per-tensor", help="Entries of each tensor checked with a config.")] = 20,
    device: CommandDevice = None,
    as_json: AsJson = False,
) -> None:
    """Compare analytic gradients with central differences in float64; exits 1 if any check fails."""
    from nnctl import tables
    from nnctl.gradcheck import check_model, check_registry
    from nnctl.layers import LAYERS
    from nnctl.losses import LOSSES

    at_least("--eps", eps, 0, above=True)
    at_least("--tol", tol, 0, above=True)
    at_least("--samples", samples, 1)
    at_least("--per-tensor", per_tensor, 1)
    if config is not None:
        exp = experiment_of(config, [ON_CPU, *(overrides or []), "dtype=float64", *device_overrides(device)])
        checks = check_model(exp, samples, per_tensor, eps, tol, layer=layer)
    else:
        if layer is not None and layer not in LAYERS and layer not in LOSSES:
            LAYERS.get(layer)  # raises with the known names and a suggestion
        checks = check_registry(layer, eps, tol, device or "cpu")
    failed = [c for c in checks if not c.passed]
    if as_json:
        print_json({"passed": not failed, "eps": eps, "tolerance": tol,
                     "checks": [dataclasses.asdict(c) for c in checks]})
    else:
        out.print(tables.checks_table(checks))
    if failed:
        err.print(f"{len(failed)} of {len(checks)} checks failed (tolerance {tol:g})")
        raise typer.Exit(1)
    if not as_json:
        out.print(_passed(checks, tol))


def _passed(checks: list[Check], tol: float) -> str:
    """The line under a gradcheck that passed: how many checks compared, and how many a perceptron rule kept
    from comparing."""
    ruled = sum(c.kind == "surrogate" for c in checks)
    if ruled == len(checks):
        return "nothing compared: every gradient passes through a step's perceptron rule"
    rest = f"; {ruled} not compared (behind a step's perceptron rule)" if ruled else ""
    return f"all {len(checks) - ruled} checks passed (tolerance {tol:g}){rest}"


@app.command(cls=Command)
def check(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The YAML config to check before training it.")],
    overrides: Overrides = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="How many training samples to overfit.")] = 20,
    steps: Annotated[int, typer.Option("--steps", min=1, help="The most steps allowed to overfit them.")] = 1000,
    seconds: Annotated[float, typer.Option("--seconds", min=0, help="The most time allowed to overfit them, and "
                                           "for the timed passes.")] = 60,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed passes per layer (as many as fit in "
                                         "--seconds).")] = 5,
    device: RunDevice = None,
    as_json: AsJson = False,
) -> None:
    """Pre-flight: one batch forward and backward, the initial loss against its expected value, dead or
    saturated units at init, overfitting a few samples, and each layer's forward and backward time; exit 1
    with the reasons where something is wrong."""
    from nnctl import tables
    from nnctl.check import batch, preflight, time_layers
    from nnctl.experiment import check_trains

    exp = experiment_of(config, [*(overrides or []), *device_overrides(device)])
    check_trains(exp)
    timings = time_layers(exp, repeats, seconds)
    findings = preflight(exp, samples, steps, seconds)
    failed = [f for f in findings if not f.passed]
    if as_json:
        print_json({"passed": not failed, "batch_size": len(batch(exp)[0]),
                     "findings": [dataclasses.asdict(f) for f in findings],
                     "timings": [dataclasses.asdict(t) for t in timings]})
    else:
        out.print(tables.findings_table(findings))
        out.print(tables.timing_table(timings, len(batch(exp)[0])))
    if failed:
        err.print("\n".join(f"check failed: {f.check}: {f.detail}" for f in failed))
        raise typer.Exit(1)
    if as_json:
        return
    unsure = sum(f.inconclusive for f in findings)
    out.print(f"all {len(findings)} checks passed" + (f", {unsure} of them inconclusive" if unsure else ""))


@app.command(cls=Command)
def summary(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The YAML config whose model to describe.")],
    overrides: Overrides = None,
    as_json: AsJson = False,
) -> None:
    """Layers, output shapes and parameter counts of the model a config builds."""
    from nnctl import tables
    from nnctl.config import load_config
    from nnctl.experiment import initial_model
    from nnctl.weights import load_into

    parsed = load_config(config, overrides or [])
    model = initial_model(parsed)
    loaded = load_into(model, parsed)
    if as_json:
        print_json({"name": parsed.data["name"], "input_shape": list(model.input_shape),
                     "layers": tables.model_rows(model), "trainable_parameters": model.num_params,
                     "frozen_parameters": model.num_frozen})
        return
    out.print(tables.model_table(model, parsed.data["name"]))
    out.print(f"total parameters: {model.num_params + model.num_frozen:,} (trainable {model.num_params:,}, "
              f"frozen {model.num_frozen:,})")
    if loaded:
        out.print(loaded.describe())


@app.command("config", cls=Command)
def config_command(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The YAML config to resolve.")],
    overrides: Overrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the config as JSON instead of YAML.")] = False,
) -> None:
    """Print the fully resolved config as YAML: its base chain merged, overrides applied, every default filled in."""
    from nnctl.config import absolute_paths, load_config
    from nnctl.sections import resolved
    from nnctl.yaml_loader import dump_yaml

    parsed = load_config(config, overrides or [])
    full = absolute_paths(resolved(parsed), parsed.base_dir)
    if as_json:
        print_json(full)
        return
    # escaped as YAML does where stdout is not UTF: a \x escape would change a path
    text = dump_yaml(full, allow_unicode=stdout_is_utf())
    out.print(f"# resolved from {config}; its relative paths (data files, model.weights) written out absolute\n"
              + text, end="")


@app.command("schema", cls=Command)
def schema_command() -> None:
    """Print the JSON Schema of configs, generated from the signatures the validator reads; for editors:
    nnctl schema > nnctl.schema.json, then `# yaml-language-server: $schema=nnctl.schema.json` in a config."""
    from nnctl.jsonschema import config_schema

    print_json(config_schema())
