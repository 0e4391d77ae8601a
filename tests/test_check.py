"""`nnctl check` through the real CLI: healthy configs pass, and each kind of broken one exits 1 with its reason."""

import re

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
