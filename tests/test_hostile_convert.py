"""Hostile weights files for `nnctl convert`: each is refused with one message that names the problem, before it can
take the memory, loop forever, or read a file it names. The files are tiny: the sizes they declare are not written."""

import json
import re
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from hostile import clean_error
from safetensors.numpy import save_file

from helpers import CONFIGS, nnctl
from nnctl import weight_files
from nnctl.errors import NnctlError
from nnctl.weight_files import natural

pytestmark = [pytest.mark.slow, pytest.mark.no_kernels]  # every test runs the CLI in a subprocess

XOR = str(CONFIGS / "xor_mlp.yaml")  # dense_1 (2 -> 4), dense_2 (4 -> 1)
KERAS3 = "layers/dense/vars"


def convert(tmp_path: Path, source: Path, *args: str, limit: str | None = None, code: int = 1,
            phrases: tuple[str, ...] = ()) -> str:
    """Runs `nnctl convert SOURCE -c xor_mlp.yaml`, asserts one clean error holding `phrases` and no output file."""
    result = nnctl("convert", str(source), "-c", XOR, *args, "-o", str(tmp_path / "w.npz"),
                   env={"NNCTL_MAX_MEMORY": limit} if limit else None)
    stderr = clean_error(result, code, *phrases)
    assert not (tmp_path / "w.npz").exists()
    return stderr


def h5(path: Path, build: Callable[[h5py.File], object]) -> Path:
    """An HDF5 file that `build` fills."""
    with h5py.File(path, "w") as f:
        build(f)
    return path


def keras2(f: h5py.File, layers: dict[str, list[str]]) -> None:
    """Keras 2's attributes: `layer_names`, and each layer group's `weight_names`."""
    f.attrs["layer_names"] = [name.encode() for name in layers]
    for name, weights in layers.items():
        f.require_group(name).attrs["weight_names"] = [w.encode() for w in weights]


def safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    """A safetensors file written by hand, so that its header can declare what its data does not hold."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


# -- sizes: what a file declares is checked against NNCTL_MAX_MEMORY before anything is read ---------------------

def test_an_hdf5_dataset_declaring_terabytes_is_refused_before_it_is_read(tmp_path):
    source = h5(tmp_path / "huge.h5", lambda f: f.create_group(KERAS3).create_dataset(
        "0", shape=(10**6, 10**6), dtype="f8", chunks=(1000, 1000)))
    assert source.stat().st_size < 10_000
    convert(tmp_path, source, phrases=("dataset 'layers/dense/vars/0' [1000000, 1000000] of float64 would need "
                                       "7.3 TiB", "raise it with NNCTL_MAX_MEMORY"))


def test_an_hdf5_dataset_over_nnctl_max_memory_is_refused(tmp_path):
    source = h5(tmp_path / "mid.h5", lambda f: f.create_group(KERAS3).create_dataset(
        "0", shape=(20000, 20000), dtype="f8"))
    convert(tmp_path, source, limit="100M", phrases=("would need 3.0 GiB, more than the 100.0 MiB", "NNCTL_MAX_MEMORY"))


def test_many_hdf5_datasets_are_counted_together(tmp_path):
    def build(f):
        group = f.create_group(KERAS3)
        for i in range(4):  # 300 KiB each, 1.2 MiB in all
            group.create_dataset(str(i), shape=(300, 128), dtype="f8")
    convert(tmp_path, h5(tmp_path / "many.h5", build), limit="1M",
            phrases=("the 4 datasets read up to 'layers/dense/vars/3' would need 1.2 MiB",))


def test_an_hdf5_chunk_larger_than_its_dataset_is_refused(tmp_path):
    source = h5(tmp_path / "chunk.h5", lambda f: f.create_group(KERAS3).create_dataset(
        "0", shape=(1,), maxshape=(None,), chunks=(2 * 10**7,), dtype="f8"))  # one element, a 150 MiB chunk
    convert(tmp_path, source, limit="100M", phrases=("in chunks of [20000000], would need 152.6 MiB",))


def test_an_hdf5_dataset_declaring_far_more_than_it_stores_is_refused_before_it_is_read(tmp_path):
    def build(f):
        keras2(f, {"dense_1": ["dense_1/kernel:0"]})
        f["dense_1"].create_dataset("dense_1/kernel:0", shape=(4000, 4000), dtype="f4", chunks=(1000, 1000),
                                    compression="gzip")  # its chunks never written
    source = h5(tmp_path / "big.h5", build)
    assert source.stat().st_size < 10_000
    convert(tmp_path, source, phrases=("'dense_1/dense_1/kernel:0' declares 61.0 MiB of data but stores 0 B",
                                       "save the weights again with Keras"))


def test_a_safetensors_header_declaring_terabytes_is_refused_before_loading(tmp_path):
    source = safetensors(tmp_path / "huge.safetensors", {
        "fc.weight": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}})
    convert(tmp_path, source, phrases=("the tensors its header declares would need 3.6 TiB",))


def test_a_sparse_safetensors_file_over_nnctl_max_memory_is_refused(tmp_path):
    source = tmp_path / "sparse.safetensors"
    header = {"fc.weight": {"dtype": "F32", "shape": [8192, 8192], "data_offsets": [0, 4 * 8192**2]}}
    safetensors(source, header)
    with open(source, "r+b") as f:  # a 256 MiB file that takes no disk
        f.truncate(source.stat().st_size + 4 * 8192**2)
    convert(tmp_path, source, limit="100M", phrases=("the tensors its header declares would need 256.0 MiB",))


def test_a_safetensors_header_of_many_empty_tensors_is_charged_its_parsing(tmp_path):
    empty = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}  # 6 MB; a million took 1.5 GB under a 100M limit
    source = safetensors(tmp_path / "many.safetensors", {f"l{i}.weight": empty for i in range(100_000)})
    convert(tmp_path, source, limit="64M", phrases=("its safetensors header of", "bytes as Python values would need",
                                                    "more than the 64.0 MiB"))


@pytest.mark.parametrize("raw, phrase", [
    (b"\x02\x00", "2 bytes, too short for a header's length"),
    (struct.pack("<Q", 10**6) + b"{}", "declare a header of 1000000 bytes, but only 2 follow"),
    (struct.pack("<Q", 2**63) + b"{}", "declare a header of 9223372036854775808 bytes"),
    (struct.pack("<Q", 5) + b"[1, 2", "its header is not valid JSON"),
    (struct.pack("<Q", 5) + b"[1,2]", "its header is not a JSON object of tensors"),
])
def test_a_safetensors_header_that_cannot_be_one_is_refused(tmp_path, raw, phrase):
    (tmp_path / "bad.safetensors").write_bytes(raw)
    convert(tmp_path, tmp_path / "bad.safetensors", phrases=(phrase,))


def test_bfloat16_tensors_are_named_with_how_to_save_them(tmp_path):
    """PyTorch saves bf16 often; safetensors' NumPy loader failed with its own 'data type not understood'."""
    raw = b'{"fc.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}'
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    convert(tmp_path, tmp_path / "bf16.safetensors", phrases=(
        "its tensor 'fc.weight' is BF16, which NumPy has no type for; save the weights as float32",))


def test_an_npz_given_to_convert_is_called_nnctls_own_format(tmp_path):
    np.savez(tmp_path / "w.npz", **{"dense_1/W": np.zeros((2, 4))})
    result = nnctl("convert", str(tmp_path / "w.npz"), "-c", XOR, "-o", str(tmp_path / "out.npz"))
    clean_error(result, 1, "an .npz of arrays is nnctl's own format already: give it as model.weights")
    assert "PyTorch" not in result.stderr.split("(")[0]


