"""ONNX export: every exportable layer family run by onnxruntime on the same inputs as nnctl (float32, 1e-5)."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers import CONFIGS, nnctl
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.errors import NnctlError
from nnctl.onnx_export import to_onnx

RECURRENT = [{"type": kind, "units": 3, "bidirectional": bi, "return_sequences": seq, "initial_state": state,
              **({"activation": "relu"} if kind == "rnn" and bi else {})}
             for kind in ("lstm", "gru", "rnn") for bi in (False, True) for seq in (False, True)
             for state in ("zeros", "learned")]

FAMILIES = {
    "dense, activations, batch norm, dropout": ([
        {"type": "dense", "units": 5, "activation": "relu"}, {"type": "batchnorm"}, {"type": "dropout"},
        {"type": "dense", "units": 4, "activation": "elu"}, {"type": "leaky_relu", "alpha": 0.2},
        {"type": "dense", "units": 4, "activation": "sigmoid", "use_bias": False}, {"type": "tanh"},
        {"type": "dense", "units": 3}, {"type": "softmax"}], (6,)),
    "conv, pooling, batch norm, flatten, reshape": ([
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "stride": 2, "activation": "tanh"},
        {"type": "batchnorm", "affine": False},
        {"type": "maxpool2d", "pool_size": 2, "stride": 1, "padding": "same"},
        {"type": "conv2d", "filters": 3, "kernel_size": [3, 2], "dilation": [1, 2], "padding": 1},
        {"type": "avgpool2d", "pool_size": 2, "padding": "same"},
        {"type": "flatten"}, {"type": "reshape", "shape": [3, -1]}, {"type": "dense", "units": 2}], (2, 9, 8)),
    "conv, global average, step": ([
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "use_bias": False}, {"type": "relu"},
        {"type": "global_avg_pool2d"}, {"type": "identity"}, {"type": "dense", "units": 3, "activation": "step"}],
        (2, 7, 7)),
    **{f"{spec['type']} {i}": ([spec, {"type": "dense", "units": 2}], (5, 2)) for i, spec in enumerate(RECURRENT)},
    "embedding, gru, dense over steps": ([
        {"type": "embedding", "vocab_size": 7, "dim": 3}, {"type": "gru", "units": 4, "return_sequences": True},
        {"type": "dense", "units": 2}], (5,)),
}


def random_model(layers: list[dict], input_shape: tuple[int, ...], rng: np.random.Generator):
    """The model with every array drawn at random (variances positive), so no zero bias or unit statistic hides
    a mistake in the export."""
    model = build_model(from_dict({"model": {"layers": layers}}), input_shape, np.float32, rng)
    for layer in model.layers:
        for key, value in {**layer.params, **layer.state}.items():
            value[...] = rng.uniform(0.5, 1.5, value.shape) if key == "running_var" else rng.normal(0, 0.6, value.shape)
    return model


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnxruntime_computes_what_nnctl_computes(family):
    layers, shape = FAMILIES[family]
    rng = np.random.default_rng(0)
    model = random_model(layers, shape, rng)
    x = (rng.integers(0, 7, (5, *shape)) if layers[0]["type"] == "embedding"
         else rng.normal(size=(5, *shape)).astype(np.float32))
    expected = model.forward(x, training=False)
    assert np.std(expected) > 1e-3  # outputs that vary: a constant would match too easily
    np.testing.assert_allclose(run(to_onnx(model), x), expected, rtol=1e-5, atol=1e-5)


def test_a_batch_of_another_size_runs_too():
    layers, shape = FAMILIES["lstm 7"]
    model = random_model(layers, shape, np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=(11, *shape)).astype(np.float32)
    np.testing.assert_allclose(run(to_onnx(model), x), model.forward(x), rtol=1e-5, atol=1e-5)


def test_a_layer_without_an_onnx_form_is_named():
    model = build_model(from_dict({"model": {"layers": [{"type": "recursive", "vocab_size": 4, "dim": 3},
                                                        {"type": "dense", "units": 2}]}}),
                        (5, 3), np.float32, np.random.default_rng(0))
    with pytest.raises(NnctlError, match="recursive_1: a recursive layer has no ONNX export"):
        to_onnx(model)


@pytest.mark.slow
def test_export_cli_writes_a_file_onnxruntime_runs(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    result = nnctl("train", str(CONFIGS / "mnist_cnn.yaml"), "data.subset=600", "data.validation=100",
                   "data.test_subset=100", "train.epochs=1", "--runs-dir", str(runs), "-q")
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs.iterdir()
    checkpoint = run_dir / "checkpoints" / "last.pkl"
    result = nnctl("export", str(checkpoint), "--format", "onnx", "-o", str(tmp_path / "cnn.onnx"))
    assert result.returncode == 0, result.stderr
    assert "input 'x' ['N', 1, 28, 28]" in result.stdout and "output 'y' ['N', 10]" in result.stdout

    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), np.uint8)
    np.save(tmp_path / "x.npy", images)
    result = nnctl("predict", str(checkpoint), str(tmp_path / "x.npy"), "--layer", "dense_2", "-o",
                   str(tmp_path / "logits.npy"))
    assert result.returncode == 0, result.stderr
    logits = run(onnx.load(str(tmp_path / "cnn.onnx")), (images / 255).astype(np.float32)[:, None])
    np.testing.assert_allclose(logits, np.load(tmp_path / "logits.npy"), rtol=1e-5, atol=1e-5)

    for args, message in ((["--format", "tflite", "-o", str(tmp_path / "m.tflite")], "--format must be npz or onnx"),
                          (["--format", "onnx", "-o", str(tmp_path / "m.npz")], "name the ONNX file *.onnx")):
        result = nnctl("export", str(checkpoint), *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def prepared(raw: np.ndarray, prep: dict) -> np.ndarray:
    """Raw samples as the metadata of an export says to prepare them, in NumPy."""
    x = raw.reshape(len(raw), *prep["raw_sample_shape"]).astype(np.float64) * prep["scale"] + prep["shift"]
    if prep["normalize"]:
        shape = [1] * x.ndim
        shape[1 + prep["normalize"]["channel_axis"]] = -1
        x = (x - np.reshape(prep["normalize"]["mean"], shape)) / np.reshape(prep["normalize"]["std"], shape)
    return (x.reshape(len(x), -1) if prep["flatten"] else x).astype(np.float32)


@pytest.mark.slow
def test_an_export_carries_the_input_preparation_that_reproduces_predict(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    result = nnctl("train", str(CONFIGS / "mnist_mlp.yaml"), "data.subset=600", "data.validation=100",
                   "data.test_subset=100", "train.epochs=1", "data.normalize=true", "data.shift=-0.5",
                   "--runs-dir", str(runs), "-q")
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs.iterdir()
    result = nnctl("export", str(run_dir), "--format", "onnx", "-o", str(tmp_path / "mlp.onnx"))
    assert result.returncode == 0, result.stderr
    assert ("(prepared as the training data: raw samples [1, 28, 28] * 0.00392157 - 0.5, minus each channel's mean, "
            "over its std (axis 0 of a sample), flattened; the file's metadata_props 'nnctl.input_preparation' "
            "holds the numbers)") in result.stdout

    proto = onnx.load(str(tmp_path / "mlp.onnx"))
    prep = json.loads({p.key: p.value for p in proto.metadata_props}["nnctl.input_preparation"])
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), np.uint8)
    np.save(tmp_path / "x.npy", images)
    result = nnctl("predict", str(run_dir), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy"))
    assert result.returncode == 0, result.stderr
    logits = run(proto, prepared(images, prep))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(exp / exp.sum(axis=1, keepdims=True), np.load(tmp_path / "p.npy"), atol=1e-5)
