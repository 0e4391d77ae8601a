"""The `nnctl` command line: parses arguments, calls the library, renders results."""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import json
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from nnctl import __version__, threads
from nnctl.console import PlainConsole, note_terminated, prepare_stdout, stdout_closed, terminated, why_stopped
from nnctl.errors import ConfigError, NnctlError, quiet_arithmetic
from nnctl.limits import memory_limit
from nnctl.outputs import REFUSALS, check_folder, check_target, refusal

if TYPE_CHECKING:
    from nnctl.experiment import Experiment
    from nnctl.gradcheck import Check
    from nnctl.model import Model
    from nnctl.runner import Runner
    from nnctl.runs import Run
    from nnctl.sweep import Member, Outcome, Sweep
    from nnctl.trained import Trained

# Each command imports the modules it needs itself: `nnctl --help` or `nnctl runs list` need not load the layers,
# the data sets and the kernels (about half of the start-up time).

class _Nnctl(TyperGroup):
    """The nnctl command. Its --debug every command takes too (`nnctl train c.yaml --debug` as well as `nnctl --debug
    train c.yaml`); where it runs under a name of more words than one (`python -m nnctl`), its --install-completion
    and --show-completion refuse: a shell completes a command by its first word (python)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _add_option(next(param for param in self.params if param.name == "debug"), self.commands.values())

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if " " in (ctx.info_name or ""):
            for param in self.params:
                if param.name in ("install_completion", "show_completion"):
                    param.callback = _refuse_completion
        return super().parse_args(ctx, args)


def _add_option(option: Any, commands: Iterable[Any]) -> None:
    """Gives `option` (one that passes no value to the function) to `commands` and to their sub-commands."""
    for command in commands:
        command.params.append(option)
        _add_option(option, getattr(command, "commands", {}).values())


def _refuse_completion(ctx: Any, param: Any, value: Any) -> Any:
    """A completion option's callback under `python -m nnctl`: a ConfigError pointing at the nnctl command."""
    if value and not ctx.resilient_parsing:
        option = param.opts[0]
        raise ConfigError(f"{option}: tab completion completes the nnctl command, not python -m nnctl (a shell "
                          f"completes that as python); run: nnctl {option}")
    return value


class _Command(TyperCommand):
    """A command whose help reads as click's: `CHECKPOINT INPUT...` in its usage line (not typer's `{CHECKPOINT}`),
    arguments listed by name and options by a word for their value (not `<list[Path]>`), and a default described in
    words as `[default: the config's device]` (not click's `(the config's device)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument | TyperOption) and isinstance(param.show_default, str):
                param.help = f"{param.help}  [default: {param.show_default}]"
                param.show_default = False
            if isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
                param.metavar = max(param.opts, key=len).lstrip("-").replace("-", "_").upper()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        arguments = [param for param in self.get_params(ctx) if param.param_type_name == "argument"]
        return [*filter(None, [self.options_metavar]), *(_argument_usage(param) for param in arguments)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and param.param_type_name in sections:
                name = _argument_usage(param, brackets=False) if param.param_type_name == "argument" else record[0]
                sections[param.param_type_name].append((name, record[1]))
        for title, records in zip(("Arguments", "Options"), sections.values(), strict=True):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def _argument_usage(param: Any, brackets: bool = True) -> str:
    """An argument as a usage line names it: 'CHECKPOINT', 'INPUT...', '[CONFIG]' where it may be left out (without
    `brackets`, as the list of arguments names it)."""
    name = param.metavar or param.name.upper()
    return (f"[{name}]" if brackets and not param.required else name) + ("..." if param.nargs != 1 else "")


app = typer.Typer(cls=_Nnctl, help="Train neural networks written in plain NumPy from YAML files.",
                  no_args_is_help=True,
                  add_completion=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})  # inherited by every command
# piped output is read whole: tables as wide as their cells (rich would cut them at 80 columns, or COLUMNS)
_WIDTH = None if sys.stdout is None or sys.stdout.isatty() else 4096
out = PlainConsole(width=_WIDTH)
err = PlainConsole(stderr=True, width=_WIDTH)
DEBUG = bool(os.environ.get("NNCTL_DEBUG"))
CLOSED = 141
"""The exit status of a command stopped because its stdout was closed: a shell's for death by SIGPIPE."""
TERMINATED = 143
"""The exit status of a command a SIGTERM stopped: a shell's for death by it."""


