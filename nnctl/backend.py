"""The array module every layer computes with (NumPy, or CuPy on a GPU), the device, and the dtype policy."""

import math
import re
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy

from nnctl.errors import DataError, NnctlError


class DeviceError(NnctlError):
    """The asked-for device cannot be used here (no CuPy, no GPU, no such card)."""


class ArrayModule:
    """Forwards every attribute to the current array module, so `from nnctl.backend import xp` follows `use()`."""

    def __init__(self, module: Any):
        self.module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


xp: Any = ArrayModule(numpy)
"""The array module: NumPy on the CPU, CuPy after `use("cuda")`."""

DTYPES = {"float32": numpy.float32, "float64": numpy.float64}
"""The values a config's `dtype` may take: the one list of them."""

GPU_INSTALL = "pip install 'nnctl[gpu]'"


def resolve_dtype(name: str) -> type:
    """The NumPy dtype for a config's `dtype` name."""
    return DTYPES[name]


DEVICE = r"cpu|cuda(:[0-9]+)?"
"""The devices parse_device reads, as a regular expression (for the JSON Schema)."""


def parse_device(device: str) -> tuple[str, int]:
    """('cpu', 0) or ('cuda', N) for "cpu", "cuda", "cuda:N"; ValueError for anything else."""
    if not isinstance(device, str) or not re.fullmatch(DEVICE, device):
        raise ValueError(f"expected cpu, cuda or cuda:N, got {device!r}")
    kind, _, index = device.partition(":")
    return kind, int(index or 0)


def use(device: str) -> None:
    """Makes `xp` compute on `device`; DeviceError naming what is missing and how to fix it."""
    kind, index = parse_device(device)
    if kind == "cpu":
        xp.module = numpy
        return
    cupy = _import_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises its own CUDARuntimeError when the driver or card is missing
        raise DeviceError(f"device {device!r}: CuPy is installed but finds no usable NVIDIA GPU ({exc}); "
                          "use device: cpu, or run on a machine with an NVIDIA GPU and driver") from None
    if index >= count:
        raise DeviceError(f"device {device!r}: this machine has {count} GPU(s), numbered 0 to {count - 1}")
    cupy.cuda.Device(index).use()
    try:  # a compiled element-wise kernel (NVRTC) and a product (cuBLAS): a driver alone runs neither
        float((cupy.ones((2, 2), cupy.float32) @ cupy.ones((2, 2), cupy.float32) + 1).sum())
    except Exception as exc:
        raise DeviceError(f"device {device!r}: CuPy sees the GPU but cannot compute on it ({exc}); its CUDA "
                          f"libraries may be missing: {GPU_INSTALL} brings them from PyPI") from None
    xp.module = cupy


def _import_cupy() -> Any:
    try:
        import cupy
    except ImportError:
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed: {GPU_INSTALL} "
                          "(the CuPy wheel for CUDA 12)") from None
    return cupy


def use_module(module: Any) -> None:
    """Computes with any NumPy-like module (the tests' strict stand-in for a GPU)."""
    xp.module = module


def on_cpu() -> bool:
    """True while `xp` is NumPy itself."""
    return xp.module is numpy


def on_cupy() -> bool:
    """True while `xp` is CuPy (not NumPy, nor a stand-in for tests)."""
    return getattr(xp.module, "__name__", "") == "cupy"


def to_device(a: Any) -> Any:
    """The array on the current device (no copy on the CPU)."""
    return a if on_cpu() else xp.asarray(a)


def as_indices(a: Any, what: str) -> Any:
    """The NumPy or CuPy array `a` as int64 indices (token ids, tree node tables); DataError naming `what` where a
    value is no whole number int64 holds (1.5, NaN, 1e30), which a plain cast would change without a word."""
    if a.dtype.kind in "biu" and a.dtype != numpy.uint64:
        return a.astype(numpy.int64, copy=False)
    with numpy.errstate(invalid="ignore"):
        bad = (a >= 2.0 ** 63) if a.dtype.kind == "u" else (a % 1 != 0) | (abs(a) >= 2.0 ** 63)
    if bad.any():
        raise DataError(f"{what} are indices, whole numbers, but hold {a[bad].ravel()[0].item()!r} "
                        f"({int(bad.sum()):,} of its {bad.size:,} values are no whole number)")
    return a.astype(numpy.int64)


