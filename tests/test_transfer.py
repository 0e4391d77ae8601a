"""Weights by name, frozen layers and features: a base trained on one task, loaded partly and frozen under a new
head on another, through the real CLI; and the shipped transfer pair on a slice of MNIST."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import CONFIGS, nnctl, ok
from nnctl import checkpoint
from nnctl.config import load_config
from nnctl.experiment import build

pytestmark = [pytest.mark.slow,  # trains real models through the CLI
              pytest.mark.xdist_group("transfer")]  # one worker: the module's base is trained once
RNG = np.random.default_rng(0)
BASE = [{"type": "conv2d", "name": "conv1", "filters": 3, "kernel_size": 3, "activation": "relu"},
        {"type": "batchnorm", "name": "bn1"},
        {"type": "maxpool2d"},
        {"type": "flatten"},
        {"type": "dense", "name": "fc1", "units": 8, "activation": "relu"}]


def frozen(layers: list[dict]) -> list[dict]:
    return [{**layer, "trainable": False} if "name" in layer else layer for layer in layers]


def write_config(folder: Path, name: str, layers: list[dict], weights=None, **sections) -> Path:
    """A config over images.npz (two blobs of 8×8 images, labels 0/1), beside it in `folder`."""
    if not (folder / "images.npz").exists():
        y = np.arange(64) % 2
        x = RNG.normal(size=(64, 1, 8, 8)) + y[:, None, None, None] * np.linspace(0, 1, 8)
        np.savez(folder / "images.npz", x=x.astype(np.float32), y=y)
    model = {"layers": layers, **({"weights": weights} if weights is not None else {})}
    config = {"name": name, "data": {"type": "npz", "path": "images.npz", "flatten": False}, "model": model,
              "loss": "softmax_cross_entropy", "optimizer": {"type": "momentum", "lr": 0.05},
              "train": {"epochs": 2, "batch_size": 16}, **sections}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train(config: Path, *overrides: str) -> Path:
    runs = config.parent / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    ok("train", str(config), *overrides, "--runs-dir", str(runs), "-q")
    (run_dir,) = set(runs.iterdir()) - before
    return run_dir


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The base trained for two epochs on the task, its arrays exported to base.npz beside it."""
    folder = tmp_path_factory.mktemp("transfer")
    run = train(write_config(folder, "base", [*BASE, {"type": "dense", "name": "out", "units": 2}]))
    ok("export", str(run / "checkpoints" / "last.pkl"), "-o", str(folder / "base.npz"))
    return folder


HEAD = [{"type": "dense", "name": "new_fc", "units": 6, "activation": "tanh"},
        {"type": "dense", "name": "new_out", "units": 2}]
BASE_LAYERS = ["conv1", "bn1", "fc1"]


def test_a_frozen_base_stays_bit_identical_while_the_head_trains(base):
    config = write_config(base, "head", [*frozen(BASE), *HEAD], {"path": "base.npz", "layers": BASE_LAYERS},
                          loss={"type": "softmax_cross_entropy", "l2": 0.01})
    summary = ok("summary", str(config))
    assert "total parameters: 328 (trainable 68, frozen 260)" in summary
    assert (summary.count("│ frozen"), summary.count("│ file"), summary.count("│ init")) == (3, 3, 2)
    run = train(config)
    assert "model.weights: layers conv1, bn1, fc1 from base.npz" in (run / "train.log").read_text()
    saved = checkpoint.load(run / "checkpoints" / "last.pkl")
    with np.load(base / "base.npz") as exported:
        for name in ("conv1/W", "conv1/b", "bn1/gamma", "bn1/beta", "bn1/running_mean", "bn1/running_var",
                     "fc1/W", "fc1/b"):
            layer, key = name.split("/")
            entry = saved.model[layer]
            value = entry["params"].get(key, entry["state"].get(key))
            np.testing.assert_array_equal(value, exported[name], err_msg=name)  # no update, no decay, no statistics
    initial = build(load_config(config)).model  # the head as its initializers made it
    for name in ("new_fc", "new_out"):
        assert not np.array_equal(saved.model[name]["params"]["W"], initial.layer(name).params["W"])
    slots = saved.optimizer["slots"]["v"]
    assert [s.shape for s in slots] == [(8, 6), (6,), (6, 2), (2,)]  # momentum kept for the head only
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_params"] == 68 and summary["frozen_params"] == 260
    assert summary["weights_from"] == {name: "base.npz" for name in BASE_LAYERS}


