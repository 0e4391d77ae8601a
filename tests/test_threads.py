"""Threads: NNCTL_THREADS fixes BLAS's count, reported by --version; a sweep divides what BLAS was given."""

import pytest

from helpers import nnctl
from nnctl import threads


@pytest.mark.slow
def test_nnctl_threads_is_reported_and_a_bad_value_stopped():
    shown = nnctl("--version", env={"NNCTL_THREADS": "1"})
    assert shown.returncode == 0 and "BLAS threads: openblas" in shown.stdout and "1 (NNCTL_THREADS)" in shown.stdout
    bad = nnctl("--version", env={"NNCTL_THREADS": "many"})
    assert bad.returncode == 2 and "NNCTL_THREADS must be a positive number of threads, got 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_sweep_divides_the_threads_blas_was_given_not_the_cores():
    """Under OMP_NUM_THREADS=1 (an xdist worker's) a sweep's member must not get a thread per core."""
    (blas, *_) = threads._blas()
    found = blas.num_threads
    blas.set_num_threads(1)
    try:
        assert threads.fixed() is not None or threads.available() == 1
    finally:
        blas.set_num_threads(found)
