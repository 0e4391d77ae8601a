"""The device: `device: cpu | cuda[:N]`, its clear errors without CuPy or a GPU, and a whole training path run
under a strict stand-in for CuPy that refuses every host/device mix, so any machine catches one."""

import numpy as np
import pytest

from helpers import CONFIGS, nnctl
from nnctl import backend, builder, checkpoint, kernels
from nnctl.config import load_config
from nnctl.errors import ConfigError
from nnctl.layers import window
from nnctl.runner import Runner
from nnctl.trained import Trained
from strict_numpy import DeviceArray, HostMixError, StrictModule

SLICE = ["data.subset=300", "data.test_subset=100", "data.validation=100", "train.epochs=2", "train.batch_size=50"]
CASES = {  # every layer family the shipped configs train, each on a few hundred real MNIST images
    "mnist_mlp.yaml": [],
    "mnist_cnn.yaml": ["data.augment={shift: 2, flip: true}"],
    "mnist_bn_compare.yaml": [],
    "mnist_deep_cnn.yaml": ["model.layers.*.filters=4"],
    "mnist_lstm.yaml": ["model.layers.0.units=16"],
    "mnist_gru.yaml": ["model.layers.0.units=16", "model.layers.0.bidirectional=true"],
}


@pytest.fixture
def strict_device(monkeypatch):
    """Every model built in the test computes with the strict stand-in; NumPy again afterwards."""
    strict = StrictModule()
    monkeypatch.setattr(builder, "use", lambda device: backend.use_module(strict))
    yield strict
    backend.use("cpu")


def train(config: str, overrides: list[str], runs_dir) -> Runner:
    runner = Runner.start(load_config(CONFIGS / config, [*SLICE, *overrides]), runs_dir, quiet=True)
    runner.fit()
    return runner


@pytest.mark.slow
@pytest.mark.parametrize("config", CASES)
def test_training_under_the_strict_device_mixes_nothing_and_equals_the_cpu_run(config, tmp_path, strict_device,
                                                                               monkeypatch):
    on_device = train(config, CASES[config], tmp_path / "device")
    params = on_device.exp.model.params()
    assert all(isinstance(p, DeviceArray) for p in params), "the parameters live on the device"
    assert all(isinstance(s, DeviceArray) for slots in on_device.exp.optimizer.slots.values() for s in slots)
    assert isinstance(on_device.exp.data.train.x, DeviceArray), "MNIST fits: the data went over once"
    saved = checkpoint.load(on_device.checkpoints.last)
    assert all(type(a) is np.ndarray for entry in saved.model.values() for a in entry["params"].values())
    backend.use("cpu")
    builder.use = backend.use  # the CPU run for comparison, on the kernels' NumPy references as the device's
    for k in kernels.KERNELS.values():  # (the compiled twins' float32 σ and tanh round differently)
        monkeypatch.setattr(k, "run", k.reference)
    monkeypatch.setattr(window, "CACHE_BYTES", 1 << 62)  # a whole batch's columns at once, as on a device
    on_cpu = train(config, CASES[config], tmp_path / "cpu")
    assert [row["loss"] for row in on_device.history] == [row["loss"] for row in on_cpu.history]
    for a, b in zip(saved.model.values(), checkpoint.load(on_cpu.checkpoints.last).model.values(), strict=True):
        for key in a["params"]:
            np.testing.assert_array_equal(a["params"][key], b["params"][key])


@pytest.mark.slow
def test_a_device_checkpoint_resumes_evaluates_and_predicts_under_the_strict_device(tmp_path, strict_device):
    run = train("mnist_mlp.yaml", ["train.epochs=1"], tmp_path)
    trained = Trained.load(run.checkpoints.last)
    assert isinstance(trained.model.params()[0], DeviceArray)
    x = np.random.default_rng(0).integers(0, 255, (3, 28, 28)).astype(np.uint8)
    outputs = trained.model.forward(trained.inputs(x))
    assert isinstance(outputs, DeviceArray) and outputs.shape == (3, 10)
    resumed = Runner.resume(run.checkpoints.last, ["train.epochs=2"], tmp_path, quiet=True)
    resumed.fit()
    assert resumed.epoch == 2


def test_the_strict_device_refuses_what_cupy_refuses():
    xp = StrictModule()
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    assert isinstance(xp.exp(a) + xp.ones(3), DeviceArray)
    assert float(a.sum()) == 15.0 and a.get().sum() == 15.0
    for mix in (lambda: np.asarray(a), lambda: a + np.ones(3), lambda: xp.dot(a, np.ones(3))):
        with pytest.raises(HostMixError):
            mix()


def test_device_is_a_config_key_checked_at_its_line():
    with pytest.raises(ConfigError, match=r"device: expected cpu, cuda or cuda:N, got 'gpu'"):
        load_config(CONFIGS / "mnist_mlp.yaml", ["device=gpu"])
    assert load_config(CONFIGS / "mnist_mlp.yaml").data["device"] == "cpu"


@pytest.mark.slow
def test_cuda_without_cupy_or_a_gpu_stops_before_the_run_directory(tmp_path):
    result = nnctl("train", str(CONFIGS / "mnist_mlp.yaml"), "--device", "cuda", "--runs-dir", str(tmp_path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "pip install 'nnctl[gpu]'" in result.stderr or "no usable NVIDIA GPU" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing was made"
