"""Values a config accepts must make sense: each that would train wrongly (an lr gone negative, targets outside a
loss's range, a pool window of padding only) or crash stops before training with one message naming the line."""

import pytest
from hostile import XOR, clean_error, listing

from helpers import REPO, nnctl

pytestmark = pytest.mark.slow  # each test runs the CLI

INLINE = "{type: inline, x: [[0, 0], [0, 1], [1, 0], [1, 1]], y: %s}"

OVERRIDES = {
    "step gamma below 0": (["schedule={type: step, every: 1, gamma: -1}"], "schedule.gamma: expected a number > 0, "
                                                                            "got -1"),
    "exponential gamma 0": (["schedule={type: exponential, gamma: 0}"], "schedule.gamma: expected a number > 0, got 0"),
    "cosine min_factor above 1": (["schedule={type: cosine, min_factor: 2}"], "schedule.min_factor: expected a number "
                                                                              "in [0, 1], got 2"),
    "adam eps below 0": (["optimizer.eps=-1"], "optimizer.eps: expected a number > 0, got -1"),
    "adagrad eps 0": (["optimizer={type: adagrad, eps: 0}"], "optimizer.eps: expected a number > 0, got 0"),
    "rmsprop rho above 1": (["optimizer={type: rmsprop, rho: 5}"], "optimizer.rho: expected a number in [0, 1), got 5"),
    "adamw decay below 0": (["optimizer={type: adamw, weight_decay: -1}"], "optimizer.weight_decay: expected a number "
                                                                            "≥ 0, got -1"),
    "a leaf override under a section": (["model.layers.0.weight_init={type: uniform, high: 0.1}",
                                         "model.layers.0.weight_init.low=0.5"],
                                        "(and override 'model.layers.0.weight_init.low=0.5'): "
                                        "model.layers.0.weight_init: uniform needs low < high"),
    "an override's epochs": (["train.epochs=0"], "override 'train.epochs=0': train.epochs: expected an integer ≥ 1, "
                                                 "got 0"),
    "a name used twice": (["model.layers.0.name=dense_2"],
                          "override 'model.layers.0.name=dense_2': model.layers.0.name: layer name 'dense_2' is "
                          "used twice: by model.layers.0 and model.layers.1"),
    "no layers": (["model.layers=[]"], "model.layers: expected a non-empty list of layers"),
    "an unknown model key": (["model.layer=[]"], "model.layer: unknown key; expected one of: layers, weights"),
    "a layer name that is a path": (["model.layers.0.name=a/b"], "'a/b' cannot name a layer"),
    "a validation count below 1": (["data.validation=-3"], "data.validation: expected a number in (0, 1) or an "
                                                           "integer ≥ 1 or 'test' or null, got -3"),
    "an unknown augment key": (["data.augment={shfit: 2}"], "data.augment.shfit: unknown key (did you mean 'shift'?)"),
    "initial values of NaN": (["model.layers.1.bias_init=[.nan, 0]"], "model.layers.1.bias_init: expected an "
                              "initializer name, a mapping with 'type', or finite numbers"),
    "an initial value past float's range": ([f"model.layers.1.bias_init={'9' * 400}"], "or finite numbers"),
    "initial values of true and false": (["model.layers.1.bias_init=[true, false]"], "or finite numbers"),
    "three labels for one sigmoid": ([f"data={INLINE % '[0, 1, 1, 2]'}", "loss=binary_cross_entropy",
                                      "model.layers.1.units=1"], "one sigmoid output tells 2 classes apart"),
    "binary targets below 0": ([f"data={INLINE % '[-0.5, 1, 1, 0]'}", "loss=binary_cross_entropy",
                                "model.layers.1.units=1"],
                               "binary_cross_entropy reads targets as probabilities in [0, 1], but the train "
                               "targets run from -0.5 to 1"),
    "soft rows above 1": ([f"data={INLINE % '[[0, 1.5], [1, 0], [1, 0], [0, 1]]'}"],
                          "softmax_cross_entropy reads targets as probabilities in [0, 1]"),
    # integer targets are class labels: an mse of one output trained a regression whose accuracy was read from it
    "mse of one output on labels": ([f"data={INLINE % '[0, 3, 5, 2]'}", "loss=mse", "model.layers.1.units=1"],
                                    "loss: mse fits the model's one output per sample to the targets, but they are "
                                    "integers, read as class labels 0–5, which one output cannot tell apart "
                                    "(accuracy and eval's classes would be read from it); set data.targets: values "
                                    "for regression"),
    "mse of other outputs on labels": ([f"data={INLINE % '[0, 3, 5, 2]'}", "loss=half_sse"],
                                       "the model outputs [2] per sample but the targets are scalars with 6 classes; "
                                       "half_sse compares the outputs with the targets as values, but the targets are "
                                       "integers, read as class labels (set data.targets: values for regression)"),
}