def _stopped_status() -> int:
    """The exit status of a command stopped before its end: 141 where stdout's closing stopped it, 143 where a
    SIGTERM did, 130 (Ctrl-C)."""
    return CLOSED if stdout_closed() else TERMINATED if terminated() else 130

OVERRIDES_HELP = "Dotted KEY=VALUE overrides of the config, such as optimizer.lr=3e-4 train.epochs=2."
CHECKPOINT_HELP = "A checkpoint written by a run, or its run directory (best.pkl, else last.pkl)"
SHOWN_CLASSES = 20
"""The most classes whose confusion matrix eval prints as a table (more columns do not fit a terminal)."""
MAX_SAMPLE_LENGTH = 1_000_000
"""The most tokens `nnctl sample` generates in one call."""
YAML = (".yaml", ".yml")
"""The suffixes of a config, where a command takes a config or a checkpoint."""
DEVICE_HELP = "Where to compute: cpu, cuda or cuda:N (an NVIDIA GPU through CuPy: pip install 'nnctl[gpu]')."


SPLITS = ("test", "val", "train")
DEVICES = ("cpu", "cuda")
"""The devices tab completion offers (cuda:N too is taken)."""


def _offering(*choices: str) -> Callable[[str], list[str]]:
    """Tab completion of an option's value from `choices`; the command checks the value, with its own message."""
    def complete(incomplete: str) -> list[str]:
        return [choice for choice in choices if choice.startswith(incomplete)]
    return complete


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"--split must be test, val or train, not '{split}'")


def _check_metric(metric: str) -> None:
    """ConfigError naming --metric when it names no metric a run can record."""
    from nnctl.metrics import check_metric_name

    try:
        check_metric_name(metric)
    except ValueError as exc:
        raise ConfigError(f"--metric: {exc}") from None


def _device_option(value: str | None) -> str | None:
    """--device as given, refused by its own name (not as the override it becomes) when it names no device."""
    from nnctl import backend

    if value is not None:
        try:
            backend.parse_device(value)
        except ValueError as exc:
            raise ConfigError(f"--device: {exc}") from None
    return value


def _cwd_overrides(overrides: list[str] | None) -> list[str] | None:
    """Overrides as typed: a relative path in one starts from the current folder, not the config's."""
    from nnctl.config import paths_from_cwd

    return None if overrides is None else paths_from_cwd(overrides, Path.cwd())


Overrides = Annotated[list[str] | None, typer.Argument(metavar="KEY=VALUE", help=OVERRIDES_HELP, show_default=False,
                                                       callback=_cwd_overrides)]
Device = Annotated[str, typer.Option("--device", help=DEVICE_HELP, callback=_device_option,
                                     autocompletion=_offering(*DEVICES))]
Force = Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of tables.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
RunDevice = Annotated[str | None, typer.Option("--device", help=DEVICE_HELP, show_default="the config's device",
                                               callback=_device_option,
                                               autocompletion=_offering(*DEVICES))]
CommandDevice = Annotated[str | None, typer.Option("--device", help=DEVICE_HELP, show_default="cpu, or a device= "
                                                   "override (never the config's or checkpoint's device)",
                                                   callback=_device_option, autocompletion=_offering(*DEVICES))]
RUNS_DIR_HELP = ("Where to look for a RUN or CHECKPOINT given by name when no such path exists here: DIR/NAME, or "
                 "the one folder there whose name starts with NAME.")
RunsDir = Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help=RUNS_DIR_HELP)]
ON_CPU = "device=cpu"
"""The device of eval and gradcheck unless their command line names one (an override after it, or --device)."""


def _located(path: Path, runs_dir: Path) -> Path:
    """A RUN or CHECKPOINT argument as a path: as given where it exists, else found under --runs-dir (see
    runs.find_run); a config (.yaml) is a config wherever it is, taken as given."""
    from nnctl.runs import find_run

    return path if path.suffix in YAML else find_run(path, runs_dir)


def _device_overrides(device: str | None) -> list[str]:
    """The override --device stands for; none without it, so the config's device (or an override's) holds."""
    return [f"device={device}"] if device else []


