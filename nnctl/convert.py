"""Weights saved by PyTorch (a state_dict as safetensors) or Keras (.h5) as nnctl's .npz: names mapped by a
table or by order, layouts converted (Linear (out, in), HWIO kernels, HWC flatten order, gate order, biases)."""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nnctl.errors import ConfigError, NnctlError, regular_file
from nnctl.layers import Layer
from nnctl.layers.conv import Conv2D
from nnctl.layers.dense import Dense
from nnctl.layers.embedding import Embedding
from nnctl.layers.norm import BatchNorm
from nnctl.layers.recurrent import GRU, Recurrent
from nnctl.limits import capped_product, too_big
from nnctl.model import Model
from nnctl.schema import did_you_mean

PICKLES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
GATES = {  # where each framework's gate blocks go in nnctl's order (lstm i, f, o, g; gru r, u, n)
    ("torch", "lstm"): [0, 1, 3, 2],  # i, f, g, o
    ("keras", "lstm"): [0, 1, 3, 2],  # i, f, c, o
    ("torch", "gru"): [0, 1, 2],  # r, z, n
    ("keras", "gru"): [1, 0, 2],  # z, r, h
}
"""Keras's and PyTorch's simple rnn and PyTorch's gru keep nnctl's order."""
SAFETENSORS_HEADER = 100_000_000
"""The longest header that safetensors itself reads."""
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                     "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
MAX_SOFT_LINKS = 16
"""Soft links followed in one lookup, as HDF5's own default: more is a loop."""
MAX_DEPTH = 32
"""How deep groups may nest under `layers/<name>` (Keras 3's deepest, a bidirectional rnn's
`forward_layer/cell/vars`, is 3)."""
NUMERIC = "biuf"
"""The dtype kinds that weights may have: bool, integers, floats."""
FLATTEN = {"torch": "chw", "keras": "hwc"}
"""The order a framework's flatten lays out (C, H, W) feature maps in: PyTorch's NCHW, Keras's NHWC."""


@dataclass
class SourceLayer:
    """One layer of the other framework's file: its arrays by role (torch leaf name, Keras weight name or index)."""

    name: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Step:
    """One nnctl array written: its name, what it came from and how it was changed."""

    target: str
    source: str
    how: str


def read_source(path: Path) -> tuple[str, list[SourceLayer]]:
    """The framework ('torch' or 'keras') and the layers of a weights file, in the file's order."""
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix
    regular_file(path, NnctlError, "weights file")
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise NnctlError(f"{path}: cannot read weights file: {exc.strerror or exc}") from None
    if suffix in PICKLES or _torch_save(head):
        raise NnctlError(f"{path}: a PyTorch pickle (torch.save) is never opened: unpickling it runs whatever code "
                         "it holds. Save the state_dict as safetensors instead: from safetensors.torch import "
                         "save_file; save_file(model.state_dict(), 'weights.safetensors')")
    if suffix == ".safetensors":
        return "torch", _torch_layers(_read_safetensors(path))
    if suffix in (".h5", ".hdf5", ".keras", ".weights.h5"):
        return "keras", _keras_layers(path)
    raise NnctlError(f"{path}: unknown kind of weights file '{suffix}'; nnctl convert reads PyTorch state_dicts "
                     "saved as .safetensors and Keras weights saved as .h5 / .weights.h5")


def _torch_save(head: bytes) -> bool:
    """Whether a file starts as torch.save writes: a zip archive, or a pickle (protocol 2 to 5). A safetensors
    file starts with its header's length (8 bytes, little-endian) and then '{'."""
    return head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
                                         and head[8:9] != b"{")


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file, once its header's sizes fit limits.memory_limit()."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise NnctlError("reading .safetensors needs the safetensors package: pip install 'nnctl[convert]'") from None
    refusal = too_big(_safetensors_declared(path), f"{path}: the tensors its header declares")
    if refusal:
        raise NnctlError(refusal)
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError, or TypeError for bfloat16
        raise NnctlError(f"{path}: not a readable safetensors file of NumPy dtypes ({exc})") from None


