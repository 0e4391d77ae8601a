"""nnctl: train neural networks written in plain NumPy from YAML files."""

__version__ = "0.1.0"