def _print_json(data: Any) -> None:
    """`data` as JSON on stdout, each NaN or infinity as null: JSON has no such numbers, and strict readers
    (JavaScript's JSON.parse, Go's encoding/json) refuse the NaN that Python writes. On a stdout that is not
    UTF (cp1252, ascii) other characters are \\u escapes, not the \\x ones JSON has none of."""
    out.out(json.dumps(_finite(data), allow_nan=False, indent=2, ensure_ascii=not _stdout_is_utf()), highlight=False)


def _stdout_is_utf() -> bool:
    """Whether stdout encodes every character; where not, what it lacks prints as a \\x escape (see main)."""
    return codecs.lookup(out.encoding).name.startswith("utf")


def _finite(value: Any) -> Any:
    """`value` with every float in it that is NaN or infinite replaced by None, through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _version(value: bool) -> None:
    from nnctl import backend, kernels

    if value:
        out.print(f"nnctl {__version__}\n{kernels.describe()}\n{threads.describe()}")
        for key, text in backend.describe().items():
            out.print(f"{key}: {text}")
        raise typer.Exit()


def _debug(ctx: Any, param: Any, value: bool) -> None:
    """--debug, before the command or after it: the traceback of an unexpected error, and NumPy's warnings."""
    global DEBUG
    if value:
        DEBUG = True
        quiet_arithmetic(False)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", callback=_debug, expose_value=False, is_eager=True,
                                     help="Show the full traceback of unexpected errors, and NumPy's warnings "
                                     "(overflow, NaN) in nnctl's arithmetic."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """The options before the command: --debug (which every command takes after it too) and --version."""


def _experiment_of(config: Path, overrides: list[str] | None) -> Experiment:
    from nnctl.config import load_config
    from nnctl.experiment import build

    return build(load_config(config, overrides or []))


@app.command(cls=_Command)
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
                 *(["train.tracking=mlflow"] if mlflow else []), *_device_overrides(device)]
    runner = _runner(config, overrides, resume, init_from, runs_dir, quiet)
    if not quiet:
        out.print(f"run directory: {runner.run_dir}")
    summary = _fit(runner)
    if summary["status"] == "stopped":
        raise typer.Exit(_stopped_status())
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
        return Runner.resume(checkpoint_of(_located(resume, runs_dir), last=True), extra + overrides, runs_dir, quiet)
    if config is None:
        raise ConfigError("give a config to train (nnctl train configs/mnist_mlp.yaml) or --resume CHECKPOINT")
    weights = None if init_from is None else checkpoint_of(_located(init_from, runs_dir))
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


@app.command("eval", cls=_Command)
def evaluate_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=f"{CHECKPOINT_HELP}, or a config "
                                                    "(.yaml) whose model.weights names exported weights.")],
    overrides: Overrides = None,
    split: Annotated[str, typer.Option("--split", help="Which split to evaluate: test, val or train.",
                                       autocompletion=_offering(*SPLITS))] = "test",
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

    _check_split(split)
    overrides = [ON_CPU, *(overrides or []), *_device_overrides(device)]
    checkpoint_path = checkpoint_of(_located(checkpoint_path, runs_dir))
    exp = (trained_experiment(checkpoint_path, overrides) if checkpoint_path.suffix in YAML
           else Trained.load(checkpoint_path).experiment(overrides))
    for line in [*exp.source.notes, *(f"warning: {warning}" for warning in exp.source.warnings)]:
        err.print(line)  # as train says them, beside the results (stdout, a --json reader's)
    result = {"checkpoint": str(checkpoint_path), **report(exp, split)}
    if as_json:
        _print_json(result)
        return
    out.print(tables.eval_table(result, f"{checkpoint_path} on {split}"))
    if "confusion_matrix" in result:
        counts = np.array(result["confusion_matrix"])
        if len(counts) <= SHOWN_CLASSES:
            out.print(tables.confusion_table(counts, result["classes"]))
        else:
            out.print(f"confusion matrix: {len(counts)} classes, too many columns to read here; --json holds it")
        out.print(tables.per_class_table(result["per_class"]))


