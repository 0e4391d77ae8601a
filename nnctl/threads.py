"""How nnctl uses the cores: BLAS on all of them for the large products of dense and conv layers; in a recurrent
layer's time loop, whose products are too small for BLAS to share well, one thread per slice of the batch
instead. NNCTL_THREADS=N fixes N threads for both."""

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import TypeVar

from nnctl.backend import on_cpu
from nnctl.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

MIN_ROWS = 16
"""The fewest batch rows a thread of a time loop takes (fewer, and waking it costs more than it saves)."""


@cache
def fixed() -> int | None:
    """The thread count NNCTL_THREADS asks for, or None to let nnctl choose; ConfigError for anything else."""
    value = os.environ.get("NNCTL_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"NNCTL_THREADS must be a positive number of threads, got '{value}'; "
                          "unset it to let nnctl choose")
    return int(value)


@cache
def _blas() -> list:
    """threadpoolctl's handles on the BLAS libraries NumPy loaded (set to NNCTL_THREADS when given)."""
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    if fixed() is not None:
        for library in libraries:
            library.set_num_threads(fixed())
    return libraries


def apply_override() -> None:
    """Sets BLAS to NNCTL_THREADS threads, if given (the CLI calls it first thing)."""
    if fixed() is not None:
        _blas()


def workers() -> int:
    """The threads nnctl runs: NNCTL_THREADS, else the BLAS thread count it starts with (all cores, or what
    OMP_NUM_THREADS and its kin allow)."""
    libraries = _blas()
    return fixed() or (max(library.num_threads for library in libraries) if libraries else 1)


@contextmanager
def time_loop(rows: int) -> Iterator[list[slice]]:
    """While a recurrent layer's time loop runs: BLAS on one thread, and the batch's `rows` split into one slice
    per thread the loop runs on (see `parallel`), each of at least MIN_ROWS rows. On a GPU: all rows in one."""
    if not on_cpu():
        yield [slice(0, rows)]
        return
    count = max(1, min(workers(), rows // MIN_ROWS))
    libraries = _blas()
    before = [library.num_threads for library in libraries]
    for library in libraries:
        library.set_num_threads(1)
    bounds = [rows * k // count for k in range(count + 1)]
    try:
        yield [slice(bounds[k], bounds[k + 1]) for k in range(count)]
    finally:
        for library, n in zip(libraries, before, strict=True):
            library.set_num_threads(n)


def parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """fn of each item: the first in this thread, the others at once on the threads of a shared pool (NumPy's
    loops, BLAS and the fused kernels release the GIL)."""
    others = [_pool().submit(fn, item) for item in items[1:]]
    first = fn(items[0])
    return [first, *(future.result() for future in others)]


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="nnctl")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child (a sweep member) starts its own pool


def describe() -> str:
    """The thread policy in force, in one line (for `nnctl --version`)."""
    libraries = _blas()
    if not libraries:
        return "BLAS threads: not found"
    name = f"{libraries[0].internal_api} {libraries[0].version}"
    if fixed() is not None:
        return f"BLAS threads: {name}, {fixed()} (NNCTL_THREADS), and {fixed()} in recurrent time loops"
    return (f"BLAS threads: {name}, {libraries[0].num_threads}; recurrent time loops: {workers()} threads of one BLAS "
            "thread each, on slices of the batch (NNCTL_THREADS=N fixes N)")