def test_backward_stops_at_the_first_layer_that_trains(base):
    config = write_config(base, "head", [*frozen(BASE), *HEAD], {"path": "base.npz", "layers": BASE_LAYERS})
    exp = build(load_config(config))
    model = exp.model
    assert [layer.name for layer in model.layers][model.first_trained] == "new_fc"
    assert [layer.input_grad for layer in model.layers] == [False] * 6 + [True]
    x, y = exp.data.train.x[:16], exp.data.train.y[:16]
    exp.loss.forward(model.forward(x, training=True), y)
    assert model.backward(exp.loss.backward()) is None
    for layer in model.layers[:5]:  # never asked for gradients: they stay as built
        assert all(not g.any() for g in layer.grads.values())
    assert all(g.any() for name in ("new_fc", "new_out") for g in model.layer(name).grads.values())
    assert "all 4 checks passed" in ok("gradcheck", str(config), "--samples", "4")  # the head's four tensors


def test_frozen_batch_norm_runs_on_its_running_statistics(base):
    layers = [{"type": "flatten"}, {"type": "dense", "name": "fc", "units": 2},
              {"type": "batchnorm", "name": "bn", "trainable": False}]
    exp = build(load_config(write_config(base, "bn", layers)))
    bn = exp.model.layer("bn")
    bn.state["running_mean"][...] = [1, 2]
    bn.state["running_var"][...] = [4, 9]
    x = exp.data.train.x[:8]
    hidden = x.reshape(8, -1) @ exp.model.layer("fc").params["W"] + exp.model.layer("fc").params["b"]
    expected = (hidden - [1, 2]) / np.sqrt(np.array([4, 9]) + bn.eps)  # gamma 1, beta 0 as built
    np.testing.assert_allclose(exp.model.forward(x, training=True), expected, rtol=1e-5, atol=1e-6)
    assert bn.state["running_mean"].tolist() == [1, 2] and bn.state["running_var"].tolist() == [4, 9]


def test_frozen_layers_between_trainable_ones_pass_the_gradient_back(tmp_path):
    """A frozen conv and batch norm after a trainable conv: backward runs through them (as in evaluation), so the
    first conv's gradient checks, training leaves them as built, and `nnctl check` walks the same path."""
    layers = [{"type": "conv2d", "name": "conv1", "filters": 2, "kernel_size": 3, "activation": "tanh"},
              {"type": "conv2d", "name": "conv2", "filters": 2, "kernel_size": 3, "trainable": False},
              {"type": "batchnorm", "name": "bn", "trainable": False}, {"type": "flatten"},
              {"type": "dense", "name": "out", "units": 2}]
    config = write_config(tmp_path, "middle", layers)
    assert "all 5 checks passed" in ok("gradcheck", str(config), "--samples", "4")  # conv1, out: W, b; the input
    run = train(config)
    built, trained = build(load_config(config)).model, checkpoint.load(run / "checkpoints" / "last.pkl").model
    assert (trained["conv2"]["params"]["W"] == built.layer("conv2").params["W"]).all()
    assert not (trained["conv1"]["params"]["W"] == built.layer("conv1").params["W"]).all()
    head_only = write_config(tmp_path, "head", [*frozen(layers[:3]), *layers[3:]])  # backward stops at out
    assert "passed" in ok("check", str(head_only), "--steps", "20", "--seconds", "5", "--repeats", "1")


