"""A restricted unpickler: NumPy arrays of plain numeric or bool dtypes and builtin containers, nothing else.

NumPy's own pickle hooks trust their state: a dtype given forged fields and flags makes NumPy read raw bytes
as object pointers. So the hooks are replaced by checked twins that build every dtype and array themselves,
from a typecode and bytes whose length is checked, and refuse anything that is not plain numbers by name."""

import _compat_pickle
import io
import math
import pickle
import pickletools
import re
from contextvars import ContextVar
from typing import Any

import numpy as np

from nnctl.limits import memory_limit, too_big

PLAIN_KINDS = "biufc"
"""bool, signed and unsigned integers, floats, complex."""
_KIND_NAMES = {"O": "object", "V": "void or structured (fields)", "M": "datetime", "m": "timedelta",
               "U": "unicode string", "S": "byte string", "T": "string"}
_TYPECODE = re.compile(r"[<>|=]?[A-Za-z?][A-Za-z0-9]{0,11}")


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references something other than plain data, so it could run code; it was not loaded."""


class SharedContainerError(UnsafePickleError):
    """The pickle holds one container in two places: walking it as the tree plain data is could take 2**depth
    steps for a file of a few kilobytes."""


class CostlyPickleError(UnsafePickleError):
    """The pickle describes more Python objects than the memory limit holds: a byte each can make 20 million
    lists of 2.8 GB from 20 MB (and a few kilobytes of gzip)."""


_CONTAINER_OPS = frozenset({"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "LIST", "DICT", "TUPLE", "TUPLE1", "TUPLE2",
                            "TUPLE3", "FROZENSET", "MARK"})
CONTAINER_BYTES = 144
"""What one container an opcode makes may cost: the object, its slot in its parent, and both again in the copy
`_resolve` makes (an empty list 56 + 8 bytes, twice)."""
OBJECT_BYTES = 48
"""What any other opcode may cost: a number, a string's object, a slot, a memo entry."""
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
MEMO_SLOT_BYTES = 16
"""What each memo index up to the highest one a pickle puts at costs: the unpickler grows its memo table to twice
that index, 8 bytes a slot, and writes every slot (a pickle of 9 bytes putting at 2**26 took 1 GB)."""


def check_cost(raw: bytes) -> None:
    """CostlyPickleError when the objects `raw` describes, and the memo table its puts need, would pass the memory
    limit, found from its opcodes (a pure scan, stopped at the limit) before anything is built; pickle's
    UnpicklingError for a malformed pickle, which the unpickler may first allocate a forged length for."""
    limit, cost, memo, count = memory_limit(), 0, 0, 0
    try:
        for opcode, arg, _ in pickletools.genops(raw):
            count += 1
            cost += CONTAINER_BYTES if opcode.name in _CONTAINER_OPS else OBJECT_BYTES
            if opcode.name in _MEMO_PUTS and isinstance(arg, int):
                memo = max(memo, arg + 1)
            if cost + memo * MEMO_SLOT_BYTES > limit:
                break
    except ValueError as exc:  # 2**40 bytes asked for: MemoryError, and CPython prints a SystemError line
        raise pickle.UnpicklingError(str(exc)) from None
    if problem := too_big(cost + memo * MEMO_SLOT_BYTES,
                          f"the Python objects and memo table its first {count:,} opcodes make"):
        raise CostlyPickleError(problem)


def plain_dtype(spec: Any) -> np.dtype:
    """The dtype a pickle's typecode names, if it is a plain numeric or bool one; UnsafePickleError if not."""
    if not isinstance(spec, str) or not _TYPECODE.fullmatch(spec):
        raise UnsafePickleError(f"it asks for the dtype {str(spec)[:40]!r}, which is not a plain numeric typecode")
    try:
        dtype = np.dtype(spec)
    except TypeError:
        raise UnsafePickleError(f"it asks for the unknown dtype '{spec}'") from None
    check_plain(dtype, "it")
    return dtype


def check_plain(dtype: np.dtype, what: str) -> None:
    """UnsafePickleError unless `dtype` is plain numbers or bool (no fields, objects, void, dates or strings)."""
    if dtype.kind not in PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        kind = "with fields" if dtype.fields is not None else _KIND_NAMES.get(dtype.kind, dtype.kind)
        raise UnsafePickleError(f"{what} holds the dtype {dtype.str} ({kind}); only plain numeric and bool "
                                "arrays are read")


class _Dtype:
    """Stands for a dtype while the pickle is read; its state is checked against what NumPy writes for it."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False):
        self.dtype = plain_dtype(spec)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 8 or state[1] not in ("<", ">", "|"):
            raise UnsafePickleError(f"it gives the dtype {self.dtype.str} a state NumPy never writes")
        dtype = self.dtype.newbyteorder(state[1]) if state[1] != "|" else self.dtype
        if dtype.__reduce__()[2] != state:
            raise UnsafePickleError(f"it gives the dtype {self.dtype.str} forged fields or flags {state[2:]}")
        self.dtype = dtype


class _Array:
    """Stands for an array made by `_reconstruct` until its state (shape, dtype, bytes) arrives and is checked."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise UnsafePickleError("it gives an array a state NumPy never writes")
        shape, dtype, fortran, raw = state
        self.array = _from_bytes(raw, dtype, shape, "F" if fortran else "C")


