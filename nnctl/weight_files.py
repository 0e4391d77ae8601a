"""The layers of a weights file that another framework saved: a PyTorch state_dict as .safetensors, or Keras
weights as .h5, each read without trusting it (sizes checked before reading; Keras's HDF5 in a child process)."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.errors import NnctlError
from nnctl.files import regular_file
from nnctl.limits import JSON_COST, capped_product, too_big

PICKLES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
READ = (".safetensors", ".h5", ".hdf5", ".keras", ".weights.h5")
"""The weights files nnctl convert reads: PyTorch's safetensors, Keras's HDF5 and .keras archives."""
SAFETENSORS_HEADER = 100_000_000
"""The longest header that safetensors itself reads."""
NUMPY_LESS = ("BF16", "F8_E4M3", "F8_E5M2")
"""safetensors dtypes NumPy has no type for."""
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                     "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
HDF5_SECONDS = 30
"""How long reading a Keras .h5 may take: libhdf5 can loop forever on a damaged file, and only a child process
that is killed stops it (a legitimate file of 1 GB reads in seconds)."""
READER = ("-m", "nnctl.keras_h5")
"""The child's Python arguments before its two (the .h5, the .npz it writes)."""
ZIP = b"PK\x03\x04"
"""How a zip archive starts: torch.save's format, and Keras 3's .keras."""
HDF5 = b"\x89HDF\r\n\x1a\n"
"""How an HDF5 file starts: Keras 2's .h5 and .keras."""
KERAS_WEIGHTS = "model.weights.h5"
"""Where a Keras 3 .keras archive (a zip) keeps the weights."""
MODEL_CONFIG_BYTES = 10_000_000
"""The longest model config read (a .h5's model_config attribute, a .keras archive's config.json): a model's layer
configs as JSON, far shorter in any real file."""
KERAS_CONFIG = "config.json"
"""Where a Keras 3 .keras archive keeps the model's config (its layers' settings)."""
REFUSED = 3
"""The exit code of the child that reads a .h5 when it refuses the file (its message on stderr); 1 is a crash of
Python's own."""


@dataclass
class SourceLayer:
    """One layer of the other framework's file: its arrays by role (torch leaf name, Keras weight name or index)."""

    name: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    """The layer's Keras config (its epsilon, ...), where the file holds the model's (.keras, a full-model .h5)."""


def read_source(path: Path) -> tuple[str, list[SourceLayer]]:
    """The framework ('torch' or 'keras') and the layers of a weights file, in the file's order."""
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix
    if not regular_file(path, NnctlError, "weights file"):
        raise NnctlError(f"{path}: an empty file (0 bytes), so no weights")
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise NnctlError(f"{path}: cannot read weights file: {exc.strerror or exc}") from None
    if suffix == ".keras" and head[:4] == ZIP:  # Keras 3's archive (a zip, as torch.save's is), whole or not
        return "keras", _keras_archive(path)
    if suffix == ".keras" and head[:8] != HDF5:
        raise NnctlError(f"{path}: neither a Keras 3 .keras archive (a zip) nor a Keras 2 HDF5 file (it starts with "
                         f"{head[:8]!r}); save the model again with Keras")
    if suffix == ".npz":
        raise NnctlError(f"{path}: an .npz of arrays is nnctl's own format already: give it as model.weights (nnctl "
                         "convert reads PyTorch's .safetensors and Keras's .h5 / .weights.h5 / .keras)")
    if suffix in PICKLES or _torch_save(head):
        raise NnctlError(f"{path}: a PyTorch pickle (torch.save) is never opened: unpickling it runs whatever code "
                         "it holds. Save the state_dict as safetensors instead: from safetensors.torch import "
                         "save_file; save_file(model.state_dict(), 'weights.safetensors')")
    if suffix == ".safetensors":
        return "torch", _torch_layers(_read_safetensors(path))
    if suffix in READ:  # .safetensors returned above
        return "keras", _keras_layers(path)
    raise NnctlError(f"{path}: unknown kind of weights file '{suffix}'; nnctl convert reads PyTorch state_dicts "
                     "saved as .safetensors and Keras weights saved as .h5 / .weights.h5 / .keras")


