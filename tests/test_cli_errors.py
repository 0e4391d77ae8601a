"""Every user mistake ends in one clear message and a non-zero exit, never a traceback."""

import errno
import os
import sys
import textwrap

import pytest
import typer

from helpers import CONFIGS, nnctl
from nnctl import cli
from nnctl.cli import group

pytestmark = pytest.mark.slow  # runs the CLI in subprocesses and trains real models

BASE = """\
name: t
data: {type: logic, op: xor}
model:
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 2}
loss: softmax_cross_entropy
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1, batch_size: 4}
"""

CASES = {
    "yaml syntax": (BASE.replace("units: 2}", "units: 2"),
                    ["bad.yaml:7", "YAML syntax error", "while parsing a flow mapping on line 6"]),
    "unknown layer": (BASE.replace("type: dense, units: 2", "type: dens, units: 2"),
                      ["bad.yaml:6", "unknown layer 'dens'", "did you mean 'dense'?"]),
    "unknown layer key": (BASE.replace("units: 2", "unit: 2"),
                          ["bad.yaml:6", "model.layers.1.unit", "did you mean 'units'?"]),
    "missing required key": (BASE.replace("{type: dense, units: 2}", "{type: dense}"),
                             ["bad.yaml:6", "missing required key 'units'"]),
    "wrong type": (BASE.replace("units: 4", "units: four"),
                   ["bad.yaml:5", "model.layers.0.units", "expected an integer ≥ 1, got str 'four'"]),
    "unknown section": (BASE.replace("optimizer:", "optimiser:"),
                        ["bad.yaml:8", "unknown section", "did you mean 'optimizer'?"]),
    "missing section": (BASE.replace("loss: softmax_cross_entropy\n", ""), ["missing required section 'loss'"]),
    "unknown optimizer": (BASE.replace("type: sgd", "type: adamm"),
                          ["bad.yaml:8", "unknown optimizer 'adamm'", "did you mean 'adam'?"]),
    "bad value": (BASE.replace("lr: 0.1", "lr: -1"), ["bad.yaml:8", "optimizer.lr: expected a number > 0, got -1"]),
    "output does not fit targets": (BASE.replace("units: 2}", "units: 3}"),
                                    ["bad.yaml:6", "outputs [3] per sample", "2 classes"]),
    "impossible reshape": (BASE.replace("- {type: dense, units: 4, activation: tanh}",
                                        "- {type: reshape, shape: [3, -1]}"),
                           ["bad.yaml:5", "cannot reshape [2]"]),
    "unknown activation": (BASE.replace("activation: tanh", "activation: rleu"),
                           ["bad.yaml:5", "unknown activation 'rleu'", "did you mean 'relu'?"]),
    "unknown dataset": (BASE.replace("type: logic", "type: mnsit"), ["bad.yaml:2", "did you mean 'mnist'?"]),
    "unknown metric": (BASE.replace("batch_size: 4}", "batch_size: 4, metrics: [acuracy]}"),
                       ["bad.yaml:9", "unknown metric 'acuracy'", "did you mean 'accuracy'?"]),
    "top-k of one sigmoid output": (BASE.replace("units: 2}", "units: 1}").replace("softmax_cross", "binary_cross")
                                    .replace("batch_size: 4}", "batch_size: 4, metrics: [accuracy, top_1_accuracy]}"),
                                    ["bad.yaml:9", "train.metrics.1: top_1_accuracy ranks the model's 1 output, one "
                                                   "per class; K must be below that", "record accuracy instead"]),
    "top-k of as many classes": (BASE.replace("batch_size: 4}", "batch_size: 4, metrics: [top_2_accuracy]}"),
                                 ["bad.yaml:9", "train.metrics.0: top_2_accuracy ranks the model's 2 outputs, one per "
                                                "class; K must be below that, else every target is among the top K"]),
    "class weights all 0": (BASE.replace("loss: softmax_cross_entropy", "loss: {type: softmax_cross_entropy, "
                                                                      "class_weights: [0, 0]}"),
                            ["bad.yaml:7", "class_weights must not all be 0"]),
    "every layer frozen": (BASE.replace("activation: tanh}", "activation: tanh, trainable: false}")
                           .replace("units: 2}", "units: 2, trainable: false}"),
                           ["bad.yaml:5", "model.layers: nothing to train: every layer with parameters has "
                                          "trainable: false"]),
    "duplicate key": (BASE + "seed: 1\nseed: 2\n", ["bad.yaml:11", "key given twice"]),
    "bad batch size": (BASE.replace("batch_size: 4", "batch_size: half"), ["bad.yaml:9", "batch_size"]),
    "explicit weights of the wrong shape": (
        BASE.replace("units: 2}", "units: 2, weight_init: [[1, 2, 3]]}"),
        ["bad.yaml:6", "explicit values have shape [1, 3], the parameter needs [4, 2]"]),
    "softmax before the loss's own": (BASE.replace("units: 2}", "units: 2, activation: softmax}"),
                                      ["bad.yaml:6", "ends in softmax", "remove the final softmax"]),
    "negative seed": (BASE + "seed: -3\n", ["bad.yaml:10", "seed: expected an integer ≥ 0, got -3"]),
    "a name that leaves runs/": (BASE.replace("name: t", "name: ../../escape"), ["bad.yaml:1", "cannot name a run"]),
    "unknown initializer": (BASE.replace("units: 2}", "units: 2, weight_init: he_norml}"),
                            ["bad.yaml:6", "did you mean 'he_normal'?"]),
    # class labels written as floats are values (regression): both errors they lead to say how to read them as labels
    "float labels past 1": (BASE.replace("{type: logic, op: xor}", "{type: inline, x: [[0], [1], [2]], "
                                                                   "y: [0.0, 1.0, 2.0]}"),
                            ["bad.yaml:7", "targets run from 0 to 2; the targets are floats of whole numbers, read as "
                                           "values: if they are class labels, set data.targets: labels (or store them "
                                           "as integers: 0, not 0.0)"]),
    "float labels of 0 and 1": (BASE.replace("{type: logic, op: xor}", "{type: inline, x: [[0], [1]], y: [0.0, 1.0]}"),
                                ["bad.yaml:6", "outputs [2] per sample but the targets are scalars; the targets are "
                                               "floats of whole numbers", "set data.targets: labels"]),
}

