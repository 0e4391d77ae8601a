"""The one place that picks which implementation of each fused kernel runs.

Every kernel is a plain NumPy function, the reference, with a compiled twin of the same name beside it. The
twins run when numba is installed, unless NNCTL_KERNELS=numpy asks for the references. numba is imported and
a twin compiled (or loaded from numba's on-disk cache) only when first called, so starting nnctl stays fast.
On a GPU a kernel runs its CuPy twin where it has one, else the reference, which computes through `xp`."""

import functools
import importlib.util
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from nnctl.backend import on_cpu, on_cupy

FORCE_NUMPY = os.environ.get("NNCTL_KERNELS", "").strip().lower() == "numpy"
"""NNCTL_KERNELS=numpy: the references everywhere, CPU and GPU."""


def _choose() -> str:
    if FORCE_NUMPY:
        return "numpy"
    return "numba" if importlib.util.find_spec("numba") else "numpy"


ACTIVE = _choose()
"""'numba' or 'numpy': the implementation every kernel runs in this process."""

KERNELS: dict[str, "Kernel"] = {}
_BUILDING = threading.Lock()
"""Held while a twin is built (jitted or made for CuPy), once per kernel."""
SCALARS: list[Callable] = []
"""Scalar functions the compiled twins call (see `scalar`)."""


class Kernel:
    """One operation: the NumPy `reference` and, where given, a compiled twin; calling it runs the active one."""

    def __init__(self, reference: Callable, example: Callable[[Any], tuple]):
        functools.update_wrapper(self, reference)
        self.reference = reference
        self.loops: Callable | None = None
        self.example = example
        """dtype -> arguments of a small call: what the twins are compared on, and compiled by at warm-up."""
        self.run = reference
        self.gpu: Callable | None = None
        """The CuPy twin: built by `make_gpu` on first use on a GPU."""
        self.make_gpu: Callable[[], Callable] | None = None
        KERNELS[reference.__name__] = self

    def __call__(self, *args):
        if on_cpu():
            try:
                return self.run(*args)
            except SystemError as exc:  # numba's wrapping of a Ctrl-C that landed while a compiled twin ran
                if (interrupt := _ctrl_c(exc)) is None:
                    raise
                raise interrupt from None
        if self.make_gpu is None or FORCE_NUMPY or not on_cupy():  # a stand-in for CuPy computes the reference
            return self.reference(*args)
        if self.gpu is None:
            with _BUILDING:
                self.gpu = self.gpu or self.make_gpu()
        return self.gpu(*args)

    def cupy(self, make: Callable[[], Callable]) -> "Kernel":
        """Registers `make`, which builds the CuPy twin (a fused elementwise kernel) when a GPU first runs it."""
        self.make_gpu = make
        return self

    def numba(self, loops: Callable) -> "Kernel":
        """Registers `loops` as the twin numba compiles; it runs when numba is the active implementation."""
        self.loops = loops
        if ACTIVE == "numba":
            self.run = self._compile_and_run
        return self

    def compiled(self) -> Callable:
        """The numba twin (ImportError without numba)."""
        if self.loops is None:
            raise ValueError(f"kernel {self.reference.__name__} has no compiled twin")
        with _BUILDING:  # two threads of a conv may reach a kernel first at once: it is jitted by one of them
            if not hasattr(self.loops, "py_func"):
                import numba

                for function in SCALARS:  # registered once; numba then compiles calls to it into the twins
                    numba.extending.register_jitable(inline="always")(function)
                SCALARS.clear()
                # error_model numpy: x / 0 gives inf, as in NumPy, instead of a check that stops vectorizing
                self.loops = numba.njit(cache=True, nogil=True, error_model="numpy")(self.loops)
        return self.loops

    def _compile_and_run(self, *args):
        self.run = self.compiled()
        return self.run(*args)


WRAPPINGS = 8
"""How many errors deep a KeyboardInterrupt is looked for under a SystemError (numba wraps it in two)."""


def _ctrl_c(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt among the errors that caused `exc` (numba wraps it in SystemErrors), if any."""
    seen: BaseException | None = exc
    for _ in range(WRAPPINGS):
        if seen is None or isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def kernel(example: Callable[[Any], tuple]) -> Callable[[Callable], Kernel]:
    """Declares a NumPy function as a kernel; `example(dtype)` gives the arguments of a small call."""
    return lambda reference: Kernel(reference, example)


def scalar(function: Callable) -> Callable:
    """Declares a scalar function (say σ of one number) that compiled twins may call; it stays plain Python."""
    SCALARS.append(function)
    return function


def describe() -> str:
    """Which kernels run, in one line (for `nnctl --version`)."""
    if ACTIVE == "numba":
        from importlib.metadata import version

        return f"kernels: numba {version('numba')} (NNCTL_KERNELS=numpy runs the NumPy references)"
    if importlib.util.find_spec("numba"):
        return "kernels: numpy (NNCTL_KERNELS=numpy)"
    return "kernels: numpy (pip install 'nnctl[fast]' for the compiled ones)"


def warm_up() -> tuple[float, int]:
    """Calls every active kernel once in float32 and float64, so that compiling happens now; returns the
    seconds it took and how many twins were compiled (0 when numba's on-disk cache held them all)."""
    import numpy as np

    start = time.perf_counter()
    for k in KERNELS.values():
        for dtype in (np.float32, np.float64):
            k(*k.example(np.dtype(dtype)))
    compiled = sum(sum(k.run.stats.cache_misses.values()) for k in KERNELS.values() if hasattr(k.run, "stats"))
    return time.perf_counter() - start, compiled
