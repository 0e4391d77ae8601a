"""A trained model back from its checkpoint by itself: model, loss, dtype and the recipe for new inputs."""

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnctl import checkpoint
from nnctl.backend import resolve_dtype
from nnctl.builder import build_model
from nnctl.checkpoint import Checkpoint
from nnctl.config import Config, apply_overrides, from_dict
from nnctl.data import DATASETS, DatasetSource
from nnctl.errors import CheckpointError
from nnctl.experiment import Experiment, build, train_settings
from nnctl.losses import LOSSES, Loss
from nnctl.model import Model


@dataclass
class Trained:
    """The model a checkpoint holds, ready for new inputs; the dataset is not read (`experiment` reads it)."""

    path: Path
    saved: Checkpoint
    config: Config
    model: Model
    loss: Loss
    dtype: type
    source: DatasetSource
    """Built from the config but not loaded: it prepares new inputs with the checkpoint's shapes and statistics."""
    batch_size: int
    """train.eval_batch_size: how many inputs go through the model at once."""

    @classmethod
    def load(cls, path: str | Path) -> "Trained":
        """The checkpoint's model with its weights, its loss and its input recipe."""
        path = Path(path)
        saved = checkpoint.load(path)
        config = _config(saved, path)
        dtype = resolve_dtype(config.data["dtype"])
        model = build_model(config, saved.inputs.input_shape, dtype, np.random.default_rng(0))
        _load_weights(model, saved, path)
        loss = LOSSES.build(config.data["loss"], config, ("loss",))
        source = DATASETS.build(config.data["data"], config, ("data",), base_dir=str(config.base_dir))
        source.sample_shape = saved.inputs.sample_shape or source.peek()
        source.channel_stats = saved.inputs.channel_stats
        if source.normalize and source.channel_stats is None:  # format 1 did not keep them: computed again
            source.load(dtype)
        return cls(path, saved, config, model, loss, dtype, source, train_settings(config).eval_batch_size)

    @property
    def num_classes(self) -> int | None:
        return self.saved.inputs.num_classes

    @property
    def vocab(self) -> list[str] | None:
        return self.saved.inputs.vocab

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Raw samples (N, *sample_shape) prepared as the training samples were."""
        return self.source.inputs(x, self.dtype)

    def experiment(self, overrides: list[str] | tuple = ()) -> Experiment:
        """The whole experiment of the checkpoint's config (with `overrides`), data loaded, its weights in place:
        for eval, resume and the plots that need data."""
        config = _config(self.saved, self.path, copy.deepcopy(self.saved.config))
        apply_overrides(config, overrides)
        exp = build(config, weights=False)
        _load_weights(exp.model, self.saved, self.path)
        return exp


def _config(saved: Checkpoint, path: Path, data: dict | None = None) -> Config:
    config = from_dict(data if data is not None else saved.config, f"{path} (its config)", base_dir=saved.base_dir)
    if saved.inputs.vocab is not None:  # the ids mean what they meant in training, whatever the text file holds now
        config.data["data"]["vocab"] = saved.inputs.vocab
    return config


def _load_weights(model: Model, saved: Checkpoint, path: Path) -> None:
    try:
        model.load_state_dict(saved.model)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: its weights do not fit the model its config builds: {exc}") from None
