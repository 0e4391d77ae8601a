"""Layers, registered by name; importing this package registers every layer family."""

from nnctl.layers import (  # noqa: F401  (they register)
    activations,
    conv,
    dense,
    dropout,
    embedding,
    norm,
    pool,
    recurrent,
    recursive,
    reshape,
)
from nnctl.layers.base import LAYERS, Layer

__all__ = ["LAYERS", "Layer"]