@pytest.mark.parametrize("name", OVERRIDES)
def test_values_that_would_train_wrongly_are_refused_at_their_line(tmp_path, name):
    overrides, phrase = OVERRIDES[name]
    (tmp_path / "c.yaml").write_text(XOR)
    clean_error(nnctl("train", "c.yaml", *overrides, cwd=tmp_path), 2, phrase)
    assert listing(tmp_path) == {str(tmp_path / "c.yaml")}


@pytest.mark.parametrize("units, phrase", [
    (1, "which one output cannot tell apart (accuracy and eval's classes would be read from it); mnist holds class "
        "labels only: give the last layer one output per class (units: 10), or use softmax_cross_entropy"),
    (3, "read as class labels (mnist holds class labels only: give the last layer one output per class (units: 10), "
        "or use softmax_cross_entropy)")])
def test_mse_on_labels_of_a_source_without_targets_hints_at_the_outputs(mnist_root, units, phrase):
    """MNIST has no data.targets and its labels are what they are: the hint was to store regression targets as
    floats, which no MNIST user can do."""
    result = nnctl("check", "configs/mnist_mlp.yaml", "loss=mse", f"model.layers.4.units={units}",
                   "data.subset=64", "data.validation=16")
    clean_error(result, 2, phrase)


def test_a_value_a_constructor_refuses_is_named_at_its_own_line(tmp_path):
    """It was the section's line (`c.yaml:9: optimizer: lr must be positive`), far from the key in a long section."""
    (tmp_path / "c.yaml").write_text(XOR.replace("optimizer: {type: adam, lr: 0.05}",
                                                 "optimizer:\n  type: adam\n\n  lr: -0.05"))
    clean_error(nnctl("config", "c.yaml", cwd=tmp_path), 2, "c.yaml:12: optimizer.lr: expected a number > 0, got -0.05")


READ_FROM_DATA = ("three labels for one sigmoid", "binary targets below 0", "soft rows above 1",
                  "mse of one output on labels", "mse of other outputs on labels")
"""The mistakes above that only the data shows, which nnctl config does not read."""


@pytest.mark.parametrize("name", [name for name in OVERRIDES if name not in READ_FROM_DATA])
def test_nnctl_config_refuses_what_train_would(tmp_path, name):
    """Its output is a config that trains the same run, so it runs the same checks of the values and the model
    section (no data)."""
    overrides, phrase = OVERRIDES[name]
    (tmp_path / "c.yaml").write_text(XOR)
    clean_error(nnctl("config", "c.yaml", *overrides, cwd=tmp_path), 2, phrase)


def test_a_trailing_star_and_a_bad_device_are_named_as_given(tmp_path):
    (tmp_path / "c.yaml").write_text(XOR)
    clean_error(nnctl("config", "c.yaml", "model.layers.*={type: dense}", cwd=tmp_path), 2,
                "model.layers.*: a '*' stands for the items that have the key after it, so a key must follow it")
    clean_error(nnctl("train", "c.yaml", "--device", "foo", cwd=tmp_path), 2,
                "--device: expected cpu, cuda or cuda:N, got 'foo'")
    clean_error(nnctl("config", "c.yaml", "device=null", cwd=tmp_path), 2, "device: expected cpu, cuda or cuda:N, "
                "got null")  # not Python's None
    assert listing(tmp_path) == {str(tmp_path / "c.yaml")}


