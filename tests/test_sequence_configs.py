"""The shipped sequence configs train through the real CLI on an MNIST slice (the text one: tests/test_text.py)."""

import json

import pytest

from helpers import CONFIGS, nnctl

pytestmark = pytest.mark.slow  # runs the CLI in subprocesses and trains real models


@pytest.mark.parametrize("config", ["mnist_lstm.yaml", "mnist_gru.yaml"])
def test_recurrent_mnist_config_learns_on_a_slice(tmp_path, mnist_root, config):
    runs = tmp_path / "runs"
    result = nnctl("train", str(CONFIGS / config), "data.subset=2000", "data.validation=400", "data.test_subset=500",
                   "train.epochs=2", "--runs-dir", str(runs), "-q")
    assert result.returncode == 0, result.stderr
    (run,) = runs.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert summary["test"]["test_accuracy"] > 0.3  # 1,600 images twice, read row by row: far above chance (0.1)


def test_gradcheck_of_the_char_model_through_the_cli():
    result = nnctl("gradcheck", str(CONFIGS / "char_lstm.yaml"), "data.seq_len=6", "model.layers.1.units=8",
                   "--samples", "3", "--per-tensor", "8", "--eps", "1e-4")  # Wh's entries are ~1e-4: a larger
    # step keeps the difference quotient's round-off (~1e-16·loss/eps) well below them
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 6 checks passed" in result.stdout  # embedding W, lstm Wx, Wh, b, dense W, b: no input (token ids)
