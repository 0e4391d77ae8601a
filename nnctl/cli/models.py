"""The commands on a trained model: predict, export, convert (another framework's weights into nnctl's) and
sample."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nnctl.cli.group import Command, app
from nnctl.cli.options import (
    CHECKPOINT_HELP,
    YAML,
    AsJson,
    Device,
    Force,
    RunsDir,
    at_least,
    at_most,
    fresh_output,
    located,
    offering,
    same_file,
)
from nnctl.cli.printing import out, print_json
from nnctl.errors import ConfigError, NnctlError

if TYPE_CHECKING:
    from nnctl.trained import Trained


MAX_SAMPLE_LENGTH = 1_000_000
"""The most tokens `nnctl sample` generates in one call."""


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
    if output is not None and weights is not None and same_file(output, weights):
        raise NnctlError(f"{output}: this is the file {path}'s model.weights reads; write the output to another file")
    return trained


MODEL_HELP = f"{CHECKPOINT_HELP}, or a config (.yaml) whose model.weights names trained weights."


@app.command("predict", cls=Command)
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
    checkpoint_path = located(checkpoint_path, runs_dir)
    if output is not None:
        check_output(output)
        fresh_output(output, [checkpoint_path, *inputs], force)
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
        print_json(records(result, top))
    else:
        out.print(tables.predictions_table(result, top))


@app.command("export", cls=Command)
def export_command(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=MODEL_HELP)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The file to write (.npz, or .onnx).",
                                         show_default=False)],
    form: Annotated[str, typer.Option("--format", help="npz: nnctl's arrays by layer name, for model.weights; "
                                      "onnx: the whole model as an ONNX graph (pip install 'nnctl[onnx]').",
                                      autocompletion=offering("npz", "onnx"))] = "npz",
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
    checkpoint_path = located(checkpoint_path, runs_dir)
    fresh_output(output, [checkpoint_path], force)
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


@app.command("convert", cls=Command)
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
                                                autocompletion=offering("chw", "hwc"))] = None,
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
    fresh_output(output, [source, config], force)
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


@app.command(cls=Command)
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

    at_least("--temperature", temperature, 0)
    at_least("--length", length, 1)
    at_most("--length", length, MAX_SAMPLE_LENGTH)
    if seed is not None:
        at_least("--seed", seed, 0)
    if top_k is not None:
        at_least("--top-k", top_k, 1)
    at_least("--top-p", top_p, 0, above=True)
    at_most("--top-p", top_p, 1)
    model = LanguageModel.load(checkpoint_of(located(checkpoint_path, runs_dir)), device)
    out.print(model.generate(prime, length, temperature, seed, top_k, top_p))