def test_partial_loads_with_missing_and_extra_names(base):
    with np.load(base / "base.npz") as exported:
        arrays = {k: exported[k] for k in exported.files if k.startswith(("conv1/", "bn1/"))}
    np.savez(base / "some.npz", **arrays, **{"old_head/W": np.zeros((3, 3))})
    layers = [*BASE, *HEAD]
    lenient = write_config(base, "lenient", layers, {"path": "some.npz", "strict": False})
    run = train(lenient, "train.epochs=1")
    log = (run / "train.log").read_text()
    assert "model.weights: layers conv1, bn1 from some.npz; left to their initializers: fc1/W, fc1/b, new_fc/W, " \
           "new_fc/b, new_out/W, new_out/b; not in this model, ignored: old_head/W" in log

    cases = [
        ({"path": "some.npz"}, "some.npz does not fit this model: missing 'fc1/W' [27, 8]"),
        ({"path": "some.npz"}, "not in this model 'old_head/W' [3, 3]"),
        ({"path": "some.npz"}, "To load only some layers, give model.weights as {path, layers: [...]}"),
        ({"path": "some.npz", "layers": ["conv1", "fc1"], "strict": False}, "some.npz holds no arrays of layer 'fc1'"),
        ({"path": "some.npz", "layers": ["conv1", "bn2"]},
         "model.weights.layers.1: 'bn2' is not a layer of this model with weights (did you mean 'bn1'?)"),
        ({"path": "some.npz", "layer": ["conv1"]}, "model.weights.layer: unknown key (did you mean 'layers'?)"),
        ({"path": "some.npz", "strict": "no"}, "model.weights.strict: expected true or false, got str 'no'"),
        ({"layers": ["conv1"]}, "model.weights.path: expected the path of an .npz file"),
        ({"path": "base.npz", "layers": ["conv1", "new_fc"]},
         "base.npz does not fit this model: missing 'new_fc/W' [8, 6], 'new_fc/b' [6]"),
    ]
    np.savez(base / "wide.npz", **{"conv1/W": np.zeros((3, 1, 5, 5)), "conv1/b": np.zeros(3)})
    cases.append(({"path": "wide.npz", "layers": ["conv1"]},
                  "array 'conv1/W' has shape [3, 1, 5, 5], but this model's conv1/W has shape [3, 1, 3, 3]"))
    np.savez(base / "huge.npz", **{"conv1/W": np.full((3, 1, 3, 3), 1e300), "conv1/b": np.zeros(3)})
    cases.append(({"path": "huge.npz", "layers": ["conv1"]},  # inf in float32: the loss's NaN blamed the lr
                  "array 'conv1/W' holds values up to 1e+300, beyond float32's range, the model's dtype"))
    for weights, message in cases:
        config = write_config(base, "bad", layers, weights)
        result = nnctl("summary", str(config))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr, (message, result.stderr)


def test_init_from_a_checkpoint_whose_layers_differ_names_the_config_and_the_way_to_a_partial_start(base, tmp_path):
    (run,) = (base / "runs").glob("base-*")
    best = run / "checkpoints" / "best.pkl"
    wider = write_config(tmp_path, "wider", [*BASE[:-1], {**BASE[-1], "units": 12},
                                             {"type": "dense", "name": "out", "units": 2}])
    result = nnctl("train", str(wider), "--init-from", str(best), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 1, result.stderr
    assert (f"best.pkl: its weights do not fit the model of {wider}, the config being trained: layer fc1: W has "
            "shape [27, 8], expected [27, 12]; to start from the layers that fit, run nnctl export "
            f"{best} -o w.npz and give {wider} model.weights: {{path: w.npz, layers: [conv1, bn1]}} instead of "
            "--init-from") in result.stderr
    ok("export", str(best), "-o", str(tmp_path / "w.npz"))
    partial = write_config(tmp_path, "partial", [*BASE[:-1], {**BASE[-1], "units": 12},
                                                 {"type": "dense", "name": "out", "units": 2}],
                           {"path": "w.npz", "layers": ["conv1", "bn1"]})
    train(partial, "train.epochs=1")


def test_init_from_does_not_read_the_configs_own_weights_file(base, tmp_path):
    (run,) = (base / "runs").glob("base-*")
    config = write_config(tmp_path, "base", [*BASE, {"type": "dense", "name": "out", "units": 2}], "gone.npz")
    fine_tuned = train(config, "train.epochs=1", "--init-from", str(run))
    assert json.loads((fine_tuned / "summary.json").read_text())["status"] == "finished"


def test_predict_and_export_take_a_config_with_weights(base, tmp_path):
    config = write_config(base, "features", [*BASE, {"type": "dense", "name": "out", "units": 2}], "base.npz")
    x = np.load(base / "images.npz")["x"][:5]
    np.save(tmp_path / "x.npy", x)
    stdout = ok("predict", str(config), str(tmp_path / "x.npy"), "--layer", "bn1", "-o", str(tmp_path / "f.npy"))
    assert "wrote the outputs of bn1, shape [5, 3, 6, 6]" in stdout
    model = build(load_config(config)).model
    expected = x
    for layer in model.layers[:2]:
        expected = layer.forward(expected, False)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), expected)
    ok("export", str(config), "-o", str(tmp_path / "again.npz"))
    with np.load(tmp_path / "again.npz") as again, np.load(base / "base.npz") as exported:
        assert sorted(again.files) == sorted(exported.files)
        assert all(np.array_equal(again[k], exported[k]) for k in exported.files)

    exported_bytes = (base / "base.npz").read_bytes()
    no_weights = write_config(base, "fresh", BASE)
    for args, message in [
        (["predict", str(no_weights), str(tmp_path / "x.npy")], "this config names no trained weights: give a "
                                                                "checkpoint of a run, or model.weights"),
        (["eval", str(no_weights)], "this config names no trained weights"),  # not the initial weights' scores
        (["export", str(no_weights), "-o", str(tmp_path / "w.npz")], "this config names no trained weights"),
        (["predict", str(config), str(tmp_path / "x.npy"), "--layer", "bn2", "-o", str(tmp_path / "g.npy")],
         "--layer: this model has no layer 'bn2' (did you mean 'bn1'?)"),
        (["predict", str(config), str(tmp_path / "x.npy"), "--layer", "bn1"], "--layer writes the layer's outputs "
                                                                            "as an array: give -o FILE.npy"),
        (["export", str(config), "-o", str(base / "base.npz"), "--force"], "base.npz: this is the file "
                                                                          f"{config}'s model.weights reads"),
    ]:
        result = nnctl(*args)
        assert result.returncode in (1, 2) and message in result.stderr and "Traceback" not in result.stderr, \
            result.stderr
    assert (base / "base.npz").read_bytes() == exported_bytes  # the weights a config reads are never its output


