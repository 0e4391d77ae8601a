"""How many threads nnctl computes on: BLAS runs what it starts with (all cores, or OMP_NUM_THREADS and its kin)
for every product, the small ones of a recurrent layer's time loop included; in a model that is mostly
convolutions (`Model.blas_threads`), the convs deal their blocks of columns among as many threads of their own
instead, each running BLAS on one thread. NNCTL_THREADS=N fixes N."""

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any

from nnctl.errors import ConfigError

MAX_THREADS = 1024
"""The most NNCTL_THREADS may ask for (BLAS takes a C int; OpenBLAS's own builds stop at 64 or 512)."""


@cache
def fixed() -> int | None:
    """The thread count NNCTL_THREADS asks for, or None to let nnctl choose; ConfigError for anything else."""
    value = os.environ.get("NNCTL_THREADS", "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_THREADS:
        raise ConfigError(f"NNCTL_THREADS must be a positive number of threads (at most {MAX_THREADS}), got "
                          f"'{value[:40]}'; unset it to let nnctl choose")
    return int(value)


@cache
def _blas() -> list:
    """threadpoolctl's handles on the BLAS libraries loaded, NumPy's first (SciPy brings its own OpenBLAS), set to
    NNCTL_THREADS when given."""
    import numpy  # loads BLAS: threadpoolctl finds only libraries already loaded, and this is cached
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    numpys = os.path.dirname(numpy.__file__)  # its wheel's OpenBLAS lies in numpy.libs beside it
    libraries = sorted(ThreadpoolController().select(user_api="blas").lib_controllers,
                       key=lambda library: not library.filepath.startswith(numpys))
    if fixed() is not None:
        for library in libraries:
            library.set_num_threads(fixed())
    return libraries


def apply_override() -> None:
    """Sets BLAS to NNCTL_THREADS threads, if given (the CLI calls it first thing)."""
    if fixed() is not None:
        _blas()


@cache
def available() -> int:
    """The BLAS threads this process may use: NNCTL_THREADS, else what BLAS started with (the cores, or
    OMP_NUM_THREADS and its kin where they were set); a sweep divides them among its parallel members."""
    libraries = _blas()
    return fixed() or (libraries[0].num_threads if libraries else os.cpu_count() or 1)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(available() - 1, 1), thread_name_prefix="nnctl")


def share(task: Callable[[int], None], count: int) -> None:
    """task(0), …, task(count − 1), on `count` threads at once (at most `available()`; the calling thread runs
    task(0)), with BLAS on one thread inside each: for work that nnctl deals out itself (task must release the GIL
    for most of its time: compiled kernels and BLAS do). An exception in a task is raised here, after all ended."""
    if count == 1:
        task(0)
        return
    with blas_limit(1):
        others = [_pool().submit(task, i) for i in range(1, count)]
        try:
            task(0)
        finally:
            for other in others:
                other.exception()  # waits: the tasks write into buffers the caller owns
        for other in others:
            other.result()


@contextmanager
def blas_limit(count: int | None) -> Iterator[None]:
    """BLAS on `count` threads inside the block (None: as it is), as before it afterwards."""
    available()  # what BLAS started with, read (and kept) before any limit
    libraries = _blas() if count is not None else []
    changed = [(library, n) for library in libraries if (n := library.num_threads) != count]
    for library, _ in changed:  # each set costs about 10 µs: skipped where BLAS already runs `count`
        library.set_num_threads(count)
    try:
        yield
    finally:
        for library, n in changed:
            library.set_num_threads(n)


def describe() -> str:
    """The thread policy in force, in one line (for `nnctl --version`)."""
    libraries = _blas()
    if not libraries:
        return "BLAS threads: not found"
    name = f"{libraries[0].internal_api} {libraries[0].version}{blas_kernels(libraries[0])}"
    if fixed() is not None:
        return f"BLAS threads: {name}, {fixed()} (NNCTL_THREADS)"
    return f"BLAS threads: {name}, {libraries[0].num_threads} (NNCTL_THREADS=N fixes N)"


def blas_kernels(library: Any) -> str:
    """' (SkylakeX kernels)': which of its CPU kernels OpenBLAS runs, and the variable that forced them, if one did
    (OPENBLAS_CORETYPE set for an older CPU slows a newer one)."""
    architecture = getattr(library, "architecture", None)
    if not architecture:
        return ""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return f" ({architecture} kernels{f', forced by OPENBLAS_CORETYPE={forced}' if forced else ''})"