def test_a_safetensors_shape_of_5000_digits_is_refused(tmp_path):
    raw = b'{"fc.weight": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}'
    (tmp_path / "digits.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    convert(tmp_path, tmp_path / "digits.safetensors", phrases=("its header is not valid JSON",))


# -- names: numbers of any length sort, names that lead nowhere are named -----------------------------------------

def test_a_layer_number_of_5000_digits_sorts_and_converts(tmp_path):
    big = "9" * 5000
    save_file({f"net.{big}.weight": np.ones((1, 4), np.float32), f"net.{big}.bias": np.ones(1, np.float32),
               "net.2.weight": np.ones((4, 2), np.float32), "net.2.bias": np.ones(4, np.float32)},
              str(tmp_path / "digits.safetensors"))
    result = nnctl("convert", str(tmp_path / "digits.safetensors"), "-c", XOR, "-o", str(tmp_path / "w.npz"))
    assert result.returncode == 0, result.stderr
    assert "wrote 4 arrays of 2 layers" in result.stdout
    assert sorted(["a.10", "a.2", f"a.{big}", "a.007", "a.1²", "a.1b"], key=natural) == \
        ["a.1b", "a.1²", "a.2", "a.007", "a.10", f"a.{big}"]


@pytest.mark.parametrize("build, phrase", [
    (lambda f: f.attrs.create("layer_names", [b"missing_layer"]),
     "layer_names names 'missing_layer', which is not in the file (no 'missing_layer' in group '/')"),
    (lambda f: keras2(f, {"d": ["d/kernel:0"]}),
     "weight_names of 'd' names 'd/kernel:0', which is not in the file (no 'd' in group '/d')"),
    (lambda f: (f.create_dataset("d", data=np.ones(3)), f.attrs.create("layer_names", [b"d"])),
     "layer_names names 'd', which is a dataset, not a group of a layer's weights"),
    (lambda f: (keras2(f, {"d": ["k"]}), f["d"].create_group("k")), "'d/k' is a group, not a dataset of weights"),
    (lambda f: f.attrs.create("layer_names", [1, 2]),
     "layer_names attribute must be a list of names (strings), not an array of int64 of shape [2]"),
    (lambda f: f.attrs.create("layer_names", 5), "layer_names attribute must be a list of names (strings), not a "
                                                 "single int64"),
    (lambda f: f.create_dataset("layers/dense", data=np.ones(3)), "'/layers/dense' is a dataset where Keras keeps a "
                                                                  "group"),
    (lambda f: f.create_group("other"), "an HDF5 file, but not Keras weights"),
    (lambda f: h5py.h5g.create(f.create_group("layers").id, b"dense\xff"),
     "group '/layers' holds a link named b'dense\\xff', which is not UTF-8 text"),
    (lambda f: f.attrs.create("layer_names", [b"dense\xff"]),
     "layer_names attribute holds the name 'dense\\udcff', which is not UTF-8 text"),
])
def test_keras_names_that_lead_nowhere_are_named(tmp_path, build, phrase):
    convert(tmp_path, h5(tmp_path / "names.h5", build), phrases=(phrase,))


# -- links: never followed in a loop, never into another file -----------------------------------------------------

def soft_loop(f: h5py.File) -> None:
    f.create_group("layers/dense")["self"] = h5py.SoftLink("/layers/dense")


def hard_loop(f: h5py.File) -> None:
    group = f.create_group("layers/dense")
    group.create_dataset("x", data=np.ones(1))
    group["self"] = group


def soft_cycle(f: h5py.File) -> None:
    f["a"], f["b"] = h5py.SoftLink("b"), h5py.SoftLink("a")
    f.attrs["layer_names"] = [b"a"]


def deep(f: h5py.File) -> None:
    f.create_group("layers/dense/" + "/".join(["g"] * 40)).create_dataset("0", data=np.ones(1))


@pytest.mark.parametrize("build, phrase", [
    (soft_loop, "'layers/dense/self' is a group reached a second time (a link loop"),
    (hard_loop, "'layers/dense/self' is a group reached a second time (a link loop"),
    (soft_cycle, "which leads through more than 16 soft links (a link loop? '/a' is one)"),
    (deep, "nests groups more than 32 deep"),
    (lambda f: f.create_group("layers/dense").__setitem__("x", h5py.SoftLink("/nowhere")),
     "the link 'layers/dense/x' names '/nowhere', which is not in the file"),
], ids=["soft-link-loop", "hard-link-loop", "soft-link-cycle", "deep", "dangling"])
def test_hdf5_link_loops_and_depth_are_refused(tmp_path, build, phrase):
    convert(tmp_path, h5(tmp_path / "loop.h5", build), phrases=(phrase,))


@pytest.mark.parametrize("where", ["layers/dense/vars/0", "layers"])
def test_an_hdf5_external_link_is_not_followed(tmp_path, where):
    h5(tmp_path / "other.h5", lambda f: f.create_group("layers/dense/vars").create_dataset("0", data=np.ones(2)))
    source = h5(tmp_path / "link.h5", lambda f: f.__setitem__(where, h5py.ExternalLink(str(tmp_path / "other.h5"),
                                                                                        "/" + where)))
    convert(tmp_path, source, phrases=(f"'/{where}' is an external link to '/{where}' in", "other.h5",
                                       "nnctl reads only the file it is given"))


# -- data kept outside the file: never read -----------------------------------------------------------------------

def test_hdf5_external_storage_is_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"SECRET!!")

    def build(f):
        keras2(f, {"d": ["k", "b"]})
        f["d"].create_dataset("k", shape=(2, 4), dtype="u1", external=[(str(secret), 0, 8)])
        f["d"].create_dataset("b", data=np.zeros(4))
    stderr = convert(tmp_path, h5(tmp_path / "external.h5", build),
                     phrases=("'d/k' keeps its data in other files (", "secret.txt", "HDF5's external storage"))
    assert "SECRET" not in stderr


