"""A stand-in for the part of CuPy that nnctl's GPU twins use: `ElementwiseKernel`, and NumPy's functions for the rest
(`empty`, `argsort`, ...). Each kernel's CUDA C++ body is compiled by the host's C++ compiler into a loop over the
element index `i`, and run on NumPy arrays. It checks a twin's arithmetic and indexing on any machine with a
compiler; a GPU still has to check CUDA itself (`tests/test_gpu.py`)."""

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
from numpy import arange, argsort, ascontiguousarray, empty, searchsorted, uint8  # noqa: F401  (what twins call)

COMPILER = shutil.which("g++") or shutil.which("clang++")
BUILD = Path("/tmp")
"""Where the compiled kernels go (the test sets a fresh folder)."""

C_TYPES = {"T": "T", "int32": "int32_t", "int64": "int64_t", "uint8": "uint8_t"}
NUMPY_TYPES = {"float32": "float", "float64": "double"}


class ElementwiseKernel:
    """CuPy's `ElementwiseKernel(in_params, out_params, operation, name, preamble=...)`, run on the CPU: called
    with the input arrays and scalars and then the outputs (or with inputs only: one output is made)."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, preamble: str = ""):
        self.inputs, self.outputs = _params(in_params), _params(out_params)
        self.operation, self.name, self.preamble = operation, name, preamble
        self.built: dict[tuple, ctypes.CDLL] = {}

    def __call__(self, *args):
        params = self.inputs + self.outputs
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        element = [a for (_, typ, _), a in zip(params, args, strict=False) if typ == "T" and isinstance(a, np.ndarray)]
        made = None
        if len(args) == len(self.inputs):  # CuPy makes the one output when none is given
            made = np.empty(np.broadcast_shapes(*(a.shape for a in arrays)), element[0].dtype)
            args = (*args, made)
        assert len(args) == len(params), f"{self.name}: {len(args)} arguments for {len(params)} parameters"
        shape = np.broadcast_shapes(*(a.shape for (raw, _, _), a in zip(params, args, strict=True)
                                      if isinstance(a, np.ndarray) and not raw))
        t = NUMPY_TYPES[element[0].dtype.name]
        pointers, keep, scalars, back = [], [], [], []
        for k, ((raw, typ, name), a) in enumerate(zip(params, args, strict=True)):
            if isinstance(a, np.ndarray):
                assert typ != "T" or NUMPY_TYPES[a.dtype.name] == t, f"{self.name}: {name} is {a.dtype}, not {t}"
                assert typ == "T" or a.dtype.name == typ, f"{self.name}: {name} is {a.dtype}, not {typ} (CuPy: " \
                                                          "'Type is mismatched')"
                assert not raw or a.flags.c_contiguous, f"{self.name}: raw {name} is not contiguous"
                work = a if raw else np.ascontiguousarray(np.broadcast_to(a, shape))  # element i of each: the same
                if work is not a and k >= len(self.inputs):
                    assert a.shape == shape, f"{self.name}: output {name} has shape {a.shape}, not {shape}"
                    back.append((a, work))
                keep.append(work)
                pointers.append(work.ctypes.data)
            else:
                scalar = (ctypes.c_int32 if typ == "int32" else ctypes.c_float if t == "float" else ctypes.c_double)(a)
                keep.append(scalar)
                pointers.append(ctypes.addressof(scalar))
                scalars.append(k)
        library = self._build(t, tuple(scalars))
        library.run(ctypes.c_ssize_t(int(np.prod(shape))), (ctypes.c_void_p * len(pointers))(*pointers))
        for given, work in back:  # outputs given with other strides were computed in a copy
            given[...] = work
        return made

    def _build(self, t: str, scalars: tuple[int, ...]) -> ctypes.CDLL:
        if (t, scalars) not in self.built:
            source = self._source(t, scalars)
            stem = BUILD / f"{self.name}_{hashlib.sha1(source.encode()).hexdigest()[:12]}"
            stem.with_suffix(".cpp").write_text(source)
            subprocess.run([COMPILER, "-O1", "-shared", "-fPIC", "-o", f"{stem}.so", f"{stem}.cpp"], check=True)
            self.built[t, scalars] = ctypes.CDLL(f"{stem}.so")
        return self.built[t, scalars]

    def _source(self, t: str, scalars: tuple[int, ...]) -> str:
        """C++ for `run(n, args)`: the kernel body once per element i, each parameter bound as CuPy binds it."""
        outside, inside = [], []
        for k, (raw, typ, name) in enumerate(self.inputs + self.outputs):
            c = C_TYPES[typ]
            if raw:  # CuPy makes every input const, raw ones too: a twin that writes one fails to compile there
                const = "const " if k < len(self.inputs) else ""
                outside.append(f"{const}{c}* {name} = ({c}*)args[{k}];")
            elif k in scalars:
                outside.append(f"const {c} {name} = *({c}*)args[{k}];")
            elif k < len(self.inputs):
                inside.append(f"const {c} {name} = (({c}*)args[{k}])[i];")
            else:
                inside.append(f"{c}& {name} = (({c}*)args[{k}])[i];")
        return "\n".join([
            "#include <cmath>", "#include <cstddef>", "#include <cstdint>", "using std::exp; using std::sqrt; "
            "using std::tanh;", f"typedef {t} T;", self.preamble,
            'extern "C" void run(ptrdiff_t n, void** args) {', *outside,
            "for (ptrdiff_t i = 0; i < n; ++i) {", *inside, "{", self.operation, ";}", "}", "}"])


def _params(spec: str) -> list[tuple[bool, str, str]]:
    """'T x, raw T z, int32 u' -> (raw, type, name) for each parameter."""
    params = []
    for param in spec.split(","):
        words = param.split()
        params.append((words[0] == "raw", words[-2], words[-1]))
    return params
