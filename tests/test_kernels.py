"""Every fused kernel equals its NumPy reference; the environment picks which of the two runs."""

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers import assert_twin_equals_reference, nnctl
from nnctl import kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(kernels.KERNELS))
def test_compiled_twin_equals_the_numpy_reference(name, dtype):
    k = kernels.KERNELS[name]
    assert k.loops is not None, f"{name} has no compiled twin"
    assert_twin_equals_reference(k, k.compiled(), dtype, absolute=False)


def test_kernels_change_something():
    """The examples are not trivial: each reference gives a result that differs from its (copied) inputs."""
    for name, k in kernels.KERNELS.items():
        args = k.example(np.dtype(np.float64))
        before = [a.copy() for a in args if isinstance(a, np.ndarray)]
        out = k.reference(*args)
        out = out[0] if isinstance(out, tuple) else out
        assert not any(b.shape == out.shape and np.array_equal(b, out) for b in before), name


def test_a_nan_in_a_max_pool_tile_is_its_maximum_in_both_twins():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    x[0, 1, 0, 2] = x[1, 3, 3, 0] = np.nan
    for run in (kernels.maxpool_tiles.reference, kernels.maxpool_tiles.compiled()):
        y = run(x, 2, 2)[0]
        assert np.isnan(y[0, 0, 0, 2]) and np.isnan(y[1, 1, 1, 0]) and np.isnan(y).sum() == 2


@pytest.mark.slow
def test_the_environment_picks_the_kernels():
    assert "kernels: numba" in nnctl("--version", env={"NNCTL_KERNELS": ""}).stdout
    forced = nnctl("--version", env={"NNCTL_KERNELS": "numpy"})
    assert forced.returncode == 0 and "kernels: numpy" in forced.stdout


def test_the_cell_kernels_float32_sigmoid_and_tanh_are_within_4e_7_of_exact_over_the_float32_range():
    """lstm_cell's compiled twin activates its gates i, f, o by σ and g by tanh: given every kind of float32 (the
    saturated ends, the tiny ones near 0), each is within 4e-7 (relative) of the float64 value."""
    grid = np.concatenate([np.linspace(-100, 100, 400_001), np.geomspace(1e-30, 1, 20_000),
                           -np.geomspace(1e-30, 1, 20_000)]).astype(np.float32)
    z = np.ascontiguousarray(grid[: grid.size // 4 * 4].reshape(-1, 4))  # one unit: columns i, f, o, g
    exact = z.astype(np.float64)
    kernels.lstm_cell.compiled()(z, np.zeros_like(z), np.zeros((len(z), 1), np.float32))
    for got, want in ((z[:, :3], 1 / (1 + np.exp(-exact[:, :3]))), (z[:, 3], np.tanh(exact[:, 3]))):
        normal = np.abs(want) > np.finfo(np.float32).tiny
        np.testing.assert_allclose(got[normal], want[normal], rtol=4e-7, atol=0)


@pytest.fixture
def cuda_on_cpu(monkeypatch, tmp_path):
    """`import cupy` gives the stand-in that runs CuPy kernels' C++ bodies on the CPU (tests/cuda_on_cpu.py)."""
    import cuda_on_cpu

    if cuda_on_cpu.COMPILER is None:
        pytest.skip("needs a C++ compiler (g++ or clang++) to run the CuPy twins' code on the CPU")
    monkeypatch.setattr(cuda_on_cpu, "BUILD", tmp_path)
    monkeypatch.setitem(sys.modules, "cupy", cuda_on_cpu)
    return cuda_on_cpu


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(kernels.KERNELS))
def test_the_cupy_twins_code_run_on_the_cpu_equals_the_numpy_reference(name, dtype, cuda_on_cpu):
    """Each CuPy twin's kernel body, compiled for the CPU, gives what the reference gives: its indexing and
    arithmetic are right before a GPU ever runs it (tests/test_gpu.py checks the same on a GPU)."""
    k = kernels.KERNELS[name]
    assert k.make_gpu is not None, f"{name} has no CuPy twin"
    assert_twin_equals_reference(k, k.make_gpu(), dtype, absolute=True)


def test_the_stand_in_refuses_what_cupy_refuses_of_a_kernel(cuda_on_cpu):
    """A twin that writes a raw input (CuPy makes inputs const) or hands an array of another type to a typed
    parameter would pass a looser stand-in and fail on the first GPU."""
    writes = cuda_on_cpu.ElementwiseKernel("raw T x", "T y", "y = x[i]; x[i] = 0", "nnctl_test_writes_input")
    with pytest.raises(subprocess.CalledProcessError):  # the compiler refuses the assignment to const
        writes(np.ones(3), np.empty(3))
    typed = cuda_on_cpu.ElementwiseKernel("raw int64 ids, T x", "T y", "y = x + ids[i]", "nnctl_test_typed")
    y = np.empty(3)
    typed(np.arange(3, dtype=np.int64), np.ones(3), y)
    np.testing.assert_array_equal(y, [1, 2, 3])
    with pytest.raises(AssertionError, match="ids is int32, not int64"):
        typed(np.arange(3, dtype=np.int32), np.ones(3), y)


def test_threads_reaching_a_kernel_first_at_once_jit_it_once(monkeypatch):
    """A conv's threads can call a kernel for the first time together; each jitted it, and the second numba.njit
    of an already jitted function raised (`nnctl gradcheck` once stopped with that internal error)."""
    numba = pytest.importorskip("numba")
    from nnctl.kernels.dispatch import Kernel

    njit, calls = numba.njit, []

    def slow_njit(*args, **options):  # widens the window in which both threads find the twin not yet jitted
        if args:  # numba's own uses
            return njit(*args, **options)

        def jit(function):
            calls.append(function)
            time.sleep(0.2)
            return njit(**options)(function)
        return jit

    monkeypatch.setattr(numba, "njit", slow_njit)

    def double(x):
        return 2 * x

    twin = Kernel(double, lambda dtype: (np.ones(2, dtype),)).numba(double)
    start = threading.Barrier(4)

    def first_call(_):
        start.wait()
        return twin.compiled()(3.0)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(first_call, range(4))) == [6.0] * 4
    assert len(calls) == 1