CNN = """\
name: t
data: {type: inline, x: [[[[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]]], y: [0], flatten: false}
model:
  layers:
    - {type: conv2d, filters: 2, kernel_size: 3}
    - {type: flatten}
    - {type: dense, units: 2}
loss: softmax_cross_entropy
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 1, batch_size: 1}
"""

CASES.update({
    "kernel larger than the image": (CNN.replace("kernel_size: 3", "kernel_size: 5"),
                                     ["bad.yaml:5", "conv2d on input shape [1, 4, 4]",
                                      "the window spans 5 rows but the padded input has only 4"]),
    "stride that does not divide": (CNN.replace("kernel_size: 3", "kernel_size: 3, stride: 2"),
                                    ["bad.yaml:5", "does not stride evenly over 4 rows with stride 2",
                                     "use padding 'same'"]),
    "dilated kernel too large": (CNN.replace("kernel_size: 3", "kernel_size: 3, dilation: 2"),
                                 ["bad.yaml:5", "the window spans 5 rows"]),
    "conv on flat samples": (CNN.replace("flatten: false", "flatten: true"),
                             ["bad.yaml:5", "conv2d needs images shaped (channels, height, width)",
                              "data.flatten: false"]),
    "unknown padding": (CNN.replace("kernel_size: 3", "kernel_size: 3, padding: full"),
                        ["bad.yaml:5", "model.layers.0.padding: expected 'valid' or 'same' or an integer ≥ 0 or a "
                                      "list of 2 integers ≥ 0, got str 'full'"]),
    "pool larger than the image": (CNN.replace("{type: flatten}", "{type: maxpool2d, pool_size: 3}"),
                                   ["bad.yaml:6", "maxpool2d on input shape [2, 2, 2]", "the window spans 3 rows"]),
    "bad batch norm momentum": (CNN.replace("{type: flatten}", "{type: batchnorm, momentum: 1.5}"),
                                ["bad.yaml:6", "model.layers.1.momentum: expected a number in [0, 1), got 1.5"]),
    "augment typo": (CNN.replace("flatten: false}", "flatten: false, augment: {flipp: true}}"),
                     ["bad.yaml:2", "data.augment.flipp: unknown key (did you mean 'flip'?)"]),
})


