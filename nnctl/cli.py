"""The `nnctl` command line: parses arguments, calls the library, renders results."""

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from nnctl import __version__
from nnctl.config import load_config
from nnctl.errors import ConfigError, NnctlError
from nnctl.experiment import Experiment, build, from_checkpoint, report
from nnctl.gradcheck import Check, check_model, check_registry
from nnctl.layers import LAYERS
from nnctl.losses import LOSSES
from nnctl.predict import Predictions, check_output, predict_files, write
from nnctl.runner import Runner
from nnctl.sample import LanguageModel
from nnctl.weights import export as export_weights

app = typer.Typer(help="Train neural networks written in plain NumPy from YAML files.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
_WIDTH = None if sys.stdout.isatty() else 160  # piped output is read whole: no squeezed table cells
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)
DEBUG = bool(os.environ.get("NNCTL_DEBUG"))

OVERRIDES_HELP = "Dotted KEY=VALUE overrides of the config, such as optimizer.lr=3e-4 train.epochs=2."


def _version(value: bool) -> None:
    if value:
        out.print(f"nnctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of unexpected errors."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    global DEBUG
    DEBUG = DEBUG or debug


def _load(config: Path, overrides: list[str] | None, dtype: str | None = None) -> Experiment:
    return build(load_config(config, overrides or []), config.resolve().parent, dtype)


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="The YAML config to train.", show_default=False)] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help=OVERRIDES_HELP, show_default=False)] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from a checkpoint (last.pkl) of a run.",
                                       show_default=False)] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where new run directories are made (also when "
                                           "resuming from a checkpoint other than a run's last.pkl).")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard event files into the "
                                              "run directory (train.tensorboard=true).")] = False,
) -> None:
    """Train the model a config describes; writes runs/<name>-<time>/ (config, metrics, checkpoints, summary)."""
    overrides = [*(overrides or []), *(["train.tensorboard=true"] if tensorboard else [])]
    if resume is not None:
        extra = [str(config)] if config is not None else []
        runner = Runner.resume(resume, extra + (overrides or []), runs_dir, quiet)
    elif config is None:
        raise ConfigError("give a config to train (nnctl train configs/mnist_mlp.yaml) or --resume CHECKPOINT")
    else:
        runner = Runner.start(load_config(config, overrides or []), config.resolve().parent, runs_dir, quiet)
    if not quiet:
        out.print(f"run directory: {runner.run_dir}")
    summary = runner.fit()
    if summary["status"] == "stopped":
        raise typer.Exit(130)
    if not quiet:
        out.print(f"{summary['status']} after {summary['epochs']} epochs in {summary['wall_time_s']:.1f} s; "
                  f"checkpoints in {runner.checkpoints.folder}")


