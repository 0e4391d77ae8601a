"""Threads: BLAS on one thread inside a recurrent time loop, which runs on slices of the batch instead, with the
same numbers as one slice; NNCTL_THREADS fixed everywhere."""

import numpy as np
import pytest

from helpers import nnctl
from nnctl import threads
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.gradcheck import check_layer

LEARNED = {"initial_state": "learned", "state_init": {"type": "normal", "std": 0.5}}


def test_a_time_loop_runs_blas_on_one_thread_and_restores_the_count():
    (blas, *_) = threads._blas()
    blas.set_num_threads(2)
    with threads.time_loop(128):
        assert blas.num_threads == 1
        np.ones((64, 64)) @ np.ones((64, 64))
    assert blas.num_threads == 2


@pytest.mark.parametrize(("rows", "workers", "sizes"), [
    (128, 2, [64, 64]), (100, 3, [33, 33, 34]), (40, 4, [20, 20]), (15, 2, [15]), (7, 1, [7]),
])
def test_a_time_loop_splits_the_batch_into_one_slice_per_thread(monkeypatch, rows, workers, sizes):
    monkeypatch.setattr(threads, "workers", lambda: workers)
    with threads.time_loop(rows) as slices:
        assert [s.stop - s.start for s in slices] == sizes
        assert slices[0].start == 0 and slices[-1].stop == rows
        assert all(a.stop == b.start for a, b in zip(slices, slices[1:], strict=False))


def test_parallel_keeps_the_order_of_its_items():
    assert threads.parallel(lambda k: k * k, range(7)) == [k * k for k in range(7)]
    assert threads.parallel(lambda k: -k, [3]) == [-3]


def run_layer(config: dict, workers: int, monkeypatch) -> list[np.ndarray]:
    """Output, input gradient and parameter gradients of one training step, the time loop on `workers` slices."""
    monkeypatch.setattr(threads, "workers", lambda: workers)
    monkeypatch.setattr(threads, "MIN_ROWS", 1)
    model = build_model(from_dict({"model": {"layers": [config]}}), (6, 3), np.float64, np.random.default_rng(0))
    layer = model.layers[0]
    layer.input_grad = True
    x = np.random.default_rng(1).standard_normal((10, 6, 3))
    y = layer.forward(x, training=True)
    dx = layer.backward(np.random.default_rng(2).standard_normal(y.shape))
    return [y, dx, *(layer.grads[k] for k in sorted(layer.grads))]


@pytest.mark.parametrize("config", [
    {"type": "rnn", "units": 4, "return_sequences": True, **LEARNED},
    {"type": "lstm", "units": 4, "bidirectional": True, **LEARNED},
    {"type": "gru", "units": 4, "return_sequences": True, "bidirectional": True, **LEARNED},
    {"type": "gru", "units": 4, "reset_after": False, **LEARNED},
])
def test_recurrent_layers_give_the_same_numbers_on_slices_of_the_batch(config, monkeypatch):
    whole = run_layer(config, 1, monkeypatch)
    sliced = run_layer(config, 3, monkeypatch)
    for a, b in zip(whole, sliced, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bptt_on_slices_of_the_batch_matches_central_differences(name, monkeypatch):
    monkeypatch.setattr(threads, "workers", lambda: 2)
    monkeypatch.setattr(threads, "MIN_ROWS", 1)
    config = {"units": 3, "return_sequences": True, "bidirectional": True, **LEARNED}
    checks = check_layer(name, example={"config": config, "input_shape": (5, 2)}, batch=4)
    assert {c.tensor for c in checks} >= {"Wx", "Wh", "h0", "input"}
    for check in checks:
        assert check.passed, f"{name}: {check.tensor} relative error {check.error:.2e}"


@pytest.mark.slow
def test_nnctl_threads_is_reported_and_a_bad_value_stopped():
    shown = nnctl("--version", env={"NNCTL_THREADS": "1"})
    assert shown.returncode == 0 and "BLAS threads: openblas" in shown.stdout and "1 (NNCTL_THREADS)" in shown.stdout
    bad = nnctl("--version", env={"NNCTL_THREADS": "many"})
    assert bad.returncode == 2 and "NNCTL_THREADS must be a positive number of threads, got 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr
