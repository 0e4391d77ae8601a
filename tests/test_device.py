"""The device: `device: cpu | cuda[:N]`, its clear errors without CuPy or a GPU, and a whole training path run
under a strict stand-in for CuPy that refuses every host/device mix, so any machine catches one."""

import json
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import CONFIGS, layer_outputs, nnctl
from nnctl import backend, builder, checkpoint, kernels, threads
from nnctl.check import preflight, time_layers
from nnctl.config import load_config
from nnctl.data import dataset
from nnctl.errors import ConfigError
from nnctl.experiment import build, report
from nnctl.gradcheck import check_model, check_registry
from nnctl.kernels import dispatch
from nnctl.layers import LAYERS, window
from nnctl.losses import LOSSES
from nnctl.onnx_export import export_onnx
from nnctl.predict import features, predict_files
from nnctl.runner import Runner
from nnctl.sample import LanguageModel
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
    """`device: cuda` computes with the strict stand-in, `device: cpu` with NumPy; NumPy again afterwards."""
    strict = StrictModule()
    monkeypatch.setattr(builder, "use", lambda device: backend.use(device) if device == "cpu"
                        else backend.use_module(strict))
    yield strict
    backend.use("cpu")


@pytest.fixture
def one_thread(monkeypatch):
    """One thread for both runs of a comparison: a device runs a recurrent layer's products with BLAS on as many
    threads as nnctl has, whose sums on 2 threads differ in the last bit from the CPU run's dealt parts."""
    monkeypatch.setattr(threads, "available", lambda: 1)


def train(config: str, overrides: list[str], runs_dir) -> Runner:
    runner = Runner.start(load_config(CONFIGS / config, [*SLICE, *overrides]), runs_dir, quiet=True)
    runner.fit()
    return runner


def assert_the_cpu_run_equals(on_device: Runner, config: str, overrides: list[str], runs_dir, monkeypatch) -> None:
    """Trains `config` on the CPU as the device ran it (the kernels' NumPy references, each batch's columns in one
    block) and holds its losses and final parameters equal to `on_device`'s, bit for bit."""
    for k in kernels.KERNELS.values():  # (the compiled twins' float32 σ and tanh round differently)
        monkeypatch.setattr(k, "run", k.reference)
    monkeypatch.setattr(window, "CACHE_BYTES", 1 << 62)  # a whole batch's columns at once, as on a device, in one
    # block, not one a thread (sums in another order): the test's `one_thread` fixture
    on_cpu = train(config, overrides, runs_dir)
    assert [row["loss"] for row in on_device.history] == [row["loss"] for row in on_cpu.history]
    saved = checkpoint.load(on_device.checkpoints.last).model
    for a, b in zip(saved.values(), checkpoint.load(on_cpu.checkpoints.last).model.values(), strict=True):
        for key in a["params"]:
            np.testing.assert_array_equal(a["params"][key], b["params"][key])


@pytest.mark.slow
@pytest.mark.parametrize("config", CASES)
def test_training_under_the_strict_device_mixes_nothing_and_equals_the_cpu_run(config, tmp_path, strict_device,
                                                                               monkeypatch, one_thread):
    on_device = train(config, [*CASES[config], "device=cuda"], tmp_path / "device")
    params = on_device.exp.model.params()
    assert all(isinstance(p, DeviceArray) for p in params), "the parameters live on the device"
    assert all(isinstance(s, DeviceArray) for slots in on_device.exp.optimizer.slots.values() for s in slots)
    assert isinstance(on_device.exp.data.train.x, DeviceArray), "MNIST fits: the data went over once"
    saved = checkpoint.load(on_device.checkpoints.last)
    assert all(type(a) is np.ndarray for entry in saved.model.values() for a in entry["params"].values())
    assert_the_cpu_run_equals(on_device, config, CASES[config], tmp_path / "cpu", monkeypatch)


