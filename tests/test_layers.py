"""Every registered layer: gradient check for free, plus forward values known by hand."""

import numpy as np
import pytest

from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.gradcheck import check_layer
from nnctl.layers import LAYERS


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_match_central_differences(name):
    checks = check_layer(name)
    assert checks, f"{name}: nothing was checked"
    for check in checks:
        assert check.passed, f"{name}.{check.tensor}: relative error {check.error:.2e}"


@pytest.mark.parametrize("name", list(LAYERS))
def test_output_shape_is_what_forward_returns(name):
    cls = LAYERS.get(name)
    config = from_dict({"model": {"layers": [{"type": name, **cls.example["config"]}]}})
    model = build_model(config, tuple(cls.example["input_shape"]), np.float32, np.random.default_rng(0))
    model.set_rng(np.random.default_rng(0))
    x = (np.array(cls.example["x"]) if "x" in cls.example
         else np.random.default_rng(1).standard_normal((2, *model.input_shape)).astype(np.float32))
    y = model.forward(x, training=True)
    assert y.shape == (len(x), *model.output_shape)
    assert y.dtype == np.float32


def forward(name, x, training=False, **config):
    model = build_model(from_dict({"model": {"layers": [{"type": name, **config}]}}), np.shape(x)[1:],
                        np.float64, np.random.default_rng(0))
    model.set_rng(np.random.default_rng(0))
    return model.forward(np.asarray(x, dtype=np.float64), training)


def test_relu_of_minus_one_is_zero():
    np.testing.assert_array_equal(forward("relu", [[-1.0, 0.0, 2.5]]), [[0.0, 0.0, 2.5]])


@pytest.mark.parametrize("name, expected", [
    ("identity", [-2.0, 0.0, 3.0]),
    ("step", [0.0, 0.0, 1.0]),
    ("sigmoid", [0.11920292202211755, 0.5, 0.9525741268224334]),
    ("tanh", [-0.9640275800758169, 0.0, 0.9950547536867305]),
    ("leaky_relu", [-0.02, 0.0, 3.0]),
    ("elu", [-0.8646647167633873, 0.0, 3.0]),
])
def test_activation_values(name, expected):
    np.testing.assert_allclose(forward(name, [[-2.0, 0.0, 3.0]])[0], expected, rtol=1e-12)


@pytest.mark.parametrize("x, expected", [
    ([1, 2, 3, 4], [0.0321, 0.0871, 0.2369, 0.6439]),
    ([2, 1, 0.1], [0.6590, 0.2424, 0.0986]),
])
def test_softmax_reference_values(x, expected):
    np.testing.assert_allclose(forward("softmax", [x])[0], expected, atol=5e-5)


def test_softmax_is_row_wise_and_stable():
    y = forward("softmax", [[1.0, 2.0, 3.0, 4.0], [1001.0, 1002.0, 1003.0, 1004.0]])
    np.testing.assert_allclose(y[0], y[1], rtol=1e-12)
    np.testing.assert_allclose(y.sum(axis=1), [1.0, 1.0])


def test_dense_computes_x_w_plus_b_with_explicit_weights():
    y = forward("dense", [[1.0, 2.0]], units=2, weight_init=[[1.0, 2.0], [3.0, 4.0]], bias_init=[0.5, -0.5])
    np.testing.assert_array_equal(y, [[7.5, 9.5]])


def test_dense_keeps_leading_axes():
    y = forward("dense", np.ones((2, 3, 4)), units=5, weight_init="ones", bias_init="zeros")
    np.testing.assert_array_equal(y, np.full((2, 3, 5), 4.0))


def test_flatten_and_reshape_values():
    x = np.arange(12.0).reshape(1, 2, 3, 2)
    np.testing.assert_array_equal(forward("flatten", x), np.arange(12.0)[None])
    np.testing.assert_array_equal(forward("reshape", np.arange(12.0)[None], shape=[3, -1]),
                                  np.arange(12.0).reshape(1, 3, 4))


def test_dropout_is_inverted_and_a_no_op_in_eval():
    x = np.ones((200, 50))
    np.testing.assert_array_equal(forward("dropout", x, training=False, rate=0.5), x)
    y = forward("dropout", x, training=True, rate=0.5)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert abs((y == 0).mean() - 0.5) < 0.02
    assert abs(y.mean() - 1.0) < 0.05
