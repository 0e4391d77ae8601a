"""BLAS threads: one inside a recurrent time loop of small products, NNCTL_THREADS fixed everywhere."""

import numpy as np
import pytest

from helpers import nnctl
from nnctl import threads


def test_a_time_loop_of_small_products_runs_on_one_thread_and_restores_the_count():
    (blas, *_) = threads._blas()
    found = blas.num_threads  # given back at the end: an xdist worker runs its later tests on 1 thread
    blas.set_num_threads(2)
    try:
        with threads.time_loop(128 * 128 * 512):
            assert blas.num_threads == 1
            np.ones((64, 64)) @ np.ones((64, 64))
        assert blas.num_threads == 2
        with threads.time_loop(threads.SMALL_PRODUCT):
            assert blas.num_threads == 2
    finally:
        blas.set_num_threads(found)


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