@pytest.mark.slow
def test_data_too_large_for_the_device_goes_over_a_batch_at_a_time_the_next_one_copied_during_a_step(
        tmp_path, strict_device, monkeypatch, one_thread):
    monkeypatch.setattr(dataset, "fits_on_device", lambda nbytes, share=0.5: False)
    copied_by, copy = [], dataset.to_device
    monkeypatch.setattr(dataset, "to_device", lambda a: copied_by.append(threading.current_thread().name) or copy(a))
    overrides = ["data.augment={shift: 2, flip: true}", "model.layers.0.filters=4"]
    on_device = train("mnist_cnn.yaml", [*overrides, "device=cuda"], tmp_path / "device")
    assert type(on_device.exp.data.train.x) is np.ndarray and type(on_device.exp.data.val.x) is np.ndarray
    assert isinstance(on_device.exp.model.params()[0], DeviceArray)
    assert on_device.step == 8 and copied_by.count("nnctl-feed_0") == 2 * 8, "each batch's x and y, on the worker"
    tested = json.dumps(report(Trained.load(on_device.checkpoints.last, "cuda").experiment(["device=cuda"]), "test"))
    assert_the_cpu_run_equals(on_device, "mnist_cnn.yaml", overrides, tmp_path / "cpu", monkeypatch)
    assert tested == json.dumps(report(Trained.load(on_device.checkpoints.last, "cpu").experiment([]), "test"))


@pytest.mark.slow
def test_a_device_checkpoint_resumes_evaluates_and_predicts_under_the_strict_device(tmp_path, strict_device):
    run = train("mnist_mlp.yaml", ["train.epochs=1", "device=cuda"], tmp_path)
    trained = Trained.load(run.checkpoints.last, "cuda")
    assert isinstance(trained.model.params()[0], DeviceArray)
    x = np.random.default_rng(0).integers(0, 255, (3, 28, 28)).astype(np.uint8)
    outputs = trained.model.forward(trained.inputs(x))
    assert isinstance(outputs, DeviceArray) and outputs.shape == (3, 10)
    resumed = Runner.resume(run.checkpoints.last, ["train.epochs=2"], tmp_path, quiet=True)
    resumed.fit()
    assert resumed.epoch == 2


@pytest.mark.slow
def test_eval_predict_export_and_gradcheck_of_a_device_model_give_what_the_cpu_gives(tmp_path, strict_device):
    cnn = train("mnist_cnn.yaml", ["train.epochs=1", "device=cuda"], tmp_path).checkpoints.last
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 255, (5, 28, 28)).astype(np.uint8))

    def commands(device: str) -> dict:
        """What eval, predict, predict --layer and export --format onnx give, the model on `device` (the
        backend computes on one device at a time: each device's model is loaded and used in turn)."""
        trained = Trained.load(cnn, device)
        assert isinstance(trained.model.params()[0], DeviceArray) == (device == "cuda")
        export_onnx(trained.model, tmp_path / f"{device}.onnx")
        return {"report": json.dumps(report(trained.experiment([f"device={device}"]), "test")),
                "predicted": predict_files(Trained.load(cnn, device), [tmp_path / "x.npy"]),
                "features": features(Trained.load(cnn, device), [tmp_path / "x.npy"], "flatten_1"),
                "onnx": (tmp_path / f"{device}.onnx").read_bytes()}

    device, cpu = commands("cuda"), commands("cpu")
    assert device["report"] == cpu["report"] and device["onnx"] == cpu["onnx"]
    assert type(device["predicted"].classes) is np.ndarray and type(device["features"]) is np.ndarray
    np.testing.assert_allclose(device["predicted"].values, cpu["predicted"].values, rtol=1e-5)
    np.testing.assert_array_equal(device["predicted"].classes, cpu["predicted"].classes)
    np.testing.assert_allclose(device["features"], cpu["features"], rtol=1e-5)
    config = load_config(CONFIGS / "mnist_cnn.yaml", [*SLICE, "device=cuda", "dtype=float64",
                                                      "model.layers.*.filters=2"])
    checks = check_model(build(config), samples=4, per_tensor=6)
    assert checks and all(c.passed for c in checks)