@app.command(cls=_Command)
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

    _at_least("--eps", eps, 0, above=True)
    _at_least("--tol", tol, 0, above=True)
    _at_least("--samples", samples, 1)
    _at_least("--per-tensor", per_tensor, 1)
    if config is not None:
        exp = _experiment_of(config, [ON_CPU, *(overrides or []), "dtype=float64", *_device_overrides(device)])
        checks = check_model(exp, samples, per_tensor, eps, tol, layer=layer)
    else:
        if layer is not None and layer not in LAYERS and layer not in LOSSES:
            LAYERS.get(layer)  # raises with the known names and a suggestion
        checks = check_registry(layer, eps, tol, device or "cpu")
    failed = [c for c in checks if not c.passed]
    if as_json:
        _print_json({"passed": not failed, "eps": eps, "tolerance": tol,
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


@app.command(cls=_Command)
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

    exp = _experiment_of(config, [*(overrides or []), *_device_overrides(device)])
    check_trains(exp)
    timings = time_layers(exp, repeats, seconds)
    findings = preflight(exp, samples, steps, seconds)
    failed = [f for f in findings if not f.passed]
    if as_json:
        _print_json({"passed": not failed, "batch_size": len(batch(exp)[0]),
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


@app.command(cls=_Command)
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
        _print_json({"name": parsed.data["name"], "input_shape": list(model.input_shape),
                     "layers": tables.model_rows(model), "trainable_parameters": model.num_params,
                     "frozen_parameters": model.num_frozen})
        return
    out.print(tables.model_table(model, parsed.data["name"]))
    out.print(f"total parameters: {model.num_params + model.num_frozen:,} (trainable {model.num_params:,}, "
              f"frozen {model.num_frozen:,})")
    if loaded:
        out.print(loaded.describe())


def _trained_model(path: Path, device: str, output: Path | None = None, through: str | None = None) -> Trained:
    """The model of a checkpoint, or of a config whose model.weights names its arrays (up to the layer `through`
    where only its outputs are wanted), on `device`; an `output` that is that arrays' file is refused (it is one of
    the command's inputs too)."""
    from nnctl.runs import checkpoint_of
    from nnctl.trained import Trained
    from nnctl.weights import weights_spec

    if path.suffix not in YAML:
        return Trained.load(checkpoint_of(path), device)
    trained = Trained.from_config(path, device, through)
    spec = weights_spec(trained.config)
    weights = None if spec is None else trained.config.base_dir / Path(spec.path).expanduser()
    if output is not None and weights is not None and _same_file(output, weights):
        raise NnctlError(f"{output}: this is the file {path}'s model.weights reads; write the output to another file")
    return trained


MODEL_HELP = f"{CHECKPOINT_HELP}, or a config (.yaml) whose model.weights names trained weights."


@app.command("config", cls=_Command)
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
        _print_json(full)
        return
    # escaped as YAML does where stdout is not UTF: a \x escape would change a path
    text = dump_yaml(full, allow_unicode=_stdout_is_utf())
    out.print(f"# resolved from {config}; its relative paths (data files, model.weights) written out absolute\n"
              + text, end="")


@app.command("schema", cls=_Command)
def schema_command() -> None:
    """Print the JSON Schema of configs, generated from the signatures the validator reads; for editors:
    nnctl schema > nnctl.schema.json, then `# yaml-language-server: $schema=nnctl.schema.json` in a config."""
    from nnctl.jsonschema import config_schema

    _print_json(config_schema())


@app.command("predict", cls=_Command)
def predict_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=MODEL_HELP)],
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT", help="Files of inputs: .npy, .npz (array x, or "
                                                 "its only array), .csv (inputs only), images (.png, .jpg, ...), "
                                                 "a language model's text (.txt); a folder: the input files in it and "
                                                 "its subfolders.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the predictions to a "
                                                ".csv, .npy or JSON file instead of printing them.",
                                                show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="How many of the likeliest classes to show.")] = 3,
    layer: Annotated[str | None, typer.Option("--layer", help="Write this layer's outputs (features) for every "
                                              "input to the -o .npy file instead.", show_default=False)] = None,
    device: Device = "cpu",
    force: Force = False,
    as_json: AsJson = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Classify new inputs with a trained model; inputs are prepared as its training data was."""
    from nnctl import tables
    from nnctl.data.inputs import input_files
    from nnctl.predict import check_output, features, predict_files, records, save_array, write

    if as_json and output is not None:
        raise ConfigError("--json prints the predictions and -o writes them to a file: give one of them")
    if layer is not None and (output is None or output.suffix.lower() != ".npy"):
        raise ConfigError("--layer writes the layer's outputs as an array: give -o FILE.npy")
    inputs = input_files(inputs)
    checkpoint_path = _located(checkpoint_path, runs_dir)
    if output is not None:
        check_output(output)
        _fresh_output(output, [checkpoint_path, *inputs], force)
    trained = _trained_model(checkpoint_path, device, output, through=layer)
    if layer is not None:
        assert output is not None, "checked above"
        values = features(trained, inputs, layer)
        save_array(output, values)
        out.print(f"wrote the outputs of {layer}, shape {list(values.shape)}, to {output}")
        return
    result = predict_files(trained, inputs)
    if output is not None:
        write(result, output, top)
        out.print(f"wrote {len(result.names)} predictions to {output}")
    elif as_json:
        _print_json(records(result, top))
    else:
        out.print(tables.predictions_table(result, top))


@app.command("export", cls=_Command)
def export_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=MODEL_HELP)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The file to write (.npz, or .onnx).",
                                         show_default=False)],
    form: Annotated[str, typer.Option("--format", help="npz: nnctl's arrays by layer name, for model.weights; "
                                      "onnx: the whole model as an ONNX graph (pip install 'nnctl[onnx]').",
                                      autocompletion=_offering("npz", "onnx"))] = "npz",
    device: Device = "cpu",
    force: Force = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Write a trained model's weights as plain arrays by layer name (dense_1/W, ...), or the model as ONNX."""
    from nnctl.onnx_export import PREPARATION_KEY, check_onnx_name, describe_preparation, export_onnx, preparation
    from nnctl.weights import check_npz_name
    from nnctl.weights import export as export_weights

    if form not in ("npz", "onnx"):
        raise ConfigError(f"--format must be npz or onnx, not '{form}'")
    (check_onnx_name if form == "onnx" else check_npz_name)(output)
    checkpoint_path = _located(checkpoint_path, runs_dir)
    _fresh_output(output, [checkpoint_path], force)
    trained = _trained_model(checkpoint_path, device, output)
    model = trained.model
    if form == "onnx":
        prep = preparation(trained.source)
        export_onnx(model, output, trained.config.data["name"], prep)
        out.print(f"wrote {output}: input 'x' {['N', *model.input_shape]} (prepared as the training data: "
                  f"{describe_preparation(prep)}; the file's metadata_props '{PREPARATION_KEY}' holds the numbers), "
                  f"output 'y' {['N', *model.output_shape]} (the model's raw outputs)")
        return
    names = export_weights(output, model.state_dict(), model.input_shape, model.output_shape)
    out.print(f"wrote {len(names)} arrays ({', '.join(names)}) to {output}; "
              f"start a model from them with the override model.weights={shlex.quote(str(output))}")


@app.command("convert", cls=_Command)
def convert_command(
    source: Annotated[Path, typer.Argument(metavar="WEIGHTS", help="Weights saved by PyTorch (a state_dict as "
                                           ".safetensors) or Keras (.h5, .weights.h5, .keras).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The nnctl config whose model takes the weights.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The .npz file to write.",
                                         show_default=False)],
    mapping: Annotated[list[str] | None, typer.Option("--map", metavar="A=B", help="NNCTL_LAYER=SOURCE_LAYER, or a "
                                                      "YAML file of such lines; repeatable. Without it, the layers "
                                                      "that hold arrays are paired in order.",
                                                      show_default=False)] = None,
    flatten: Annotated[str | None, typer.Option("--flatten", help="chw or hwc: how the source flattened feature "
                                                "maps before its first dense layer.",
                                                show_default="torch chw, keras hwc",
                                                autocompletion=_offering("chw", "hwc"))] = None,
    force: Force = False,
) -> None:
    """Convert another framework's weights into nnctl's .npz for model.weights, printing the mapping it used."""
    from nnctl import tables
    from nnctl.config import load_config
    from nnctl.convert import convert as convert_weights
    from nnctl.convert import plan, read_map
    from nnctl.experiment import initial_model
    from nnctl.weight_files import read_source
    from nnctl.weights import check_npz_name, write_npz

    if flatten not in (None, "chw", "hwc"):
        raise ConfigError(f"--flatten must be chw or hwc, not '{flatten}'")
    check_npz_name(output)
    _fresh_output(output, [source, config], force)
    table_map = read_map(mapping or [])
    framework, layers = read_source(source)
    model = initial_model(load_config(config, []))
    arrays, steps = convert_weights(model, framework, plan(model, layers, table_map), flatten, strict=bool(table_map))
    out.print(tables.conversion_table(steps, arrays, f"{source} ({framework}) -> {output}"
                                      + ("" if table_map else ", layers paired by order")))
    if not arrays:
        raise NnctlError(f"{source}: no layer could be converted; pair them with --map NNCTL_LAYER=SOURCE_LAYER")
    write_npz(output, arrays)
    done = {name.rpartition("/")[0] for name in arrays}
    left = [layer.name for layer in model.layers if (layer.params or layer.state) and layer.name not in done]
    out.print(f"wrote {len(arrays)} arrays of {len(done)} layers to {output}"
              + (f"; not converted: {', '.join(left)}" if left else ""))


@app.command(cls=_Command)
def sample(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A checkpoint of a language model, "
                                                    "or its run directory (best.pkl, else last.pkl).")],
    prime: Annotated[str | None, typer.Option("--prime", help="The text to start from.",
                                              show_default="a newline, or a token drawn at random where the vocabulary "
                                              "has none, as a word model's")] = None,
    length: Annotated[int, typer.Option("--length", help="How many tokens to generate (at most 1,000,000).")] = 300,
    temperature: Annotated[float, typer.Option("--temperature", help="Below 1: safer choices; above 1: more "
                                                                      "surprising ones; 0: the likeliest token "
                                                                      "each time.")] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the draws, for repeatable text.",
                                             show_default=False)] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", metavar="K", help="Draw from the K likeliest tokens only "
                                              "(K above the vocabulary's size: all of them).",
                                              show_default=False)] = None,
    top_p: Annotated[float, typer.Option("--top-p", metavar="P", help="Then from the fewest likeliest tokens whose "
                                         "probabilities sum to at least P (nucleus sampling; 1: all of them).")] = 1.0,
    device: Device = "cpu",
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Generate text from a trained language model (a config with data.type text), starting from --prime."""
    from nnctl.runs import checkpoint_of
    from nnctl.sample import LanguageModel

    _at_least("--temperature", temperature, 0)
    _at_least("--length", length, 1)
    _at_most("--length", length, MAX_SAMPLE_LENGTH)
    if seed is not None:
        _at_least("--seed", seed, 0)
    if top_k is not None:
        _at_least("--top-k", top_k, 1)
    _at_least("--top-p", top_p, 0, above=True)
    _at_most("--top-p", top_p, 1)
    model = LanguageModel.load(checkpoint_of(_located(checkpoint_path, runs_dir)), device)
    out.print(model.generate(prime, length, temperature, seed, top_k, top_p))


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


@runs_app.command("list", cls=_Command)
def runs_list(
    root: Annotated[Path | None, typer.Argument(metavar="DIR", help="A folder of runs, such as a sweep's.",
                                                show_default="--runs-dir")] = None,
    as_json: AsJson = False,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", metavar="DIR", help="The folder of runs, as train "
                                                  "and sweep take it; the same as DIR.", show_default="runs")] = None,
) -> None:
    """A table of the runs under DIR (default runs/, sweeps' members included)."""
    from nnctl import tables
    from nnctl.runs import find_runs

    if root is not None and runs_dir is not None:
        raise ConfigError(f"give the folder of runs once: DIR ({root}) or --runs-dir ({runs_dir})")
    root = root or runs_dir or Path("runs")
    runs = find_runs(root)
    if as_json:
        _print_json([run.record() for run in runs])
        return
    if not runs:
        out.print(f"no runs under {root}")
        return
    out.print(tables.runs_table(runs, root))
    _damage(runs)


@runs_app.command("show", cls=_Command)
def runs_show(run: Annotated[Path, typer.Argument(metavar="RUN", help="A run directory or one of its checkpoints.")],
              as_json: AsJson = False, runs_dir: RunsDir = Path("runs")) -> None:
    """One run's summary, final and test metrics, and its per-epoch rows."""
    from nnctl import tables
    from nnctl.runs import load_run

    shown = load_run(_located(run, runs_dir))
    if as_json:
        _print_json(shown.record(history=True))
        return
    for table in tables.run_tables(shown):
        out.print(table)
    _damage([shown])


@runs_app.command("diff", cls=_Command)
def runs_diff(runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="Two run directories (or their "
                                                         "checkpoints).")],
              as_json: AsJson = False, runs_dir: RunsDir = Path("runs")) -> None:
    """The config keys that differ between two runs, and their results side by side."""
    from nnctl import tables
    from nnctl.runs import diff_record, load_run

    if len(runs) != 2:
        raise ConfigError(f"expected two runs, got {len(runs)}: nnctl runs diff RUN RUN")
    pair = load_run(_located(runs[0], runs_dir)), load_run(_located(runs[1], runs_dir))
    if as_json:
        _print_json({**diff_record(*pair), "damage": [run.damage for run in pair]})
        return
    for table in tables.diff_tables(*pair):
        out.print(table)
    _damage(pair)


