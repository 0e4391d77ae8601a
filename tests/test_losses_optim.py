"""Losses, decay, optimizers and schedules: reference values and numerical checks."""

import pickle

import numpy as np
import pytest

from nnctl.config import apply_overrides, from_dict
from nnctl.experiment import build
from nnctl.gradcheck import away_from_zero, check_loss, numerical_gradient, relative_error
from nnctl.losses import LOSSES, Decay
from nnctl.optim import OPTIMIZERS, clip_by_global_norm
from nnctl.schedules import SCHEDULES


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradients_match_central_differences(name):
    for check in check_loss(name):
        assert check.passed, f"{name} {check.tensor}: relative error {check.error:.2e}"


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("shape", [(4, 2), (4, 1)])
def test_integer_targets_shaped_like_the_outputs_keep_the_outputs_dtype(name, shape):
    """One-hot rows or a 0/1 column given as integers: the gradient must stay float32 (it was float64, which the
    float32 layers' buffers refused)."""
    if name == "softmax_cross_entropy" and shape[1] == 1:
        return  # needs two outputs (refused at build)
    y = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    t = np.eye(shape[1], dtype=np.int64)[[0, 1, 1, 0]] if shape[1] > 1 else np.array([[0], [1], [1], [0]])
    loss = LOSSES.get(name)()
    value = loss.forward(y, t)
    grad = loss.backward()
    assert grad.dtype == np.float32 and grad.shape == shape
    assert value == pytest.approx(loss.forward(y, t.astype(np.float32)), rel=1e-6)
    np.testing.assert_allclose(grad, loss.backward(), rtol=1e-6)


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
    p, g = np.zeros(3), np.zeros(3)
    optimizer.bind([p], [g])
    _, minimum = quadratic(p)
    for t in range(3000):
        g[...] = numerical_gradient(lambda: quadratic(p)[0], p, eps=1e-6)
        optimizer.lr = optimizer.base_lr * 0.998 ** t  # a decaying lr settles the adaptive methods
        optimizer.step()
    tol = 0.06 if name == "adamw" else 1e-3  # decoupled decay pulls the optimum towards zero
    np.testing.assert_allclose(p, minimum, atol=tol)


def bound(name: str, p: np.ndarray, g: np.ndarray, **kwargs):
    optimizer = OPTIMIZERS.get(name)(**kwargs)
    optimizer.bind([p], [g])
    return optimizer


