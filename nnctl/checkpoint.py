"""Checkpoints: pickles of plain data, written atomically and read through the restricted unpickler."""

import pickle
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import __version__
from nnctl.course import HASH_FREE, course_hash
from nnctl.data.source import stats_shape
from nnctl.errors import CheckpointError, TrainingError
from nnctl.files import read_bytes, regular_file
from nnctl.layers.base import array_problem
from nnctl.limits import capped_product
from nnctl.outputs import replacing
from nnctl.runs import ROW_KINDS
from nnctl.schema import brief, is_instance
from nnctl.unpickle import CostlyPickleError, SharedContainerError, UnsafePickleError, safe_unpickle
from nnctl.weight_files import ZIP

FORMAT = "nnctl-checkpoint"
FORMAT_VERSION = 2
"""2: the input recipe (raw sample shape, per-channel statistics) under 'inputs'; 1 read through a converter."""


@dataclass
class InputRecipe:
    """What prepares new inputs as the training data was: shapes, classes, vocabulary, per-channel statistics."""

    input_shape: tuple[int, ...]
    """One sample as the model takes it."""
    sample_shape: tuple[int, ...] | None
    """One raw sample as the dataset read it (before flatten); None in format-1 checkpoints."""
    num_classes: int | None
    vocab: list[str] | None
    channel_stats: tuple[np.ndarray, np.ndarray] | None
    """The training split's per-channel mean and standard deviation (data.normalize); None in format 1."""
    class_names: list[str] | None = None
    """The name of each class where the data names them (an images folder's class folders)."""


@dataclass
class Checkpoint:
    """Everything a run needs to go on or to be used: config, arrays, optimizer and RNG states, position, history."""

    config: dict[str, Any]
    base_dir: str
    """The folder the config's relative paths were relative to."""
    model: dict[str, Any]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    """Bit-generator states of the data and dropout generators."""
    progress: dict[str, Any]
    """epoch, batch, step, lr, the epoch's sample order and its running metric sums."""
    history: list[dict[str, Any]]
    monitor: dict[str, Any]
    elapsed: float
    inputs: InputRecipe
    course: str | None = None
    """The hash of what defines the run's course (course.py) when it was written; None before it was kept."""

    def to_dict(self) -> dict[str, Any]:
        """The plain data that is pickled: builtins and NumPy arrays only."""
        recipe = self.inputs
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "nnctl_version": __version__,
                "config": self.config, "base_dir": self.base_dir, "model": self.model, "optimizer": self.optimizer,
                "rng": self.rng, "progress": self.progress, "history": self.history, "monitor": self.monitor,
                "course": course_hash(self.config, HASH_FREE),
                "elapsed": self.elapsed,
                "inputs": {"input_shape": list(recipe.input_shape),
                           "sample_shape": None if recipe.sample_shape is None else list(recipe.sample_shape),
                           "num_classes": recipe.num_classes, "vocab": recipe.vocab,
                           "channel_stats": None if recipe.channel_stats is None else list(recipe.channel_stats),
                           "class_names": recipe.class_names}}

    @classmethod
    def from_dict(cls, data: Any, path: str | Path) -> "Checkpoint":
        """Checks an unpickled checkpoint key by key (older formats converted first); CheckpointError names
        what is missing or of the wrong kind."""
        if not isinstance(data, dict) or not isinstance(data.get("format"), str) or data["format"] != FORMAT:
            raise CheckpointError(f"{path}: a pickle, but not an nnctl checkpoint")
        version = data.get("format_version")
        if not is_instance(version, int):
            raise CheckpointError(f"{path}: its 'format_version' is {type(version).__name__}, expected int")
        if version == 1:
            data = _from_format_1(data)
        elif version != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {version} is not one this nnctl {__version__} reads "
                                  f"(formats 1 to {FORMAT_VERSION})")
        _check_kinds(data, _KINDS, "", path)
        data = {**data, "monitor": _with_reference(data["monitor"])}
        recipe = {"class_names": None, **data["inputs"]}  # not kept before images were a dataset
        _check_kinds(recipe, _RECIPE_KINDS, "inputs.", path)
        _check_contents(data, path)
        _check_numbers(data, path)
        _check_recipe(recipe, path)
        stats = recipe["channel_stats"]
        shape = recipe["sample_shape"]
        inputs = InputRecipe(tuple(recipe["input_shape"]), None if shape is None else tuple(shape),
                             recipe["num_classes"], recipe["vocab"], None if stats is None else (stats[0], stats[1]),
                             recipe["class_names"])
        return cls(data["config"], data["base_dir"], data["model"], data["optimizer"], data["rng"], data["progress"],
                   data["history"], data["monitor"], float(data["elapsed"]), inputs, data.get("course"))


