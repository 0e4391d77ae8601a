"""The array module every layer computes with, and the dtype policy."""

import math

import numpy

xp = numpy
"""The array module: NumPy today; CuPy exposes the same interface for a GPU later."""

DTYPES = {"float32": numpy.float32, "float64": numpy.float64}
"""The values a config's `dtype` may take: the one list of them."""


def resolve_dtype(name: str) -> type:
    """The NumPy dtype for a config's `dtype` name."""
    return DTYPES[name]


def sum_rows(a: numpy.ndarray, out: numpy.ndarray) -> None:
    """out = a.sum(axis=0) for a 2-D a, as ones·a: BLAS does it about 5x faster than NumPy's reduction when a
    has many rows (a conv layer's bias gradient sums N·OH·OW of them)."""
    xp.dot(xp.ones(len(a), a.dtype), a, out=out)


class Scratch:
    """A buffer a layer reuses from step to step for the largest array it needs again and again (im2col's
    columns): a fresh array of 45 MB costs thousands of page faults each step, a reused one none."""

    def __init__(self) -> None:
        self.flat: numpy.ndarray | None = None

    def __call__(self, shape: tuple[int, ...], dtype) -> numpy.ndarray:
        """An uninitialized array of `shape`, a view of the buffer (grown when too small)."""
        size = math.prod(shape)
        if self.flat is None or self.flat.size < size or self.flat.dtype != dtype:
            self.flat = xp.empty(size, dtype)
        return self.flat[:size].reshape(shape)
