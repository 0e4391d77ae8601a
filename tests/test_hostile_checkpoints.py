"""Forged but pickle-safe checkpoints are refused naming what is wrong; a checkpoint never decides where data
comes from; a resume cannot change the run's course; --init-from starts a new run from a checkpoint's weights."""

import copy
import pickle
import random
import time
import traceback

import numpy as np
import pytest
from hostile import XOR, clean_error, listing, paths

from helpers import Server, nnctl
from nnctl.errors import CheckpointError, NnctlError
from nnctl.runner import Runner
from nnctl.trained import Trained
from nnctl.unpickle import safe_unpickle

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_checkpoints")]  # one worker: one xor run


def trained(tmp_path_factory, name: str, config: str):
    """The run folder of one training of `config`."""
    folder = tmp_path_factory.mktemp(name)
    (folder / "xor.yaml").write_text(config)
    result = nnctl("train", "xor.yaml", "-q", cwd=folder)
    assert result.returncode == 0, result.stderr
    return next((folder / "runs").iterdir())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained(tmp_path_factory, "ckpt", XOR)


@pytest.fixture
def raw(run):
    return safe_unpickle((run / "checkpoints" / "last.pkl").read_bytes())


def forge(data, tmp_path, name="forged.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def set_at(data, dotted, value):
    *parents, last = (int(k) if k.isdigit() else k for k in dotted.split("."))
    for key in parents:
        data = data[key]
    if value is DELETE:
        del data[last]
    else:
        data[last] = value


DELETE = object()
FORGED = {
    "missing model": ("model", DELETE, "its 'model' is missing"),
    "a weight that is an int": ("model.dense_1.params.W", 3, "'model.dense_1.params.W' is int, expected an array"),
    "a weight of ints": ("model.dense_1.params.W", np.ones((2, 4), np.int64), "an array of int64"),
    "a weight of the wrong shape": ("model.dense_1.params.W", np.ones((3, 4)), "W has shape [3, 4], expected [2, 4]"),
    "a NaN weight": ("model.dense_1.params.b", np.full(4, np.nan), "holds NaN or infinite values"),
    "a weight past float32's range": ("model.dense_1.params.W", np.full((2, 4), 1e300),
                                      "layer dense_1: W holds values up to 1e+300, beyond float32's range"),
    "a layer that is not there": ("model.dense_9", {"params": {}, "state": {}}, "are not this model's"),
    "optimizer slots of another shape": ("optimizer.slots.m", [np.ones(3)] * 4, "the optimizer's saved 'm' arrays"),
    "optimizer slots of another optimizer": ("optimizer.slots", {"v": []}, "saved slots ['v'] are not the"),
    "a NaN optimizer slot": ("optimizer.slots.m", [np.full((2, 4), np.nan)] * 4, "slot 'm' holds NaN or infinite"),
    "an optimizer slot past float32's range": ("optimizer.slots.v", [np.full((2, 4), 1e300), *[np.zeros(s) for s in (
        4, (4, 2), 2)]], "the optimizer's saved 'v' array holds values up to 1e+300, beyond float32's range"),
    "a position that is a string": ("progress.epoch", "two", "'progress.epoch' is str, expected int"),
    "a negative step": ("progress.step", -5, "'progress.step' is -5, expected a whole number from 0"),
    "a negative optimizer step": ("optimizer.t", -5, "'optimizer.t' is -5, expected a whole number"),
    "a batch past the epoch": ("progress.batch", 99, "its position (epoch 3, batch 99"),
    "an order of other samples": ("progress.order", np.array([7, 8, 9, 10]), "does not fit 4 training samples"),
    "an order that repeats a sample": ("progress.order", np.array([0, 0, 3, 3]), "does not fit 4 training samples"),
    "sums that are not numbers": ("progress.sums", {"loss": "x"}, "'progress.sums' are not numbers"),
    "a history row that is not one": ("history", [1, 2], "'history' holds rows that are not metric rows"),
    "an rng state of another generator": ("rng.data", {"bit_generator": "MT19937", "state": {}},
                                          "its 'rng.data' is not a state of NumPy's PCG64 generator"),
    "an rng state of -1": ("rng.data.state.state", -1, "its 'rng.data' is not a state of NumPy's PCG64 generator"),
    "an rng state of text": ("rng.dropout.state.state", "x",
                             "its 'rng.dropout' is not a state of NumPy's PCG64 generator"),
    "an rng state holding a float": ("rng.dropout.state.inc", float("nan"),
                                     "'rng.dropout' is not a generator's state (names and whole numbers)"),
    "an rng state holding an array": ("rng.data.has_uint32", np.zeros(2, np.int64), "'rng.data' is not a generator's"),
    "an edited config": ("config.model.layers.0.activation", "relu", "its config does not match the run it holds"),
    "a vocabulary with a repeated token": ("inputs.vocab", ["a", "a"], "'inputs.vocab' lists a token twice"),
    "class names that are not names": ("inputs.class_names", [1, 2],
                                       "'inputs.class_names' is not a list of class names"),
    "class names of another count": ("inputs.class_names", ["a", "b", "c"],
                                     "'inputs.class_names' names 3 classes, but its 'inputs.num_classes' is"),
}


@pytest.mark.parametrize("name", FORGED)
def test_forged_checkpoints_are_refused_naming_what_is_wrong(raw, tmp_path, name):
    where, value, phrase = FORGED[name]
    set_at(raw, where, value)
    raw["progress"]["batch"] = raw["progress"]["batch"] if where != "progress.order" else 1
    path = forge(raw, tmp_path)
    with pytest.raises(CheckpointError) as info:
        Runner.resume(path, ["train.epochs=5"], tmp_path / "runs", quiet=True)
    assert phrase in str(info.value)
    assert not list(tmp_path.glob("runs/*"))  # no run folder left behind


def test_forged_checkpoints_through_the_cli(raw, tmp_path):
    set_at(raw, "model.dense_1.params.W", 3)
    path = forge(raw, tmp_path)
    for args in (["eval", str(path)], ["export", str(path), "-o", "w.npz"], ["predict", str(path), "x.npy"],
                 ["train", "--resume", str(path), "train.epochs=5"]):
        clean_error(nnctl(*args, cwd=tmp_path), 1, "'model.dense_1.params.W' is int")
    assert listing(tmp_path) == {str(path)}


def shared(depth, mapping=False):
    """A list (or dict) of a few bytes of pickle a level that holds one sub-list (or 1) 2**depth times over."""
    node: int | list | dict = 1 if mapping else [1]
    for _ in range(depth):
        node = {"a": node, "b": node} if mapping else [node, node]
    return node


def looped():
    """A dict that holds itself."""
    node = {"a": 1}
    node["self"] = node
    return node


@pytest.mark.parametrize("where, value", [("config.extra", shared(60)), ("rng.data.state", shared(60, True)),
                                          ("config.extra", looped())])
def test_containers_held_in_many_places_are_refused_before_anything_walks_them(raw, tmp_path, where, value):
    set_at(raw, where, value)
    path = forge(raw, tmp_path)
    for args in (["eval", str(path)], ["train", "--resume", str(path), "train.epochs=5"]):
        clean_error(nnctl(*args, cwd=tmp_path, timeout=30), 1, "refused to load", "in more than one place")
    assert listing(tmp_path) == {str(path)}


NORMALIZED = XOR.replace("op: xor}", "op: xor, normalize: true}")


@pytest.fixture(scope="module")
def normalized(tmp_path_factory):
    """last.pkl of a run of XOR with data.normalize: a checkpoint holding every field, channel statistics too."""
    return trained(tmp_path_factory, "normalized", NORMALIZED) / "checkpoints" / "last.pkl"


FORGED_NUMBERS = {
    "an elapsed time past a float's range": ("elapsed", 10**400, f"'elapsed' is {'1' + '0' * 19}...(401 digits), "
                                                                 "expected"),
    "a best value past a float's range": ("monitor.best", 10**400, f"'monitor.best' is {'1' + '0' * 19}...(401 "
                                                                   "digits)"),
    "a NaN best value": ("monitor.best", float("nan"), "'monitor.best' is nan, expected a finite number"),
    "a NaN reference value": ("monitor.reference", float("nan"), "'monitor.reference' is nan, expected a finite"),
    "an infinite lr": ("progress.lr", float("inf"), "'progress.lr' is inf, expected a finite number"),
    "a count past int64": ("optimizer.t", 2**64, "'optimizer.t' is 18446744073709551616, expected a whole number"),
    "an epoch that is a bool": ("progress.epoch", True, "'progress.epoch' is bool, expected int"),
    "a format version that is a bool": ("format_version", True, "'format_version' is bool, expected int"),
    "a NaN in the sums": ("progress.sums.loss", float("nan"), "'progress.sums' are not numbers by name, or not finite"),
    "a schedule state past a float's range": ("progress.schedule", {"scale": 10**400}, "'progress.schedule' is not"),
    "no classes": ("inputs.num_classes", 0, "'inputs.num_classes' is 0, expected a whole number from 1"),
    "negative classes": ("inputs.num_classes", -5, "'inputs.num_classes' is -5, expected a whole number from 1"),
    "classes the model does not output": ("inputs.num_classes", 7, "'inputs.num_classes' is 7, but its model has 2 "
                                                                   "outputs"),
    "statistics of another shape": ("inputs.channel_stats", [np.zeros(7), np.ones(7)],
                                    "'inputs.channel_stats' is not a pair of arrays (mean and std) of floats of shape "
                                    "[2]"),
    "statistics of ints": ("inputs.channel_stats.0", np.zeros(2, np.int64), "'inputs.channel_stats' is not a pair"),
    "a standard deviation of 0": ("inputs.channel_stats.1", np.zeros(2), "standard deviations of 0 or less"),
    "a NaN mean": ("inputs.channel_stats.0", np.full(2, np.nan), "'inputs.channel_stats' hold NaN"),
    "a sample shape of another size": ("inputs.sample_shape", [3], "'inputs.sample_shape' [3] does not hold the 2"),
}


@pytest.mark.parametrize("name", FORGED_NUMBERS)
def test_forged_numbers_and_input_recipes_are_refused_naming_the_field(normalized, tmp_path, name):
    where, value, phrase = FORGED_NUMBERS[name]
    raw = safe_unpickle(normalized.read_bytes())
    set_at(raw, where, value)
    with pytest.raises(CheckpointError) as info:
        Trained.load(forge(raw, tmp_path))
    assert phrase in str(info.value)


def test_a_checkpoint_from_before_the_monitors_reference_counts_early_stopping_from_its_best(normalized, tmp_path):
    raw = safe_unpickle(normalized.read_bytes())
    raw["monitor"] = {"best": 0.25, "wait": 2}  # as nnctl wrote it when best.pkl's value was also the reference
    assert Trained.load(forge(raw, tmp_path)).saved.monitor == {"best": 0.25, "wait": 2, "reference": 0.25}


@pytest.mark.parametrize("where, value, commands", [
    pytest.param("elapsed", 10**400, [["eval", "f.pkl"], ["predict", "f.pkl", "x.npy"],
                                      ["train", "xor.yaml", "--init-from", "f.pkl"]], id="huge elapsed"),
    pytest.param("monitor.best", 10**400, [["train", "--resume", "f.pkl", "train.epochs=5"]], id="huge best"),
    pytest.param("monitor.best", float("nan"), [["train", "--resume", "f.pkl", "train.epochs=5"]], id="NaN best"),
    pytest.param("inputs.channel_stats", [np.zeros(7), np.ones(7)], [["predict", "f.pkl", "x.npy"]],
                 id="statistics of 7 channels"),
    pytest.param("inputs.num_classes", 7, [["predict", "f.pkl", "x.npy"]], id="7 classes of 2 outputs"),
])
def test_forged_numbers_that_crashed_a_command_end_in_one_message(normalized, tmp_path, where, value, commands):
    raw = safe_unpickle(normalized.read_bytes())
    set_at(raw, where, value)
    forge(raw, tmp_path, "f.pkl")
    np.save(tmp_path / "x.npy", np.array([[0, 1], [1, 1]], np.float32))
    (tmp_path / "xor.yaml").write_text(NORMALIZED)
    before = listing(tmp_path)
    for args in commands:
        clean_error(nnctl(*args, cwd=tmp_path), 1, f"f.pkl: its '{where}' is")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("form", ["npz", "onnx"])
def test_float64_weights_past_a_float32_models_range_are_not_exported_as_infinities(run, tmp_path, form):
    """They passed the finiteness check as float64 and became inf in the float32 model, which export wrote out."""
    raw = safe_unpickle((run / "checkpoints" / "last.pkl").read_bytes())
    set_at(raw, "model.dense_1.params.b", np.full(4, -1e300))
    forge(raw, tmp_path, "f.pkl")
    clean_error(nnctl("export", "f.pkl", "--format", form, "-o", f"w.{form}", cwd=tmp_path), 1,
                "f.pkl: its weights do not fit the model its config builds: layer dense_1: b holds values up to "
                "1e+300, beyond float32's range, the model's dtype")
    assert listing(tmp_path) == {str(tmp_path / "f.pkl")}


def test_weights_whose_outputs_overflow_stop_eval_and_predict(normalized, tmp_path):
    raw = safe_unpickle(normalized.read_bytes())
    first, last = raw["model"]["dense_1"]["params"], raw["model"]["dense_2"]["params"]
    first["W"], first["b"] = np.zeros_like(first["W"]), np.full_like(first["b"], 10)  # tanh gives 1 whatever the input
    last["W"] = np.full_like(last["W"], np.finfo(last["W"].dtype).max)  # finite, but their sum over 4 units is not
    path = forge(raw, tmp_path)
    np.save(tmp_path / "x.npy", np.array([[0, 1]], np.float32))
    for args in (["eval", str(path)], ["predict", str(path), "x.npy"], ["predict", str(path), "x.npy", "-o", "p.csv"]):
        clean_error(nnctl(*args, cwd=tmp_path), 1, "the model's outputs for these inputs are NaN or infinite",
                    "its weights overflow in float32")
    assert not (tmp_path / "p.csv").exists()
    clean_error(nnctl("predict", str(path), "x.npy", "--layer", "dense_2", "-o", "f.npy", cwd=tmp_path), 1,
                "the outputs of layer 'dense_2' for these inputs are NaN or infinite")
    assert not (tmp_path / "f.npy").exists()


def test_a_file_that_is_no_pickle_is_named_from_its_first_bytes(tmp_path):
    big = tmp_path / "big.pkl"
    with open(big, "wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB of zeros that take no disk
    clean_error(nnctl("eval", str(big), cwd=tmp_path), 1, "big.pkl: not a readable checkpoint",
                "it does not start as a pickle does")
    large = tmp_path / "large.pkl"
    large.write_bytes(pickle.PROTO + bytes([5]) + bytes(2 << 20))
    clean_error(nnctl("eval", str(large), cwd=tmp_path, env={"NNCTL_MAX_MEMORY": "1M"}), 1,
                "large.pkl: 2.0 MiB, more than a checkpoint may hold (1.0 MiB)")
    (tmp_path / "xor.yaml").write_text(XOR)
    (tmp_path / "notes.txt").write_text(XOR)
    for args in (["eval", "notes.txt"], ["predict", "notes.txt", "x.npy"], ["train", "--resume", "xor.yaml"],
                 ["train", "xor.yaml", "--init-from", "xor.yaml"], ["sample", "xor.yaml"]):
        clean_error(nnctl(*args, cwd=tmp_path), 1, "not a readable checkpoint: a text file (a config?), not a "
                                                   "checkpoint (a pickle")
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_does_not_decide_where_data_is_or_comes_from(tmp_path, mnist_root):
    (tmp_path / "m.yaml").write_text(XOR.replace("{type: logic, op: xor}", "{type: mnist, subset: 64, test_subset: 64}")
                                     .replace("units: 2}", "units: 10}"))
    assert nnctl("train", "m.yaml", "-q", cwd=tmp_path).returncode == 0
    last = next(tmp_path.glob("runs/*/checkpoints/last.pkl"))
    raw = safe_unpickle(last.read_bytes())
    (tmp_path / "served").mkdir()
    with Server(tmp_path / "served") as server:
        raw["config"]["data"].update(root=str(tmp_path / "evil" / "root"), mirror=server.url)
        raw["course"] = None
        path = forge(raw, tmp_path)
        result = nnctl("eval", str(path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "evil").exists()
        empty = tmp_path / "empty"
        result = nnctl("eval", str(path), cwd=tmp_path, env={"NNCTL_DATA_DIR": str(empty)})
    clean_error(result, 1, "is missing and could not be downloaded")
    assert server.url not in result.stderr  # only the dataset's own mirrors were tried
    assert not (tmp_path / "evil").exists() and not empty.exists()


SECRET = "hunter2-token"


@pytest.mark.parametrize("kind, first_layer, good, bad_lines", [
    ("csv", "{type: dense, units: 4}", "0,0,0\n0,1,1\n1,0,1\n1,1,0\n",
     [f"0,{SECRET},1", f"1,1,{SECRET}", f"{SECRET},1,1", f"1,{SECRET}"]),
    ("trees", "{type: recursive, vocab_size: 8, dim: 4}", "(1 (0 a) (1 b))\n(0 c)\n",
     [f"({SECRET} a)", f"(1 a {SECRET})", f"{SECRET}", f"(1 {SECRET} (0 a))", f"(1 (0 a) (1 b)) {SECRET}"]),
])
def test_a_forged_data_path_never_shows_the_file_it_reads(tmp_path, kind, first_layer, good, bad_lines):
    """A stranger's checkpoint may point eval at any local file: its messages name lines and columns, not text."""
    (tmp_path / "d.txt").write_text(good)
    (tmp_path / "m.yaml").write_text(f"data: {{type: {kind}, path: d.txt, validation: null}}\nmodel: {{layers: "
                                     f"[{first_layer}, {{type: dense, units: 2}}]}}\nloss: softmax_cross_entropy\n"
                                     "optimizer: {type: sgd, lr: 0.1}\ntrain: {epochs: 1, batch_size: 2}\n")
    result = nnctl("train", "m.yaml", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    raw = safe_unpickle(next(tmp_path.glob("runs/*/checkpoints/last.pkl")).read_bytes())
    raw["config"]["data"]["path"] = str(tmp_path / "secret.txt")
    path = forge(raw, tmp_path)
    for line in bad_lines:
        (tmp_path / "secret.txt").write_text(f"{good}{line}\n")
        output = clean_error(nnctl("eval", str(path), cwd=tmp_path), 1, f"secret.txt:{good.count(chr(10)) + 1}: ")
        assert SECRET not in output


@pytest.mark.parametrize("overrides, phrase", [
    (["data.op=and"], "data.op: 'xor' -> 'and'"),
    (["optimizer.type=momentum"], "optimizer.type: 'adam' -> 'momentum'"),
    (["model.layers.0.units=8", "seed=3"], "model.layers.0.units: 4 -> 8; seed: 0 -> 3"),
    (["train.batch_size=2"], "train.batch_size: 4 -> 2"),
])
def test_a_resume_that_would_change_the_course_is_refused_with_the_keys(run, tmp_path, overrides, phrase):
    before = listing(run)
    clean_error(nnctl("train", "--resume", str(run / "checkpoints" / "best.pkl"), "train.epochs=4", *overrides,
                      "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path),
                2, "--resume would change the run's course", phrase, "--init-from")
    assert listing(run) == before and not (tmp_path / "runs").exists()


def test_the_test_subset_is_the_course_where_the_test_split_validates(tmp_path):
    """With data.validation: test the test split picks best.pkl and steers the schedules: no longer free."""
    (tmp_path / "x.yaml").write_text(XOR.replace("op: xor}", "op: xor, validation: test}"))
    assert nnctl("train", "x.yaml", "--runs-dir", "runs", "-q", cwd=tmp_path).returncode == 0
    (run,) = (tmp_path / "runs").iterdir()
    clean_error(nnctl("train", "--resume", str(run), "train.epochs=4", "data.test_subset=2", cwd=tmp_path), 2,
                "--resume would change the run's course: data.test_subset: '(absent)' -> 2")


def test_what_may_change_on_resume_does(run, tmp_path):
    result = nnctl("train", "--resume", str(run / "checkpoints" / "best.pkl"), "train.epochs=3", "optimizer.lr=0.01",
                   "train.log_every_steps=1", "optimizer.clip_norm=1.0", "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_resume_that_writes_out_keys_at_their_defaults_keeps_the_course(run, tmp_path):
    """Those change nothing (`nnctl runs diff` and `nnctl config` show none): they were refused as '(absent) -> 0.9'."""
    result = nnctl("train", "--resume", str(run / "checkpoints" / "best.pkl"), "train.epochs=3", "optimizer.beta1=0.9",
                   "model.layers.0.use_bias=true", "train.mode=auto", "schedule=constant", "--runs-dir", "runs", "-q",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    clean_error(nnctl("train", "--resume", str(run / "checkpoints" / "best.pkl"), "train.epochs=3",
                      "optimizer.beta1=0.8", "model.layers.0.use_bias=true", cwd=tmp_path),
                2, "--resume would change the run's course: model.layers.0.use_bias: '(absent)' -> True; "
                   "optimizer.beta1: '(absent)' -> 0.8")


def test_init_from_starts_a_new_run_from_the_weights(run, tmp_path):
    (tmp_path / "ft.yaml").write_text(XOR.replace("{type: adam, lr: 0.05}", "{type: momentum, lr: 0.01}"))
    best = run / "checkpoints" / "best.pkl"
    result = nnctl("train", "ft.yaml", "--init-from", str(best), "train.epochs=1", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    clean_error(nnctl("train", "ft.yaml", "model.layers.0.units=5", "--init-from", str(best), cwd=tmp_path), 1,
                "its weights do not fit", "W has shape [2, 4], expected [2, 5]")
    assert len(list((tmp_path / "runs").iterdir())) == 1
    clean_error(nnctl("train", "--resume", str(best), "--init-from", str(best), cwd=tmp_path), 2,
                "--init-from starts a new run of a config")


VALUES = [None, 0, -1, 7, 1.5, float("nan"), "x", [], [1], {}, {"a": 1}, (1, 2), b"x", True,
          np.ones(3), np.ones((2, 4)), np.ones((2, 4), np.float32), np.zeros(0), np.arange(4), np.full(2, np.inf)]


def test_random_mutations_of_a_checkpoint_load_or_fail_cleanly(raw, tmp_path):
    rng = random.Random(11)
    deadline, seen = time.monotonic() + 90, {"ok": 0, "error": 0}
    for i in range(300):
        if time.monotonic() > deadline:
            break
        data = copy.deepcopy(raw)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice([p for p in paths(data) if p])
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict) and rng.random() < 0.2:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(VALUES))
        file = forge(data, tmp_path, f"m{i}.pkl")
        try:
            Trained.load(file)
            Runner.resume(file, ["train.epochs=5"], tmp_path / "runs", quiet=True).fit()
            seen["ok"] += 1
        except NnctlError:
            seen["error"] += 1
        except Exception:
            pytest.fail(f"mutation {i} of the checkpoint ended in a bug:\n{traceback.format_exc()}")
    assert seen["error"] > 50 and sum(seen.values()) >= 50, seen