def _dtype_of(value: Any) -> np.dtype:
    if not isinstance(value, _Dtype):
        raise UnsafePickleError(f"it gives an array the dtype {type(value).__name__}, not a dtype")
    return value.dtype


class _Copies:
    """The bytes the arrays of one pickle have copied so far: many arrays can be given one memoized bytes object,
    so a pickle of 1 MB made 1,000 arrays of 1 MB each."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, nbytes: int) -> None:
        """Counts an array's copy; CostlyPickleError when the copies together pass the memory limit."""
        self.total += nbytes
        if problem := too_big(self.total, "the arrays it builds (giving many of them the same bytes)"):
            raise CostlyPickleError(problem)


_COPIES: ContextVar[_Copies] = ContextVar("copies")
"""The copies of the pickle being loaded, set by safe_unpickle."""


def _from_bytes(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """An array built from raw bytes whose length must be what the shape and dtype need, and whose copy must keep
    the arrays built so far within the memory limit."""
    dtype = _dtype_of(dtype)
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise UnsafePickleError(f"it gives an array the shape {str(shape)[:40]}")
    if not isinstance(raw, bytes | bytearray) or order not in ("C", "F"):
        raise UnsafePickleError("it gives an array data that is not bytes")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise UnsafePickleError(f"it gives an array of shape {list(shape)} and dtype {dtype.str} {len(raw)} bytes, "
                                f"not the {math.prod(shape) * dtype.itemsize} it needs")
    _COPIES.get(_Copies()).add(len(raw))
    return np.frombuffer(raw, dtype).reshape(shape, order=order).copy(order="K")


class _Ndarray:
    """What `numpy.ndarray` resolves to: a marker for `_reconstruct`, never the class, whose constructor takes
    any buffer and strides."""

    def __call__(self, *args: Any) -> None:
        raise UnsafePickleError("it calls numpy.ndarray directly, which can read any memory")


_NDARRAY = _Ndarray()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _NDARRAY:
        raise UnsafePickleError(f"it reconstructs a {getattr(cls, '__name__', cls)}, not a plain ndarray")
    return _Array()


def _scalar(dtype: Any, raw: Any = b"") -> Any:
    return _from_bytes(raw, dtype, (), "C")[()]


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """How Python 3 writes bytes into protocol-2 pickles (CIFAR-10's batches): latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("it encodes bytes in a way Python's pickles never do")
    return text.encode("latin1")


def _bytes(data: Any = b"") -> bytes:
    """`bytes()`, as protocol 2 writes empty bytes; never `bytes(n)`, which would allocate n bytes."""
    if not isinstance(data, bytes | bytearray):
        raise UnsafePickleError("it makes bytes from something other than bytes")
    return bytes(data)


_CHECKED = {"_reconstruct": _reconstruct, "scalar": _scalar, "_frombuffer": _from_bytes}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_BUILTINS = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "complex"): complex,
             ("builtins", "slice"): slice, ("collections", "OrderedDict"): dict,
             ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _Dtype, ("_codecs", "encode"): _encode,
             ("builtins", "bytes"): _bytes, ("builtins", "bytearray"): _bytes}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the checked array hooks and builtin containers: a stranger's pickle cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2's names (protocol 2 writes __builtin__.set), mapped as the standard find_class maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name),
                                                       (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if (module, name) in _BUILTINS:
            return _BUILTINS[(module, name)]
        if module in _NUMPY_MODULES and name in _CHECKED:
            return _CHECKED[name]
        raise UnsafePickleError(f"it references {module}.{name}, which plain data never holds")


def safe_unpickle(raw: bytes, encoding: str = "ASCII") -> Any:
    """Unpickles plain NumPy arrays and builtins only; UnsafePickleError for anything else, CostlyPickleError for
    more objects than the memory limit holds."""
    check_cost(raw)
    token = _COPIES.set(_Copies())
    try:
        return _resolve(_RestrictedUnpickler(io.BytesIO(raw), encoding=encoding).load(), set())
    except RecursionError:
        raise UnsafePickleError("its containers are nested too deeply to be plain data") from None
    finally:
        _COPIES.reset(token)


def _resolve(value: Any, seen: set[int]) -> Any:
    """The loaded value with every stand-in replaced by the array or dtype it checked; SharedContainerError where
    a container is met twice."""
    if isinstance(value, _Array):
        if value.array is None:
            raise UnsafePickleError("it makes an array without giving its contents")
        return value.array
    if isinstance(value, _Dtype):
        return value.dtype
    if not isinstance(value, dict | list | tuple | set | frozenset):
        return value
    if value:  # empty ones cost nothing to walk, and () is one object wherever it appears
        if id(value) in seen:
            raise SharedContainerError(f"it holds the same {type(value).__name__} in more than one place (or inside "
                                       "itself), as no plain data needs to")
        seen.add(id(value))
    if isinstance(value, dict):
        return {_resolve(k, seen): _resolve(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, seen) for v in value]
    return type(value)(_resolve(v, seen) for v in value)
