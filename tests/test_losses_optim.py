"""Losses, decay, optimizers and schedules: reference values and numerical checks."""

import numpy as np
import pytest

from nnctl.gradcheck import check_loss, numerical_gradient, relative_error
from nnctl.losses import LOSSES
from nnctl.optim import OPTIMIZERS, clip_by_global_norm
from nnctl.schedules import SCHEDULES


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradients_match_central_differences(name):
    for check in check_loss(name):
        assert check.passed, f"{name} {check.tensor}: relative error {check.error:.2e}"


def test_central_difference_of_sum_of_squares():
    x = np.array([3.0, 4.0])
    grad = numerical_gradient(lambda: float((x ** 2).sum()), x, eps=1e-4)
    np.testing.assert_allclose(grad, [6.0, 8.0], atol=1e-8)
    np.testing.assert_array_equal(x, [3.0, 4.0])


@pytest.mark.parametrize("target", [np.array([0]), np.array([[1.0, 0.0, 0.0]])])
def test_cross_entropy_reference_value(target):
    p = np.array([[0.7, 0.2, 0.1]])
    loss = LOSSES.get("softmax_cross_entropy")()
    assert loss.forward(np.log(p), target) == pytest.approx(0.35667, abs=1e-5)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = LOSSES.get("softmax_cross_entropy")()
    assert loss.forward(np.array([[1000.0, 0.0]]), np.array([1])) == pytest.approx(1000.0)
    assert np.isfinite(loss.backward()).all()


def test_binary_cross_entropy_on_logits_is_stable():
    loss = LOSSES.get("binary_cross_entropy")()
    value = loss.forward(np.array([[800.0], [-800.0]]), np.array([0.0, 1.0]))
    assert value == pytest.approx(800.0)


def test_half_sse_and_mse_values():
    y, t = np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])
    assert LOSSES.get("half_sse")().forward(y, t) == pytest.approx(2.5)
    assert LOSSES.get("mse")().forward(y, t) == pytest.approx(2.5)


def quadratic(p):
    """f(p) = ½·Σ a·(p − c)², minimum at c."""
    a, c = np.array([1.0, 3.0, 0.5]), np.array([1.0, -2.0, 0.5])
    return 0.5 * float((a * (p - c) ** 2).sum()), c


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_minimizes_a_quadratic_with_numerical_gradients(name):
    optimizer = OPTIMIZERS.get(name)(lr=0.5 if name == "adagrad" else 0.05)
    p = np.zeros(3)
    _, minimum = quadratic(p)
    for t in range(3000):
        g = numerical_gradient(lambda: quadratic(p)[0], p, eps=1e-6)
        optimizer.step([p], [g], optimizer.lr * 0.998 ** t)  # a decaying lr settles the adaptive methods
    tol = 0.06 if name == "adamw" else 1e-3  # decoupled decay pulls the optimum towards zero
    np.testing.assert_allclose(p, minimum, atol=tol)


def test_first_steps_match_the_formulas():
    g = np.array([0.5, -2.0])
    p = np.zeros(2)
    OPTIMIZERS.get("sgd")(lr=0.1).step([p], [g.copy()], 0.1)
    np.testing.assert_allclose(p, [-0.05, 0.2])
    p = np.zeros(2)
    OPTIMIZERS.get("adam")(lr=0.1).step([p], [g.copy()], 0.1)
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-6)  # Adam's first step is lr·sign(g)
    p, momentum = np.zeros(2), OPTIMIZERS.get("momentum")(lr=0.1)
    momentum.step([p], [g.copy()], 0.1)
    momentum.step([p], [g.copy()], 0.1)
    np.testing.assert_allclose(p, -0.1 * g * (1 + 1.9))
    p, h = np.zeros(2), OPTIMIZERS.get("adagrad")(lr=0.1)
    h.step([p], [g.copy()], 0.1)
    np.testing.assert_allclose(p, -0.1 * np.sign(g), rtol=1e-8)


def test_clip_by_global_norm():
    grads = [np.array([3.0]), np.array([4.0])]
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([grads[0][0], grads[1][0]], [0.6, 0.8])


def test_relative_error_is_zero_for_equal_and_one_for_opposite():
    a = np.array([1.0, -2.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)


@pytest.mark.parametrize("name, kwargs, epoch, expected", [
    ("constant", {}, 5.0, 1.0),
    ("step", {"every": 2, "gamma": 0.5}, 5.0, 0.25),
    ("exponential", {"gamma": 0.9}, 2.0, 0.81),
    ("cosine", {}, 5.0, 0.5),
    ("cosine", {"min_factor": 0.1}, 10.0, 0.1),
])
def test_schedule_factors(name, kwargs, epoch, expected):
    schedule = SCHEDULES.get(name)(**kwargs)
    assert schedule(int(epoch * 100), 100, 10) == pytest.approx(expected)


def test_linear_warmup():
    schedule = SCHEDULES.get("constant")(warmup_epochs=1.0)
    assert [schedule(s, 4, 10) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
