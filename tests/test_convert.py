"""nnctl convert on real files: safetensors and HDF5 written by their own libraries with PyTorch's and Keras's names
and layouts; nnctl's outputs after conversion must equal the other framework's formulas, computed here in NumPy."""

import json
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from helpers import nnctl, ok
from nnctl.builder import build_model
from nnctl.config import from_dict
from nnctl.convert import convert, plan
from nnctl.weight_files import read_source

RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(6, 2, 8, 8)).astype(np.float32)


def normal(*shape):
    return RNG.normal(0, 0.4, shape).astype(np.float32)


# -- the other frameworks' formulas, written out in NumPy ---------------------------------------------------------

def conv_nchw(x, w_oihw, b):
    """PyTorch's Conv2d(padding=1), stride 1: cross-correlation over zero-padded NCHW images."""
    kh, kw = w_oihw.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    patches = np.stack([xp[:, :, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], axis=2)  # N,C,K,H,W
    return np.einsum("nckhw,ock->nohw", patches, w_oihw.reshape(*w_oihw.shape[:2], -1)) + b[:, None, None]


def maxpool_nchw(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def torch_lstm(x, w_ih, w_hh, b_ih, b_hh):
    """torch.nn.LSTM, one direction, batch_first: gates i, f, g, o; h, c from zeros."""
    n, t, _ = x.shape
    u = w_hh.shape[1]
    h, c, out = np.zeros((n, u)), np.zeros((n, u)), []
    for step in range(t):
        z = x[:, step] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def torch_gru(x, w_ih, w_hh, b_ih, b_hh):
    """torch.nn.GRU: r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h = (1 - z) n + z h."""
    n, t, _ = x.shape
    u = w_hh.shape[1]
    h, out = np.zeros((n, u)), []
    for step in range(t):
        gx, gh = x[:, step] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r, z = sigmoid(gx[:, :u] + gh[:, :u]), sigmoid(gx[:, u:2 * u] + gh[:, u:2 * u])
        nn = np.tanh(gx[:, 2 * u:] + r * gh[:, 2 * u:])
        h = (1 - z) * nn + z * h
        out.append(h)
    return np.stack(out, axis=1)


def keras_lstm(x, kernel, recurrent, bias):
    """keras.layers.LSTM: gates i, f, c, o in kernel (F, 4U), recurrent_kernel (U, 4U), one bias."""
    n, t, _ = x.shape
    u = recurrent.shape[0]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    for step in range(t):
        z = x[:, step] @ kernel + h @ recurrent + bias
        i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h


def keras_gru(x, kernel, recurrent, bias):
    """keras.layers.GRU(reset_after=True): gates z, r, h; bias (2, 3U) = input and recurrent biases."""
    n, t, _ = x.shape
    u = recurrent.shape[0]
    h = np.zeros((n, u))
    for step in range(t):
        gx, gh = x[:, step] @ kernel + bias[0], h @ recurrent + bias[1]
        z, r = sigmoid(gx[:, :u] + gh[:, :u]), sigmoid(gx[:, u:2 * u] + gh[:, u:2 * u])
        hh = np.tanh(gx[:, 2 * u:] + r * gh[:, 2 * u:])
        h = z * h + (1 - z) * hh
    return h


# -- helpers ------------------------------------------------------------------------------------------------------

CNN = [{"type": "conv2d", "name": "conv", "filters": 3, "kernel_size": 3, "padding": 1, "activation": "relu"},
       {"type": "maxpool2d"},
       {"type": "flatten"},
       {"type": "dense", "name": "fc", "units": 4, "activation": "relu"},
       {"type": "dense", "name": "out", "units": 2}]


def keras_gru_reset_before(x, kernel, recurrent, bias):
    """keras.layers.GRU(reset_after=False): gates z, r, h; hh = tanh(x W_h + (r * h) U_h + b_h); one bias row."""
    n, t, _ = x.shape
    u = recurrent.shape[0]
    h = np.zeros((n, u))
    for step in range(t):
        gx = x[:, step] @ kernel + bias
        z, r = sigmoid(gx[:, :u] + h @ recurrent[:, :u]), sigmoid(gx[:, u:2 * u] + h @ recurrent[:, u:2 * u])
        hh = np.tanh(gx[:, 2 * u:] + (r * h) @ recurrent[:, 2 * u:])
        h = z * h + (1 - z) * hh
    return h


def config_file(folder: Path, layers: list[dict], x: np.ndarray) -> Path:
    """A config over an .npz of `x` (targets 0/1), for the CLI."""
    np.savez(folder / "data.npz", x=x, y=np.arange(len(x)) % 2)
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump({"data": {"type": "npz", "path": "data.npz", "flatten": False},
                                    "model": {"layers": layers}, "loss": "softmax_cross_entropy",
                                    "optimizer": "sgd"}))
    return path


def model_from(layers: list[dict], input_shape: tuple[int, ...], npz: Path | None = None, **source):
    """An nnctl model (float64) with the arrays `nnctl convert`'s library half makes from `source`."""
    model = build_model(from_dict({"model": {"layers": layers}}), input_shape, np.float64, np.random.default_rng(1))
    framework, found = read_source(npz)
    arrays, _ = convert(model, framework, plan(model, found, source.get("table")))
    for name, value in arrays.items():
        layer, _, key = name.rpartition("/")
        target = model.layer(layer)
        (target.params if key in target.params else target.state)[key][...] = value
    return model


# -- the tests ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_pytorch_cnn_saved_as_safetensors_gives_pytorchs_outputs(tmp_path):
    w, b = normal(3, 2, 3, 3), normal(3)
    fc_w, fc_b, out_w, out_b = normal(4, 48), normal(4), normal(2, 4), normal(2)
    save_file({"features.0.weight": w, "features.0.bias": b, "classifier.0.weight": fc_w,
               "classifier.0.bias": fc_b, "classifier.2.weight": out_w, "classifier.2.bias": out_b},
              str(tmp_path / "net.safetensors"))
    features = maxpool_nchw(np.maximum(conv_nchw(IMAGES, w, b), 0)).reshape(len(IMAGES), -1)  # NCHW flatten
    expected = np.maximum(features @ fc_w.T + fc_b, 0) @ out_w.T + out_b

    config = config_file(tmp_path, CNN, IMAGES)
    stdout = ok("convert", str(tmp_path / "net.safetensors"), "--config", str(config), "-o", str(tmp_path / "w.npz"))
    assert "features.0: weight" in stdout and "classifier.0: weight" in stdout and "(out, in) -> (in, out)" in stdout
    assert "wrote 6 arrays of 3 layers" in stdout
    np.save(tmp_path / "x.npy", IMAGES)
    config.write_text(config.read_text().replace("model:\n", "model:\n  weights: w.npz\n"))
    ok("predict", str(config), str(tmp_path / "x.npy"), "--layer", "out", "-o", str(tmp_path / "y.npy"))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_keras_cnn_saved_as_h5_gives_keras_outputs_hwc_flatten_included(tmp_path):
    kernel, bias = normal(3, 3, 2, 3), normal(3)  # HWIO
    fc_k, fc_b, out_k, out_b = normal(48, 4), normal(4), normal(4, 2), normal(2)
    nhwc = IMAGES.transpose(0, 2, 3, 1)
    conv = conv_nchw(IMAGES, kernel.transpose(3, 2, 0, 1), bias)  # the same numbers; only Keras's layout differs
    features = maxpool_nchw(np.maximum(conv, 0)).transpose(0, 2, 3, 1).reshape(len(nhwc), -1)  # NHWC flatten
    expected = np.maximum(features @ fc_k + fc_b, 0) @ out_k + out_b
    with h5py.File(tmp_path / "net.h5", "w") as f:  # Keras 2's save_weights layout
        f.attrs["layer_names"] = [b"conv2d", b"max_pooling2d", b"flatten", b"dense", b"dense_1"]
        for name, arrays in (("conv2d", {"kernel": kernel, "bias": bias}), ("max_pooling2d", {}), ("flatten", {}),
                             ("dense", {"kernel": fc_k, "bias": fc_b}), ("dense_1", {"kernel": out_k, "bias": out_b})):
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in arrays]
            for key, value in arrays.items():
                group[f"{name}/{key}:0"] = value

    config = config_file(tmp_path, CNN, IMAGES)
    stdout = ok("convert", str(tmp_path / "net.h5"), "-c", str(config), "-o", str(tmp_path / "w.npz"),
                "--map", "conv=conv2d", "--map", "fc=dense", "--map", "out=dense_1")
    assert "HWIO -> OIHW" in stdout and "rows HWC -> CHW" in stdout
    config.write_text(config.read_text().replace("model:\n", "model:\n  weights: w.npz\n"))
    np.save(tmp_path / "x.npy", IMAGES)
    ok("predict", str(config), str(tmp_path / "x.npy"), "--layer", "out", "-o", str(tmp_path / "y.npy"))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-5)

    without = tmp_path / "no_reorder.npz"
    ok("convert", str(tmp_path / "net.h5"), "-c", str(config), "-o", str(without), "--flatten", "chw")
    with np.load(without) as a, np.load(tmp_path / "w.npz") as b:
        assert not np.array_equal(a["fc/W"], b["fc/W"])  # the row order is what makes the outputs agree
        np.testing.assert_array_equal(np.sort(a["fc/W"], axis=0), np.sort(b["fc/W"], axis=0))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pytorch_lstm_and_gru_gate_orders_and_split_biases(tmp_path, bidirectional):
    x = RNG.normal(size=(4, 5, 3))
    layers = [{"type": "lstm", "name": "lstm", "units": 4, "return_sequences": True, "bidirectional": bidirectional},
              {"type": "gru", "name": "gru", "units": 2, "return_sequences": True}]
    tensors, suffixes = {}, ["", "_reverse"] if bidirectional else [""]
    for s in suffixes:
        tensors |= {f"rnn.weight_ih_l0{s}": normal(16, 3), f"rnn.weight_hh_l0{s}": normal(16, 4),
                    f"rnn.bias_ih_l0{s}": normal(16), f"rnn.bias_hh_l0{s}": normal(16)}
    width = 8 if bidirectional else 4
    tensors |= {"gru.weight_ih_l0": normal(6, width), "gru.weight_hh_l0": normal(6, 2), "gru.bias_ih_l0": normal(6),
                "gru.bias_hh_l0": normal(6)}
    save_file(tensors, str(tmp_path / "rnn.safetensors"))
    lstm = [torch_lstm(x[:, ::-1] if s else x, *(tensors[f"rnn.{k}_l0{s}"] for k in
                                                  ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))) for s in suffixes]
    if bidirectional:
        lstm[1] = lstm[1][:, ::-1]
    expected = torch_gru(np.concatenate(lstm, axis=-1), *(tensors[f"gru.{k}_l0"] for k in
                                                         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
    model = model_from(layers, (5, 3), tmp_path / "rnn.safetensors", table={"lstm": "rnn", "gru": "gru"})
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-6, atol=1e-7)  # biases summed in float32


@pytest.mark.parametrize("saved", ["rnn.weights.h5", "rnn.keras", "old.keras"])
def test_keras3_weights_h5_lstm_and_gru_gate_orders(tmp_path, saved):
    """Keras 3's model.save_weights (.weights.h5), model.save (a .keras zip holding model.weights.h5, beside its
    config.json and metadata.json), and an HDF5 file named .keras, as some older Keras wrote."""
    x = RNG.normal(size=(4, 5, 3))
    lstm = {"vars/0": normal(3, 16), "vars/1": normal(4, 16), "vars/2": normal(16)}
    gru = {"vars/0": normal(4, 6), "vars/1": normal(2, 6), "vars/2": normal(2, 6)}
    weights = tmp_path / ("old.keras" if saved == "old.keras" else "model.weights.h5")
    with h5py.File(weights, "w") as f:  # Keras 3's layout: layers/<name>/cell/vars/<i>
        for name, arrays in (("lstm", lstm), ("gru", gru)):
            for key, value in arrays.items():
                f[f"layers/{name}/cell/{key}"] = value
    if saved == "rnn.weights.h5":
        weights.rename(tmp_path / saved)
    elif saved == "rnn.keras":
        with zipfile.ZipFile(tmp_path / saved, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("metadata.json", '{"keras_version": "3.8.0"}')
            archive.writestr("config.json", '{"class_name": "Sequential"}')
            archive.write(weights, "model.weights.h5")
    layers = [{"type": "lstm", "name": "encoder", "units": 4, "return_sequences": True},
              {"type": "gru", "name": "decoder", "units": 2}]
    sequence = np.stack([keras_lstm(x[:, :t + 1], *lstm.values()) for t in range(5)], axis=1)  # every step's h
    expected = keras_gru(sequence, *gru.values())
    model = model_from(layers, (5, 3), tmp_path / saved)  # by order: lstm, then gru
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-6, atol=1e-7)  # biases summed in float32


def test_a_keras_gru_with_reset_before_fills_a_gru_with_reset_after_false(tmp_path):
    x = RNG.normal(size=(4, 5, 3))
    gru = {"vars/0": normal(3, 6), "vars/1": normal(2, 6), "vars/2": normal(6)}
    with h5py.File(tmp_path / "model.weights.h5", "w") as f:
        for key, value in gru.items():
            f[f"layers/gru/cell/{key}"] = value
    model = model_from([{"type": "gru", "units": 2, "reset_after": False}], (5, 3), tmp_path / "model.weights.h5")
    np.testing.assert_allclose(model.forward(x), keras_gru_reset_before(x, *gru.values()), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_a_torch_pickle_is_refused_with_the_reason(tmp_path):
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"weight": [1.0]}))
    with zipfile.ZipFile(tmp_path / "weights.safetensors", "w") as z:  # torch.save's zip format, misnamed
        z.writestr("archive/data.pkl", pickle.dumps({}))
    (tmp_path / "legacy.safetensors").write_bytes(pickle.dumps({"weight": [1.0]}, protocol=2))  # torch's old format
    config = config_file(tmp_path, CNN, IMAGES)
    for name in ("model.pt", "weights.safetensors", "legacy.safetensors"):
        result = nnctl("convert", str(tmp_path / name), "-c", str(config), "-o", str(tmp_path / "w.npz"))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "a PyTorch pickle (torch.save) is never opened: unpickling it runs whatever code it holds" \
            in result.stderr and "save_file(model.state_dict()" in result.stderr, result.stderr
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.slow
def test_bad_conversions_each_end_with_one_message(tmp_path):
    save_file({"features.0.weight": normal(3, 2, 3, 3), "features.0.bias": normal(3),
               "classifier.0.weight": normal(4, 48), "classifier.0.bias": normal(4)}, str(tmp_path / "net.safetensors"))
    with h5py.File(tmp_path / "old_gru.h5", "w") as f:
        group = f.create_group("gru")
        f.attrs["layer_names"] = [b"gru"]
        group.attrs["weight_names"] = [b"gru/kernel:0", b"gru/recurrent_kernel:0", b"gru/bias:0"]
        for key, value in (("kernel", normal(3, 6)), ("recurrent_kernel", normal(2, 6)), ("bias", normal(6))):
            group[f"gru/{key}:0"] = value
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (tmp_path / "map.yaml").write_text("conv: features.0\nfc: classifier.9\n")
    config = str(config_file(tmp_path, CNN, IMAGES))
    gru_config = tmp_path / "gru"
    gru_config.mkdir()
    gru_config = str(config_file(gru_config, [{"type": "gru", "units": 2}, {"type": "dense", "units": 2}],
                                 RNG.normal(size=(4, 5, 3))))
    save_file({"gru.weight_ih_l0": normal(6, 3), "gru.weight_hh_l0": normal(6, 2), "gru.bias_ih_l0": normal(6),
               "gru.bias_hh_l0": normal(6)}, str(tmp_path / "gru.safetensors"))
    reset_before = tmp_path / "reset_before"
    reset_before.mkdir()
    reset_before = str(config_file(reset_before, [{"type": "gru", "units": 2, "reset_after": False},
                                                  {"type": "dense", "units": 2}], RNG.normal(size=(4, 5, 3))))
    cases = [
        (["net.safetensors", "-c", config, "--map", "convv=features.0"], "map: 'convv' is not a layer of this model "
                                                                        "with weights (did you mean 'conv'?)"),
        (["net.safetensors", "-c", config, "--map", str(tmp_path / "map.yaml")],
         "map: 'classifier.9' is not a layer of the weights file (did you mean 'classifier.0'?)"),
        (["net.safetensors", "-c", config, "--map", "fc=features.0"],
         "features.0 -> fc: weight becomes W of shape [3, 3, 2, 3], but fc/W has shape [48, 4]"),
        (["old_gru.h5", "-c", gru_config, "--map", "gru_1=gru"], "gru -> gru_1: a Keras GRU with reset_after=False "
                                                                  "(one bias row) computes another formula than a "
                                                                  "gru with reset_after: true"),
        (["gru.safetensors", "-c", reset_before, "--map", "gru_1=gru"], "gru -> gru_1: a gru with reset_after: "
                                                                         "false computes another formula (reset "
                                                                         "before the recurrent product) than "
                                                                         "PyTorch's GRU"),
        (["broken.h5", "-c", config], "broken.h5: not a readable HDF5 file"),
        (["none.safetensors", "-c", config], "none.safetensors: no such weights file"),
        (["net.onnx", "-c", config], "unknown kind of weights file '.onnx'; nnctl convert reads PyTorch"),
        (["net.safetensors", "-c", config, "--flatten", "nhwc"], "--flatten must be chw or hwc, not 'nhwc'"),
    ]
    (tmp_path / "net.onnx").write_bytes(b"\x08\x08")
    for args, message in cases:
        result = nnctl("convert", str(tmp_path / args[0]), *args[1:], "-o", str(tmp_path / "w.npz"))
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr, (args, result.stderr)
        assert message in result.stderr, (message, result.stderr)
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.slow
def test_pairs_made_by_order_that_do_not_fit_are_left_out_and_said_so(tmp_path):
    save_file({"features.0.weight": normal(3, 2, 3, 3), "features.0.bias": normal(3),
               "classifier.0.weight": normal(10, 4096), "classifier.0.bias": normal(10)},
              str(tmp_path / "vgg_like.safetensors"))
    config = config_file(tmp_path, CNN, IMAGES)
    stdout = ok("convert", str(tmp_path / "vgg_like.safetensors"), "-c", str(config), "-o", str(tmp_path / "w.npz"))
    assert "layers paired by order" in stdout
    assert "not converted: classifier.0 -> fc: weight becomes W of shape [4096, 10], but fc/W has shape [48, 4]" \
        in stdout
    assert "wrote 2 arrays of 1 layers" in stdout and "not converted: fc, out" in stdout
    with np.load(tmp_path / "w.npz") as arrays:
        assert sorted(arrays.files) == ["conv/W", "conv/b"]
    config.write_text(config.read_text().replace("model:\n", "model:\n  weights: {path: w.npz, layers: [conv]}\n"))
    assert "│ file" in ok("summary", str(config))