Kinds = dict[str, type | tuple[type, ...]]
_KINDS: Kinds = {
    "config": dict, "base_dir": str, "model": dict, "optimizer": dict, "rng": dict, "progress": dict,
    "history": list, "monitor": dict, "elapsed": (int, float), "inputs": dict}
_NONE = type(None)
_RECIPE_KINDS: Kinds = {
    "input_shape": list, "sample_shape": (list, _NONE), "num_classes": (int, _NONE), "vocab": (list, _NONE),
    "channel_stats": (list, _NONE), "class_names": (list, _NONE)}


_PROGRESS_KINDS: Kinds = {"epoch": int, "batch": int, "step": int, "lr": (int, float), "order": (np.ndarray, _NONE),
                          "sums": dict}
_MONITOR_KINDS: Kinds = {"best": (int, float, _NONE), "wait": int, "reference": (int, float, _NONE)}
_OPTIMIZER_KINDS: Kinds = {"t": int, "slots": dict}


def _check_contents(data: dict[str, Any], path: str | Path) -> None:
    """What is inside the sections, as far as it can be checked without the model: CheckpointError naming it."""
    _check_kinds(data["progress"], _PROGRESS_KINDS, "progress.", path)
    _check_kinds(data["monitor"], _MONITOR_KINDS, "monitor.", path)
    _check_kinds(data["optimizer"], _OPTIMIZER_KINDS, "optimizer.", path)
    _check_kinds(data["rng"], {"data": dict, "dropout": dict}, "rng.", path)
    for name, state in data["rng"].items():
        if not _generator_state(state):
            raise CheckpointError(f"{path}: its 'rng.{name}' is not a generator's state (names and whole numbers)")
    _check_progress(data["progress"], path)
    if not _yaml_data(data["config"]):
        raise CheckpointError(f"{path}: its 'config' holds something a YAML config cannot (arrays, bytes, ...)")
    if not all(_metric_row(row) for row in data["history"]):
        raise CheckpointError(f"{path}: its 'history' holds rows that are not metric rows")
    _check_slots(data["optimizer"]["slots"], path)
    if data.get("course") is not None and not isinstance(data["course"], str):
        raise CheckpointError(f"{path}: its 'course' is {type(data['course']).__name__}, expected str")
    _check_layers(data["model"], path)


def _check_progress(progress: dict[str, Any], path: str | Path) -> None:
    """CheckpointError where the progress's sample order, metric sums or schedule state are not what training
    writes."""
    order = progress["order"]
    if order is not None and (order.ndim != 1 or order.dtype.kind not in "iu"):
        raise CheckpointError(f"{path}: its 'progress.order' is not a list of sample numbers")
    if not all(isinstance(k, str) and _finite(v) for k, v in progress["sums"].items()):
        raise CheckpointError(f"{path}: its 'progress.sums' are not numbers by name, or not finite ones")
    if not _schedule_state(progress.get("schedule", {})):
        raise CheckpointError(f"{path}: its 'progress.schedule' is not a schedule's state (finite numbers by name)")


def _check_slots(slots: dict[str, Any], path: str | Path) -> None:
    """CheckpointError where an optimizer slot is not a list of finite float arrays."""
    for name, arrays in slots.items():
        if not isinstance(arrays, list) or not all(_float_array(a) for a in arrays):
            raise CheckpointError(f"{path}: its optimizer slot '{name}' is not a list of float arrays")
        if not all(np.isfinite(a).all() for a in arrays):
            raise CheckpointError(f"{path}: its optimizer slot '{name}' holds NaN or infinite values")