def _damage(runs: Iterable[Run]) -> None:
    """Names what could not be read of each damaged run shown."""
    for run in runs:
        if run.damage:
            out.print(f"{run.path} is damaged, shown without: {'; '.join(run.damage)}")


@app.command("plot", cls=_Command)
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
                                       autocompletion=_offering(*SPLITS))] = "test",
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
    _check_split(split)
    _check_metric(metric)
    if not 0 <= smooth < 1:
        raise ConfigError(f"--smooth must be in [0, 1), got {smooth}")
    _at_least("--samples", samples, 1)
    kind = kinds[0] if kinds else "curves"
    runs = [_located(run, runs_dir) for run in runs]
    plots.pyplot()
    if kind != "curves" and len(runs) != 1:
        raise ConfigError(f"--{kind} shows one run; got {len(runs)}")
    default_dir = runs[0] if len(runs) == 1 and runs[0].is_dir() else Path(".")
    path = output or default_dir / f"{kind}.png"
    plots.check_output(path)
    _fresh_output(path, runs, force)
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
        return _experiment_of(path, []), f"{path.name} (initial weights)"
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


@app.command("sweep", cls=_Command)
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
                                               autocompletion=_offering("local", "ray"))] = None,
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
    _check_metric(metric or "loss")
    try:
        check_address(address)
    except ValueError as exc:  # its message starts with its key, as a sweep file's line reads it: "address ..."
        raise ConfigError(f"--{exc}") from None