def to_host(a: Any) -> numpy.ndarray:
    """The array as a host NumPy array (device arrays are copied back; NumPy arrays pass through)."""
    return a if isinstance(a, numpy.ndarray) else a.get()


def synchronize() -> None:
    """Waits until the GPU has run every kernel queued so far (it runs them asynchronously); nothing on the CPU."""
    if on_cupy():
        xp.cuda.get_current_stream().synchronize()


def current_device() -> AbstractContextManager:
    """A context that makes this thread's device current in another thread (CuPy keeps one per thread)."""
    return xp.cuda.Device() if on_cupy() else nullcontext()


def fits_on_device(nbytes: int, share: float = 0.5) -> bool:
    """Whether `nbytes` take at most `share` of the device's free memory (always True on the CPU)."""
    if on_cpu() or not hasattr(xp.module, "cuda"):
        return True
    free, _ = xp.module.cuda.Device().mem_info
    return nbytes <= share * free


def host_copy(a: Any) -> numpy.ndarray:
    """A host NumPy copy of the array, wherever it lives: what checkpoints hold."""
    return a.copy() if isinstance(a, numpy.ndarray) else a.get()


def describe() -> dict[str, str]:
    """What computes: the device, CuPy and CUDA versions where a GPU is in use (else the GPUs CuPy would use, if it
    is installed), and the BLAS NumPy calls."""
    info = {"device": "cpu", "numpy": numpy.__version__, "blas": _blas()}
    if not on_cpu() and hasattr(xp.module, "cuda"):
        cupy = xp.module
        dev = cupy.cuda.Device()
        info.update(device=f"cuda:{dev.id} ({_gpu_name(cupy, dev.id)})", cupy=cupy.__version__,
                    cuda=_cuda_versions(cupy))
    else:
        info["gpus"] = _gpus()
    return info


def _gpus() -> str:
    """The NVIDIA GPUs that `device: cuda:N` can use, with CuPy's and CUDA's versions; or why there are none."""
    try:
        import cupy
    except ImportError:
        return f"none usable: CuPy is not installed ({GPU_INSTALL})"
    try:
        names = [f"cuda:{i} ({_gpu_name(cupy, i)})" for i in range(cupy.cuda.runtime.getDeviceCount())]
    except Exception as exc:  # no driver, no card
        return f"none usable: CuPy {cupy.__version__} finds no NVIDIA GPU ({exc})"
    return f"{', '.join(names) or 'none'}; CuPy {cupy.__version__}, {_cuda_versions(cupy)}"


def _gpu_name(cupy: Any, index: int) -> str:
    return cupy.cuda.runtime.getDeviceProperties(index)["name"].decode()


def _cuda_versions(cupy: Any) -> str:
    """CUDA's runtime and driver versions as CuPy reports them (12080 is 12.8)."""
    return (f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, driver "
            f"{cupy.cuda.runtime.driverGetVersion()}")


def _blas() -> str:
    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # show_config's layout differs across NumPy versions; the BLAS is informative only
        return "unknown"


def strided_view(a: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A view of `a` with other shape and strides, no copy; read-only where the array module can say so."""
    if on_cpu():
        return numpy.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def sum_rows(a: numpy.ndarray, out: numpy.ndarray) -> None:
    """out = a.sum(axis=0) for a 2-D a, as ones·a: BLAS does it about 5x faster than NumPy's reduction when a
    has many rows (a conv layer's bias gradient sums N·OH·OW of them)."""
    xp.dot(xp.ones(len(a), a.dtype), a, out=out)


class Scratch:
    """Buffers a layer reuses from step to step for the largest array it needs again and again (im2col's
    columns), one per thread: a fresh array of 45 MB costs thousands of page faults each step, a reused one none."""

    def __init__(self) -> None:
        self.flats: dict[int, numpy.ndarray] = {}

    def __call__(self, shape: tuple[int, ...], dtype, thread: int = 0) -> numpy.ndarray:
        """An uninitialized array of `shape`, a view of thread `thread`'s buffer (grown when too small)."""
        size, flat = math.prod(shape), self.flats.get(thread)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = self.flats[thread] = xp.empty(size, dtype)
        return flat[:size].reshape(shape)