def _safetensors_declared(path: Path) -> int:
    """The bytes a safetensors file's header says its tensors take, read before any tensor is."""
    try:
        with open(path, "rb") as f:
            length, size = int.from_bytes(f.read(8), "little"), path.stat().st_size
            _header_fits(path, length, size)
            header = json.loads(f.read(length))
    except OSError as exc:
        raise NnctlError(f"{path}: cannot read weights file: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a number of over 4300 digits, too deep
        raise NnctlError(f"{path}: not a safetensors file: its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise NnctlError(f"{path}: not a safetensors file: its header is not a JSON object of tensors")
    return sum(_entry_bytes(entry) for name, entry in header.items() if name != "__metadata__")


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


def _keras_layers(path: Path) -> list[SourceLayer]:
    """The layers of a Keras .h5 file, read by `_Hdf5`; any error of h5py's own said as one NnctlError."""
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError:
        raise NnctlError("reading Keras .h5 files needs h5py: pip install 'nnctl[convert]'") from None
    try:
        with h5py.File(path, "r") as f:
            return _Hdf5(path, h5py).layers(f)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # what h5py raises for a damaged file
        raise NnctlError(f"{path}: not a readable HDF5 file ({exc})") from None


class _Hdf5:
    """Reads Keras weights from an HDF5 file without trusting it: links followed one by one (never to another
    file, never in a loop), every dataset's layout, type and size checked before it is read."""

    def __init__(self, path: Path, h5py: Any):
        self.path, self.h5py = path, h5py
        self.total = self.count = self.hops = 0
        self.seen: set[Any] = set()  # the groups walked, by object id: Keras writes a tree, so none comes twice

    def fail(self, message: str) -> NnctlError:
        """The error for this file."""
        return NnctlError(f"{self.path}: {message}")

    def layers(self, f: Any) -> list[SourceLayer]:
        """Keras 2's `layer_names` (in the model's order), else Keras 3's `layers/<name>/vars/<i>`."""
        root = self.get(f, "model_weights", "the file") if self.has(f, "model_weights") else f
        if isinstance(root, self.h5py.Group) and "layer_names" in root.attrs:
            return self.keras2(root)
        if self.has(f, "layers"):
            layers = self.group(self.get(f, "layers", "the file"), "layers")
            found = [(name, self.datasets(self.group(self.get(layers, name, f"the link 'layers/{name}'"),
                                                     f"layers/{name}"), f"layers/{name}/"))
                     for name in self.keys(layers)]
            return [SourceLayer(name, arrays) for name, arrays in found if arrays]
        raise self.fail("an HDF5 file, but not Keras weights (no 'layer_names' attribute, no 'layers' group)")

    def keras2(self, root: Any) -> list[SourceLayer]:
        """Each group `layer_names` names, with the datasets its `weight_names` name."""
        layers = []
        for name in self.names(root, "layer_names", "the file"):
            group = self.get(root, name, "layer_names")
            if not isinstance(group, self.h5py.Group):
                raise self.fail(f"layer_names names '{name}', which is a dataset, not a group of a layer's weights")
            weights = self.names(group, "weight_names", f"layer '{name}'")
            if weights:
                layers.append(SourceLayer(name, {w: self.array(self.get(group, w, f"weight_names of '{name}'"),
                                                               f"{name}/{w}") for w in weights}))
        return layers

    def names(self, obj: Any, attr: str, where: str) -> list[str]:
        """The strings of an attribute that lists names (layer_names, weight_names), or [] where it is absent."""
        if attr not in obj.attrs:
            return []
        info = obj.attrs.get_id(attr)
        itemsize = self.dtype(info, f"{where}'s {attr} attribute", "it must list names (strings)").itemsize
        refusal = too_big(capped_product([max(itemsize, 64), *(info.shape or ())]),
                          f"{self.path}: {where}'s {attr}")
        if refusal:
            raise NnctlError(refusal)
        try:
            value = obj.attrs[attr]
        except (OSError, TypeError, ValueError) as exc:
            raise self.fail(f"{where}'s {attr} attribute cannot be read ({exc})") from None
        if not isinstance(value, np.ndarray) or value.ndim != 1 or not all(isinstance(v, str | bytes) for v in value):
            raise self.fail(f"{where}'s {attr} attribute must be a list of names (strings), not "
                            f"{type(value).__name__} {getattr(value, 'dtype', '')}".rstrip())
        names = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for v in value]
        wrong = next((name for name in names if not _utf8(name)), None)
        if wrong is not None:
            raise self.fail(f"{where}'s {attr} attribute holds the name {wrong!r}, which is not UTF-8 text")
        return names

    def keys(self, group: Any) -> list[str]:
        """The names of the links in `group`, sorted as `natural` does; each must be UTF-8 text."""
        names = list(group)
        wrong = next((name for name in names if not _utf8(name)), None)
        if wrong is not None:
            raise self.fail(f"group '{group.name}' holds a link named {wrong!r}, which is not UTF-8 text; the file is "
                            "damaged or not written by Keras")
        return sorted(names, key=natural)

    def has(self, group: Any, name: str) -> bool:
        """Whether `group` has a link `name`, whatever it leads to (nothing is followed)."""
        return bool(group.id.links.exists(name.encode()))

    def get(self, group: Any, path: str, what: str) -> Any:
        """The group or dataset at `path` (from `group`, or from the root where it starts with '/')."""
        self.hops = 0
        return self.walk_path(group, path, what)

    def walk_path(self, group: Any, path: str, what: str) -> Any:
        """The object at `path`, one link at a time, so that each link is checked (`get` resets the soft links)."""
        node = group.file if path.startswith("/") else group
        for name in path.split("/"):
            if name not in ("", "."):
                node = self.child(self.group(node, path), name, path, what)
        return node

    def child(self, group: Any, name: str, path: str, what: str) -> Any:
        """The object that the link `name` in `group` leads to: a hard link, or a soft link followed here; never an
        external link (to another file) or a user-defined one."""
        if not _utf8(name) or "\0" in name:
            raise self.fail(f"{what} names {path!r}, which is no HDF5 name (not UTF-8 text, or holding a NUL)")
        links, raw, here = group.id.links, name.encode(), f"{group.name.rstrip('/')}/{name}"
        if not links.exists(raw):
            raise self.fail(f"{what} names '{path}', which is not in the file (no '{name}' in group "
                            f"'{group.name}'); the file is damaged or not written by Keras")
        kind, h5l = links.get_info(raw).type, self.h5py.h5l
        if kind == h5l.TYPE_EXTERNAL:
            filename, target = (value.decode("utf-8", "replace") for value in links.get_val(raw))
            raise self.fail(f"'{here}' is an external link to '{target}' in {filename}; nnctl reads only the file it "
                            "is given, not files that it names: save the weights into one .h5 file")
        if kind == h5l.TYPE_SOFT:
            self.hops += 1
            if self.hops > MAX_SOFT_LINKS:
                raise self.fail(f"{what} names '{path}', which leads through more than {MAX_SOFT_LINKS} soft links "
                                f"(a link loop? '{here}' is one); Keras never writes links: save the weights again "
                                "with Keras")
            return self.walk_path(group, links.get_val(raw).decode("utf-8", "surrogateescape"), what)
        if kind != h5l.TYPE_HARD:
            raise self.fail(f"'{here}' is a user-defined link (class {kind}), which nnctl does not follow; Keras "
                            "never writes one")
        return group[name]

    def group(self, node: Any, path: str) -> Any:
        """`node`, which must be a group."""
        if not isinstance(node, self.h5py.Group):
            raise self.fail(f"'{path}': '{node.name}' is a dataset where Keras keeps a group; the file is damaged "
                            "or not written by Keras")
        return node

    def datasets(self, group: Any, where: str, depth: int = 0) -> dict[str, np.ndarray]:
        """Keras 3's `layers/<name>/vars/<i>` (and `cell/vars/<i>`, forward/backward layers), in order."""
        if group.id in self.seen:
            raise self.fail(f"'{where.rstrip('/')}' is a group reached a second time (a link loop, or one group "
                            "under two names); Keras writes a tree: save the weights again with Keras")
        if depth > MAX_DEPTH:
            raise self.fail(f"'{where.rstrip('/')}' nests groups more than {MAX_DEPTH} deep; Keras's "
                            "layers/<name>/vars/<i> is not")
        self.seen.add(group.id)
        found: dict[str, np.ndarray] = {}
        for key in self.keys(group):
            item = self.get(group, key, f"the link '{where}{key}'")
            if isinstance(item, self.h5py.Group):
                inner = self.datasets(item, f"{where}{key}/", depth + 1)
                found.update({f"{key}/{name}": array for name, array in inner.items()})
            elif isinstance(item, self.h5py.Dataset):
                found[key] = self.array(item, where + key)
        return found

    def array(self, item: Any, where: str) -> np.ndarray:
        """A dataset's data, once its layout, type and size have been checked."""
        if not isinstance(item, self.h5py.Dataset):
            raise self.fail(f"'{where}' is a group, not a dataset of weights")
        self.check_layout(item, where)
        if item.shape is None:
            raise self.fail(f"'{where}' holds no data (an empty dataspace); weights are arrays of numbers")
        dtype = self.dtype(item, f"'{where}'", "weights are arrays of floats (or integers)")
        if dtype.kind not in NUMERIC:
            raise self.fail(f"'{where}' holds {_dtype_text(dtype, self.h5py)}, not numbers; weights are arrays of "
                            "floats (or integers)")
        nbytes = capped_product([dtype.itemsize, *item.shape])
        self.total, self.count = self.total + nbytes, self.count + 1
        refusal = (too_big(nbytes, f"{self.path}: dataset '{where}' {list(item.shape)} of {dtype}")
                   or too_big(capped_product([dtype.itemsize, *(item.chunks or ())]),  # a chunk is read whole
                              f"{self.path}: dataset '{where}', in chunks of {list(item.chunks or ())},")
                   or too_big(self.total, f"{self.path}: the {self.count} datasets read up to '{where}'"))
        if refusal:
            raise NnctlError(refusal)
        return np.asarray(item[()])

    def dtype(self, item: Any, what: str, want: str) -> np.dtype:
        """The NumPy dtype of a dataset or attribute, or a refusal where HDF5's type has none (such as a time)."""
        try:
            return item.dtype
        except (TypeError, ValueError) as exc:  # a time, or a float wider than NumPy's
            raise self.fail(f"{what} holds an HDF5 type that NumPy cannot hold ({exc}); {want}") from None

    def check_layout(self, item: Any, where: str) -> None:
        """Refuses data kept outside the file (external storage, virtual datasets) or in a layout not known here."""
        if item.external:
            files = ", ".join(str(entry[0], "utf-8", "replace") if isinstance(entry[0], bytes) else str(entry[0])
                              for entry in item.external)
            raise self.fail(f"'{where}' keeps its data in other files ({files}), as HDF5's external storage "
                            "allows; nnctl never reads it, since it could pull any file on this machine into the "
                            "weights: save the weights with their data inside the .h5 file")
        if item.is_virtual:
            raise self.fail(f"'{where}' is a virtual dataset, mapped from other datasets or files, which nnctl "
                            "does not read: save the weights with their data inside the .h5 file")
        h5d = self.h5py.h5d
        if item.id.get_create_plist().get_layout() not in (h5d.COMPACT, h5d.CONTIGUOUS, h5d.CHUNKED):
            raise self.fail(f"'{where}' has a storage layout that nnctl does not read (only compact, contiguous "
                            "and chunked): save the weights again with Keras")


def _utf8(name: object) -> bool:
    """Whether `name` is text that UTF-8 can encode (h5py gives bytes, or a str with surrogates, where it is not)."""
    if not isinstance(name, str):
        return False
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _dtype_text(dtype: np.dtype, h5py: Any) -> str:
    """What an HDF5 dataset holds, in words: 'strings', 'a compound type (a, b)', ..."""
    if h5py.check_string_dtype(dtype) or dtype.kind in "SU":
        return "strings"
    if h5py.check_vlen_dtype(dtype) is not None:
        return "variable-length data"
    if h5py.check_ref_dtype(dtype) is not None:
        return "references to other objects"
    if dtype.names:
        return f"a compound type ({', '.join(dtype.names)})"
    if dtype.subdtype is not None:
        return f"an array type ({dtype.subdtype[0]} {list(dtype.subdtype[1])} in each element)"
    return {"c": "complex numbers", "O": "Python objects", "V": "opaque bytes"}.get(dtype.kind, f"the type {dtype}")


def read_map(entries: list[str]) -> dict[str, str]:
    """`--map` values: NNCTL=SOURCE pairs, or YAML files of `nnctl_layer: source_layer` lines."""
    table: dict[str, str] = {}
    for entry in entries:
        if "=" in entry:
            mine, _, theirs = entry.partition("=")
            table[mine.strip()] = theirs.strip()
            continue
        path = Path(entry)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such map file (give NNCTL_LAYER=SOURCE_LAYER pairs or a YAML file)") \
                from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not a readable YAML map: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"{path}: expected lines 'nnctl_layer: source_layer'")
        table.update({str(k): v for k, v in data.items()})
    return table


def plan(model: Model, sources: list[SourceLayer], table: dict[str, str] | None) -> list[tuple[Layer, SourceLayer]]:
    """Pairs nnctl layers with source layers: by the table, else by order within each kind of layer (the n-th
    conv with the n-th conv, ...), since a safetensors file keeps its names sorted, not in the model's order."""
    targets = [layer for layer in model.layers if layer.params or layer.state]
    by_name = {s.name: s for s in sources}
    pairs: list[tuple[Layer, SourceLayer]] = []
    if not table:
        for kind in dict.fromkeys(_target_kind(layer) for layer in targets):
            mine = [layer for layer in targets if _target_kind(layer) == kind]
            pairs += zip(mine, [s for s in sources if _source_kind(s) == kind], strict=False)
        return sorted(pairs, key=lambda pair: targets.index(pair[0]))
    named = {layer.name: layer for layer in targets}
    for target, source in table.items():
        if target not in named:
            raise ConfigError(f"map: '{target}' is not a layer of this model with weights"
                              f"{did_you_mean(target, named)}; those are: {', '.join(named)}")
        if source not in by_name:
            raise ConfigError(f"map: '{source}' is not a layer of the weights file{did_you_mean(source, by_name)}; "
                              f"it holds: {', '.join(by_name)}")
        pairs.append((named[target], by_name[source]))
    return pairs


def _target_kind(layer: Layer) -> str:
    if isinstance(layer, Dense) and not layer.use_bias or isinstance(layer, Embedding):
        return "matrix"
    return layer.registered_name


def _source_kind(source: SourceLayer) -> str:
    """conv2d, dense, matrix (a weight without bias), batchnorm, lstm, gru or rnn, from the arrays' names/shapes."""
    arrays = list(source.arrays.values())
    leaves = [_leaf(name) for name in source.arrays]
    if any(leaf in ("running_mean", "moving_mean") for leaf in leaves) or all(a.ndim == 1 for a in arrays):
        return "batchnorm"
    recurrent = [a for name, a in source.arrays.items() if _leaf(name) in ("weight_hh", "recurrent_kernel")] or \
        ([arrays[1]] if len(arrays) in (2, 3) and arrays[0].ndim == 2 and arrays[1].ndim == 2 else [])
    if recurrent:
        if recurrent[0].ndim != 2 or not recurrent[0].size:
            return "unknown"
        rows, cols = recurrent[0].shape
        gates = max(rows, cols) // min(rows, cols)
        return {4: "lstm", 3: "gru", 1: "rnn"}.get(gates, "unknown")
    main = next((a for name, a in source.arrays.items() if _leaf(name) in ("weight", "kernel")), arrays[0])
    if main.ndim == 4:
        return "conv2d"
    return "dense" if len(arrays) == 2 else "matrix"


def convert(model: Model, framework: str, pairs: list[tuple[Layer, SourceLayer]], flatten: str | None = None,
            strict: bool = True) -> tuple[dict[str, np.ndarray], list[Step]]:
    """nnctl's arrays (`<layer>/<key>`) for each pair, and the steps taken; NnctlError on any that does not fit,
    or with `strict` False (pairs made by order, not by a table) a step that says why the pair was skipped."""
    arrays: dict[str, np.ndarray] = {}
    steps: list[Step] = []
    for layer, source in pairs:
        try:
            converted = _converted(layer, source, framework, _feature_maps(model, layer), flatten or FLATTEN[framework])
            mine = {**layer.params, **layer.state}
            for key, (value, origin, _) in converted.items():
                if value.shape != mine[key].shape:
                    raise NnctlError(f"{source.name} -> {layer.name}: {origin} becomes {key} of shape "
                                     f"{list(value.shape)}, but {layer.name}/{key} has shape {list(mine[key].shape)}; "
                                     "check the map and the layer's config")
                if not np.isfinite(value).all():
                    raise NnctlError(f"{source.name} -> {layer.name}: {origin} holds NaN or infinity, which no "
                                     "model can start from; convert weights saved before training diverged")
            missing = [key for key in mine if key not in converted]
            if missing:
                raise NnctlError(f"{layer.name}: {', '.join(missing)} cannot come from {source.name}, which "
                                 f"{framework} does not save (a learned initial state: use initial_state: zeros)")
        except NnctlError as exc:
            if strict:
                raise
            steps.append(Step(f"{layer.name}/-", source.name, f"not converted: {exc}"))
            continue
        for key, (value, origin, how) in converted.items():
            arrays[f"{layer.name}/{key}"] = value.astype(mine[key].dtype)
            steps.append(Step(f"{layer.name}/{key}", f"{source.name}: {origin}", how))
    return arrays, steps


def _feature_maps(model: Model, layer: Layer) -> tuple[int, ...] | None:
    """The (C, H, W) shape a dense layer's inputs were flattened from, if only shape layers stand between."""
    i = model.layers.index(layer)
    if not isinstance(layer, Dense) or i == 0:
        return None
    for j in range(i - 1, -1, -1):
        shape = model.shapes[j - 1] if j else model.input_shape
        if len(shape) == 3 and model.layers[j].registered_name == "flatten":
            return shape
        if model.layers[j].params or len(shape) != 1:
            return None
    return None


Converted = dict[str, tuple[np.ndarray, str, str]]


def _converted(layer: Layer, source: SourceLayer, framework: str, maps: tuple[int, ...] | None,
               order: str) -> Converted:
    """`_layer`, with NumPy's complaints about arrays whose shapes its reshapes cannot take said as an NnctlError."""
    try:
        return _layer(layer, source, framework, maps, order)
    except (ValueError, IndexError) as exc:  # a forged file, or a map that pairs layers of other sizes
        shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in source.arrays.items())
        raise NnctlError(f"{source.name} -> {layer.name}: arrays of these shapes ({shapes}) do not fit a "
                         f"{layer.registered_name} layer ({exc}); check the map and the layer's config") from None


