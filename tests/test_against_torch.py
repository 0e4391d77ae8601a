"""nnctl against PyTorch in float64 over many steps, where small differences compound: every optimizer and option
over 200 steps, every schedule over its steps, reduce_on_plateau with a resume, batch norm's running statistics,
the losses' options and reductions, the initializers' fans, and real trainings through the CLI, parameter for
parameter. PyTorch comes with the bench extra (pip install 'nnctl[bench]'); without it these tests skip."""

import json
import math

import numpy as np
import pytest

from helpers import nnctl
from nnctl import checkpoint
from nnctl.builder import build_model
from nnctl.config import from_dict, load_config
from nnctl.experiment import build
from nnctl.layers import LAYERS
from nnctl.losses import LOSSES
from nnctl.optim import OPTIMIZERS, clip_by_global_norm
from nnctl.schedules import SCHEDULES, ReduceOnPlateau

torch = pytest.importorskip("torch", reason="the comparisons with PyTorch need it: pip install 'nnctl[bench]'")
F = torch.nn.functional
S = torch.optim.lr_scheduler


def assert_close(mine: np.ndarray, theirs, rtol: float = 1e-12) -> None:
    """Equal to `rtol` of the largest magnitude of torch's tensor (or array)."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=rtol * max(np.abs(theirs).max(), 1e-300))


def clip_exactly(tensors: list, max_norm: float) -> None:
    """nnctl's clip_norm in torch: the gradients scaled by max_norm / norm where the norm exceeds it, as
    tf.clip_by_global_norm (torch's clip_grad_norm_ divides by norm + 1e-6 instead)."""
    norm = torch.sqrt(sum((t.grad * t.grad).sum() for t in tensors))
    if norm > max_norm:
        for t in tensors:
            t.grad *= max_norm / norm


OPTIMIZERS_AND_TORCHS = [
    ("sgd", {}, "SGD", {}),
    ("sgd", {"momentum": 0.9}, "SGD", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.5, "nesterov": True}, "SGD", {"momentum": 0.5, "nesterov": True}),
    ("momentum", {}, "SGD", {"momentum": 0.9}),
    ("adagrad", {}, "Adagrad", {"eps": 1e-10}),
    ("rmsprop", {"rho": 0.8}, "RMSprop", {"alpha": 0.8, "eps": 1e-7}),
    ("adam", {}, "Adam", {}),
    ("adam", {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3}, "Adam", {"betas": (0.5, 0.9), "eps": 1e-3}),
    ("adamw", {"weight_decay": 0.1}, "AdamW", {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("clip_norm", [None, 2.0])
@pytest.mark.parametrize("name, kwargs, torch_name, torch_kwargs", OPTIMIZERS_AND_TORCHS)
def test_200_steps_of_every_optimizer_match_torch_optim(name, kwargs, torch_name, torch_kwargs, clip_norm):
    """Random gradients, some large enough to be clipped, an lr that decays every step and a second parameter at
    lr_mult 0.5 (torch: a second parameter group)."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    params, grads = [p.copy() for p in start], [np.zeros_like(p) for p in start]
    optimizer = OPTIMIZERS.get(name)(lr=0.05, clip_norm=clip_norm, **kwargs)
    optimizer.bind(params, grads, [1.0, 0.5])
    tensors = [torch.tensor(p, requires_grad=True) for p in start]
    theirs = getattr(torch.optim, torch_name)([{"params": [t]} for t in tensors], lr=0.05, **torch_kwargs)
    for step in range(200):
        for g, t in zip(grads, tensors, strict=True):
            g[...] = rng.normal(size=g.shape) * (4.0 if step % 7 == 0 else 0.5)
            t.grad = torch.tensor(g)
        optimizer.lr = 0.05 * 0.99 ** step
        for group, mult in zip(theirs.param_groups, [1.0, 0.5], strict=True):
            group["lr"] = optimizer.lr * mult
        optimizer.step()
        if clip_norm:
            clip_exactly(tensors, clip_norm)
        theirs.step()
    for p, t in zip(params, tensors, strict=True):
        assert_close(p, t)


def test_clip_norm_is_exact_where_torchs_clip_grad_norm_leaves_1e_6_of_slack():
    grads = [np.array([3.0, 0.0]), np.array([4.0])]
    tensors = [torch.tensor(g, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.tensor(g)
    clip_by_global_norm(grads, 1.0)
    torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    assert math.hypot(*grads[0], *grads[1]) == pytest.approx(1.0, rel=1e-15)
    torchs = float(torch.sqrt(sum((t.grad ** 2).sum() for t in tensors)))
    assert torchs == pytest.approx(1 - 1e-6 / 5, rel=1e-12)  # max_norm / (norm + 1e-6) times the norm


SPE, EPOCHS = 6, 5
"""Steps per epoch and epochs of the schedule comparisons."""


def linear_warmup(optimizer, epochs: float, steps_per_epoch: int = SPE):
    """nnctl's warm-up in torch: (step + 1) / warm-up steps, reaching 1 at its last step."""
    steps = epochs * steps_per_epoch
    return S.LinearLR(optimizer, start_factor=1 / steps, total_iters=steps - 1)


SCHEDULES_AND_TORCHS = [
    ("constant", {}, lambda o: [S.LambdaLR(o, lambda step: 1.0)]),
    ("step", {"every": 2, "gamma": 0.5}, lambda o: [S.StepLR(o, step_size=2 * SPE, gamma=0.5)]),
    ("step", {"every": 0.5, "gamma": 0.7}, lambda o: [S.StepLR(o, step_size=SPE // 2, gamma=0.7)]),
    ("exponential", {"gamma": 0.8}, lambda o: [S.ExponentialLR(o, gamma=0.8 ** (1 / SPE))]),
    ("cosine", {}, lambda o: [S.CosineAnnealingLR(o, T_max=SPE * EPOCHS)]),
    ("cosine", {"min_factor": 0.1}, lambda o: [S.CosineAnnealingLR(o, T_max=SPE * EPOCHS, eta_min=0.01)]),
    ("constant", {"warmup_epochs": 2}, lambda o: [linear_warmup(o, 2)]),
    # the warm-up multiplies the schedule over the same steps (torch's ChainedScheduler), not before it
    ("cosine", {"warmup_epochs": 1}, lambda o: [linear_warmup(o, 1), S.CosineAnnealingLR(o, T_max=SPE * EPOCHS)]),
    ("step", {"every": 1, "gamma": 0.5, "warmup_epochs": 2}, lambda o: [linear_warmup(o, 2), S.StepLR(o, SPE, 0.5)]),
    ("exponential", {"gamma": 0.5, "warmup_epochs": 0.5},
     lambda o: [linear_warmup(o, 0.5), S.ExponentialLR(o, gamma=0.5 ** (1 / SPE))]),
]


@pytest.mark.parametrize("name, kwargs, torchs", SCHEDULES_AND_TORCHS)
def test_every_schedule_sets_torchs_lr_at_every_step(name, kwargs, torchs):
    """From step 0 to the last step of the last epoch, schedules stepped once per optimizer step."""
    schedule, optimizer = SCHEDULES.get(name)(**kwargs), OPTIMIZERS.get("sgd")(lr=0.1)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    chained = S.ChainedScheduler(torchs(theirs))
    for step in range(SPE * EPOCHS):
        schedule.set_lr(optimizer, step, SPE, EPOCHS)
        assert optimizer.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-13, abs=0), step
        theirs.step()
        chained.step()


@pytest.mark.parametrize("seed", range(12))
def test_reduce_on_plateau_cuts_where_torchs_does_and_resumes_from_its_state(seed):
    """Random monitored values (with ties), modes, patience, cooldown, min_delta and min_lr; torch's patience is
    p − 1 (README) and its eps 0 (else a cut smaller than 1e-8 is skipped); halfway, the state goes through JSON
    into a new schedule, as a resume's checkpoint does."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(size=40).cumsum() * 0.1, 2).tolist()
    mode, patience, cooldown = ("min", "max")[seed % 2], int(rng.integers(1, 4)), int(rng.integers(0, 3))
    min_delta, min_lr = float(rng.choice([0.0, 0.05])), float(rng.choice([0.0, 0.01]))
    keys = {"factor": 0.5, "patience": patience, "cooldown": cooldown, "min_delta": min_delta, "min_lr": min_lr}
    schedule, optimizer = ReduceOnPlateau(**keys), OPTIMIZERS.get("sgd")(lr=0.1)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    plateau = S.ReduceLROnPlateau(theirs, mode=mode, factor=0.5, patience=patience - 1, cooldown=cooldown,
                                  threshold=min_delta, threshold_mode="abs", min_lr=min_lr, eps=0)
    for i, value in enumerate(values):
        if i == len(values) // 2:
            state = schedule.state_dict()
            schedule = ReduceOnPlateau(**keys)
            schedule.load_state_dict(state)
        schedule.observe(value, mode)
        schedule.set_lr(optimizer, i, 1, len(values))
        plateau.step(value)
        assert optimizer.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-13), i


@pytest.mark.parametrize("shape", [(6,), (3, 4, 4)])
def test_batchnorm_over_100_steps_matches_torchs_with_momentum_1_minus_nnctls(shape):
    """Batches of 2 to 8 samples: outputs and every gradient at each step, then the running mean and (unbiased)
    variance and the eval output; nnctl's momentum 0.8 is torch's 0.2."""
    layer = LAYERS.get("batchnorm")(momentum=0.8, name="bn")
    layer.build(shape, np.random.default_rng(0), np.float64)
    theirs = (torch.nn.BatchNorm1d if len(shape) == 1 else torch.nn.BatchNorm2d)(shape[0], momentum=0.2).double()
    rng = np.random.default_rng(1)
    for _ in range(100):
        x = rng.normal(2.0, 3.0, size=(int(rng.integers(2, 9)), *shape))
        dy = rng.normal(size=x.shape)
        x_t = torch.tensor(x, requires_grad=True)
        y_t = theirs(x_t)
        y_t.backward(torch.tensor(dy))
        assert_close(layer.forward(x, True), y_t)
        assert_close(layer.backward(dy), x_t.grad, rtol=1e-10)
        assert_close(layer.grads["gamma"], theirs.weight.grad)
        assert_close(layer.grads["beta"], theirs.bias.grad)
        theirs.zero_grad()
    assert_close(layer.state["running_mean"], theirs.running_mean)
    assert_close(layer.state["running_var"], theirs.running_var)
    x = rng.normal(size=(5, *shape))
    assert_close(layer.forward(x, False), theirs.eval()(torch.tensor(x)))


def test_dropout_scales_what_it_keeps_by_1_over_1_minus_rate_as_torch():
    x = np.random.default_rng(0).uniform(1, 2, size=(200, 50))
    layer = LAYERS.get("dropout")(rate=0.3, name="d")
    layer.rng = np.random.default_rng(1)
    kept = layer.forward(x, True)
    theirs = F.dropout(torch.tensor(x), p=0.3, training=True).numpy()
    assert_close(kept[kept != 0], x[kept != 0] / 0.7, rtol=1e-15)
    assert_close(theirs[theirs != 0], x[theirs != 0] / 0.7, rtol=1e-15)
    assert (kept == 0).mean() == pytest.approx(0.3, abs=0.01)
    assert layer.forward(x, False) is x


def loss_case(name: str, shape: tuple[int, ...], kwargs: dict, targets: str):
    """nnctl's loss, its outputs y (logits) and targets t, torch's tensor of y and its targets."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=shape) * 3
    t = rng.integers(0, shape[-1], size=shape[:-1]) if targets == "labels" else rng.uniform(size=shape)
    return LOSSES.get(name)(**kwargs), y, t, torch.tensor(y, requires_grad=True), torch.tensor(t)


WEIGHTS = [1.0, 2.0, 0.5, 0.0, 3.0]
LOSSES_AND_TORCHS = [
    # softmax_cross_entropy: the mean over samples, and over a sequence's time steps too
    ("softmax_cross_entropy", (7, 5), {}, "labels", lambda y, t: F.cross_entropy(y, t)),
    ("softmax_cross_entropy", (3, 4, 5), {}, "labels", lambda y, t: F.cross_entropy(y.reshape(-1, 5), t.ravel())),
    ("softmax_cross_entropy", (7, 5), {"label_smoothing": 0.2}, "labels",
     lambda y, t: F.cross_entropy(y, t, label_smoothing=0.2)),
    # class weights as Keras's class_weight: the mean over samples (torch's weight= divides by their weights' sum)
    ("softmax_cross_entropy", (7, 5), {"class_weights": WEIGHTS}, "labels",
     lambda y, t: F.cross_entropy(y, t, weight=torch.tensor(WEIGHTS, dtype=torch.float64), reduction="none").mean()),
    ("binary_cross_entropy", (7, 3), {}, "values", lambda y, t: F.binary_cross_entropy_with_logits(y, t)),
    ("binary_cross_entropy", (3, 4, 2), {}, "values", lambda y, t: F.binary_cross_entropy_with_logits(y, t)),
    ("mse", (7, 3), {}, "values", lambda y, t: F.mse_loss(y, t)),
    ("half_sse", (7, 3), {}, "values", lambda y, t: F.mse_loss(y, t, reduction="sum") / 2 / 7),
]


@pytest.mark.parametrize("name, shape, kwargs, targets, torchs", LOSSES_AND_TORCHS)
def test_every_loss_and_its_options_give_torchs_value_and_gradient(name, shape, kwargs, targets, torchs):
    loss, y, t, y_t, t_t = loss_case(name, shape, kwargs, targets)
    value = loss.train_forward(y, t)
    theirs = torchs(y_t, t_t)
    theirs.backward()
    assert value == pytest.approx(theirs.item(), rel=1e-13)
    assert_close(loss.backward(), y_t.grad)


@pytest.mark.parametrize("init, variance", [
    ("glorot_uniform", lambda fan_in, fan_out: 2 / (fan_in + fan_out)),
    ("glorot_normal", lambda fan_in, fan_out: 2 / (fan_in + fan_out)),
    ("he_uniform", lambda fan_in, fan_out: 2 / fan_in),
    ("he_normal", lambda fan_in, fan_out: 2 / fan_in),
    ("lecun_uniform", lambda fan_in, fan_out: 1 / fan_in),
    ("lecun_normal", lambda fan_in, fan_out: 1 / fan_in),
])
@pytest.mark.parametrize("layer, config, input_shape, key, torch_shape", [
    ("dense", {"units": 300}, (200,), "W", (300, 200)),  # torch's Linear.weight is nnctl's W transposed
    ("conv2d", {"filters": 64, "kernel_size": 3}, (16, 8, 8), "W", (64, 16, 3, 3)),
    ("lstm", {"units": 32}, (5, 20), "Wx", (128, 20)),  # torch's weight_ih_l0: the four gates' rows
    ("lstm", {"units": 32}, (5, 20), "Wh", (128, 32)),  # weight_hh_l0
])
def test_initializers_draw_the_variance_of_torchs_fans(init, variance, layer, config, input_shape, key, torch_shape):
    """The variance of a layer's built weights against scale / fan, with the fans torch computes for the same
    weights in its layout (the recurrent kernels' fan-out counts every gate, as Keras's), within 5 standard errors
    of the sample variance; the mean within 5 of its own."""
    spec = {"type": layer, **config, "recurrent_init" if key == "Wh" else "weight_init": init}
    model = build_model(from_dict({"model": {"layers": [spec]}}), input_shape, np.float64, np.random.default_rng(0))
    w = model.layers[0].params[key].ravel()
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))
    expected = variance(fan_in, fan_out)
    kurtosis = 9 / 5 if init.endswith("uniform") else 3  # the fourth moment over σ⁴
    assert abs(w.var() / expected - 1) < 5 * math.sqrt((kurtosis - 1) / w.size)
    assert abs(w.mean()) < 5 * math.sqrt(expected / w.size)
    if init.endswith("normal"):  # untruncated, as torch's; Keras's he/glorot/lecun_normal cut at 2 σ
        assert np.abs(w).max() > 3 * math.sqrt(expected)



TRAINING = """\
seed: 3
dtype: float64
data: {type: mnist, subset: 100, test_subset: 10}
model:
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 10}
train: {epochs: 3, batch_size: 32}
"""
STEPS = 4
"""Optimizer steps an epoch: 100 samples in batches of 32, the last of 4."""

TRAININGS = [
    pytest.param("optimizer: {type: sgd, lr: 0.5, momentum: 0.9, nesterov: true, clip_norm: 1.0}\n"
                 "loss: {type: softmax_cross_entropy, l2: 0.01}\nschedule: {type: step, every: 1, gamma: 0.5}",
                 lambda w, b: torch.optim.SGD(w + b, lr=0.5, momentum=0.9, nesterov=True),
                 lambda o: [S.StepLR(o, STEPS, 0.5)], True, id="nesterov-clip_norm-l2-step"),
    pytest.param("optimizer: {type: rmsprop, lr: 0.01}\nloss: {type: softmax_cross_entropy, label_smoothing: 0.1}\n"
                 "schedule: {type: cosine, warmup_epochs: 1}",
                 lambda w, b: torch.optim.RMSprop(w + b, lr=0.01, alpha=0.9, eps=1e-7),
                 lambda o: [linear_warmup(o, 1, STEPS), S.CosineAnnealingLR(o, T_max=3 * STEPS)], True,
                 id="rmsprop-label_smoothing-cosine-warmup"),
    pytest.param("optimizer: {type: adagrad, lr: 0.1}\nschedule: {type: exponential, gamma: 0.5}\n"
                 "loss: {type: softmax_cross_entropy, l1: 0.001, class_weights: [1, 2, 0.5, 1, 1, 1, 3, 1, 0, 1]}",
                 lambda w, b: torch.optim.Adagrad(w + b, lr=0.1, eps=1e-10),
                 lambda o: [S.ExponentialLR(o, gamma=0.5 ** (1 / STEPS))], True,
                 id="adagrad-l1-class_weights-exponential"),
    pytest.param("optimizer: {type: adamw, lr: 0.01, weight_decay: 0.1, clip_norm: 0.5}\n"
                 "loss: softmax_cross_entropy\nschedule: {type: constant, warmup_epochs: 2}",
                 lambda w, b: torch.optim.AdamW(w + b, lr=0.01, weight_decay=0.1),
                 lambda o: [linear_warmup(o, 2, STEPS)], True, id="adamw-clip_norm-warmup"),
    # l2 is torch's (coupled) weight_decay on the weights alone: here torch decays, not its loss
    pytest.param("optimizer: {type: adam, lr: 0.01}\nloss: {type: softmax_cross_entropy, l2: 0.01}\n"
                 "schedule: cosine",
                 lambda w, b: torch.optim.Adam([{"params": w, "weight_decay": 0.01}, {"params": b}], lr=0.01),
                 lambda o: [S.CosineAnnealingLR(o, T_max=3 * STEPS)], False, id="adam-l2_as_weight_decay-cosine"),
]


@pytest.mark.slow
@pytest.mark.parametrize("options, torch_optimizer, torch_schedules, penalty", TRAININGS)
def test_a_real_training_ends_with_torchs_weights_and_epoch_losses(tmp_path, mnist_root, options, torch_optimizer,
                                                                    torch_schedules, penalty):
    """Three epochs of an MNIST slice through the CLI against the same run in torch from the same initial
    weights: the run's shuffles (its data generator), the last batch of 4, the loss's options, clip_norm and the
    schedule per step; the final weights to 1e-12 and each epoch's mean loss over its samples. `penalty`: torch
    descends the L1/L2 penalty in its loss (else its optimizer's weight_decay stands for it)."""
    (tmp_path / "run.yaml").write_text(TRAINING + options + "\n")
    result = nnctl("train", str(tmp_path / "run.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    exp = build(load_config(tmp_path / "run.yaml"))
    weights, losses = torch_training(exp, torch_optimizer, torch_schedules, penalty)
    trained = checkpoint.load(run / "checkpoints" / "last.pkl").model
    for layer, w, b in zip(exp.model.layers, weights[::2], weights[1::2], strict=True):
        assert_close(trained[layer.name]["params"]["W"], w)
        assert_close(trained[layer.name]["params"]["b"], b)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == pytest.approx(losses, rel=1e-13)


def torch_training(exp, torch_optimizer, torch_schedules, penalty: bool) -> tuple[list, list[float]]:
    """The experiment's run in torch: its weights at the end (W, b per layer) and each epoch's mean loss."""
    x, y, loss = torch.tensor(exp.data.train.x), torch.tensor(exp.data.train.y), exp.loss
    params = [torch.tensor(layer.params[k], requires_grad=True) for layer in exp.model.layers for k in ("W", "b")]
    optimizer = torch_optimizer(params[::2], params[1::2])
    chained = S.ChainedScheduler(torch_schedules(optimizer))
    weights = None if loss.class_weights is None else torch.tensor(loss.class_weights)
    data_rng, losses = np.random.default_rng([exp.seed, 1]), []
    for _ in range(exp.settings.epochs):
        order, total = data_rng.permutation(len(x)), 0.0
        for rows in np.array_split(order, range(32, len(x), 32)):
            logits = torch.tanh(x[rows] @ params[0] + params[1]) @ params[2] + params[3]
            data = F.cross_entropy(logits, y[rows], weight=weights, label_smoothing=loss.label_smoothing,
                                   reduction="none").mean()  # class weights as Keras's: the mean over samples
            decay = sum(loss.l1 * w.abs().sum() + loss.l2 / 2 * (w * w).sum() for w in params[::2]) if penalty else 0
            total += data.item() * len(rows)
            optimizer.zero_grad()
            (data + decay).backward()
            if exp.optimizer.clip_norm:
                clip_exactly(params, exp.optimizer.clip_norm)
            optimizer.step()
            chained.step()
        losses.append(total / len(x))
    return params, losses