def test_an_hdf5_virtual_dataset_is_never_read(tmp_path):
    h5(tmp_path / "other.h5", lambda f: f.create_dataset("data", data=np.ones((2, 4))))
    layout = h5py.VirtualLayout(shape=(2, 4), dtype="f8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "data", shape=(2, 4))
    source = h5(tmp_path / "virtual.h5", lambda f: f.create_group(KERAS3).create_virtual_dataset("0", layout))
    convert(tmp_path, source, phrases=("'layers/dense/vars/0' is a virtual dataset",))


# -- what a dataset holds: numbers, or a refusal that says what it holds instead ----------------------------------

def dataset(**kwargs) -> Callable[[h5py.File], object]:
    """A Keras 2 file with one layer 'd' whose one weight 'k' is made by create_dataset(**kwargs)."""
    return lambda f: (keras2(f, {"d": ["k"]}), f["d"].create_dataset("k", **kwargs))


def references(f: h5py.File) -> None:
    keras2(f, {"d": ["k"]})
    f["d"].create_dataset("k", data=[f.ref, f.ref], dtype=h5py.ref_dtype)


def array_type(f: h5py.File) -> None:
    """HDF5's array type: each of 2 elements a 1000 x 1000 block (which NumPy would unfold into the shape)."""
    keras2(f, {"d": ["k"]})
    h5py.h5d.create(f["d"].id, b"k", h5py.h5t.array_create(h5py.h5t.IEEE_F32LE, (1000, 1000)),
                    h5py.h5s.create_simple((2,)))


def hdf5_type(kind: object) -> Callable[[h5py.File], None]:
    """A Keras 2 file whose one weight 'd/k' (2 elements) is of an HDF5 type made at h5py's low level."""
    def build(f: h5py.File) -> None:
        keras2(f, {"d": ["k"]})
        h5py.h5d.create(f["d"].id, b"k", kind, h5py.h5s.create_simple((2,)))
    return build


@pytest.mark.parametrize("build, phrase", [
    (dataset(data=np.zeros(3, [("a", "<f4"), ("b", "<i4")])), "'d/k' holds a compound type (a, b), not numbers"),
    (dataset(shape=(2,), dtype=h5py.vlen_dtype(np.float32)), "'d/k' holds variable-length data, not numbers"),
    (dataset(data=np.array([b"ab", b"cd"])), "'d/k' holds strings, not numbers"),
    (dataset(data=["ab", "cd"], dtype=h5py.string_dtype()), "'d/k' holds strings, not numbers"),
    (dataset(data="ab", dtype=h5py.string_dtype()), "'d/k' holds strings, not numbers"),
    (references, "'d/k' holds references to other objects, not numbers"),
    (dataset(data=np.ones(3, np.complex128)), "'d/k' holds complex numbers, not numbers"),
    (array_type, "'d/k' holds an array type (float32 [1000, 1000] in each element), not numbers"),
    (hdf5_type(h5py.h5t.UNIX_D32LE), "'d/k' holds an HDF5 type that NumPy cannot hold (No NumPy equivalent"),
    (hdf5_type(h5py.h5t.create(h5py.h5t.OPAQUE, 4)), "'d/k' holds opaque bytes, not numbers"),
    (dataset(data=h5py.Empty("f4")), "'d/k' holds no data (an empty dataspace)"),
], ids=["compound", "vlen", "bytes", "str", "scalar-str", "reference", "complex", "subarray", "time", "opaque",
        "empty"])
def test_an_hdf5_dataset_that_is_not_numbers_is_refused_saying_what_it_holds(tmp_path, build, phrase):
    convert(tmp_path, h5(tmp_path / "dtype.h5", build), "--map", "dense_1=d", phrases=(phrase,))


def test_scalar_and_empty_hdf5_weights_are_refused_by_shape(tmp_path):
    def build(f):
        keras2(f, {"scalar": ["kernel:0", "bias:0"], "empty": ["kernel:0", "bias:0"]})
        f["scalar"].create_dataset("kernel:0", data=1.0)
        f["scalar"].create_dataset("bias:0", data=np.ones(4))
        f["empty"].create_dataset("kernel:0", shape=(0, 4), dtype="f4")
        f["empty"].create_dataset("bias:0", shape=(0,), dtype="f4")
    source = h5(tmp_path / "shapes.h5", build)
    convert(tmp_path, source, "--map", "dense_1=scalar", phrases=("kernel:0 becomes W of shape [], but dense_1/W has "
                                                                  "shape [2, 4]",))
    convert(tmp_path, source, "--map", "dense_1=empty", phrases=("kernel:0 becomes W of shape [0, 4], but "
                                                                 "dense_1/W has shape [2, 4]",))


# -- arrays that read but do not fit: said, not crashed on ---------------------------------------------------------

def lstm_config(tmp_path: Path) -> str:
    """A config of an lstm (3 features -> 2 units) over 4 sequences of 5 steps."""
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 5, 3)), y=np.arange(4) % 2)
    (tmp_path / "lstm.yaml").write_text(yaml.safe_dump({
        "data": {"type": "npz", "path": "data.npz", "flatten": False}, "loss": "softmax_cross_entropy",
        "model": {"layers": [{"type": "lstm", "name": "rnn", "units": 2}, {"type": "dense", "units": 2}]},
        "optimizer": "sgd"}))
    return str(tmp_path / "lstm.yaml")


