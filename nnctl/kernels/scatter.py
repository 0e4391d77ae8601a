"""Rows added into a table at given row indices (an embedding's gradient), repeated indices in their order."""

import numpy as np

from nnctl.backend import xp
from nnctl.kernels.dispatch import kernel


def _rows(dtype):
    rng = np.random.default_rng(0)
    table, rows = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal((7, 3)).astype(dtype)
    return table, np.array([4, 0, 4, 2, 4, 0, 1]), rows  # id 3 never comes, 4 three times


@kernel(_rows)
def add_rows_at_(table, ids, rows):
    """table[ids[k]] += rows[k] for k = 0, 1, …, in place: a repeated id adds each of its rows, in order."""
    xp.add.at(table, ids, rows)
    return table


@add_rows_at_.numba  # type: ignore[no-redef]
def add_rows_at_(table, ids, rows):
    for k in range(len(ids)):
        for j in range(table.shape[1]):
            table[ids[k], j] += rows[k, j]
    return table


@add_rows_at_.cupy
def _add_rows_at_gpu():
    import cupy

    fused = cupy.ElementwiseKernel(  # one thread per table entry: it adds its id's rows in their order, so the sums
        "raw int64 order, raw int64 bounds, raw T rows, int32 d",  # are the same every run (add.at's atomics: not)
        "T table",
        """ptrdiff_t id = i / d, col = i - id * d;
        T sum = table;
        for (ptrdiff_t k = bounds[id]; k < bounds[id + 1]; ++k) sum += rows[order[k] * d + col];
        table = sum;""",
        "nnctl_add_rows_at")

    def add_rows_at_gpu(table, ids, rows):
        m, (v, d) = len(ids), table.shape
        order = cupy.argsort(ids * m + cupy.arange(m))  # the ids in order, a repeated one's rows as they came
        bounds = cupy.searchsorted(ids[order], cupy.arange(v + 1))  # id's rows: order[bounds[id]:bounds[id + 1]]
        fused(order, bounds, cupy.ascontiguousarray(rows), d, table)
        return table

    return add_rows_at_gpu