def _check_layers(model: dict[str, Any], path: str | Path) -> None:
    """CheckpointError where a layer's entry is not params and state of float arrays a layer could hold."""
    for layer, entry in model.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), dict) for k in ("params", "state")):
            raise CheckpointError(f"{path}: its 'model.{layer}' is not a layer's params and state")
        for kind in ("params", "state"):
            for key, value in entry[kind].items():
                if not _float_array(value):
                    raise CheckpointError(f"{path}: its 'model.{layer}.{kind}.{key}' is "
                                          f"{_described(value)}, expected an array of floats")
                if problem := array_problem(key, value):
                    raise CheckpointError(f"{path}: its 'model.{layer}.{kind}.{key}' {problem}")

_FLOAT_MAX = sys.float_info.max
_COUNT = (0, 2**63 - 1, "a whole number from 0 to 2**63 - 1")
_NUMBERS: dict[str, tuple[float, float, str]] = {
    "elapsed": (0, _FLOAT_MAX, "a finite number of seconds, 0 or more"), "progress.epoch": _COUNT,
    "progress.batch": _COUNT, "progress.step": _COUNT, "progress.lr": (0, _FLOAT_MAX, "a finite number, 0 or more"),
    "optimizer.t": _COUNT, "monitor.best": (-_FLOAT_MAX, _FLOAT_MAX, "a finite number or None"),
    "monitor.wait": _COUNT, "monitor.reference": (-_FLOAT_MAX, _FLOAT_MAX, "a finite number or None"),
    "inputs.num_classes": (1, 2**31 - 1, "a whole number from 1 to 2,147,483,647 or None")}
"""The range of every number of a checkpoint (its type is in the kinds above): NaN fits none."""


def _check_numbers(data: dict[str, Any], path: str | Path) -> None:
    """CheckpointError naming the first number of _NUMBERS out of its range: negative, NaN, infinite, or an int
    past what a float (or a count) can hold."""
    if wrong := _number_out_of_range(data):
        name, value, expected = wrong
        raise CheckpointError(f"{path}: its '{name}' is {brief(value)}, expected {expected}")


def _number_out_of_range(data: dict[str, Any]) -> tuple[str, Any, str] | None:
    """The first number of _NUMBERS out of its range, its value and what it should be; None where all fit."""
    for name, (low, high, expected) in _NUMBERS.items():
        section, key = name.split(".") if "." in name else ("", name)
        value = (data[section] if section else data)[key]
        if value is not None and not low <= value <= high:
            return name, value, expected
    return None


def _check_recipe(recipe: dict[str, Any], path: str | Path) -> None:
    """CheckpointError naming what of the input recipe does not fit its input shape (the model's): the shapes
    and vocabulary, and the per-channel statistics' shape and values."""
    for key in ("input_shape", "sample_shape"):
        shape = recipe[key]
        if shape is not None and not all(type(n) is int and 0 <= n < 2**63 for n in shape):
            raise CheckpointError(f"{path}: its 'inputs.{key}' is not a list of sizes")
    for key, what in (("vocab", "token"), ("class_names", "class name")):
        names = recipe[key]
        if names is not None and not all(isinstance(t, str) for t in names):
            raise CheckpointError(f"{path}: its 'inputs.{key}' is not a list of {what}s")
        if names is not None and len(set(names)) != len(names):
            raise CheckpointError(f"{path}: its 'inputs.{key}' lists a {what} twice")
    names = recipe["class_names"]
    if names is not None and len(names) != recipe["num_classes"]:
        raise CheckpointError(f"{path}: its 'inputs.class_names' names {len(names)} classes, but its "
                              f"'inputs.num_classes' is {recipe['num_classes']}")
    shape, sample = recipe["input_shape"], recipe["sample_shape"]
    if sample is not None and capped_product(sample) != capped_product(shape):
        raise CheckpointError(f"{path}: its 'inputs.sample_shape' {sample} does not hold the "
                              f"{capped_product(shape)} values of its 'inputs.input_shape' {shape}")
    stats = recipe["channel_stats"]
    if stats is None:
        return
    # one value per channel of the samples as read (or, from an earlier nnctl, per axis 0 of the model's inputs)
    channels = [*shape[:1], *[1] * (len(shape) - 1)]
    per_sample = [list(stats_shape(tuple(sample)))] if sample is not None else []
    if len(stats) != 2 or not any(all(_float_array(a) and list(a.shape) == each for a in stats)
                                  for each in [channels, *per_sample]):
        expected, of = (per_sample[0], f"sample shape {sample}") if per_sample else (channels, f"input shape {shape}")
        raise CheckpointError(f"{path}: its 'inputs.channel_stats' is not a pair of arrays (mean and std) of floats "
                              f"of shape {expected}, one value per channel of its {of}")
    if not all(np.isfinite(a).all() for a in stats) or not (stats[1] > 0).all():
        raise CheckpointError(f"{path}: its 'inputs.channel_stats' hold NaN, infinite, or standard deviations of 0 "
                              "or less")


