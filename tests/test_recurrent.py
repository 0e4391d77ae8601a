"""Recurrent layers: BPTT against central differences (T >= 4, non-zero initial state, both directions,
stacked), values known by hand, a memory held over 50 steps, and sequence targets in the loss and metrics."""

import math

import numpy as np
import pytest

from helpers import CONFIGS, scale_gradient
from nnctl import threads
from nnctl.builder import build_model
from nnctl.config import apply_overrides, from_dict, load_config
from nnctl.errors import ConfigError
from nnctl.experiment import build
from nnctl.gradcheck import check_layer, check_model
from nnctl.layers import recurrent
from nnctl.limits import ENV
from nnctl.losses import SoftmaxCrossEntropy
from nnctl.metrics import MetricSums

LEARNED = {"initial_state": "learned", "state_init": {"type": "normal", "std": 0.5}}


def model_of(layers, input_shape, dtype=np.float64):
    return build_model(from_dict({"model": {"layers": layers}}), input_shape, dtype, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("config", [
    {"units": 4, **LEARNED},                                                  # last state only
    {"units": 3, "return_sequences": True, **LEARNED},
    {"units": 3, "bidirectional": True, **LEARNED},                           # both last states
    {"units": 2, "return_sequences": True, "bidirectional": True},             # zero initial state
])
def test_bptt_matches_central_differences(name, config):
    checks = check_layer(name, example={"config": config, "input_shape": (6, 3)})
    assert {c.tensor for c in checks} >= {"Wx", "Wh", "b", "input"}
    if "initial_state" in config:
        assert "h0" in {c.tensor for c in checks}
    if config.get("bidirectional"):
        assert {"Wx_r", "Wh_r", "b_r"} <= {c.tensor for c in checks}
    for check in checks:
        assert check.passed, f"{name} {config}: {check.tensor} relative error {check.error:.2e}"


def test_relu_rnn_gradients():
    config = {"units": 3, "activation": "relu", "return_sequences": True, **LEARNED}
    for check in check_layer("rnn", example={"config": config, "input_shape": (5, 2)}):
        assert check.passed, f"{check.tensor}: {check.error:.2e}"


def test_stacked_bidirectional_model_gradients():
    rng = np.random.default_rng(0)
    config = from_dict({
        "name": "stack", "seed": 0,
        "data": {"type": "inline", "x": rng.standard_normal((6, 5, 3)).tolist(), "y": [0, 1, 2, 0, 1, 2],
                 "flatten": False},
        "model": {"layers": [{"type": "lstm", "units": 3, "return_sequences": True, "bidirectional": True,
                              **LEARNED},
                             {"type": "gru", "units": 3, "return_sequences": True, **LEARNED},
                             {"type": "rnn", "units": 3, **LEARNED},
                             {"type": "dense", "units": 3}]},
        "loss": "softmax_cross_entropy", "optimizer": "sgd"})
    apply_overrides(config, ["dtype=float64"])  # as nnctl gradcheck asks for it
    checks = check_model(build(config), samples=6, per_tensor=12)
    assert len(checks) == 5 * 2 + 5 + 4 + 2 + 1  # lstm (both directions), gru, rnn, dense, input
    for check in checks:
        assert check.passed, f"{check.target}.{check.tensor}: {check.error:.2e}"


def test_small_gradients_of_a_long_recurrence_pass_at_the_default_eps_and_wrong_ones_still_fail(monkeypatch):
    """A bidirectional LSTM over 12 characters: some of its gradients are ~1e-4, where the loss's float64
    rounding over h = 1e-6 alone is a relative error of 1e-5 (they failed at the default eps); a gradient 1 % off
    is still caught."""
    config = load_config(CONFIGS / "char_lstm.yaml", ["data.seq_len=12", "data.subset=120", "data.test_subset=30",
                                                      "model.layers.0.dim=8", "model.layers.1.units=6",
                                                      "model.layers.1.bidirectional=true", "dtype=float64"])
    checks = check_model(build(config), samples=2, per_tensor=5)
    assert all(check.passed for check in checks), [(c.tensor, c.error) for c in checks if not c.passed]
    scale_gradient(monkeypatch, type(build(config).model.layers[1]), "Wh")
    failed = [c.tensor for c in check_model(build(config), samples=2, per_tensor=5) if not c.passed]
    assert failed == ["Wh"]


def test_rnn_values_by_hand():
    model = model_of([{"type": "rnn", "units": 1, "return_sequences": True, "weight_init": [[0.5]],
                       "recurrent_init": [[-1.0]], "bias_init": [0.1]}], (3, 1))
    y = model.forward(np.array([[[1.0], [2.0], [-1.0]]]))[0, :, 0]
    h1 = math.tanh(0.5 + 0.1)
    h2 = math.tanh(1.0 - h1 + 0.1)
    h3 = math.tanh(-0.5 - h2 + 0.1)
    np.testing.assert_allclose(y, [h1, h2, h3], rtol=1e-12)


def test_gru_values_by_hand():
    # one unit; x-weights for r, u, n = 1, 2, 3; h-weights 0.5, -0.5, 1; biases 0; h0 learned = 0.4
    model = model_of([{"type": "gru", "units": 1, "weight_init": [[1.0, 2.0, 3.0]],
                       "recurrent_init": [[0.5, -0.5, 1.0]], "initial_state": "learned", "state_init": [0.4]}],
                     (1, 1))
    h0, x = 0.4, 0.3
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    r, u = sig(1.0 * x + 0.5 * h0), sig(2.0 * x - 0.5 * h0)
    n = math.tanh(3.0 * x + r * (1.0 * h0))
    assert model.forward(np.array([[[x]]]))[0, 0] == pytest.approx((1 - u) * n + u * h0, rel=1e-12)


def test_lstm_with_forget_gate_pinned_open_carries_a_value_over_50_steps():
    # gates in the order i, f, o, g: the input gate opens only for x = 1 (first step), f and o stay open
    layer = {"type": "lstm", "units": 1, "return_sequences": True, "forget_bias": 0.0,
             "weight_init": [[40.0, 0.0, 0.0, 1.0]], "recurrent_init": "zeros", "bias_init": [-20.0, 20.0, 20.0, 0.0]}
    x = np.zeros((1, 50, 1))
    x[0, 0, 0] = 1.0
    model = model_of([layer], (50, 1))
    h = model.forward(x)[0, :, 0]
    np.testing.assert_allclose(h, math.tanh(math.tanh(1.0)), rtol=1e-6)  # c = tanh(1) written once, kept
    lstm = model.layers[0]
    lstm.input_grad = True
    dx = lstm.backward(np.eye(50)[-1][None, :, None])  # d h_50 / d x: not lost over the 49 steps between
    assert abs(dx[0, 0, 0]) > 0.1
    closed = model_of([{**layer, "bias_init": [-20.0, 0.0, 20.0, 0.0]}], (50, 1))  # f = 0.5: the value fades
    assert abs(closed.forward(x)[0, -1, 0]) < 1e-10


def test_dense_applies_the_same_weights_at_every_step():
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    model = model_of([{"type": "dense", "units": 4, "activation": "tanh", "bias_init": {"type": "normal"}}], (5, 3))
    y = model.forward(x)
    for t in range(5):
        np.testing.assert_allclose(y[:, t], model.forward(x[:, t]), rtol=1e-12)
    assert y.shape == (2, 5, 4)


def test_embedding_looks_up_rows_and_sums_their_gradients():
    model = model_of([{"type": "embedding", "vocab_size": 3, "dim": 2,
                       "weight_init": [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]}], (4,))
    np.testing.assert_array_equal(model.forward(np.array([[2.0, 0.0, 2.0, 1.0]]))[0],
                                  [[4, 5], [0, 1], [4, 5], [2, 3]])
    model.backward(np.ones((1, 4, 2)))
    np.testing.assert_array_equal(model.layers[0].grads["W"], [[1, 1], [1, 1], [2, 2]])


def test_sequence_targets_in_loss_and_accuracy():
    rng = np.random.default_rng(0)
    y, t = rng.standard_normal((3, 4, 5)), rng.integers(0, 5, (3, 4))
    loss = SoftmaxCrossEntropy()
    per_step = [SoftmaxCrossEntropy().forward(y[:, s], t[:, s]) for s in range(4)]
    assert loss.forward(y, t) == pytest.approx(np.mean(per_step), rel=1e-12)
    flat = SoftmaxCrossEntropy()
    flat.forward(y.reshape(12, 5), t.ravel())
    np.testing.assert_allclose(loss.backward().reshape(12, 5), flat.backward(), rtol=1e-12)
    sums = MetricSums(["accuracy"])
    sums.add(loss, 1.0, y, t)
    assert sums.result()["accuracy"] == pytest.approx((y.argmax(-1) == t).mean())


def test_an_embedding_after_another_layer_is_refused():
    with pytest.raises(ConfigError, match="model.layers.1.type: embedding reads indices: it must be the first layer"):
        model_of([{"type": "dense", "units": 2}, {"type": "embedding", "vocab_size": 3, "dim": 2}], (4,))


def test_a_recurrent_layer_on_flat_inputs_says_what_it_needs():
    with pytest.raises(ConfigError, match=r"lstm needs sequences of shape \(steps, features\), got \[784\]"):
        model_of([{"type": "lstm", "units": 2}], (784,))


@pytest.mark.parametrize("config", [
    {"units": 3, "activation": "identity", "use_bias": False, "return_sequences": True, **LEARNED},
    {"units": 3, "activation": "identity", "bidirectional": True},
])
def test_linear_elman_rnn_gradients(config):
    checks = check_layer("rnn", example={"config": config, "input_shape": (5, 2)})
    assert ("b" in {c.tensor for c in checks}) == config.get("use_bias", True)
    for check in checks:
        assert check.passed, f"{check.tensor}: {check.error:.2e}"


def test_linear_elman_rnn_values_by_hand():
    model = model_of([{"type": "rnn", "units": 1, "activation": "identity", "use_bias": False,
                       "return_sequences": True, "weight_init": [[0.5]], "recurrent_init": [[-1.0]]}], (3, 1))
    assert "b" not in model.layers[0].params
    y = model.forward(np.array([[[1.0], [2.0], [-1.0]]]))[0, :, 0]
    np.testing.assert_allclose(y, [0.5, 1.0 - 0.5, -0.5 - 0.5], rtol=1e-12)


@pytest.mark.parametrize("config", [
    {"units": 3, "reset_after": False, "return_sequences": True, "bidirectional": True, **LEARNED,
     "bias_init": {"type": "normal", "std": 0.3}},
    {"units": 4, "reset_after": False, **LEARNED},
])
def test_gru_reset_before_gradients(config):
    checks = check_layer("gru", example={"config": config, "input_shape": (6, 3)})
    assert {"Wx", "Wh", "b", "h0", "input"} <= {c.tensor for c in checks}
    assert "bh" not in {c.tensor for c in checks}
    for check in checks:
        assert check.passed, f"{check.tensor}: {check.error:.2e}"


def test_gru_reset_before_values_by_hand():
    # as test_gru_values_by_hand, but the reset gate scales h before the product: n = tanh(3x + 1·(r·h0))
    model = model_of([{"type": "gru", "units": 1, "reset_after": False, "weight_init": [[1.0, 2.0, 3.0]],
                       "recurrent_init": [[0.5, -0.5, 2.0]], "initial_state": "learned", "state_init": [0.4],
                       "bias_init": [0.1, 0.2, 0.3]}], (1, 1))
    h0, x = 0.4, 0.3
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    r, u = sig(1.0 * x + 0.5 * h0 + 0.1), sig(2.0 * x - 0.5 * h0 + 0.2)
    n = math.tanh(3.0 * x + 0.3 + 2.0 * (r * h0))
    assert model.forward(np.array([[[x]]]))[0, 0] == pytest.approx((1 - u) * n + u * h0, rel=1e-12)


@pytest.mark.parametrize("layer", [
    {"type": "lstm", "units": 5, "return_sequences": True, "bidirectional": True, **LEARNED},
    {"type": "lstm", "units": 4},
    {"type": "gru", "units": 4, "bidirectional": True, **LEARNED, "bias_init": {"type": "normal", "std": 0.3}},
    {"type": "gru", "units": 3, "reset_after": False, "return_sequences": True, **LEARNED},
    {"type": "rnn", "units": 3, "activation": "relu", "return_sequences": True},
    {"type": "rnn", "units": 3, "activation": "identity", "use_bias": False, **LEARNED},
])
@pytest.mark.parametrize("batch", [35, 64])
def test_a_batch_dealt_among_threads_gives_the_one_threads_values(layer, batch, monkeypatch):
    """Dealt in parts (17 + 18 sequences for 35), the outputs, the input's gradient and every parameter's
    gradient are those of the whole batch on one thread, to rounding."""
    monkeypatch.setattr(recurrent, "PART_ROWS", 16)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((batch, 6, 3)), None
    results = []
    for workers in (1, 2):
        model = model_of([{**layer, "name": "r"}, {"type": "dense", "units": 2}], (6, 3))
        model.layers[0].input_grad = True
        model.layers[0].threads = workers
        y = model.layers[0].forward(x, True)
        assert len(model.layers[0].parts) == workers
        dy = rng.standard_normal(y.shape) if dy is None else dy
        dx = model.layers[0].backward(dy)
        results.append((y, dx, {k: g.copy() for k, g in model.layers[0].grads.items()}))
        if workers == 2:  # a second step reuses the parts' gradient buffers: nothing of the first may remain
            again = model.layers[0].forward(x, True)
            results.append((again, model.layers[0].backward(dy), dict(model.layers[0].grads)))
    (y1, dx1, g1), *split = results
    for y2, dx2, g2 in split:
        np.testing.assert_allclose(y2, y1, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dx2, dx1, rtol=1e-12, atol=1e-13)
        assert g2.keys() == g1.keys()
        for key in g1:
            np.testing.assert_allclose(g2[key], g1[key], rtol=1e-11, atol=1e-12, err_msg=key)


def test_a_batch_too_small_to_deal_runs_whole_with_blas_on_the_layers_threads():
    """Under 2·PART_ROWS sequences the batch is one part, and BLAS, which the model holds to one thread while its
    layers deal their work, gets the layer's threads back for the loop."""
    model = model_of([{"type": "lstm", "units": 3}, {"type": "dense", "units": 2}], (4, 2))
    layer = model.layers[0]
    assert model.blas_threads == 1  # the lstm does nearly all the work
    layer.threads = 2
    seen = []
    step = layer.step
    layer.step = lambda *args: (seen.append(threads._blas()[0].num_threads), step(*args))[1]
    with threads.blas_limit(1):
        layer.forward(np.ones((2 * recurrent.PART_ROWS - 1, 4, 2)), True)
        assert layer.parts == [slice(0, 2 * recurrent.PART_ROWS - 1)]
        assert set(seen) == {2}
        assert threads._blas()[0].num_threads == 1  # and back to the model's one afterwards
        seen.clear()
        layer.forward(np.ones((2 * recurrent.PART_ROWS, 4, 2)), True)
        assert len(layer.parts) == 2 and set(seen) == {1}


def long_sequences(tmp_path, layer: dict) -> dict:
    """A config of 16 sequences of 4,000 steps and `layer` before a dense classifier."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "long.npz", x=rng.standard_normal((16, 4000, 1)).astype(np.float32), y=np.arange(16) % 2)
    return {"name": "long", "seed": 0, "dtype": "float32", "model": {"layers": [layer, {"type": "dense", "units": 2}]},
            "data": {"type": "npz", "path": str(tmp_path / "long.npz"), "flatten": False, "validation": 4},
            "loss": "softmax_cross_entropy", "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"batch_size": 12}}


def deep_trees(tmp_path, layer: dict) -> dict:
    """A config of 16 trees, one of them 2,000 levels deep (4,001 nodes), and `layer` before a dense classifier."""
    deep = "(0 a)"
    for _ in range(2000):
        deep = f"(0 {deep} (0 a))"
    (tmp_path / "t.txt").write_text("\n".join([deep] + ["(1 (0 a) (1 b))"] * 15) + "\n")
    return {"name": "deep", "seed": 0, "dtype": "float32", "model": {"layers": [layer, {"type": "dense", "units": 2}]},
            "data": {"type": "trees", "path": str(tmp_path / "t.txt"), "validation": 4},
            "loss": "softmax_cross_entropy", "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"batch_size": 12}}


@pytest.mark.parametrize("make, layer", [
    (long_sequences, {"type": "lstm", "units": 128}),                      # 368 MB (313 MB measured)
    (long_sequences, {"type": "gru", "units": 128, "bidirectional": True}),  # 590 MB (546 MB measured)
    (long_sequences, {"type": "rnn", "units": 128}),                       # 147 MB (75 MB measured)
    (deep_trees, {"type": "recursive", "vocab_size": 3, "dim": 64}),       # 74 MB
])
def test_the_memory_check_counts_what_a_layer_keeps_beyond_its_output(tmp_path, monkeypatch, make, layer):
    """Only the outputs were counted: a recurrent layer's last state (128 values) for its 4,000 steps, a
    recursive layer's root for its 4,001 nodes, so such a run went ahead and ran out of memory."""
    monkeypatch.setenv(ENV, "64M")
    with pytest.raises(ConfigError, match=r"model.layers: training this model .* would need [0-9.]+ MiB, more than the "
                                          r"64.0 MiB"):
        build(from_dict(make(tmp_path, layer)))
    monkeypatch.setenv(ENV, "2G")
    build(from_dict(make(tmp_path, layer)))


@pytest.mark.parametrize("config, data, layers, first", [
    ("char_lstm.yaml", "text", "[{type: reshape, shape: [100, 1]}, {type: lstm, units: 4, return_sequences: true}, "
                               "{type: dense, units: 65}]", "reshape"),
    ("tree_rnn.yaml", "trees", "[{type: flatten}, {type: dense, units: 2}]", "flatten"),
])
def test_indices_into_a_first_layer_that_reads_numbers_are_refused(config, data, layers, first):
    """Token ids through a reshape into an LSTM, or node tables into a dense layer, ended in an internal error (an
    int64 batch met float weights in a product with an output array)."""
    with pytest.raises(ConfigError, match=f"model.layers.0: data.type {data} "
                                          r"gives indices \(token ids or tree node tables\), which only a first layer "
                                          f"of type embedding or recursive reads; a {first} would take them"):
        build(load_config(CONFIGS / config, [f"model.layers={layers}"]))