def assert_one_clear_error(result, expected):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), result.stderr
    message = " ".join(lines)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_gives_one_line_and_nonzero_exit(case, tmp_path):
    text, expected = CASES[case]
    (tmp_path / "bad.yaml").write_text(text)
    result = nnctl("train", "bad.yaml", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert_one_clear_error(result, expected)
    assert result.returncode == 2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("override, expected", [
    ("optimizer.lr", ["expected KEY=VALUE"]),
    ("train.epochs=abc", ["override 'train.epochs=abc'", "expected an integer ≥ 1, got str 'abc'"]),
    ("model.layers.7.units=3", ["no such list item"]),
    ("optimizer.momentun=0.9", ["did you mean 'momentum'?"]),
    ("model.layers.*.rate=0.1", ["override 'model.layers.*.rate=0.1'", "its '*' matches no item"]),
    ("optimizer.lr=.nan", ["override 'optimizer.lr=.nan': optimizer.lr: must be a finite number, got nan"]),
])
def test_bad_override(override, expected, tmp_path):
    (tmp_path / "ok.yaml").write_text(BASE)
    result = nnctl("train", "ok.yaml", override, "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert_one_clear_error(result, expected)


def test_missing_config_file(tmp_path):
    assert_one_clear_error(nnctl("train", "nope.yaml", cwd=tmp_path), ["nope.yaml: no such config file"])


def test_a_config_that_is_not_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text(textwrap.dedent("- 1\n- 2\n"))
    assert_one_clear_error(nnctl("summary", "list.yaml", cwd=tmp_path), ["must be a mapping"])


def test_a_link_loop_met_anywhere_is_one_line_and_exit_1(monkeypatch, capsys):
    def loop(standalone_mode: bool) -> None:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "somewhere")

    monkeypatch.setattr(group, "app", loop)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 1
    assert capsys.readouterr().err == "error: somewhere: Too many levels of symbolic links\n"


def run_main(monkeypatch, command) -> int:
    """nnctl's main running a Typer app of `command` alone; its exit status."""
    app = typer.Typer()
    app.command()(command)
    monkeypatch.setattr(group, "app", app)
    monkeypatch.setattr(sys, "argv", ["nnctl"])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    return stopped.value.code


def test_an_abort_is_one_line_and_exit_1(monkeypatch, capsys):
    """typer.Abort, click's way to stop a command, ended as a bug: 'internal error: Abort: ', exit 3."""
    def abort() -> None:
        raise typer.Abort()

    assert run_main(monkeypatch, abort) == 1
    assert capsys.readouterr().err == "aborted\n"


def test_an_eof_error_that_typer_makes_an_abort_is_still_a_bug_by_its_own_name(monkeypatch, capsys):
    """Typer turns an EOFError in a command into an Abort (a prompt's Ctrl-D); nnctl has no prompt, so it is a file
    read past its end that nnctl failed to catch: a bug, named as such, not 'aborted'."""
    def cut_short() -> None:
        raise EOFError("Ran out of input")

    assert run_main(monkeypatch, cut_short) == 3
    assert "internal error: EOFError: Ran out of input" in capsys.readouterr().err


@pytest.mark.parametrize("args, error, usage", [
    (["eval"], "Missing argument 'CHECKPOINT'.", "eval [OPTIONS] CHECKPOINT [KEY=VALUE]..."),
    (["train", "--bogus"], "No such option: --bogus", "train [OPTIONS] [CONFIG] [KEY=VALUE]..."),
    (["check", "c.yaml", "--samples", "x"], "Invalid value for '--samples'", "check [OPTIONS] CONFIG [KEY=VALUE]..."),
    (["runs", "lst"], "No such command 'lst'. Did you mean 'list'?", "runs [OPTIONS] COMMAND [ARGS]...")])
def test_a_command_line_mistake_is_its_error_then_the_usage(tmp_path, args, error, usage):
    """Click printed a mistake on the command line in four lines (the usage, 'Try ... for help.', a blank line,
    'Error: ...'); now as nnctl's other errors, first: 'error: ...', then the usage and where the help is; exit 2."""
    result = nnctl(*args, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 2 and lines[0].startswith(f"error: {error}"), result.stderr
    command = " ".join(["nnctl", *args[:1]])
    assert lines[1].startswith("Usage: ") and lines[1].endswith(f"nnctl {usage}  (python -m {command} -h for help)"), (
        lines[1])


def test_nnctl_alone_prints_its_help_as_a_command_line_mistake(tmp_path):
    result = nnctl(cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr.startswith("Usage: ") and "Commands:" in result.stderr, result.stderr


@pytest.mark.parametrize("typed, meant", [("lst", "list"), ("shw", "show")])
def test_a_mistyped_runs_command_is_a_usage_error_with_a_suggestion(tmp_path, typed, meant):
    """`nnctl runs lst` names no folder that exists but reads as `list` mistyped: exit 2 and the suggestion, not
    'lst: no such directory'; a folder of that name is still listed."""
    result = nnctl("runs", typed, cwd=tmp_path)
    assert result.returncode == 2 and f"No such command '{typed}'. Did you mean '{meant}'?" in result.stderr, (
        result.stderr)
    (tmp_path / typed).mkdir()
    listed = nnctl("runs", typed, cwd=tmp_path)
    assert listed.returncode == 0 and f"no runs under {typed}" in listed.stdout, listed.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_taken_before_the_command_or_after_it(where, tmp_path):
    """`nnctl train c.yaml --debug` was a usage error ('No such option'); it shows NumPy's warnings as `nnctl --debug
    train c.yaml` does."""
    command = ["train", str(CONFIGS / "linear_salary.yaml"), "optimizer.lr=1e30", "train.epochs=3", "-q",
               "--runs-dir", str(tmp_path)]
    result = nnctl(*(["--debug", *command] if where == "before" else [*command, "--debug"]))
    assert result.returncode == 1 and "RuntimeWarning: overflow" in result.stderr, result.stderr


def test_every_command_takes_debug():
    def commands(command, path=()):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, (*path, name))

    assert [path for path, command in commands(typer.main.get_command(cli.app))
            if "--debug" not in [opt for param in command.params for opt in param.opts]] == []