def _layer(layer: Layer, source: SourceLayer, framework: str, maps: tuple[int, ...] | None, order: str) -> Converted:
    a = source.arrays
    if isinstance(layer, Recurrent):
        return _recurrent(layer, source, framework)
    if isinstance(layer, BatchNorm):
        names = (["weight", "bias"] if layer.affine else []) + ["running_mean", "running_var"]
        found = _roles(source, framework, names, ["gamma", "beta", "moving_mean", "moving_variance"]
                       if layer.affine else ["moving_mean", "moving_variance"])
        keys = (["gamma", "beta"] if layer.affine else []) + ["running_mean", "running_var"]
        return {key: (a[role], role, "as is") for key, role in zip(keys, found, strict=True)}
    if isinstance(layer, Embedding):
        (role,) = _roles(source, framework, ["weight"], ["embeddings"])
        return {"W": (a[role], role, "as is")}
    if not isinstance(layer, Dense | Conv2D):
        raise NnctlError(f"{layer.name}: nnctl convert does not know how {framework} saves a "
                         f"{layer.registered_name} layer")
    roles = _roles(source, framework, ["weight", "bias"] if layer.use_bias else ["weight"],
                   ["kernel", "bias"] if layer.use_bias else ["kernel"])
    w, how = a[roles[0]], "as is"
    if isinstance(layer, Conv2D) and framework == "keras":
        w, how = w.transpose(3, 2, 0, 1), "HWIO -> OIHW"
    elif isinstance(layer, Dense) and framework == "torch":
        w, how = w.T, "(out, in) -> (in, out)"
    if maps is not None and order == "hwc" and w.ndim == 2:
        c, h, wd = maps
        w, how = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1), how + "; rows HWC -> CHW"
    out = {"W": (w, roles[0], how)}
    if layer.use_bias:
        out["b"] = (a[roles[1]], roles[1], "as is")
    return out


