"""The array module every layer computes with, and the dtype policy."""

import numpy

xp = numpy
"""The array module: NumPy today; CuPy exposes the same interface for a GPU later."""

DTYPES = {"float32": numpy.float32, "float64": numpy.float64}


def resolve_dtype(name: str) -> type:
    """The NumPy dtype for a config's `dtype` name."""
    return DTYPES[name]
