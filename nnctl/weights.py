"""Weights as plain arrays by name (`dense_1/W`): exported from checkpoints, loaded by `model.weights`."""

from pathlib import Path

import numpy as np

from nnctl.config import Config
from nnctl.data.tabular import read_npz
from nnctl.errors import DataError, NnctlError
from nnctl.model import Model

SHAPES = ("input_shape", "output_shape")
"""Besides the arrays, an export holds the model's input and output shape (one sample), to check the fit."""


def named(state: dict) -> dict[str, np.ndarray]:
    """A model's state dict (`{layer: {params, state}}`) as flat arrays named '<layer>/<key>'."""
    return {f"{layer}/{key}": value for layer, entry in state.items()
            for kind in ("params", "state") for key, value in entry[kind].items()}


def export(path: str | Path, state: dict, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> list[str]:
    """Writes the arrays of `state` and the model's shapes to an .npz file; returns the array names."""
    arrays = named(state)
    path = Path(path)
    if path.suffix != ".npz":
        raise NnctlError(f"{path}: the weights are written as an .npz archive; name the file *.npz")
    try:
        with open(path, "wb") as f:
            np.savez(f, **arrays, input_shape=np.array(input_shape, np.int64),  # type: ignore[arg-type]
                     output_shape=np.array(output_shape, np.int64))  # numpy's stub fears **arrays naming allow_pickle
    except OSError as exc:
        raise NnctlError(f"{path}: cannot write the weights: {exc.strerror or exc}") from None
    return list(arrays)


def load_into(model: Model, path: Path, config: Config) -> None:
    """Copies the arrays of an exported .npz into `model`; every name, shape and dtype is checked first."""
    key = ("model", "weights")
    try:
        arrays = read_npz(path)
    except DataError as exc:
        raise config.error(key, str(exc)) from None
    for name in SHAPES:
        saved, mine = arrays.pop(name, None), list(getattr(model, name))
        if saved is not None and saved.tolist() != mine:
            raise config.error(key, f"{path} was exported from a model with {name.replace('_', ' ')} "
                                    f"{saved.tolist()}, but this model's is {mine}")
    targets = named({layer.name: {"params": layer.params, "state": layer.state} for layer in model.layers})
    missing = [name for name in targets if name not in arrays]
    extra = [name for name in arrays if name not in targets]
    if missing or extra:
        problems = ([f"missing {_shapes(missing, targets)}"] if missing else []) + \
                   ([f"not in this model {_shapes(extra, arrays)}"] if extra else [])
        raise config.error(key, f"{path} does not fit this model: {'; '.join(problems)}. "
                                f"This model's arrays: {_shapes(list(targets), targets)}")
    for name, target in targets.items():
        value = arrays[name]
        if value.shape != target.shape:
            raise config.error(key, f"{path}: array '{name}' has shape {list(value.shape)}, "
                                    f"but this model's {name} has shape {list(target.shape)}")
        if value.dtype.kind not in "biuf":
            raise config.error(key, f"{path}: array '{name}' holds {value.dtype} values, not numbers")
        if not np.isfinite(value).all():
            raise config.error(key, f"{path}: array '{name}' holds NaN or infinite values")
    for name, target in targets.items():
        target[...] = arrays[name]


def _shapes(names: list[str], arrays: dict[str, np.ndarray]) -> str:
    """"'dense_1/W' [784, 10], 'dense_1/b' [10]"."""
    return ", ".join(f"'{n}' {list(arrays[n].shape)}" for n in names)