def _roles(source: SourceLayer, framework: str, torch_names: list[str], keras_names: list[str]) -> list[str]:
    """The source's arrays for each role: by name (torch; Keras names like 'dense/kernel:0'), else by position."""
    names = list(source.arrays)
    wanted = torch_names if framework == "torch" else keras_names
    by_name = [next((n for n in names if _leaf(n) == w), None) for w in wanted]
    if all(by_name):
        return by_name  # type: ignore[return-value]
    if framework == "keras" and len(names) == len(wanted):  # Keras 3's vars/0, vars/1 ... (or old names)
        return names
    raise NnctlError(f"{source.name}: expected the arrays {', '.join(wanted)}, found {', '.join(names)}; map this "
                     "layer to one of the same kind")


def _leaf(name: str) -> str:
    """'block1_conv1/kernel:0' -> 'kernel'."""
    return name.rpartition("/")[2].split(":")[0]


def _recurrent(layer: Recurrent, source: SourceLayer, framework: str) -> Converted:
    kind = layer.registered_name
    gates = layer.gates
    perm = GATES.get((framework, kind), list(range(gates)))
    out: Converted = {}
    for s in layer.directions:
        if framework == "torch":
            suffix = "_reverse" if s else ""
            names = [f"weight_ih{suffix}", f"weight_hh{suffix}", f"bias_ih{suffix}", f"bias_hh{suffix}"]
            missing = [n for n in names[:2] if n not in source.arrays]
            if missing:
                raise NnctlError(f"{source.name}: no {', '.join(missing)} for {layer.name}'s "
                                 f"{'backward' if s else 'forward'} direction (found {', '.join(source.arrays)})")
            wx, wh = source.arrays[names[0]].T, source.arrays[names[1]].T
            bx = source.arrays.get(names[2], np.zeros(wx.shape[1], wx.dtype))
            bh = source.arrays.get(names[3], np.zeros(wx.shape[1], wx.dtype))
            origin, how = f"{names[0]}, {names[1]}, {names[2]}, {names[3]}", "transposed"
        else:
            part = [n for n in source.arrays if ("backward" in n) == bool(s)]
            if len(part) not in (2, 3):
                raise NnctlError(f"{source.name}: expected kernel, recurrent_kernel and bias for {layer.name}'s "
                                 f"{'backward' if s else 'forward'} direction, found {', '.join(source.arrays)}")
            wx, wh = source.arrays[part[0]], source.arrays[part[1]]
            bias = source.arrays[part[2]] if len(part) == 3 else np.zeros(wx.shape[1], wx.dtype)
            if kind == "gru" and bias.ndim != 2:
                raise NnctlError(f"{source.name}: a Keras GRU with reset_after=False (one bias row) computes another "
                                 "formula than nnctl's gru (reset after the recurrent product, as PyTorch and "
                                 "Keras's default); it cannot be converted")
            bx, bh = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
            origin, how = ", ".join(part), "as is"
        if perm != list(range(gates)):
            wx, wh, bx, bh = (_gates(v, perm) for v in (wx, wh, bx, bh))
            how += f"; gate blocks reordered {perm}"
        out["Wx" + s] = (wx, origin, how)
        out["Wh" + s] = (wh, origin, how)
        if isinstance(layer, GRU):
            out["b" + s], out["bh" + s] = (bx, origin, how), (bh, origin, how + "; the recurrent bias")
        else:
            out["b" + s] = (bx + bh, origin, how + "; input and recurrent biases summed")
    return out


def _gates(a: np.ndarray, perm: list[int]) -> np.ndarray:
    """The gate blocks along the last axis, taken in the order `perm`."""
    blocks = a.reshape(*a.shape[:-1], len(perm), -1)
    return blocks[..., perm, :].reshape(a.shape)
