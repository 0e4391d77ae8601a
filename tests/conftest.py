"""Tests read MNIST from $NNCTL_DATA_DIR, else from ../shared/data beside the repository."""

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
DATA_DIR = Path(os.environ.get("NNCTL_DATA_DIR") or TESTS.parent.parent / "shared" / "data")
os.environ["NNCTL_DATA_DIR"] = str(DATA_DIR)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data directory holding mnist/*.gz; the tests fail (never skip) without it."""
    if not (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"MNIST is not in {DATA_DIR}/mnist: set NNCTL_DATA_DIR to a folder holding mnist/*.gz")
    return DATA_DIR