def test_arrays_whose_shapes_no_layout_change_takes_are_refused(tmp_path):
    save_file({"lstm.weight_ih_l0": np.ones((8, 3)), "lstm.weight_hh_l0": np.ones(())},
              str(tmp_path / "rnn.safetensors"))
    result = nnctl("convert", str(tmp_path / "rnn.safetensors"), "-c", lstm_config(tmp_path), "--map", "rnn=lstm",
                   "-o", str(tmp_path / "w.npz"))
    clean_error(result, 1, "lstm -> rnn: arrays of these shapes (weight_hh [], weight_ih [8, 3]) do not fit a lstm "
                           "layer", "check the map")


def test_an_empty_recurrent_weight_pairs_with_nothing(tmp_path):
    save_file({"lstm.weight_ih_l0": np.ones((0, 0)), "lstm.weight_hh_l0": np.ones((0, 0))},
              str(tmp_path / "rnn.safetensors"))
    result = nnctl("convert", str(tmp_path / "rnn.safetensors"), "-c", lstm_config(tmp_path),
                   "-o", str(tmp_path / "w.npz"))
    clean_error(result, 1, "no layer could be converted")


def test_nan_weights_are_not_converted(tmp_path):
    save_file({"fc.weight": np.full((4, 2), np.nan), "fc.bias": np.zeros(4)}, str(tmp_path / "nan.safetensors"))
    convert(tmp_path, tmp_path / "nan.safetensors", "--map", "dense_1=fc",
            phrases=("fc -> dense_1: weight holds NaN or infinite values; no model can start from it",))