def test_a_keras2_bidirectional_lstm_fills_both_directions(tmp_path):
    x = RNG.normal(size=(4, 5, 3))
    weights = {f"{side}_lstm/lstm_cell/{key}:0": normal(*shape) for side in ("forward", "backward")
               for key, shape in (("kernel", (3, 8)), ("recurrent_kernel", (2, 8)), ("bias", (8,)))}
    with h5py.File(tmp_path / "bi.h5", "w") as f:
        f.attrs["layer_names"] = [b"bidirectional"]
        group = f.create_group("bidirectional")
        group.attrs["weight_names"] = [f"bidirectional/{name}".encode() for name in weights]
        for name, value in weights.items():
            group[f"bidirectional/{name}"] = value
    forward = keras_lstm(x, *(weights[f"forward_lstm/lstm_cell/{k}:0"] for k in ("kernel", "recurrent_kernel", "bias")))
    backward = keras_lstm(x[:, ::-1], *(weights[f"backward_lstm/lstm_cell/{k}:0"]
                                        for k in ("kernel", "recurrent_kernel", "bias")))
    model = model_from([{"type": "lstm", "units": 2, "bidirectional": True}], (5, 3), tmp_path / "bi.h5")
    np.testing.assert_allclose(model.forward(x), np.concatenate([forward, backward], axis=1), rtol=1e-9, atol=1e-12)