def test_integer_one_hot_targets_train_in_float32(tmp_path):
    """Integer one-hot rows were kept int64, and the float64 gradient they made stopped float32 training."""
    (tmp_path / "c.yaml").write_text(XOR)
    result = nnctl("train", "c.yaml", "-q", f"data={INLINE % '[[1, 0], [0, 1], [0, 1], [1, 0]]'}", "dtype=float32",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_shift_that_moves_the_image_off_its_frame(tmp_path):
    """A shift of 10⁹ pixels asked for an array too big to make; one at the image's size for 37 GiB."""
    result = nnctl("train", str(REPO / "configs" / "mnist_cnn.yaml"), "data.subset=100", "data.test_subset=100",
                   "data.validation=null", "data.augment={shift: 28}", "--runs-dir", str(tmp_path / "runs"),
                   cwd=tmp_path)
    clean_error(result, 2, "override 'data.augment={shift: 28}': data.augment.shift: 28 pixels would move a 28×28 "
                           "image off its frame; shift by less than 28")


@pytest.mark.parametrize("key, value, phrase", [
    ("validation", "100", "data.validation: holds out 100 of the 100 training samples"),
    ("augment", "{shift: 28}", "data.augment.shift: 28 pixels would move a 28×28 image off its frame"),
])
def test_a_data_value_that_the_data_shows_wrong_is_named_at_its_line(tmp_path, key, value, phrase):
    """Only the data tells that these values cannot work; the message still names the file, line and key."""
    text = (REPO / "configs" / "mnist_cnn.yaml").read_text().replace("data:\n", f"data:\n  {key}: {value}\n", 1)
    (tmp_path / "c.yaml").write_text(text.replace("validation: 5000", "validation: null") if key != "validation"
                                     else text.replace("  validation: 5000\n", ""))
    line = (tmp_path / "c.yaml").read_text().splitlines().index(f"  {key}: {value}") + 1
    for command in ("train", "check"):
        result = nnctl(command, "c.yaml", "data.subset=100", "data.test_subset=10", cwd=tmp_path)
        clean_error(result, 2, f"c.yaml:{line}: {phrase}")
    assert listing(tmp_path) == {str(tmp_path / "c.yaml")}


@pytest.mark.parametrize("variable, value, phrase", [
    ("NNCTL_THREADS", "9" * 20, "NNCTL_THREADS must be a positive number of threads (at most 1024)"),
    ("NNCTL_THREADS", "²", "NNCTL_THREADS must be a positive number"),  # a digit to str.isdigit, not to int()
    ("NNCTL_MAX_MEMORY", "64Q", "NNCTL_MAX_MEMORY must be a size above 0 such as 64G"),
    ("NNCTL_MAX_MEMORY", "0", "NNCTL_MAX_MEMORY must be a size above 0"),
    ("NNCTL_MAX_MEMORY", "nan", "NNCTL_MAX_MEMORY must be a size above 0"),
])
def test_malformed_environment_variables_stop_every_command(tmp_path, variable, value, phrase):
    (tmp_path / "c.yaml").write_text(XOR)
    for args in (["--help"], ["config", "c.yaml"]):
        clean_error(nnctl(*args, cwd=tmp_path, env={variable: value}), 2, phrase)


@pytest.mark.parametrize("base, phrase", [
    ("folder", "base: folder: a folder, not a config file"),
    ("/dev/null", "base: /dev/null: not a regular file"),
    ("missing.yaml", "base: missing.yaml: no such config file"),
    ("loop1", "base: loop1: cannot read config file: Too many levels of symbolic links"),
])
def test_a_base_that_is_not_a_config_file_is_named_for_what_it_is(tmp_path, base, phrase):
    (tmp_path / "folder").mkdir()
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "c.yaml").write_text(f"base: {base}\nseed: 1\n")
    clean_error(nnctl("config", "c.yaml", cwd=tmp_path), 2, f"c.yaml:1: {phrase}")


def test_a_required_section_deleted_over_a_base_names_the_deleting_line(tmp_path):
    (tmp_path / "xor.yaml").write_text(XOR)
    (tmp_path / "c.yaml").write_text("base: xor.yaml\nseed: 1\nmodel: null\n")
    clean_error(nnctl("config", "c.yaml", cwd=tmp_path), 2, "c.yaml:3: model: missing required section")


@pytest.mark.parametrize("sweep, args, code, phrase", [
    ("metric: foo\n", [], 2, "s.yaml:3: metric: unknown metric 'foo'"),
    ("search: {type: random, samples: 2, metric: val_acc}\n", [], 2,
     "s.yaml:3: search.metric: unknown metric 'val_acc'"),
    ("", ["--metric", "nonexistent"], 2, "--metric: unknown metric 'nonexistent'"),
    ("", ["--runs-dir", "c.yaml"], 1, "a file (or inside one), not a folder for the sweep's runs"),
    ("", ["--runs-dir", "c.yaml/sub"], 1, "a file (or inside one), not a folder for the sweep's runs"),
])
def test_sweep_mistakes_stop_before_any_member_trains(tmp_path, sweep, args, code, phrase):
    (tmp_path / "c.yaml").write_text(XOR)
    (tmp_path / "s.yaml").write_text("base: c.yaml\ngrid: {optimizer.lr: [0.1, 0.2]}\n" + sweep)
    clean_error(nnctl("sweep", "s.yaml", *args, cwd=tmp_path), code, phrase)
    assert listing(tmp_path) == {str(tmp_path / "c.yaml"), str(tmp_path / "s.yaml")}
