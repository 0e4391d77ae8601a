"""A trained model back from its checkpoint by itself (or from a config whose model.weights names its arrays):
model, loss, dtype and the recipe for new inputs."""

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnctl import checkpoint
from nnctl.backend import resolve_dtype, to_device
from nnctl.builder import build_model
from nnctl.checkpoint import Checkpoint, InputRecipe
from nnctl.config import Config, apply_overrides, check_top_level, from_dict, load_config
from nnctl.data import DatasetSource
from nnctl.errors import CheckpointError
from nnctl.experiment import Experiment, build, data_source, load_data, train_settings
from nnctl.losses import LOSSES, Loss
from nnctl.model import Model
from nnctl.weights import weights_spec

UNTRUSTED = ("root", "mirror")
"""data keys of a checkpoint's config that are never used: data.root on the command line, NNCTL_DATA_DIR or the
default cache say where the data is, and the dataset's own mirrors where it comes from."""


@dataclass
class Trained:
    """The model a checkpoint holds, ready for new inputs; the dataset is not read (`experiment` reads it)."""

    path: Path
    recipe: InputRecipe
    config: Config
    model: Model
    loss: Loss
    dtype: type
    source: DatasetSource
    """Built from the config but not loaded: it prepares new inputs with the checkpoint's shapes and statistics."""
    batch_size: int
    """train.eval_batch_size: how many inputs go through the model at once."""
    saved: Checkpoint | None = None
    """The checkpoint; None for a model from a config and its model.weights."""

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Trained":
        """The checkpoint's model with its weights on `device`, its loss and its input recipe."""
        path = Path(path)
        saved = checkpoint.load(path)
        config = _config(saved, path)
        apply_overrides(config, [f"device={device}"])
        dtype = resolve_dtype(config.data["dtype"])
        model = build_model(config, saved.inputs.input_shape, dtype, np.random.default_rng(0))
        load_weights(model, saved, path)
        _check_classes(saved.inputs, model, path)
        loss = LOSSES.build(config.data["loss"], config, ("loss",))
        source = data_source(config)
        source.sample_shape = saved.inputs.sample_shape or source.peek()
        source.channel_stats = saved.inputs.channel_stats
        if source.normalize and source.channel_stats is None:  # format 1 did not keep them: computed again
            load_data(config, source, dtype)
        return cls(path, saved.inputs, config, model, loss, dtype, source, train_settings(config).eval_batch_size,
                   saved)

    @classmethod
    def from_config(cls, path: str | Path, device: str = "cpu", through: str | None = None) -> "Trained":
        """The model of a config whose model.weights names trained arrays (up to the layer `through`, where only
        its outputs are wanted), on `device`, its loss and input recipe. The dataset is read: without a
        checkpoint, its classes and statistics are known only from the data."""
        exp = trained_experiment(path, [f"device={device}"], through)
        config = exp.config
        return cls(Path(path), exp.input_recipe(), config, exp.model, exp.loss, exp.dtype, exp.source,
                   exp.settings.eval_batch_size)

    @property
    def num_classes(self) -> int | None:
        return self.recipe.num_classes

    @property
    def vocab(self) -> list[str] | None:
        return self.recipe.vocab

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Raw samples (N, *sample_shape) prepared as the training samples were, on the model's device."""
        return to_device(self.source.inputs(x, self.dtype))

    def overridden(self, overrides: list[str] | tuple = ()) -> Config:
        """The checkpoint's config with `overrides` applied (and its data location left to this machine)."""
        assert self.saved is not None, "a model from a config has no checkpoint config"
        config = _config(self.saved, self.path, copy.deepcopy(self.saved.config))
        apply_overrides(config, overrides)
        return config

    def experiment(self, overrides: list[str] | tuple = ()) -> Experiment:
        """The whole experiment of the checkpoint's config (with `overrides`), data loaded, its weights in place:
        for eval, resume and the plots that need data."""
        if self.saved is None:
            return build(load_config(self.path, overrides))
        exp = build(self.overridden(overrides), weights=False)
        load_weights(exp.model, self.saved, self.path)
        return exp


def _config(saved: Checkpoint, path: Path, data: dict | None = None) -> Config:
    config = from_dict(copy.deepcopy(data if data is not None else saved.config), f"{path} (its config)",
                       base_dir=saved.base_dir)
    section = config.data.get("data")
    if isinstance(section, dict):  # where data is and where it comes from are the local machine's to say
        for key in UNTRUSTED:
            section.pop(key, None)
    config.data.setdefault("name", path.stem)
    check_top_level(config)
    if saved.inputs.vocab is not None and isinstance(section, dict):
        # the ids mean what they meant in training, whatever the text file holds now
        section["vocab"] = saved.inputs.vocab
    return config


def trained_experiment(path: str | Path, overrides: list[str], through: str | None = None) -> Experiment:
    """The experiment of a config that stands for a trained model; ConfigError unless its model.weights gives
    every layer with parameters its arrays (one left to its initializers would be judged untrained), or every
    one up to the layer named `through`."""
    config = load_config(path, overrides)
    if weights_spec(config) is None:
        raise config.error(("model",), "this config names no trained weights: give a checkpoint of a run, or "
                                       "model.weights (an .npz from nnctl export or nnctl convert)")
    exp = build(config)
    used = exp.model.layers[:exp.model.layer_index(through) + 1] if through else exp.model.layers
    untrained = [layer.name for layer in used if layer.params and layer.name not in exp.model.loaded]
    if untrained:
        whose = "its" if len(untrained) == 1 else "their"
        raise config.error(("model", "weights"), f"leaves {', '.join(untrained)} with {whose} initial, untrained "
                                                 "weights (a start for training); give a checkpoint of the run that "
                                                 "trained them, or an .npz with every layer's arrays (nnctl export)")
    return exp


def _check_classes(recipe: InputRecipe, model: Model, path: Path) -> None:
    """CheckpointError when the classes the checkpoint says its data has are not what its model outputs: one
    output per class, or a single one (a sigmoid's P(class 1))."""
    outputs = model.output_shape[-1] if model.output_shape else 1
    if recipe.num_classes is not None and outputs not in (1, recipe.num_classes):
        raise CheckpointError(f"{path}: its 'inputs.num_classes' is {recipe.num_classes}, but its model has "
                              f"{outputs} outputs per sample (one per class)")


def load_weights(model: Model, saved: Checkpoint, path: Path) -> None:
    """The checkpoint's arrays copied into `model`; CheckpointError naming the first name or shape that differs."""
    try:
        model.load_state_dict(saved.model)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its weights do not fit the model its config builds: {exc}") from None