def test_the_shipped_transfer_pair_on_a_slice(tmp_path, mnist_root):
    base_run = train_shipped(tmp_path, "base_digits04.yaml", "data.subset=1500", "data.validation=300",
                             "data.test_subset=500")
    assert json.loads((base_run / "summary.json").read_text())["test"]["test_accuracy"] > 0.8
    ok("export", str(base_run / "checkpoints" / "best.pkl"), "-o", str(tmp_path / "base.npz"))
    head_run = train_shipped(tmp_path, "head_digits59.yaml", f"model.weights.path={tmp_path / 'base.npz'}",
                             "data.subset=400", "data.validation=100", "data.test_subset=500", "train.epochs=3")
    assert "model.weights: layers block1_conv1, block1_conv2, block2_conv1, block2_conv2 from" in \
        (head_run / "train.log").read_text()
    saved = checkpoint.load(head_run / "checkpoints" / "last.pkl").model
    with np.load(tmp_path / "base.npz") as exported:
        for layer in ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"):
            np.testing.assert_array_equal(saved[layer]["params"]["W"], exported[f"{layer}/W"])
    summary = json.loads((head_run / "summary.json").read_text())
    assert summary["test"]["test_accuracy"] > 0.6  # 5 classes: chance is 0.2
    labels = json.loads(ok("eval", str(head_run / "checkpoints" / "last.pkl"), "--json"))["confusion_matrix"]
    assert len(labels) == 5


def train_shipped(tmp_path: Path, name: str, *overrides: str) -> Path:
    runs = tmp_path / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    ok("train", str(CONFIGS / "transfer" / name), *overrides, "--runs-dir", str(runs), "-q")
    (run_dir,) = set(runs.iterdir()) - before
    return run_dir


@pytest.mark.parametrize("name", ["keras.h5", "net.keras", "torch.safetensors"])
def test_another_frameworks_weights_as_model_weights_point_at_convert(tmp_path, name):
    """A Keras or PyTorch file given as model.weights said only 'not a readable .npz file (File is not a zip
    file)'; it names nnctl convert, the way from such a file to an .npz."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / name, "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((2, 2)))
    config = write_config(tmp_path, "foreign", BASE + [{"type": "dense", "name": "out", "units": 2}], weights=name)
    result = nnctl("summary", str(config))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not a readable .npz file" in result.stderr
    assert f"make an .npz of it with `nnctl convert {tmp_path / name} -c CONFIG -o weights.npz`" in result.stderr
    (tmp_path / name).unlink()
    result = nnctl("summary", str(config))
    assert result.returncode == 2 and "no such file" in result.stderr and "nnctl convert" not in result.stderr