def _describe_plan(sweep: Sweep, todo: list[Member], engine: str, jobs: int | None) -> None:
    """One line: how many members the sweep has, how many are done, and where the rest will run."""
    if sweep.search.type == "tpe":
        from nnctl import sweep_ray

        done = len(sweep_ray.done_runs(sweep))
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
            from nnctl import sweep_ray

            return sweep_ray.run(sweep, todo, address, jobs, say_outcome, out.print)
        return sweep.run(todo, jobs or sweep.spec.max_concurrent or 1, say_outcome)
    except KeyboardInterrupt:
        # Tune stops a member once it reports an epoch, unless Ctrl-C reached its worker (on this machine) first
        stop = "by the end of their current epoch and resume from the last one they finished" if engine == "ray" \
            else "after their current step"
        err.print(f"{why_stopped()}sweep interrupted; members stop {stop}. Run the sweep again to resume them.")
        raise typer.Exit(_stopped_status()) from None


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


def _fresh_output(path: Path, inputs: Iterable[Path], force: bool) -> None:
    """Refuses to write over one of the command's own inputs, over anything but a regular file, into a folder that
    does not exist, or over an existing file without --force."""
    if path.exists() and any(_same_file(path, each) for each in inputs):
        raise NnctlError(f"{path}: this is one of the command's inputs; write the output to another file")
    check_target(path)
    check_folder(path)
    if path.exists() and not force:
        raise NnctlError(f"{path} exists; give --force to replace it, or another -o")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _at_least(option: str, value: float, low: float, above: bool = False) -> None:
    """ConfigError unless `value` is a finite number >= low (or > low with `above`)."""
    if not math.isfinite(value) or value < low or (above and value == low):
        raise ConfigError(f"{option} must be a finite number {'above' if above else 'of at least'} {low:g}, "
                          f"got {value}")


