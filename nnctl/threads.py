"""How many threads BLAS runs: all cores for the large products of dense and conv layers, one for the small
products of a recurrent layer's time loop (waking a second thread for each costs more than it saves);
NNCTL_THREADS=N fixes N threads for everything."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from nnctl.errors import ConfigError

SMALL_PRODUCT = 1 << 25
"""Multiply-adds below which a product in a time loop runs on one thread (mnist_lstm's h·Wh: 2^23)."""


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


def available() -> int:
    """The BLAS threads this process may use: NNCTL_THREADS, else what BLAS started with (the cores, or
    OMP_NUM_THREADS and its kin where they were set); a sweep divides them among its parallel members."""
    libraries = _blas()
    return fixed() or (libraries[0].num_threads if libraries else os.cpu_count() or 1)


@contextmanager
def time_loop(multiply_adds: int) -> Iterator[None]:
    """BLAS on one thread while a loop runs products of `multiply_adds` each, when they are small."""
    libraries = [] if fixed() is not None or multiply_adds >= SMALL_PRODUCT else _blas()
    before = [library.num_threads for library in libraries]
    for library in libraries:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, n in zip(libraries, before, strict=True):
            library.set_num_threads(n)


def describe() -> str:
    """The thread policy in force, in one line (for `nnctl --version`)."""
    libraries = _blas()
    if not libraries:
        return "BLAS threads: not found"
    name = f"{libraries[0].internal_api} {libraries[0].version}"
    if fixed() is not None:
        return f"BLAS threads: {name}, {fixed()} (NNCTL_THREADS)"
    return (f"BLAS threads: {name}, {libraries[0].num_threads}; 1 in recurrent time loops with small products "
            "(NNCTL_THREADS=N fixes N)")