def test_a_negative_batch_norm_variance_is_not_converted(tmp_path):
    """Its outputs would be NaN, and predict would then blame an overflow."""
    (tmp_path / "bn.yaml").write_text(
        "data: {type: logic, op: xor}\nloss: softmax_cross_entropy\noptimizer: adam\nmodel: {layers: [{type: dense, "
        "units: 4}, {type: batchnorm}, {type: dense, units: 2}]}\n")
    ones = np.ones(4, np.float32)
    save_file({"fc.weight": np.ones((4, 2), np.float32), "fc.bias": 0 * ones, "bn.weight": ones, "bn.bias": 0 * ones,
               "bn.running_mean": 0 * ones, "bn.running_var": -ones}, str(tmp_path / "bn.safetensors"))
    result = nnctl("convert", str(tmp_path / "bn.safetensors"), "-c", str(tmp_path / "bn.yaml"), "--map",
                   "dense_1=fc", "--map", "batchnorm_1=bn", "-o", str(tmp_path / "w.npz"))
    clean_error(result, 1, "bn -> batchnorm_1: running_var holds negative values (-1), which a variance cannot have")
    assert not (tmp_path / "w.npz").exists()


# -- libhdf5 itself: a damaged file can make it loop or crash, where Python cannot stop it ------------------------

LOOPS = Path(__file__).resolve().parent / "fixtures" / "hdf5_loops.h5"
"""A Keras 2 file with four bytes changed (found by fuzzing): libhdf5 1.14 loops forever reading its layer_names."""


@pytest.mark.parametrize("child, phrase", [
    (("-c", "import time; time.sleep(60)"), "reading it took more than 1 s and was stopped"),
    (("-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"), "libhdf5 crashed reading it (SIGSEGV)"),
])
def test_a_reader_that_hangs_or_crashes_is_stopped_with_one_message(tmp_path, monkeypatch, child, phrase):
    monkeypatch.setattr(weight_files, "READER", child)
    monkeypatch.setattr(weight_files, "HDF5_SECONDS", 1)
    source = h5(tmp_path / "net.h5", lambda f: keras2(f, {"dense": []}))
    with pytest.raises(NnctlError, match=re.escape(f"{source}: {phrase}")):
        weight_files.read_source(source)


def test_a_file_on_which_libhdf5_loops_ends_in_one_clean_error(tmp_path, monkeypatch):
    """Whether or not the installed libhdf5 still loops on it, the file ends in an NnctlError, within the limit."""
    monkeypatch.setattr(weight_files, "HDF5_SECONDS", 5)
    started = time.monotonic()
    with pytest.raises(NnctlError, match=re.escape(str(LOOPS))):
        weight_files.read_source(LOOPS)
    assert time.monotonic() - started < 30


def test_a_reader_that_fails_unexpectedly_ends_in_one_line_without_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_files, "READER", ("-c", "raise MemoryError('Unable to allocate 5.96 GiB')"))
    source = h5(tmp_path / "net.h5", lambda f: keras2(f, {"dense": []}))
    with pytest.raises(NnctlError) as info:
        weight_files.read_source(source)
    assert str(info.value).startswith(f"{source}: reading it failed in a child process (exit 1: MemoryError: "
                                      "Unable to allocate 5.96 GiB)")
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)


def test_the_reader_runs_as_a_child_and_returns_arrays_not_pickles(tmp_path):
    """The child's .npz holds only arrays (np.load refuses pickles), and the layers come back in the file's order."""
    source = h5(tmp_path / "net.h5", lambda f: (keras2(f, {"dense_2": ["dense_2/k"], "dense_10": ["dense_10/k"]}),
                                                f.create_dataset("dense_2/dense_2/k", data=np.eye(2)),
                                                f.create_dataset("dense_10/dense_10/k", data=np.ones(3))))
    framework, layers = weight_files.read_source(source)
    assert framework == "keras"
    assert [(layer.name, list(layer.arrays)) for layer in layers] == [("dense_2", ["dense_2/k"]),
                                                                      ("dense_10", ["dense_10/k"])]
    np.testing.assert_array_equal(layers[0].arrays["dense_2/k"], np.eye(2))
    np.testing.assert_array_equal(layers[1].arrays["dense_10/k"], np.ones(3))


# -- Keras 3's .keras archive: a zip whose model.weights.h5 is unpacked only as far as it declares ----------------

