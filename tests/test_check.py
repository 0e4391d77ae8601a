"""`nnctl check` through the real CLI: healthy configs pass, and each kind of broken one exits 1 with its reason."""

import json
import re

import numpy as np
import pytest

from helpers import CONFIGS, nnctl

pytestmark = pytest.mark.slow  # the real CLI, training on MNIST slices

MNIST_SLICE = ["data.subset=600", "data.validation=100"]


def check(config: str, *args: str):
    return nnctl("check", str(CONFIGS / config), *args)


@pytest.mark.parametrize("config, args, expected", [
    ("xor_mlp.yaml", [], "expected about ln 2 = 0.6931"),
    ("mnist_mlp.yaml", MNIST_SLICE, "expected about ln 10 = 2.303"),
    ("elman_pattern_ends.yaml", [], "expected about ln 2"),
    ("mnist_cnn.yaml", MNIST_SLICE, "conv2d_1 (relu)"),
    ("mnist_mlp.yaml", [*MNIST_SLICE, f"loss={{type: softmax_cross_entropy, class_weights: {[10] * 10}}}"],
     "expected about ln 10 × 10 (the targets' mean class weight)"),
    # 0.9/0.1 rows sum to 1.8: equal logits lose 1.8 ln 10, and a last layer of std 0.2 is no more than 1.24× that
    ("mnist_mlp.yaml", [*MNIST_SLICE, "data.one_hot=true", "data.on_value=0.9", "data.off_value=0.1",
                        "model.layers.4.weight_init={type: normal, std: 0.2}"],
     "expected about ln 10 × 1.8 (the targets' mean row sum) = 4.145 (1.2"),
])
def test_healthy_configs_pass_with_a_timing_table(config, args, expected):
    result = check(config, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout
    assert "forward and backward │ ok" in result.stdout
    assert "overfit" in result.stdout and "done in" in result.stdout
    assert "time per layer" in result.stdout and "total" in result.stdout
    assert "checks passed" in result.stdout


@pytest.mark.parametrize("config, args, message", [
    ("mnist_mlp.yaml", [*MNIST_SLICE, "model.layers.4.weight_init={type: normal, std: 3.0}"],
     "check failed: initial loss: .* the initial outputs are too large"),
    ("mnist_mlp.yaml", [*MNIST_SLICE, "model.layers.0.bias_init={type: constant, value: -100}"],
     "check failed: units at init: dense_1 \\(relu\\): 512 of 512 units dead"),
    ("mnist_twolayer.yaml", [*MNIST_SLICE, "model.layers.0.weight_init={type: normal, std: 5.0}"],
     "check failed: units at init: dense_1 \\(sigmoid\\): \\d+% of its outputs saturated"),
    ("xor_mlp.yaml", ["optimizer.lr=1e-9"], "check failed: overfit 4 samples: could not: the loss did not even halve"),
    ("mnist_bn_compare_plain.yaml", ["data.subset=1600", "--steps", "200"],  # the deep net of tiny weights stalls
     "check failed: overfit 20 samples: could not"),
])
def test_broken_configs_exit_1_with_the_reason(config, args, message):
    result = check(config, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_a_slow_learner_is_inconclusive_not_failed():
    result = check("mnist_twolayer.yaml", *MNIST_SLICE, "--steps", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not yet overfit, but learning" in result.stdout
    assert "1 of them inconclusive" in result.stdout


def test_a_huge_initial_loss_prints_its_ratio_in_a_few_digits():
    """Weights of std 1e300: the loss is 1e299 times ln 2, which read as 300 digits and '.00' (and a tiny ratio as
    '0.00×')."""
    result = check("xor_mlp.yaml", "model.layers.1.weight_init={type: normal, std: 1e300}", "--steps", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"initial loss: [\d.e+]+, expected about ln 2 = 0\.6931 \(\d\.\d\de\+299×\): the initial",
                     result.stderr), result.stderr


def test_check_and_eval_say_what_train_warns_of_and_notes_in_the_data(tmp_path):
    """Only train said them: check passed a validation split of one class, and eval was silent about it."""
    x = np.random.default_rng(0).integers(0, 256, (200, 4), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", x=x, y=np.sort(np.arange(200) % 4), x_val=x[:5], y_val=np.zeros(5, np.int64))
    (tmp_path / "s.yaml").write_text("data: {type: npz, path: s.npz, validation: 0.1}\nmodel: {layers: [{type: "
                                     "dense, units: 4}]}\nloss: softmax_cross_entropy\noptimizer: sgd\n")
    sorted_split = "data.validation (the last 20 samples of"
    result = nnctl("check", str(tmp_path / "s.yaml"), "--steps", "20")
    assert result.returncode == 1 and f"check failed: data: {sorted_split}" in result.stderr, result.stderr
    assert re.search(r"data +│ unsure │ s\.npz holds arrays that no split is read from: x_val, y_val", result.stdout)
    assert re.search(r"data +│ unsure │ the inputs of .*s\.npz are bytes \(uint8, up to 255\)", result.stdout)
    trained = nnctl("train", str(tmp_path / "s.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert trained.returncode == 0, trained.stderr
    evaluated = nnctl("eval", str(next((tmp_path / "runs").iterdir())), "--split", "val", "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["samples"] == 20
    assert f"warning: {sorted_split}" in evaluated.stderr and "holds arrays that no split" in evaluated.stderr
    assert "are bytes (uint8, up to 255)" in evaluated.stderr
    np.savez(tmp_path / "r.npz", x=x / 255, y=np.arange(200) % 4)
    fixed = nnctl("check", str(tmp_path / "s.yaml"), f"data.path={tmp_path / 'r.npz'}", "--steps", "20")
    assert "nothing to warn of" in fixed.stdout and "check failed: data" not in fixed.stderr, fixed.stderr