@app.command("eval")
def evaluate_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A checkpoint written by a run, or a "
                                                    "config (.yaml) whose model.weights names exported weights.")],
    overrides: Annotated[list[str] | None, typer.Argument(help=OVERRIDES_HELP, show_default=False)] = None,
    split: Annotated[str, typer.Option("--split", help="Which split to evaluate: test, val or train.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Evaluate a checkpoint: loss, accuracy, error rate and the confusion matrix."""
    if split not in ("test", "val", "train"):
        raise ConfigError(f"--split must be test, val or train, not '{split}'")
    exp = (_load(checkpoint_path, overrides) if checkpoint_path.suffix in (".yaml", ".yml")
           else from_checkpoint(checkpoint_path, overrides or [])[0])
    result = {"checkpoint": str(checkpoint_path), **report(exp, split)}
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(title=f"{checkpoint_path} on {split} ({result['samples']} samples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("loss", "accuracy", "error_rate", "mse"):
        if key in result:
            table.add_row(key, f"{result[key]:.4f}")
    out.print(table)
    if "confusion_matrix" in result:
        out.print(_confusion_table(np.array(result["confusion_matrix"])))


def _confusion_table(counts: np.ndarray) -> Table:
    table = Table(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("")
    for j in range(len(counts)):
        table.add_column(str(j), justify="right")
    for i, row in enumerate(counts):
        table.add_row(str(i), *(f"[bold]{v}[/bold]" if i == j else str(v) for j, v in enumerate(row)))
    return table


@app.command()
def gradcheck(
    config: Annotated[Path | None, typer.Argument(help="Check the model this config builds, on a few real samples; "
                                                    "without it, every registered layer and loss.",
                                         show_default=False)] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help=OVERRIDES_HELP, show_default=False)] = None,
    eps: Annotated[float, typer.Option("--eps", help="Central-difference step.")] = 1e-6,
    tol: Annotated[float, typer.Option("--tol", help="Largest relative error that passes.")] = 1e-6,
    layer: Annotated[str | None, typer.Option("--layer", help="Check only this registered layer or loss.",
                                     show_default=False)] = None,
    samples: Annotated[int, typer.Option("--samples", help="Training samples used with a config.")] = 8,
    per_tensor: Annotated[int, typer.Option("--per-tensor", help="Entries of each tensor checked with a config.")] = 20,
) -> None:
    """Compare analytic gradients with central differences in float64; exits 1 if any check fails."""
    if config is not None:
        checks = check_model(_load(config, overrides, "float64"), samples, per_tensor, eps, tol)
    else:
        if layer is not None and layer not in LAYERS and layer not in LOSSES:
            LAYERS.get(layer)  # raises with the known names and a suggestion
        checks = check_registry(layer, eps, tol)
    out.print(_checks_table(checks, tol))
    failed = [c for c in checks if not c.passed]
    if failed:
        err.print(f"{len(failed)} of {len(checks)} checks failed (tolerance {tol:g})", markup=False)
        raise typer.Exit(1)
    out.print(f"all {len(checks)} checks passed (tolerance {tol:g})")


def _checks_table(checks: list[Check], tol: float) -> Table:
    table = Table(title="gradient check (float64, central differences)")
    for column in ("target", "tensor", "shape", "relative error", "result"):
        table.add_column(column, justify="right" if column == "relative error" else "left")
    for c in checks:
        note = {"rule": " (perceptron rule: backward = dy)", "zero": " (both zero up to rounding)"}.get(c.kind, "")
        result = ("ok" if c.passed else "[red]FAIL[/red]") + note
        table.add_row(c.target, c.tensor, "×".join(map(str, c.shape)), f"{c.error:.2e}", result)
    return table


@app.command()
def summary(
    config: Annotated[Path, typer.Argument(help="The YAML config whose model to describe.")],
    overrides: Annotated[list[str] | None, typer.Argument(help=OVERRIDES_HELP, show_default=False)] = None,
) -> None:
    """Layers, output shapes and parameter counts of the model a config builds."""
    exp = _load(config, overrides)
    model = exp.model
    table = Table(title=f"{exp.config.data['name']}: input {list(model.input_shape)}")
    for column in ("#", "layer", "type", "output shape", "parameters"):
        table.add_column(column, justify="right" if column in ("#", "parameters") else "left")
    for i, (layer, shape) in enumerate(zip(model.layers, model.shapes, strict=True), start=1):
        count = sum(p.size for p in layer.params.values())
        table.add_row(str(i), layer.name, layer.registered_name, str(list(shape)), f"{count:,}")
    out.print(table)
    out.print(f"total parameters: {model.num_params:,}")


@app.command("predict")
def predict_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A checkpoint written by a run.")],
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT", help="Files of inputs: .npy, .npz (array x, or "
                                                 "its only array), .csv (inputs only), or images (.png, .jpg).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the predictions to a .csv, .npy or "
                                                "JSON file instead of printing them.", show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="How many of the likeliest classes to show.")] = 3,
) -> None:
    """Classify new inputs with a checkpoint's model; inputs are prepared as its training data was."""
    if output is not None:
        check_output(output)
    result = predict_files(from_checkpoint(checkpoint_path)[0], inputs)
    if output is not None:
        write(result, output, top)
        out.print(f"wrote {len(result.names)} predictions to {output}")
    else:
        out.print(_predictions_table(result, top))


def _predictions_table(result: Predictions, k: int) -> Table:
    table = Table(title=f"{len(result.names)} predictions")
    table.add_column("input")
    if result.classes is None:
        table.add_column("outputs", justify="right")
        for name, row in zip(result.names, result.values, strict=True):
            table.add_row(name, "  ".join(f"{v:.6g}" for v in row))
        return table
    value = "probability" if result.probabilities else "output"
    table.add_column("class", justify="right")
    table.add_column(value, justify="right")
    table.add_column(f"top {k} (class {value})")
    classes, values = result.top(k)
    for i, name in enumerate(result.names):
        best = "  ".join(f"{c} {v:.4f}" for c, v in zip(classes[i], values[i], strict=True))
        table.add_row(name, str(result.classes[i]), f"{result.values[i, result.classes[i]]:.4f}", best)
    return table


@app.command("export")
def export_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A checkpoint written by a run.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .npz file to write.", show_default=False)],
) -> None:
    """Write a checkpoint's weights as plain arrays by layer name (dense_1/W, ...) for model.weights."""
    model = from_checkpoint(checkpoint_path)[0].model
    names = export_weights(output, model.state_dict(), model.input_shape, model.output_shape)
    out.print(f"wrote {len(names)} arrays ({', '.join(names)}) to {output}; "
              f"start a model from them with model.weights: {output}")


@app.command()
def sample(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A checkpoint of a language model.")],
    prime: Annotated[str, typer.Option("--prime", help="The text to start from.")] = "\n",
    length: Annotated[int, typer.Option("--length", help="How many tokens to generate.")] = 300,
    temperature: Annotated[float, typer.Option("--temperature", help="Below 1: safer choices; above 1: "
                                                                      "more surprising ones.")] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the draws, for repeatable text.",
                                             show_default=False)] = None,
) -> None:
    """Generate text from a trained language model (a config with data.type text), starting from --prime."""
    model = LanguageModel.load(checkpoint_path)
    out.print(model.generate(prime, length, temperature, seed), markup=False)


def main() -> None:
    """Entry point: user errors become one message and a non-zero exit, never a traceback."""
    try:
        app()
    except NnctlError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if DEBUG:
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc}\n"
                  "This is a bug in nnctl; run again with --debug for the traceback and report it.", markup=False)
        sys.exit(3)


if __name__ == "__main__":
    main()