def keras_archive(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A .keras zip holding `members`."""
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["net.keras", "net.h5", "net.weights.h5", "net.safetensors", "net.pt", "net.xyz"])
def test_an_empty_weights_file_is_named_empty_whatever_its_suffix(tmp_path, name):
    source = tmp_path / name
    source.write_bytes(b"")
    convert(tmp_path, source, phrases=(f"{name}: an empty file (0 bytes), so no weights",))


@pytest.mark.parametrize("content", [b"{}", b"\x00" * 64, b"\x89HDX\r\n\x1a\n" + bytes(600)])
def test_a_keras_file_neither_zip_nor_hdf5_is_named_so(tmp_path, content):
    source = tmp_path / "net.keras"
    source.write_bytes(content)
    convert(tmp_path, source, phrases=("net.keras: neither a Keras 3 .keras archive (a zip) nor a Keras 2 HDF5 file",))


def test_a_keras_archive_without_its_weights_is_refused_and_nothing_in_it_unpickled(tmp_path):
    source = keras_archive(tmp_path / "net.keras", {"archive/data.pkl": b"\x80\x04N.", "config.json": b"{}"})
    convert(tmp_path, source, phrases=("a zip archive without model.weights.h5, so not a Keras 3 .keras file",))


def test_a_keras_archive_whose_weights_declare_more_than_the_memory_limit_is_refused_before_unpacking(tmp_path):
    source = keras_archive(tmp_path / "net.keras", {"model.weights.h5": bytes(3 << 20)})  # 3 MiB of zeros, deflated
    assert source.stat().st_size < 1 << 20
    convert(tmp_path, source, limit="1M", phrases=("net.keras: its model.weights.h5",))


def test_a_model_config_is_read_only_as_long_as_a_models_and_within_the_limit_as_values(tmp_path, monkeypatch):
    dense = '{"class_name": "Dense", "config": {"name": "dense", "units": 1}}'
    padded = dense + " " * (11 << 20)  # a .keras of 92 KB whose config.json was '{},' × 30 M took 2.4 GB under 100M
    with zipfile.ZipFile(keras_archive(tmp_path / "net.keras", {"config.json": padded})) as archive:
        assert weight_files._archive_config(archive, tmp_path / "net.keras") is None  # as a .h5's model_config
    monkeypatch.setenv("NNCTL_MAX_MEMORY", "64M")
    layer = weight_files.with_configs([weight_files.SourceLayer("dense")], padded[:3 << 20])[0]
    assert layer.config is None  # 3 MiB of JSON is up to 96 MiB of values: not parsed
    monkeypatch.setenv("NNCTL_MAX_MEMORY", "200M")
    assert weight_files.with_configs([weight_files.SourceLayer("dense")], padded[:3 << 20])[0].config == {
        "name": "dense", "units": 1}


def test_a_damaged_keras_archive_is_one_message(tmp_path):
    h5(tmp_path / "model.weights.h5", lambda f: f.create_group(KERAS3).create_dataset("0", data=np.ones(4)))
    source = keras_archive(tmp_path / "net.keras", {"model.weights.h5": (tmp_path / "model.weights.h5").read_bytes()},
                           zipfile.ZIP_STORED)
    raw = bytearray(source.read_bytes())
    raw[raw.index(b"HDF") + 200] ^= 0xFF  # a byte of the stored member: its CRC no longer holds
    source.write_bytes(bytes(raw))
    convert(tmp_path, source, phrases=("net.keras: not a readable .keras archive", "CRC"))


def test_a_keras_archive_is_named_in_the_readers_messages(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_files, "READER", ("-c", "import time; time.sleep(60)"))
    monkeypatch.setattr(weight_files, "HDF5_SECONDS", 1)
    source = keras_archive(tmp_path / "net.keras", {"model.weights.h5": LOOPS.read_bytes()})
    with pytest.raises(NnctlError, match=re.escape(f"{source} (model.weights.h5): reading it took more than 1 s")):
        weight_files.read_source(source)


def test_a_keras_archive_cut_short_is_named_as_one_not_as_a_pickle(tmp_path):
    h5(tmp_path / "model.weights.h5", lambda f: f.create_group(KERAS3).create_dataset("0", data=np.ones(4)))
    source = keras_archive(tmp_path / "net.keras", {"model.weights.h5": (tmp_path / "model.weights.h5").read_bytes()})
    source.write_bytes(source.read_bytes()[:source.stat().st_size // 2])  # no central directory left
    stderr = convert(tmp_path, source, phrases=("net.keras: not a readable .keras archive",))
    assert "pickle" not in stderr