def _metric_row(row: Any) -> bool:
    """Whether `row` is a metric row: a mapping of names to finite numbers, strings or None, of a known kind."""
    return isinstance(row, dict) and isinstance(row.get("kind"), str) and row["kind"] in ROW_KINDS and \
        all(isinstance(k, str) and (is_instance(v, (str, float, _NONE)) or _finite(v)) for k, v in row.items())


def _finite(value: Any) -> bool:
    """Whether `value` is an int or float (not a bool) that a float holds, not NaN or infinite."""
    return is_instance(value, (int, float)) and -_FLOAT_MAX <= value <= _FLOAT_MAX


def _yaml_data(value: Any) -> bool:
    """Whether `value` is what YAML gives: mappings, lists, text, numbers, booleans and null."""
    if isinstance(value, dict):
        return all(isinstance(k, str | int | float | bool) and _yaml_data(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_yaml_data(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _schedule_state(value: Any) -> bool:
    """Whether `value` is made as a schedule's state is: names mapped to None or finite numbers, 0 or more but
    the best value seen."""
    return isinstance(value, dict) and all(isinstance(k, str) and (v is None or _finite(v) and (k == "best" or v >= 0))
                                           for k, v in value.items())


def _generator_state(value: Any) -> bool:
    """Whether `value` is made as a NumPy bit generator's state is: names mapped to text, integers, or such maps."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _generator_state(v) for k, v in value.items())
    return isinstance(value, str) or is_instance(value, int)


def _float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _described(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    return type(value).__name__


def _check_kinds(data: dict[str, Any], kinds: Kinds, prefix: str, path: str | Path) -> None:
    """CheckpointError naming the first key of `kinds` that `data` lacks or holds something else under."""
    for key, kind in kinds.items():
        if key not in data or not is_instance(data[key], kind):
            found = type(data[key]).__name__ if key in data else "missing"
            expected = " or ".join("None" if k is _NONE else k.__name__ for k in (kind if isinstance(kind, tuple)
                                                                                   else (kind,)))
            raise CheckpointError(f"{path}: its '{prefix}{key}' is {found}, expected {expected}")


def _with_reference(monitor: dict[str, Any]) -> dict[str, Any]:
    """The monitor's state with the value early stopping counts from; checkpoints written before it was kept
    apart from the best value give their best, which was that value then."""
    return {"reference": monitor.get("best"), **monitor}


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1 kept the input shape, classes and vocabulary under 'data', without the raw sample shape and the
    per-channel statistics; those are found again from the config when the checkpoint is used."""
    old = data.get("data")
    old = old if isinstance(old, dict) else {}
    inputs = {"input_shape": old.get("input_shape"), "sample_shape": None, "num_classes": old.get("num_classes"),
              "vocab": old.get("vocab"), "channel_stats": None}
    return {**{k: v for k, v in data.items() if k != "data"}, "format_version": FORMAT_VERSION, "inputs": inputs}


def save(path: str | Path, saved: Checkpoint) -> None:
    """Writes the checkpoint whole or not at all (outputs.replacing); TrainingError naming the file and the reason
    when it cannot be written, since training cannot go on without it, or when `load` would refuse it."""
    data = saved.to_dict()
    if wrong := _number_out_of_range(data):  # a forged count at the top of its range, one epoch later
        name, value, expected = wrong
        raise TrainingError(f"{path}: not written: its '{name}' would be {brief(value)}, but a checkpoint holds "
                            f"{expected}, and nnctl would refuse to read it back; the last one written is kept")
    with replacing(Path(path), "the checkpoint", TrainingError, parents=True) as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


FOREIGN = {ZIP: "a zip archive (PyTorch's torch.save, a Keras .keras, a NumPy .npz)",
           b"\x89HDF\r\n\x1a\n": "an HDF5 file (such as Keras weights)", b"\x93NUMPY": "a NumPy .npy array"}
"""How other formats a user may take for a checkpoint start, and what each is."""
ONNX_FIELDS = {0x12, 0x1A, 0x22, 0x2A, 0x30, 0x3A, 0x42}
"""The protobuf tags that follow an ONNX model's ir_version: its producer, domain, docs, version, graph, opsets."""
HEAD = 512
"""How many bytes of a file tell what it is before the rest is read."""


def _foreign(path: Path, head: bytes) -> str | None:
    """What a file of another kind is, from its first bytes, and what to do with it instead; None if unknown."""
    quoted = shlex.quote(str(path))
    if head.startswith(ZIP) and re.fullmatch(r".+/.+\.npy", _first_zip_entry(head)):
        return ("an .npz of nnctl's arrays by layer (as nnctl export and convert write), not a checkpoint; start a "
                f"model from it with model.weights: {quoted} in its config")
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 100_000_000:
        return (f"a safetensors file (such as PyTorch weights), not a checkpoint; nnctl convert {quoted} -c CONFIG "
                "-o w.npz turns it into arrays for the config's model.weights: w.npz")
    if len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in ONNX_FIELDS:
        return ("an ONNX model (as nnctl export --format onnx writes), not a checkpoint: an export for other "
                "runtimes, which nnctl does not load; give the run's checkpoint (runs/NAME/checkpoints/*.pkl)")
    for magic, what in FOREIGN.items():
        if head.startswith(magic):
            return (f"{what}, not a checkpoint of an nnctl run (runs/NAME/checkpoints/*.pkl); other frameworks' "
                    "weights come in through nnctl convert and model.weights")
    return None


def _first_zip_entry(head: bytes) -> str:
    """The name of a zip archive's first member, from its local header ('' where the head cuts it off)."""
    length = int.from_bytes(head[26:28], "little")
    return head[30:30 + length].decode("utf-8", errors="replace") if len(head) >= 30 + length else ""


def _check_head(path: Path) -> None:
    """CheckpointError at once, from its first bytes, for a file that is not a pickle of protocol 2 or later (as
    every checkpoint is), naming what it is instead: another format, text (a config?), or nothing readable."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from None
    if what := _foreign(path, head):
        raise CheckpointError(f"{path}: {what}")
    if len(head) >= 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        return
    if not head:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: the file is empty)")
    if _is_text(head):
        raise CheckpointError(f"{path}: not a readable checkpoint: a text file (a config?), not a checkpoint (a "
                              "pickle, as nnctl train writes in runs/NAME/checkpoints/)")
    raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: it does not start as a pickle "
                          "does, with byte 0x80 and a protocol from 2)")


def _is_text(head: bytes) -> bool:
    """Whether the first bytes of a file are UTF-8 text (one character may be cut off at the end)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[:exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n\ufeff" for c in text)


def load(path: str | Path) -> Checkpoint:
    """Reads a checkpoint nnctl wrote; CheckpointError for a missing, corrupt, unsafe or foreign file."""
    path = Path(path)
    regular_file(path, CheckpointError, "checkpoint")
    _check_head(path)
    raw = read_bytes(path, CheckpointError, "checkpoint")
    try:
        data = safe_unpickle(raw)
    except SharedContainerError as exc:
        raise CheckpointError(f"{path}: refused to load: {exc} (a forged checkpoint)") from None
    except CostlyPickleError as exc:
        raise CheckpointError(f"{path}: refused to load: {exc}") from None
    except UnsafePickleError as exc:
        raise CheckpointError(f"{path}: refused to load: {exc}; it may have been made to run code, "
                              "so it was not opened") from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: {exc})") from None
    except Exception as exc:  # a damaged pickle can fail in many ways; all of them mean the same to the user
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: "
                              f"{type(exc).__name__})") from None
    return Checkpoint.from_dict(data, path)
