"""The same layers on an NVIDIA GPU through CuPy: forward and backward equal to the CPU's, gradient checks,
short trainings and checkpoints that cross between devices. Skipped, with the reason, where no GPU is."""

import numpy as np
import pytest

from helpers import CONFIGS, assert_twin_equals_reference, layer_outputs, nnctl
from nnctl import backend, checkpoint
from nnctl.config import load_config
from nnctl.gradcheck import check_registry
from nnctl.kernels import KERNELS
from nnctl.layers import LAYERS
from nnctl.runner import Runner

pytestmark = pytest.mark.gpu

SLICE = ["data.subset=2000", "data.test_subset=1000", "data.validation=null", "train.epochs=2",
         "train.monitor=loss"]


@pytest.fixture(autouse=True)
def back_on_the_cpu():
    yield
    backend.use("cpu")


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_computes_on_the_gpu_what_it_computes_on_the_cpu(name):
    cpu, gpu = layer_outputs(name, "cpu"), layer_outputs(name, "cuda")
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-10, atol=1e-12, err_msg=f"{name} {key}")


def test_gradcheck_passes_on_the_gpu():
    backend.use("cuda")
    failed = [c for c in check_registry(device="cuda") if not c.passed]
    assert not failed, failed


def fit(config: str, runs_dir, *overrides: str) -> Runner:
    runner = Runner.start(load_config(CONFIGS / config, [*SLICE, *overrides]), runs_dir, quiet=True)
    runner.fit()
    return runner


@pytest.mark.parametrize("config", ["mnist_mlp.yaml", "mnist_cnn.yaml", "mnist_lstm.yaml"])
def test_a_short_training_on_the_gpu_learns_what_the_cpu_run_learns(config, tmp_path):
    gpu = fit(config, tmp_path / "gpu", "device=cuda")
    assert type(gpu.exp.model.params()[0]).__module__.startswith("cupy")
    assert is_device_array(gpu.sums.sums["correct"]), "the metric sums are read back once an epoch, not every step"
    cpu = fit(config, tmp_path / "cpu", "device=cpu")
    gpu_acc = gpu.history[-1]["accuracy"]
    cpu_acc = cpu.history[-1]["accuracy"]
    assert abs(gpu_acc - cpu_acc) < 0.03, (gpu_acc, cpu_acc)
    assert gpu_acc > 0.4  # chance is 0.1; two epochs of 2,000 images


CONSTANT = ["schedule.type=constant"]  # a cosine schedule follows train.epochs, which the resume changes


def test_a_gpu_run_resumes_on_the_cpu_and_a_cpu_run_on_the_gpu(tmp_path):
    for first, then in (("cuda", "cpu"), ("cpu", "cuda")):
        run = fit("mnist_mlp.yaml", tmp_path / first, f"device={first}", "train.epochs=1", *CONSTANT)
        saved = checkpoint.load(run.checkpoints.last)
        assert all(type(a) is np.ndarray for e in saved.model.values() for a in e["params"].values())
        resumed = Runner.resume(run.checkpoints.last, ["train.epochs=2", f"device={then}"], tmp_path, quiet=True)
        resumed.fit()
        straight = fit("mnist_mlp.yaml", tmp_path / f"straight-{first}", f"device={first}", *CONSTANT)
        np.testing.assert_allclose(resumed.history[-1]["loss"], straight.history[-1]["loss"], rtol=1e-3)


def test_a_card_that_is_not_there_is_one_clear_error(tmp_path):
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "--device", "cuda:99", "--runs-dir", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "GPU(s), numbered 0 to" in result.stderr
    assert not any(tmp_path.iterdir())


def is_device_array(a) -> bool:
    return type(a).__module__.startswith("cupy")


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_cupy_twin_equals_its_reference_on_the_gpu(name, dtype):
    backend.use("cuda")
    kernel = KERNELS[name]
    assert kernel.make_gpu is not None, f"{name} has no CuPy twin"
    assert_twin_equals_reference(kernel, kernel.make_gpu(), dtype, absolute=True, to_device=backend.to_device)


def test_eval_predict_export_and_check_run_on_the_gpu(tmp_path):
    checkpoint_path = str(fit("mnist_mlp.yaml", tmp_path, "device=cuda", "train.epochs=1").checkpoints.last)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 255, (4, 28, 28)).astype(np.uint8))
    for command in (["eval", checkpoint_path, "--json", "--device", "cuda"],
                    ["predict", checkpoint_path, str(tmp_path / "x.npy"), "--layer", "dense_1", "-o",
                     str(tmp_path / "features.npy"), "--device", "cuda"],
                    ["export", checkpoint_path, "--format", "onnx", "-o", str(tmp_path / "m.onnx"), "--device", "cuda"],
                    ["check", str(CONFIGS / "mnist_mlp.yaml"), *SLICE, "device=cuda", "--steps", "50"]):
        result = nnctl(*command)
        assert result.returncode == 0, (command[0], result.stderr)
    assert np.load(tmp_path / "features.npy").shape[0] == 4 and (tmp_path / "m.onnx").stat().st_size > 0


def test_a_gpu_run_repeats_itself_and_resumes_exactly(tmp_path):
    first, again = (fit("mnist_cnn.yaml", tmp_path / name, "device=cuda", *CONSTANT) for name in ("first", "again"))
    assert [row["loss"] for row in first.history] == [row["loss"] for row in again.history]
    half = fit("mnist_cnn.yaml", tmp_path / "half", "device=cuda", "train.epochs=1", *CONSTANT)
    resumed = Runner.resume(half.checkpoints.last, ["train.epochs=2"], tmp_path, quiet=True)
    resumed.fit()
    assert resumed.history[-1]["loss"] == first.history[-1]["loss"]
