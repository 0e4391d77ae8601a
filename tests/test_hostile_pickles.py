"""Hostile pickles: code gadgets, forged dtypes and lying array states are refused by name, nothing crashes."""

import os
import pickle
import textwrap

import numpy as np
import pytest
from hostile import XOR, clean_error, listing

from helpers import cifar_batches, nnctl
from nnctl import checkpoint
from nnctl.data import cifar10
from nnctl.errors import CheckpointError
from nnctl.limits import ENV
from nnctl.unpickle import CostlyPickleError, SharedContainerError, UnsafePickleError, safe_unpickle


class Reduce:
    """Pickles as `fn(*args)`, then BUILD with `state` when given: any gadget, written as pickle would."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


RECONSTRUCT = np._core.multiarray._reconstruct
PLAIN_F8 = (3, "<", None, None, None, -1, -1, 0)


def forged_dtype(state):
    return Reduce(np.dtype, ("f8", False, True), state)


def forged_array(dtype, raw=b"A" * 8, shape=(1,)):
    return Reduce(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


GADGETS = {
    "os.system": (Reduce(os.system, ("touch pwned",)), ".system"),
    "eval": (Reduce(eval, ("1+1",)), "builtins.eval"),
    "getattr": (Reduce(getattr, ((), "__class__")), "builtins.getattr"),
    "numpy.load": (Reduce(np.load, ("x.npy",)), "numpy"),
    "ndarray with strides": (Reduce(np.ndarray, ((10,), "f8", b"x" * 8, 0, (1 << 40,))), "numpy.ndarray"),
    "object dtype": (np.array([1, "a"], dtype=object), "(object)"),
    "object field": (np.zeros(1, dtype=[("p", "O")]), "void or structured"),
    "structured": (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "void or structured"),
    "datetime": (np.array(["2020-01-01"], dtype="M8[D]"), "(datetime)"),
    "string": (np.array(["abc"]), "(unicode string)"),
    "forged flags": (forged_array(forged_dtype((3, "<", None, None, None, -1, -1, 63))), "forged fields or flags"),
    "forged fields": (forged_array(forged_dtype((3, "|", None, ("p",), {"p": (np.dtype("f8"), 0)}, 8, 1, 63))),
                      "forged fields or flags"),
    "typecode with fields": (Reduce(np.dtype, ("f8,O", False, True)), "not a plain numeric typecode"),
    "bytes bomb": (Reduce(bytes, (1 << 40,)), "bytes from something other than bytes"),
    "shape that lies": (forged_array(forged_dtype(PLAIN_F8), raw=b"A" * 8, shape=(1 << 40,)),
                        "not the 8796093022208 it needs"),
    "not an ndarray": (Reduce(RECONSTRUCT, (np.ma.MaskedArray, (0,), b"b")), "numpy.ma"),
}


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("name", GADGETS)
def test_gadgets_are_refused_by_name(tmp_path, name, protocol):
    gadget, phrase = GADGETS[name]
    raw = pickle.dumps({"format": checkpoint.FORMAT, "model": gadget}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match=None) as info:
        safe_unpickle(raw)
    assert phrase in str(info.value)
    path = tmp_path / "bad.pkl"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match="refused to load"):
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists()


def test_plain_data_still_round_trips():
    data = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "f": np.asfortranarray(np.ones((2, 3))),
            "big_endian": np.arange(3, dtype=">i4"), "b": np.array([True, False]), "s": np.float64(1.5),
            "empty": np.zeros((0, 4)), "t": (1, "a", None), "bytes": b"xy", "set": {1, 2}}
    for protocol in (2, 3, 4, 5):
        back = safe_unpickle(pickle.dumps(data, protocol=protocol))
        for key, value in data.items():
            if isinstance(value, np.ndarray):
                assert back[key].dtype == value.dtype and np.array_equal(back[key], value)
                assert back[key].flags.f_contiguous == value.flags.f_contiguous
            else:
                assert back[key] == value


def test_a_container_held_twice_is_refused_and_repeated_leaves_are_not():
    inner = [1, 2]
    for protocol in (2, 5):
        with pytest.raises(SharedContainerError, match="the same list in more than one place"):
            safe_unpickle(pickle.dumps({"a": inner, "b": [inner]}, protocol=protocol))
        array, text = np.ones(3), "repeated"
        data = {"a": [array, array, text, (), []], "b": [text, (), [], {}], "c": {}}
        assert safe_unpickle(pickle.dumps(data, protocol=protocol)).keys() == data.keys()


def test_a_pickle_of_millions_of_objects_is_refused_before_they_are_built(tmp_path, monkeypatch):
    raw = b"\x80\x02](" + b"]" * 2_000_000 + b"e."  # 2 MB: 2 million empty lists, 280 MiB once built and walked
    monkeypatch.setenv(ENV, "64M")
    with pytest.raises(CostlyPickleError, match="the Python objects and memo table its first .* opcodes make would "
                                                "need 64.0 MiB"):
        safe_unpickle(raw)
    (tmp_path / "lists.pkl").write_bytes(raw)
    with pytest.raises(CheckpointError, match="lists.pkl: refused to load: the Python objects .* raise it with"):
        checkpoint.load(tmp_path / "lists.pkl")
    monkeypatch.setenv(ENV, "1G")
    assert len(safe_unpickle(raw)) == 2_000_000


@pytest.mark.parametrize("put", [b"r" + (1 << 26).to_bytes(4, "little"), b"p67108864\n"])
def test_a_pickle_putting_at_a_huge_memo_index_is_refused_before_the_memo_grows(tmp_path, monkeypatch, put):
    raw = b"\x80\x02N" + put + b"."  # 9 bytes: the unpickler's memo table grew to 1 GB under a limit of 100M
    monkeypatch.setenv(ENV, "100M")
    with pytest.raises(CostlyPickleError, match="the Python objects and memo table its first 3 opcodes make would "
                                                "need 1.0 GiB, more than the 100.0 MiB"):
        safe_unpickle(raw)


def test_arrays_given_the_same_bytes_are_counted_against_the_limit_as_they_are_copied(monkeypatch):
    raw = bytes(1 << 20)  # pickled once, then memoized: 100 arrays of 1 MiB from a pickle of 1 MiB
    array = Reduce(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (len(raw),), np.dtype("u1"), False, raw))
    data = pickle.dumps([array] * 2 + [Reduce(RECONSTRUCT, array.args, array.state) for _ in range(98)], protocol=4)
    assert len(data) < 1.1 * len(raw)
    monkeypatch.setenv(ENV, "64M")
    with pytest.raises(CostlyPickleError, match=r"the arrays it builds \(giving many of them the same bytes\) would "
                                                r"need 65.0 MiB, more than the 64.0"):
        safe_unpickle(data)
    monkeypatch.setenv(ENV, "128M")
    assert sum(a.nbytes for a in safe_unpickle(data)) == 100 << 20


@pytest.mark.parametrize("name", ["forged flags", "object field", "os.system"])
@pytest.mark.slow
def test_eval_and_export_refuse_without_a_crash(tmp_path, name):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"format": checkpoint.FORMAT, "model": GADGETS[name][0]}, protocol=2))
    before = listing(tmp_path)
    for args in (["eval", str(path)], ["export", str(path), "-o", str(tmp_path / "w.npz")]):
        clean_error(nnctl(*args, cwd=tmp_path), 1, "refused to load", GADGETS[name][1])
    assert listing(tmp_path) == before


@pytest.mark.slow
def test_a_cifar_batch_with_a_forged_dtype_stops_training_cleanly(tmp_path):
    batches = cifar_batches()
    batches["data_batch_3"] = pickle.dumps({b"labels": [1], b"data": GADGETS["forged flags"][0]}, protocol=2)
    folder = tmp_path / "data" / "cifar10" / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name, raw in batches.items():
        (folder / name).write_bytes(raw)
    config = tmp_path / "c.yaml"
    config.write_text(textwrap.dedent("""\
        data: {type: cifar10, root: data}
        model: {layers: [{type: flatten}, {type: dense, units: 10}]}
        loss: softmax_cross_entropy
        optimizer: {type: sgd, lr: 0.1}
    """))
    before = listing(tmp_path)
    clean_error(nnctl("train", str(config), cwd=tmp_path), 1, "data_batch_3", "refused to read the batch",
                "forged fields or flags")
    assert listing(tmp_path) == before


@pytest.mark.slow
def test_a_valid_checkpoint_still_loads(tmp_path):
    (tmp_path / "xor.yaml").write_text(XOR)
    result = nnctl("train", "xor.yaml", "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    last = next(tmp_path.glob("runs/*/checkpoints/last.pkl"))
    assert checkpoint.load(last).progress["epoch"] == 2


@pytest.mark.parametrize("length", [2**31, 2**40])
@pytest.mark.slow
def test_a_bytes_length_past_the_data_is_one_line_before_anything_is_allocated(tmp_path, length):
    """A flipped bit in an array's length: 2**40 bytes failed to allocate, and CPython printed a SystemError line
    about the bytearray it dropped above nnctl's message."""
    raw = pickle.dumps({"format": checkpoint.FORMAT, "model": np.ones(3)}, protocol=5)
    at = raw.index(pickle.BYTEARRAY8) + 1
    (tmp_path / "bad.pkl").write_bytes(raw[:at] + length.to_bytes(8, "little") + raw[at + 8:])
    stderr = clean_error(nnctl("export", "bad.pkl", "-o", "w.npz", cwd=tmp_path), 1,
                         f"bad.pkl: not a readable checkpoint (corrupt or truncated: expected {length} bytes in a "
                         "bytearray8")
    assert len(stderr.splitlines()) == 1, stderr