@pytest.mark.slow
def test_check_of_a_device_model_finds_and_times_what_the_cpu_run_does(strict_device):
    def check(device: str) -> tuple[list, list]:
        exp = build(load_config(CONFIGS / "mnist_cnn.yaml", [*SLICE, f"device={device}"]))
        return [(f.check, f.passed) for f in preflight(exp, steps=50)], time_layers(exp, repeats=1)

    (device, timed), (cpu, _) = check("cuda"), check("cpu")
    assert device == cpu and all(passed for _, passed in device)
    assert [t.layer for t in timed] == ["conv2d_1", "maxpool2d_1", "flatten_1", "dense_1", "dense_2"]


@pytest.mark.slow
def test_a_language_model_trained_on_the_device_samples_what_the_cpu_samples(tmp_path, strict_device):
    run = Runner.start(load_config(CONFIGS / "char_lstm.yaml", ["device=cuda", "train.epochs=1"]), tmp_path,
                       quiet=True)
    run.fit()
    text = {device: LanguageModel.load(run.checkpoints.last, device).generate("a", 40, 1.0, seed=0)
            for device in ("cuda", "cpu")}
    assert len(text["cuda"]) > 1 and text["cuda"] == text["cpu"]


@pytest.mark.slow
def test_the_outputs_of_a_layer_on_a_long_text_go_a_window_at_a_time_under_the_strict_device(tmp_path,
                                                                                               strict_device):
    """predict --layer on a text longer than data.seq_len carries the LSTM's state from window to window, which
    no test ran on a device: its states, pieces and outputs must stay there until the result goes to the host."""
    tiny = ["data.subset=64", "data.seq_len=20", "model.layers.1.units=16", "model.layers.1.initial_state=learned",
            "train.epochs=1", "train.batch_size=16"]
    run = Runner.start(load_config(CONFIGS / "char_lstm.yaml", tiny), tmp_path, quiet=True)
    run.fit()
    (tmp_path / "long.txt").write_text((CONFIGS / "data" / "genesis_asv.txt").read_text()[:1000])  # 50 windows
    model = Trained.load(run.checkpoints.last, "cuda").model
    assert model.input_shape == (20,) and model.carries_state(depth=2), "the path that goes a window at a time"
    outputs = {device: features(Trained.load(run.checkpoints.last, device), [tmp_path / "long.txt"], "lstm_1")
               for device in ("cuda", "cpu")}
    assert type(outputs["cuda"]) is np.ndarray and outputs["cuda"].shape == (1, 1000, 16)
    np.testing.assert_allclose(outputs["cuda"], outputs["cpu"], rtol=1e-5, atol=1e-6)


def test_the_strict_device_refuses_what_cupy_refuses():
    xp = StrictModule()
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    assert isinstance(xp.exp(a) + xp.ones(3), DeviceArray)
    assert float(a.sum()) == 15.0 and a.get().sum() == 15.0
    for mix in (lambda: np.asarray(a), lambda: a + np.ones(3), lambda: xp.dot(a, np.ones(3))):
        with pytest.raises(HostMixError):
            mix()


def test_device_is_a_config_key_checked_at_its_line():
    with pytest.raises(ConfigError, match=r"device: expected cpu, cuda or cuda:N, got str 'gpu'"):
        load_config(CONFIGS / "mnist_mlp.yaml", ["device=gpu"])
    assert load_config(CONFIGS / "mnist_mlp.yaml").data["device"] == "cpu"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "check"])
