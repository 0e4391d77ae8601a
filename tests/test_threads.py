"""Threads: NNCTL_THREADS fixes BLAS's count, reported by --version; a sweep divides what BLAS was given."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import nnctl
from nnctl import threads


@pytest.mark.slow
def test_nnctl_threads_is_reported_and_a_bad_value_stopped():
    shown = nnctl("--version", env={"NNCTL_THREADS": "1"})
    assert shown.returncode == 0 and "BLAS threads: openblas" in shown.stdout and "1 (NNCTL_THREADS)" in shown.stdout
    bad = nnctl("--version", env={"NNCTL_THREADS": "many"})
    assert bad.returncode == 2, bad.stderr
    assert "NNCTL_THREADS must be a positive number of threads (at most 1024), got 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_version_names_openblas_kernels_and_the_variable_that_forced_them():
    """OPENBLAS_CORETYPE set for an older CPU slows a newer one, so --version says when it chose the kernels (set
    here to the kernels this process already runs, so nothing else changes)."""
    (blas, *_) = threads._blas()
    architecture = getattr(blas, "architecture", None)
    if not architecture:
        pytest.skip(f"{blas.internal_api} does not say which kernels it runs")
    forced = nnctl("--version", env={"OPENBLAS_CORETYPE": architecture}).stdout
    assert f"({architecture} kernels, forced by OPENBLAS_CORETYPE={architecture})" in forced, forced
    here = threads.describe()
    assert f"({architecture} kernels" in here
    assert ("forced by OPENBLAS_CORETYPE" in here) == bool(os.environ.get("OPENBLAS_CORETYPE")), here


def test_the_blas_named_is_numpys_even_when_scipys_loaded_first():
    """SciPy's wheel brings another OpenBLAS (MLflow imports it); --version and the thread count read NumPy's."""
    pytest.importorskip("scipy.linalg")
    script = ("import scipy.linalg, numpy, threadpoolctl\n"
              "from nnctl import threads\n"
              "line = threads.describe()\n"  # first: the order threadpoolctl lists them in varies after a first look
              "print(len(threadpoolctl.threadpool_info()), line)\n"
              "print(numpy.show_config(mode='dicts')['Build Dependencies']['blas']['version'])")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    (count, line), version = found.stdout.splitlines()[0].split(" ", 1), found.stdout.splitlines()[1]
    assert int(count) >= 2, found.stdout  # both libraries loaded, else the test proves nothing
    assert f"openblas {version} (" in line, found.stdout


def test_a_sweep_divides_the_threads_blas_was_given_not_the_cores():
    """Under OMP_NUM_THREADS=1 (an xdist worker's) a sweep's member must not get a thread per core."""
    (blas, *_) = threads._blas()
    found = blas.num_threads
    blas.set_num_threads(1)
    threads.available.cache_clear()  # as if BLAS had started with one thread
    try:
        assert threads.fixed() is not None or threads.available() == 1
    finally:
        blas.set_num_threads(found)
        threads.available.cache_clear()


def test_a_model_mostly_of_convolutions_runs_blas_on_one_thread_inside_and_gives_it_back():
    """Its convs deal their blocks among threads; an idle BLAS thread would spin against them. A model with
    much of its work elsewhere (a large dense layer) keeps BLAS's threads, and its convs one thread."""
    from nnctl.builder import build_model
    from nnctl.config import from_dict

    def model_of(*layers):
        config = from_dict({"model": {"layers": list(layers)}})
        return build_model(config, (1, 6, 6), np.float64, np.random.default_rng(0))

    conv = {"type": "conv2d", "filters": 8, "kernel_size": 3}  # 72 weights at 16 positions: 1,152 multiply-adds
    mostly = model_of(conv, {"type": "global_avg_pool2d"}, {"type": "dense", "units": 3})  # and 24
    half = model_of(conv, {"type": "flatten"}, {"type": "dense", "units": 9})  # and 1,152
    dense = model_of({"type": "flatten"}, {"type": "dense", "units": 3})
    assert (mostly.blas_threads, half.blas_threads, dense.blas_threads) == (1, None, None)
    assert (mostly.layers[0].threads, half.layers[0].threads) == (threads.available(), 1)
    (blas, *_) = threads._blas()
    found, seen = blas.num_threads, []
    blas.set_num_threads(2)
    try:
        for model in (mostly, half, dense):
            last = model.layers[-1]
            last.forward = lambda x, training, layer=last: (seen.append(blas.num_threads),
                                                            type(layer).forward(layer, x, training))[1]
            model.forward(np.ones((2, 1, 6, 6)))
            assert blas.num_threads == 2
        assert seen == [1, 2, 2]
    finally:
        blas.set_num_threads(found)


def test_share_runs_every_task_once_on_its_own_thread_and_raises_a_failure_after_all_have_ended():
    ran: dict[int, int] = {}

    def task(i):
        time.sleep(0.05 * (i == 1))  # the other thread's share ends last
        ran[i] = threading.get_ident()

    threads.share(task, 2)
    assert sorted(ran) == [0, 1] and ran[0] == threading.get_ident() != ran[1]

    ended = []

    def failing(i):
        if i == 0:
            raise ValueError("task 0 failed")
        time.sleep(0.05)
        ended.append(i)

    with pytest.raises(ValueError, match="task 0 failed"):
        threads.share(failing, 2)
    assert ended == [1]  # the caller's share failed first, yet it waited for the other before raising


def test_threads_finds_blas_even_when_asked_before_numpy_was_imported():
    code = ("import sys; from nnctl import threads; assert 'numpy' not in sys.modules; "
            "print(threads.describe())")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("BLAS threads: openblas"), shown.stdout
