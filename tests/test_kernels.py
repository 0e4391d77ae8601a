"""Every fused kernel equals its NumPy reference; the environment picks which of the two runs."""

import numpy as np
import pytest

from helpers import nnctl
from nnctl import kernels

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(kernels.KERNELS))
def test_compiled_twin_equals_the_numpy_reference(name, dtype):
    k = kernels.KERNELS[name]
    assert k.loops is not None, f"{name} has no compiled twin"
    given, twin_given = k.example(np.dtype(dtype)), k.example(np.dtype(dtype))
    expected, got = k.reference(*given), k.compiled()(*twin_given)
    expected, got = (r if isinstance(r, tuple) else (r,) for r in (expected, got))
    expected += tuple(a for a in given if isinstance(a, np.ndarray))  # and what they wrote in place
    got += tuple(a for a in twin_given if isinstance(a, np.ndarray))
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=TOLERANCE[dtype], atol=0)


def test_kernels_change_something():
    """The examples are not trivial: each reference gives a result that differs from its (copied) inputs."""
    for name, k in kernels.KERNELS.items():
        args = k.example(np.dtype(np.float64))
        before = [a.copy() for a in args if isinstance(a, np.ndarray)]
        out = k.reference(*args)
        out = out[0] if isinstance(out, tuple) else out
        assert not any(b.shape == out.shape and np.array_equal(b, out) for b in before), name


@pytest.mark.slow
def test_the_environment_picks_the_kernels():
    assert "kernels: numba" in nnctl("--version", env={"NNCTL_KERNELS": ""}).stdout
    forced = nnctl("--version", env={"NNCTL_KERNELS": "numpy"})
    assert forced.returncode == 0 and "kernels: numpy" in forced.stdout
