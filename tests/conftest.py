"""Tests read MNIST from $NNCTL_DATA_DIR, else from ../shared/data beside the repository. Under pytest-xdist
(`-n N`) each worker, and every CLI it starts, gets the machine's cores divided among the N workers as BLAS
threads."""

import os
import sys
from pathlib import Path

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:  # set before NumPy loads: two workers of 2 BLAS threads each on 2 cores spin 4x slower, not 2x
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                 "NUMEXPR_NUM_THREADS"):  # nnctl.sweep.workers.THREAD_VARS, which cannot be imported before NumPy
        os.environ.setdefault(name, str(max(1, (os.cpu_count() or 1) // WORKERS)))

import pytest  # noqa: E402

from nnctl.data.mnist import FILES  # noqa: E402

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
DATA_DIR = Path(os.environ.get("NNCTL_DATA_DIR") or TESTS.parent.parent / "shared" / "data")
os.environ["NNCTL_DATA_DIR"] = str(DATA_DIR)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data directory holding mnist/*.gz; the tests fail (never skip) without it."""
    missing = [name for name in FILES if not (DATA_DIR / "mnist" / name).is_file()]
    if missing:
        pytest.fail(f"MNIST files missing from {DATA_DIR}/mnist: {', '.join(missing)}; set NNCTL_DATA_DIR "
                    "to a folder holding mnist/ with the four .gz files")
    return DATA_DIR


def _gpu_missing() -> str | None:
    """Why the gpu tests cannot run here, or None when CuPy sees a GPU."""
    try:
        import cupy
    except ImportError:
        return "needs CuPy and an NVIDIA GPU (pip install 'nnctl[gpu]'); CuPy is not installed"
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy's own CUDARuntimeError when there is no driver or card
        return f"needs an NVIDIA GPU; CuPy finds none ({exc})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = [item for item in items if "gpu" in item.keywords]
    reason = _gpu_missing() if gpu else None
    for item in gpu if reason else []:
        item.add_marker(pytest.mark.skip(reason=reason))