def keras_batchnorm(folder: Path, kind: str, epsilon: float | None) -> Path:
    """A Keras batch norm then dense, saved as `kind`: a full-model .h5 or a .keras archive (each with its model
    config, holding `epsilon`), or a weights-only .h5 (no config)."""
    arrays = {"batch_normalization": {"gamma": BN[0], "beta": BN[1], "moving_mean": BN[2], "moving_variance": BN[3]},
              "dense": {"kernel": BN[4], "bias": BN[5]}}
    config = json.dumps({"class_name": "Sequential", "config": {"name": "net", "layers": [
        {"class_name": "BatchNormalization", "config": {"name": "batch_normalization", "epsilon": epsilon}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 2}}]}})
    path = folder / ("net.keras" if kind == "keras" else f"{kind}.h5")
    with h5py.File(folder / "model.weights.h5" if kind == "keras" else path, "w") as f:
        if kind == "keras":  # Keras 3's layers/<name>/vars/<i>
            for name, values in arrays.items():
                for i, value in enumerate(values.values()):
                    f[f"layers/{name}/vars/{i}"] = value
        else:  # Keras 2's layer_names and weight_names, under model_weights in a full model's save
            if kind == "model":
                f.attrs["model_config"] = config
            root = f.create_group("model_weights") if kind == "model" else f
            root.attrs["layer_names"] = [name.encode() for name in arrays]
            for name, values in arrays.items():
                group = root.create_group(name)
                group.attrs["weight_names"] = [f"{name}/{k}:0".encode() for k in values]
                for key, value in values.items():
                    group[f"{name}/{key}:0"] = value
    if kind == "keras":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", config)
            archive.write(folder / "model.weights.h5", "model.weights.h5")
    return path


