"""Layers, registered by name; importing this package registers every layer family."""

from nnctl.layers.base import Layer
from nnctl.registry import Registry

LAYERS: Registry[Layer] = Registry("layer")

from nnctl.layers import (  # noqa: E402, F401  (they register)
    activations,
    conv,
    dense,
    dropout,
    norm,
    pool,
    recursive,
    reshape,
)

__all__ = ["LAYERS", "Layer"]
