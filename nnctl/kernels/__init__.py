"""Fused kernels for hot operations, each beside its plain NumPy twin, and the NumPy pieces the references share
with the layers; `ACTIVE` names the set in use."""

from nnctl.kernels.activation import bias_relu_, relu_backward
from nnctl.kernels.conv import Pads, im2col_, offset_slices, pad_nhwc
from nnctl.kernels.dispatch import ACTIVE, KERNELS, Kernel, describe, warm_up
from nnctl.kernels.optim import adam_
from nnctl.kernels.pool import maxpool_tiles, maxpool_tiles_backward
from nnctl.kernels.recurrent import (
    gru_cell,
    gru_cell_backward,
    gru_gates_,
    gru_gates_back_,
    gru_mix_,
    gru_mix_back_,
    lstm_cell,
    lstm_cell_backward,
)
from nnctl.kernels.scatter import add_rows_at_

__all__ = ["ACTIVE", "KERNELS", "Kernel", "Pads", "adam_", "add_rows_at_", "bias_relu_", "describe", "gru_cell",
           "gru_cell_backward", "gru_gates_", "gru_gates_back_", "gru_mix_", "gru_mix_back_", "im2col_", "lstm_cell",
           "lstm_cell_backward", "maxpool_tiles", "maxpool_tiles_backward", "offset_slices", "pad_nhwc",
           "relu_backward", "warm_up"]