def test_cuda_without_cupy_or_a_gpu_stops_before_the_run_directory(tmp_path, command):
    result = nnctl(command, str(CONFIGS / "mnist_mlp.yaml"), "--device", "cuda", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "pip install 'nnctl[gpu]'" in result.stderr or "no usable NVIDIA GPU" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing was made"


def fake_cupy(compute) -> SimpleNamespace:
    """CuPy as a machine shows it that has one GPU and a driver; `compute` stands for cupy.ones."""
    runtime = SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=lambda i: {"name": b"Fake H100"},
                              runtimeGetVersion=lambda: 12080, driverGetVersion=lambda: 12090)
    return SimpleNamespace(__version__="14.2.0", float32=np.float32, ones=compute,
                           cuda=SimpleNamespace(runtime=runtime, Device=lambda i=0: SimpleNamespace(use=lambda: None)))


def test_a_gpu_that_cannot_compute_stops_with_how_to_get_its_libraries(monkeypatch):
    """A driver without NVRTC or cuBLAS (cupy-cuda12x without its [ctk] extra): CuPy sees the GPU, and its first
    kernel would fail after the run directory was made."""
    def missing(*args):
        raise RuntimeError("CuPy failed to load libnvrtc.so.12")

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(missing))
    with pytest.raises(backend.DeviceError, match=r"CuPy sees the GPU but cannot compute on it \(CuPy failed to "
                                                  r"load libnvrtc.so.12\); .*pip install 'nnctl\[gpu\]'"):
        backend.use("cuda")
    assert backend.on_cpu()


def test_version_names_the_gpus_cupy_would_use_while_on_the_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(np.ones))
    assert backend.describe()["gpus"] == "cuda:0 (Fake H100); CuPy 14.2.0, CUDA runtime 12080, driver 12090"
    monkeypatch.delitem(sys.modules, "cupy")
    monkeypatch.setattr("builtins.__import__", _no_cupy(__import__))
    assert backend.describe()["gpus"] == "none usable: CuPy is not installed (pip install 'nnctl[gpu]')"


def _no_cupy(real_import):
    def importing(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)
    return importing


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "gradcheck"])
def test_a_device_override_is_not_undone_by_the_device_options_default(tmp_path, command):
    """--device defaulted to cpu and overrode `device=cuda`: the command ran on the CPU without a word."""
    (tmp_path / "xor.yaml").write_text((CONFIGS / "xor_mlp.yaml").read_text())
    assert nnctl("train", "xor.yaml", "train.epochs=1", "-q", cwd=tmp_path).returncode == 0
    target = next(tmp_path.glob("runs/*")) if command == "eval" else tmp_path / "xor.yaml"
    result = nnctl(command, str(target), "device=cuda", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'nnctl[gpu]'" in result.stderr or "no usable NVIDIA GPU" in result.stderr


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_computes_under_the_strict_device_what_it_computes_on_the_cpu(name, strict_device):
    cpu, device = layer_outputs(name, "cpu"), layer_outputs(name, "cuda")
    assert cpu.keys() == device.keys()
    for key in cpu:
        np.testing.assert_allclose(device[key], cpu[key], rtol=1e-10, atol=1e-12, err_msg=f"{name} {key}")


def test_gradcheck_passes_under_the_strict_device(strict_device):
    checks = check_registry(device="cuda")
    assert {c.target for c in checks} == set(LAYERS) | set(LOSSES)
    assert not [c for c in checks if not c.passed]


def test_a_kernel_runs_its_cupy_twin_only_while_cupy_computes(monkeypatch, strict_device):
    kernel, calls = next(k for k in kernels.KERNELS.values() if k.make_gpu), []
    monkeypatch.setattr(kernel, "gpu", None)
    monkeypatch.setattr(kernel, "make_gpu", lambda: lambda: calls.append("twin"))
    monkeypatch.setattr(kernel, "reference", lambda: calls.append("reference"))
    monkeypatch.setattr(dispatch, "FORCE_NUMPY", False)  # as without NNCTL_KERNELS=numpy (CI's third pass sets it)
    backend.use_module(strict_device)
    for cupy in (False, True, False):  # a stand-in, CuPy, the stand-in again: one process may hold both
        monkeypatch.setattr(dispatch, "on_cupy", lambda cupy=cupy: cupy)
        kernel()
    assert calls == ["reference", "twin", "reference"]