def _at_most(option: str, value: float, high: float) -> None:
    """ConfigError when `value` is above `high`."""
    if value > high:
        raise ConfigError(f"{option} may be at most {high:,}, got {value:,}")


def _interrupted(signum: int, frame: Any) -> None:
    """Ctrl-C or SIGTERM outside a training (which says what it keeps): one line, then exit 130 or 143; a sweep
    stops its members after their step."""
    global _announced
    if signum == signal.SIGTERM:
        note_terminated()
    if not _announced:
        err.print("terminated" if signum == signal.SIGTERM else "interrupted")
        threading.Thread(target=_again, args=(signum,), name="nnctl-interrupt", daemon=True).start()
    _announced = True
    raise KeyboardInterrupt


_announced = False
"""Whether _interrupted has said why the command stops."""
AGAIN_AFTER = 1.0
"""Seconds after which a command that a signal did not stop gets it again."""


def _again(signum: int) -> None:
    """Sends the signal again while the command runs on under _interrupted: its KeyboardInterrupt can be lost, raised
    where Python drops it (a weakref callback of the import machinery, as commands import their libraries) or
    where a library swallows it."""
    while True:
        time.sleep(AGAIN_AFTER)
        if signal.getsignal(signum) is not _interrupted:  # leaving, or a training or sweep handles it now
            return
        os.kill(os.getpid(), signum)