def _torch_save(head: bytes) -> bool:
    """Whether a file starts as torch.save writes: a zip archive, or a pickle (protocol 2 to 5). A safetensors
    file starts with its header's length (8 bytes, little-endian) and then '{'."""
    return head[:4] == ZIP or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
                                         and head[8:9] != b"{")


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file, once its header's sizes fit limits.memory_limit()."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise NnctlError("reading .safetensors needs the safetensors package: pip install 'nnctl[convert]'") from None
    entries = {name: entry for name, entry in _safetensors_header(path).items() if name != "__metadata__"}
    refusal = too_big(sum(map(_entry_bytes, entries.values())), f"{path}: the tensors its header declares")
    if refusal:
        raise NnctlError(refusal)
    for name, entry in entries.items():
        if isinstance(entry, dict) and entry.get("dtype") in NUMPY_LESS:
            raise NnctlError(f"{path}: its tensor '{name}' is {entry['dtype']}, which NumPy has no type for; save the "
                             "weights as float32: save_file({k: v.float() for k, v in model.state_dict().items()}, "
                             "'weights.safetensors')")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError, or TypeError for bfloat16
        raise NnctlError(f"{path}: not a readable safetensors file of NumPy dtypes ({exc})") from None


def _safetensors_header(path: Path) -> dict:
    """A safetensors file's header (its tensors' names, dtypes, shapes), read before any tensor is."""
    try:
        with open(path, "rb") as f:
            length, size = int.from_bytes(f.read(8), "little"), path.stat().st_size
            _header_fits(path, length, size)
            # its JSON, then an array and a layer's slot a tensor: a million empty tensors (62 MB) took 1.5 GB
            if refusal := too_big(length * JSON_COST, f"{path}: its safetensors header of {length:,} bytes as Python "
                                  "values"):
                raise NnctlError(refusal)
            header = json.loads(f.read(length))
    except OSError as exc:
        raise NnctlError(f"{path}: cannot read weights file: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a number of over 4300 digits, too deep
        raise NnctlError(f"{path}: not a safetensors file: its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise NnctlError(f"{path}: not a safetensors file: its header is not a JSON object of tensors")
    return header


def _header_fits(path: Path, length: int, size: int) -> None:
    """Refuses a safetensors header length (the file's first 8 bytes) that the file cannot hold."""
    if size < 10:
        raise NnctlError(f"{path}: not a safetensors file: {size} bytes, too short for a header's length (8 bytes) "
                         "and a header")
    if length > size - 8:
        raise NnctlError(f"{path}: not a safetensors file: its first 8 bytes declare a header of {length} bytes, but "
                         f"only {size - 8} follow; the file is cut short, or not safetensors")
    if length > SAFETENSORS_HEADER:
        raise NnctlError(f"{path}: its safetensors header is {length} bytes, more than the 100 MB safetensors "
                         "allows; save the weights again with safetensors")


def _entry_bytes(entry: object) -> int:
    """The bytes one header entry declares; 0 where it is malformed (safetensors itself then says what is wrong)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
        return 0
    shape = entry["shape"]
    if not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape):
        return 0
    return capped_product([SAFETENSORS_BYTES.get(str(entry.get("dtype")), 1), *shape])


def natural(name: str) -> list[str | tuple[int, str]]:
    """'features.10' after 'features.2': the numbers in a name compared as numbers (by length, then digits, so a
    number of any length compares without int())."""
    parts = re.split(r"([0-9]+)", name)  # text, digits, text, ...: the digits are every second part
    return [(len(part.lstrip("0")), part.lstrip("0")) if i % 2 else part for i, part in enumerate(parts)]


def _torch_layers(tensors: dict[str, np.ndarray]) -> list[SourceLayer]:
    layers: dict[str, SourceLayer] = {}
    for key in sorted(tensors, key=natural):
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        match = re.fullmatch(r"(weight|bias)_(ih|hh)_l(\d+)(_reverse)?", leaf)
        if match:  # torch's multi-layer rnn: layer k of `lstm` is `lstm.l<k>` (`lstm` itself for k = 0)
            kind, side, k, reverse = match.groups()
            prefix = prefix if k == "0" else f"{prefix}.l{k}"
            leaf = f"{kind}_{side}{reverse or ''}"
        layers.setdefault(prefix, SourceLayer(prefix)).arrays[leaf] = tensors[key]
    return list(layers.values())


def _keras_archive(path: Path) -> list[SourceLayer]:
    """The layers of a Keras 3 .keras archive: its model.weights.h5, unpacked to a temporary file (no larger than
    it declares, which must fit limits.memory_limit()) and read as a .weights.h5 is."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(KERAS_WEIGHTS)
            except KeyError:
                raise NnctlError(f"{path}: a zip archive without {KERAS_WEIGHTS}, so not a Keras 3 .keras file; save "
                                 "the model again with Keras 3, or its weights with model.save_weights('w.weights.h5')"
                                 ) from None
            refusal = too_big(info.file_size, f"{path}: its {KERAS_WEIGHTS}")
            if refusal:
                raise NnctlError(refusal)
            with tempfile.TemporaryDirectory(prefix="nnctl-keras-") as folder:
                inner = Path(folder) / KERAS_WEIGHTS
                with archive.open(info) as packed, open(inner, "wb") as unpacked:  # stops at the declared size
                    shutil.copyfileobj(packed, unpacked)
                layers = _keras_layers(inner, f"{path} ({KERAS_WEIGHTS})")
            return with_configs(layers, _archive_config(archive, path))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:  # damaged, encrypted
        raise NnctlError(f"{path}: not a readable .keras archive ({exc})") from None


def _archive_config(archive: zipfile.ZipFile, path: Path) -> str | None:
    """The model config JSON a .keras archive keeps in config.json, or None without one or with one longer than any
    model's (as a .h5's model_config)."""
    try:
        info = archive.getinfo(KERAS_CONFIG)
    except KeyError:
        return None
    if info.file_size > MODEL_CONFIG_BYTES:
        return None
    refusal = too_big(info.file_size, f"{path}: its {KERAS_CONFIG}")
    if refusal:
        raise NnctlError(refusal)
    return archive.read(info).decode("utf-8", "replace")


def _keras_layers(path: Path, shown: str | None = None) -> list[SourceLayer]:
    """The layers of a Keras .h5 file (named `shown` in messages, if given), read by `nnctl.keras_h5` in a child
    process, since libhdf5 can hang or crash on a damaged file where no Python code can stop it; the arrays come back
    as an .npz, never as a pickle."""
    shown = shown or str(path)
    if find_spec("h5py") is None:
        raise NnctlError("reading Keras .h5 files needs h5py: pip install 'nnctl[convert]'")
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="nnctl-h5-") as folder:
        out = Path(folder) / "arrays.npz"
        try:
            done = subprocess.run([sys.executable, *READER, str(path), str(out)], env=env,
                                  capture_output=True, text=True, timeout=HDF5_SECONDS)
        except subprocess.TimeoutExpired:
            raise NnctlError(f"{shown}: reading it took more than {HDF5_SECONDS} s and was stopped; libhdf5 loops "
                             "on some damaged files: save the weights again with Keras") from None
        _check_reader(done, path, shown)
        found = json.loads(done.stdout)
        with np.load(out, allow_pickle=False) as arrays:
            layers = [SourceLayer(layer, {key: arrays[f"{i}/{j}"] for j, key in enumerate(keys)})
                      for i, (layer, keys) in enumerate(found["layers"])]
    return with_configs(layers, found["model_config"])


def _check_reader(done: subprocess.CompletedProcess, path: Path, shown: str) -> None:
    """NnctlError where the child that read `path` crashed, refused the file (its own message, the path as
    `shown`), or failed otherwise."""
    if done.returncode < 0:
        raise NnctlError(f"{shown}: libhdf5 crashed reading it ({_signal_name(-done.returncode)}); the file is "
                         "damaged: save the weights again with Keras")
    if done.returncode == REFUSED:
        raise NnctlError(done.stderr.strip().replace(str(path), shown))
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise NnctlError(f"{shown}: reading it failed in a child process (exit {done.returncode}: {last[:300]}); "
                         "the file may be damaged: save the weights again with Keras")


def with_configs(layers: list[SourceLayer], model_config: str | None) -> list[SourceLayer]:
    """`layers`, each given its config from Keras's model config JSON (where there is one that reads, within the
    memory limit as Python values)."""
    configs: dict[str, dict[str, Any]] = {}
    if model_config and not too_big(len(model_config) * JSON_COST, "the model config"):
        with contextlib.suppress(ValueError, RecursionError):  # a damaged config tells nothing; the weights convert
            configs = layer_configs(json.loads(model_config))
    for layer in layers:
        layer.config = configs.get(layer.name)
    return layers


def layer_configs(value: Any) -> dict[str, dict[str, Any]]:
    """Every layer config in a Keras model config, by layer name: each {"class_name", "config": {"name", ...}},
    nested models' layers included."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(value, dict):
        config = value.get("config")
        if "class_name" in value and isinstance(config, dict) and isinstance(config.get("name"), str):
            found[config["name"]] = config
        for inner in value.values():
            found.update(layer_configs(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(layer_configs(inner))
    return found


def _signal_name(number: int) -> str:
    """'SIGSEGV' for 11."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