BN = [normal(4) + 1, normal(4), normal(4), np.abs(normal(4)) + 0.01, normal(4, 2), normal(2)]
"""A Keras batch norm's gamma, beta, moving mean and variance (small, so that epsilon matters), then a dense's."""


@pytest.mark.slow
def test_keras_batch_norms_epsilon_is_read_where_saved_and_named_where_not(tmp_path):
    x = RNG.normal(size=(6, 4)).astype(np.float32)
    config = config_file(tmp_path, [{"type": "batchnorm", "name": "bn"}, {"type": "dense", "name": "out", "units": 2}],
                         x)
    pairs = ["--map", "bn=batch_normalization", "--map", "out=dense"]
    for kind in ("model", "keras"):
        result = nnctl("convert", str(keras_batchnorm(tmp_path, kind, 1e-3)), "-c", str(config), *pairs,
                       "-o", str(tmp_path / "w.npz"), "--force")
        assert result.returncode == 1 and "batch_normalization -> bn: Keras's epsilon is 0.001, but the layer's eps " \
            "is 1e-05, so their outputs differ; set eps: 0.001 on bn in the config" in result.stderr, result.stderr
    weights_only = ok("convert", str(keras_batchnorm(tmp_path, "weights", None)), "-c", str(config), *pairs,
                      "-o", str(tmp_path / "w.npz"))
    assert "the file does not say Keras's epsilon (its default is 0.001, this layer's eps 1e-05)" in weights_only

    config.write_text(config.read_text().replace("type: batchnorm", "type: batchnorm\n    eps: 0.001"))
    assert "epsilon 0.001 as the layer's eps" in ok("convert", str(tmp_path / "net.keras"), "-c", str(config), *pairs,
                                                   "-o", str(tmp_path / "w.npz"), "--force")
    config.write_text(config.read_text().replace("model:\n", "model:\n  weights: w.npz\n"))
    np.save(tmp_path / "x.npy", x)
    ok("predict", str(config), str(tmp_path / "x.npy"), "--layer", "bn", "-o", str(tmp_path / "y.npy"))
    keras = BN[0] * (x - BN[2]) / np.sqrt(BN[3] + 1e-3) + BN[1]  # keras.layers.BatchNormalization at inference
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), keras, rtol=1e-5, atol=1e-5)