def test_first_steps_match_the_formulas():
    g = np.array([0.5, -2.0])
    p = np.zeros(2)
    bound("sgd", p, g.copy(), lr=0.1).step()
    np.testing.assert_allclose(p, [-0.05, 0.2])
    p = np.zeros(2)
    bound("adam", p, g.copy(), lr=0.1).step()
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-6)  # Adam's first step is lr·sign(g)
    p = np.zeros(2)
    momentum = bound("momentum", p, g.copy(), lr=0.1)
    momentum.step()
    momentum.step()
    np.testing.assert_allclose(p, -0.1 * g * (1 + 1.9))
    p = np.zeros(2)
    bound("adagrad", p, g.copy(), lr=0.1).step()
    np.testing.assert_allclose(p, -0.1 * np.sign(g), rtol=1e-8)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_bind_makes_the_slots_and_step_reads_the_bound_gradients(name):
    rng = np.random.default_rng(0)
    params, grads = [np.zeros((2, 3)), np.zeros(4)], [np.zeros((2, 3)), np.zeros(4)]
    optimizer = OPTIMIZERS.get(name)(lr=0.1)
    optimizer.bind(params, grads)
    assert set(optimizer.slots) == set(optimizer.slot_names)
    for arrays in optimizer.slots.values():
        assert [a.shape for a in arrays] == [(2, 3), (4,)] and not any(a.any() for a in arrays)
    optimizer.step()
    assert not any(p.any() for p in params)  # zero gradients move nothing (params start at 0, so no decay either)
    for g in grads:
        g[...] = rng.standard_normal(g.shape)  # filled in place, as a model's backward fills them
    optimizer.step()
    assert optimizer.t == 2 and all((p != 0).all() for p in params)
    if name == "sgd":
        np.testing.assert_array_equal(params[1], -0.1 * grads[1])
    with pytest.raises(ValueError, match="2 parameters but 1 gradients"):
        OPTIMIZERS.get(name)().bind(params, grads[:1])


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_loaded_state_continues_exactly(name):
    rng = np.random.default_rng(1)
    gradients = [rng.standard_normal(3) for _ in range(6)]

    def run(steps: list[np.ndarray], optimizer, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        for step in steps:
            g[...] = step
            optimizer.step()
        return p

    p, g = np.ones(3), np.zeros(3)
    straight = bound(name, p, g, lr=0.05)
    run(gradients, straight, p, g)
    first_p, first_g = np.ones(3), np.zeros(3)
    first = bound(name, first_p, first_g, lr=0.05)
    run(gradients[:3], first, first_p, first_g)
    state = pickle.loads(pickle.dumps(first.state_dict()))  # as a checkpoint holds it
    resumed = bound(name, first_p.copy(), np.zeros(3), lr=0.05)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(run(gradients[3:], resumed, resumed.params[0], resumed.grads[0]), p)
    if resumed.slot_names:
        with pytest.raises(ValueError, match="saved"):
            bound(name, np.ones(4), np.zeros(4)).load_state_dict(state)


def test_a_schedule_sets_the_optimizers_lr_from_its_base_lr():
    optimizer = OPTIMIZERS.get("sgd")(lr=0.2)
    schedule = SCHEDULES.get("step")(every=1, gamma=0.5)
    schedule.set_lr(optimizer, 25, 10, 5)
    assert optimizer.lr == 0.2 * 0.25 and optimizer.base_lr == 0.2
    schedule.set_lr(optimizer, 0, 10, 5)
    assert optimizer.lr == 0.2


@pytest.mark.parametrize("every, steps_per_epoch", [(0.1, 10), (0.2, 5), (0.3, 10), (1.5, 2)])
def test_a_step_schedule_with_a_fractional_period_decays_on_time(every, steps_per_epoch):
    """Step s is epoch s / steps_per_epoch: the lr halves each time that passes a multiple of `every` (0.6 / 0.2
    is 2.9999999999999996 in floats, and step 3 of 5 decayed one step late)."""
    optimizer, schedule = OPTIMIZERS.get("sgd")(lr=1.0), SCHEDULES.get("step")(every=every, gamma=0.5)
    for step in range(60):
        schedule.set_lr(optimizer, step, steps_per_epoch, 100)
        periods = sum(1 for k in range(1, 61) if k * every * steps_per_epoch <= step + 1e-9)
        assert optimizer.lr == 0.5 ** periods, step


def test_decay_penalty_and_gradients_match_central_differences():
    rng = np.random.default_rng(2)
    weights = [away_from_zero(rng, (3, 4)), away_from_zero(rng, (5,))]
    grads = [rng.standard_normal(w.shape) for w in weights]
    before = [g.copy() for g in grads]
    decay = Decay(0.3, 0.7, weights, grads)
    assert decay
    expected = sum(0.3 * np.abs(w).sum() + 0.35 * (w * w).sum() for w in weights)
    assert decay.penalty() == pytest.approx(expected, rel=1e-12)
    decay.add_grads()
    for w, g, g0 in zip(weights, grads, before, strict=True):
        numeric = numerical_gradient(decay.penalty, w)
        assert relative_error(g - g0, numeric) < 1e-7
    off = Decay(0.0, 0.0, weights, grads)
    assert not off and off.penalty() == 0.0


def test_the_experiments_decay_holds_the_weights_not_the_biases():
    config = from_dict({"data": {"type": "logic", "op": "xor"}, "loss": {"type": "mse", "l2": 0.1},
                        "model": {"layers": [{"type": "dense", "units": 3, "activation": "tanh"},
                                             {"type": "batchnorm"}, {"type": "dense", "units": 1}]},
                        "optimizer": "sgd"})
    apply_overrides(config, [])
    exp = build(config)
    assert exp.decay.weights == [exp.model.layer("dense_1").params["W"], exp.model.layer("dense_2").params["W"]]
    assert all(g is layer.grads["W"] for g, layer in zip(exp.decay.grads, [exp.model.layer("dense_1"),
                                                                          exp.model.layer("dense_2")], strict=True))
    assert exp.optimizer.params == exp.model.params() and len(exp.optimizer.params) == 6


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