def _dropped(unraisable: sys.UnraisableHookArgs) -> None:
    """Says nothing of a KeyboardInterrupt that Python dropped (_again sends the signal again); anything else as
    Python says it."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def main() -> None:
    """Entry point: user errors become one message and a non-zero exit, never a traceback."""
    try:  # from here on, every KeyboardInterrupt (_interrupted's, said) ends below
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the shell ignores it (`cmd &`)
            signal.signal(signal.SIGINT, _interrupted)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupted)
        sys.unraisablehook = _dropped
        prepare_stdout()
        threads.apply_override()
        memory_limit()  # a malformed NNCTL_MAX_MEMORY stops here, before any work
        quiet_arithmetic(not DEBUG)
        status = app(standalone_mode=False)  # click's errors raised, not printed in its four lines
    except typer.TyperException as exc:  # the base of the (vendored) click's UsageError and ClickException
        err.print(_click_error(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # one that came before typer ran the command
        if not _announced:  # Ctrl-C's default handler's, before _interrupted was installed
            err.print("interrupted")
        sys.exit(_stopped_status())
    except NnctlError as exc:
        err.print(f"error: {exc}")
        sys.exit(exc.exit_code)
    except MemoryError as exc:  # the machine's memory (or a cap on it) ran out below nnctl's own limit
        err.print(f"error: out of memory{f' ({exc})' if str(exc) else ''}; free some, or make the work smaller "
                  "(a smaller train.batch_size, model or input)")
        sys.exit(1)
    except RecursionError:
        err.print("error: an input nests too deeply to follow (a cycle, or thousands of levels)")
        sys.exit(1)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in REFUSALS:  # a full disk, a read-only folder: not a bug
            err.print(f"error: {refusal(exc)}")
            sys.exit(1)
        if DEBUG:
            traceback.print_exc()
        else:
            err.print(f"internal error: {type(exc).__name__}: {exc}\n"
                      "This is a bug in nnctl; run again with --debug for the traceback and report it.")
        sys.exit(3)
    if status:  # typer.Exit's code; typer ends a KeyboardInterrupt with 130, whichever signal raised it
        sys.exit(_stopped_status() if status == 130 else status)


def _click_error(exc: typer.TyperException) -> str:
    """A mistake click found on the command line (a missing argument, an unknown option or command, a value of the
    wrong type) as two lines: the error, then the command's usage and where its help is. `nnctl` alone: the help."""
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return f"error: {exc.format_message()}"
    if exc.format_message() == ctx.get_help():  # no_args_is_help
        return exc.format_message()
    usage = " ".join(ctx.get_usage().split())  # click wraps a long one
    return f"error: {exc.format_message()}\n{usage}  ({ctx.command_path} -h for help)"
