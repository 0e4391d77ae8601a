"""reduce_on_plateau (its rule, the lr it sets in a real run, an exact resume), numbered checkpoints, and
per-layer lr_mult."""

import json

import numpy as np
import pytest

from helpers import CONFIGS, nnctl
from nnctl import checkpoint
from nnctl.config import load_config
from nnctl.experiment import build
from nnctl.optim import OPTIMIZERS, SGD
from nnctl.schedules import Constant, ReduceOnPlateau

PLATEAU = "schedule={type: reduce_on_plateau, factor: 0.5, patience: 2}"


def test_the_rule_waits_patience_evaluations_then_cools_down():
    schedule = ReduceOnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    optimizer = SGD(lr=0.1)
    seen = []
    for value in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        schedule.observe(value, "min")
        schedule.set_lr(optimizer, 0, 1, 10)
        seen.append(round(optimizer.lr, 6))
    # improves twice; two misses -> 0.05; one cooldown, two misses -> 0.025; again -> 0.0125, floored at 0.02
    assert seen == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02, 0.02]
    restored = ReduceOnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    restored.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert restored.state_dict() == schedule.state_dict()


def test_an_improving_evaluation_counts_towards_the_cooldown_too():
    """As PyTorch's ReduceLROnPlateau (its patience 1 is this patience 2) and Keras's: the cooldown is a number of
    evaluations, whatever they bring; an improvement in it used to leave it whole."""
    schedule = ReduceOnPlateau(factor=0.5, patience=2, cooldown=2)
    scales = []
    for value in [1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0]:
        schedule.observe(value, "min")
        scales.append(schedule.scale)
    assert scales == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_min_lr_bounds_the_cuts_not_the_warm_up():
    """A warm-up over 2 epochs of 4 steps from 0.1 / 8, below min_lr, as under `constant`; it used to be floored at
    min_lr, so the first steps all ran at 0.05."""
    plateau, constant = ReduceOnPlateau(min_lr=0.05, warmup_epochs=2), Constant(warmup_epochs=2)
    warmed, plain = SGD(lr=0.1), SGD(lr=0.1)
    for step in range(10):
        plateau.set_lr(warmed, step, 4, 10)
        constant.set_lr(plain, step, 4, 10)
        assert warmed.lr == plain.lr == pytest.approx(0.1 * min(1, (step + 1) / 8), rel=1e-15)


def rows(run):
    return [{k: v for k, v in json.loads(line).items() if k != "time_s"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_run_cuts_the_lr_on_a_plateau_and_resumes_exactly(tmp_path):
    # mode max on a falling loss: epoch 1 stays the best, so the lr halves after every second epoch
    args = [str(CONFIGS / "xor_mlp.yaml"), "train.monitor=loss", "train.mode=max", PLATEAU, "train.keep_every=2"]
    whole = nnctl("train", *args, "train.epochs=6", "--runs-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    (run,) = (tmp_path / "whole").iterdir()
    assert [r["lr"] for r in rows(run)] == pytest.approx([0.05, 0.05, 0.05, 0.025, 0.025, 0.0125])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.pkl", "epoch-0002.pkl", "epoch-0004.pkl", "epoch-0006.pkl", "last.pkl"]
    assert checkpoint.load(run / "checkpoints" / "epoch-0004.pkl").progress["epoch"] == 4

    first = nnctl("train", *args, "train.epochs=3", "--runs-dir", str(tmp_path / "parts"))
    assert first.returncode == 0, first.stderr
    (part,) = (tmp_path / "parts").iterdir()
    resumed = nnctl("train", "--resume", str(part / "checkpoints" / "last.pkl"), "train.epochs=6")
    assert resumed.returncode == 0, resumed.stderr
    assert rows(part) == rows(run)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_lr_mult_scales_each_parameters_rate(name):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(3) for _ in range(3)]
    grads = [rng.standard_normal(3) for _ in range(3)]
    scaled = OPTIMIZERS.get(name)(lr=0.1)
    params = [p.copy() for p in start]
    scaled.bind(params, [g.copy() for g in grads], [1.0, 0.5, 0.0])
    scaled.step()
    for p, g, p0, lr in zip(params, grads, start, [0.1, 0.05, 0.1], strict=True):
        plain = OPTIMIZERS.get(name)(lr=lr)
        alone = [p0.copy()]
        plain.bind(alone, [g.copy()])
        plain.step()
        if p is params[2]:
            np.testing.assert_array_equal(p, p0)  # lr_mult 0: frozen
        else:
            np.testing.assert_allclose(p, alone[0], rtol=1e-12)


@pytest.mark.slow
def test_a_frozen_layer_keeps_its_initial_weights_through_training(tmp_path):
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=20", "model.layers.0.lr_mult=0",
                   "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    trained = checkpoint.load(run / "checkpoints" / "last.pkl").model
    initial = build(load_config(CONFIGS / "xor_mlp.yaml")).model.state_dict()
    np.testing.assert_array_equal(trained["dense_1"]["params"]["W"], initial["dense_1"]["params"]["W"])
    assert not np.array_equal(trained["dense_2"]["params"]["W"], initial["dense_2"]["params"]["W"])
