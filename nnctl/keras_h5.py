"""Keras weights from an HDF5 file, read without trusting it. `nnctl.weight_files` runs this module as a child
process (`python -m nnctl.keras_h5 FILE OUT.npz`): it writes the arrays to OUT.npz, and their layers and the
model's config (if the file holds one) to stdout as JSON."""

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.errors import NnctlError
from nnctl.limits import capped_product, size_text, too_big
from nnctl.weight_files import MODEL_CONFIG_BYTES, REFUSED, SourceLayer, natural

MAX_SOFT_LINKS = 16
"""Soft links followed in one lookup, as HDF5's own default: more is a loop."""
MAX_DEPTH = 32
"""How deep groups may nest under `layers/<name>` (Keras 3's deepest, a bidirectional rnn's
`forward_layer/cell/vars`, is 3)."""
EXPANSION = 1100
"""The most times its stored size a dataset may declare: deflate, HDF5's usual filter, never expands data more
than 1032 times (chunks never written are stored as nothing, and read as the fill value)."""
SLACK = 1 << 20
"""What any dataset may declare beyond that, however little it stores."""
NUMERIC = "biuf"
"""The dtype kinds that weights may have: bool, integers, floats."""


def read(path: Path) -> tuple[list[SourceLayer], str | None]:
    """The layers of a Keras .h5 file, and its model_config JSON where the file holds one (a full model's save),
    read by `Hdf5` in this process; any error of h5py's own said as one NnctlError."""
    import h5py  # type: ignore[import-untyped]

    try:
        with h5py.File(path, "r") as f:
            return Hdf5(path, h5py).layers(f), _model_config(f)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # what h5py raises for a damaged file
        raise NnctlError(f"{path}: not a readable HDF5 file ({exc})") from None


def _model_config(f: Any) -> str | None:
    """The file's model_config attribute (Keras's `model.save` writes it), or None where it has none or no text."""
    if "model_config" not in f.attrs or f.attrs.get_id("model_config").get_storage_size() > MODEL_CONFIG_BYTES:
        return None
    value = f.attrs["model_config"]
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return value if isinstance(value, str) else None


def main(source: str, out: str) -> int:
    """The child's side: the arrays of `source` into the .npz `out` (as `<layer>/<array>` by number), the layers'
    names and array names as JSON on stdout; or an NnctlError's message on stderr, exit code REFUSED."""
    try:
        layers, model_config = read(Path(source))
    except NnctlError as exc:
        print(exc, file=sys.stderr)
        return REFUSED
    arrays = {f"{i}/{j}": array for i, layer in enumerate(layers) for j, array in enumerate(layer.arrays.values())}
    np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub fears **arrays naming allow_pickle
    print(json.dumps({"layers": [[layer.name, list(layer.arrays)] for layer in layers], "model_config": model_config}))
    return 0


class Hdf5:
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
            raise self.fail(f"{where}'s {attr} attribute must be a list of names (strings), not {_described(value)}")
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
        self.check_stored(item, where, nbytes)
        return np.asarray(item[()])

    def check_stored(self, item: Any, where: str, nbytes: int) -> None:
        """Refuses a dataset that declares far more than the file stores of it (chunks never written, or a bomb)."""
        stored = item.id.get_storage_size()
        if nbytes > stored * EXPANSION + SLACK:
            raise self.fail(f"'{where}' declares {size_text(nbytes)} of data but stores {size_text(stored)} of it, "
                            f"more than {EXPANSION} times as much (chunks never written, or a decompression bomb); "
                            "Keras writes every weight: save the weights again with Keras")

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


def _described(value: object) -> str:
    """An attribute's value as a message names it: an array's type and shape, or a single value's type."""
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} of shape {list(value.shape)}"
    return f"a single {getattr(value, 'dtype', type(value).__name__)}"


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



if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
