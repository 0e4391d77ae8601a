"""Everything a config builds: data, model, loss, optimizer, schedule and training settings."""

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nnctl.backend import resolve_dtype, to_device, to_host
from nnctl.builder import build_model, layer_specs
from nnctl.checkpoint import InputRecipe
from nnctl.config import Config
from nnctl.data import DATASETS, Dataset, DatasetSource
from nnctl.data.text import Text, class_labels
from nnctl.errors import KeyValueError, NnctlError
from nnctl.layers import LAYERS, Layer
from nnctl.layers.activations import Activation
from nnctl.layers.recurrent import Recurrent
from nnctl.limits import too_big
from nnctl.losses import LOSSES, BinaryCrossEntropy, Decay, Loss
from nnctl.metrics import (
    LOWER_IS_BETTER,
    METRICS,
    TOP_K,
    confusion_matrix,
    is_metric,
    macro_f1,
    per_class,
    predict,
    scores,
    target_labels,
)
from nnctl.model import Model
from nnctl.optim import OPTIMIZERS, Optimizer
from nnctl.schedules import SCHEDULES, Schedule
from nnctl.schema import Count, NonNegative, construct, did_you_mean
from nnctl.weights import Loaded, load_into


class TrainSettings:
    """The `train:` section; its constructor is the section's schema."""

    def __init__(self, epochs: Count = 10, batch_size: Count | Literal["full"] = 32, eval_every: Count = 1,
                 metrics: list[str] | None = None, monitor: str | None = None,
                 mode: Literal["auto", "min", "max"] = "auto", early_stopping: dict | None = None,
                 log_every_steps: Count | None = None, eval_batch_size: Count = 256, tensorboard: bool = False,
                 test_on: Literal["best", "last"] = "best", tracking: Literal["mlflow"] | None = None,
                 keep_every: Count | None = None, steps: Count | None = None, eval_every_steps: Count | None = None,
                 keep_every_steps: Count | None = None):
        self.epochs, self.batch_size, self.eval_every = epochs, batch_size, eval_every
        self.metrics, self.monitor, self.mode = metrics, monitor, mode
        self.early_stopping = typing.cast("EarlyStopping | None", early_stopping)  # train_settings built the mapping
        self.log_every_steps, self.eval_batch_size = log_every_steps, eval_batch_size
        self.tensorboard, self.test_on, self.tracking, self.keep_every = tensorboard, test_on, tracking, keep_every
        self.steps, self.eval_every_steps, self.keep_every_steps = steps, eval_every_steps, keep_every_steps
        """`steps`, when set, is the run's budget in optimizer steps instead of `epochs`."""

    def batch_for(self, n: int) -> int:
        """The batch size over n samples: batch_size, at most n; all n for 'full'."""
        return min(self.batch_size, n) if isinstance(self.batch_size, int) else n


class EarlyStopping:
    """`train.early_stopping`: stop when `train.monitor` has not improved for `patience` evaluations."""

    def __init__(self, patience: Count = 5, min_delta: NonNegative = 0.0, restore_best: bool = True):
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best


@dataclass
class Experiment:
    """The built pieces of one config."""

    config: Config
    dtype: type
    data: Dataset
    model: Model
    loss: Loss
    decay: Decay
    optimizer: Optimizer
    schedule: Schedule
    settings: TrainSettings
    metrics: list[str]
    monitored: str
    """The metric train.monitor resolves to (val_loss where there is validation, else loss, by default)."""
    monitor_mode: str
    """min or max: how train.mode resolves for it."""
    source: DatasetSource
    """What read the data; it prepares new inputs (predict) as it prepared the training samples."""
    weights: Loaded | None = None
    """What `model.weights` loaded, when the config names a file."""

    def input_recipe(self) -> InputRecipe:
        """What prepares new inputs as this experiment's training data was (a checkpoint keeps it)."""
        return InputRecipe(self.data.input_shape, self.source.sample_shape, self.data.num_classes, self.data.vocab,
                           self.source.channel_stats, self.source.class_names)

    @property
    def seed(self) -> int:
        return self.config.data["seed"]


def _check_target_values(config: Config, loss: Loss, data: Dataset) -> None:
    """Probabilities for a cross-entropy: its float targets (one-hot or soft rows, 0/1 columns) in [0, 1]."""
    if loss.applies is None:
        return
    for name in ("train", "val", "test"):
        split = data.split(name)
        if split is not None and split.y.dtype.kind == "f" and len(split.y) and not (
                split.y.min() >= 0 and split.y.max() <= 1):
            raise config.error(("loss",), f"{loss.registered_name} reads targets as probabilities in [0, 1], but "
                                          f"the {name} targets run from {split.y.min():g} to {split.y.max():g}"
                                          + float_labels_hint(data))


def _check_outputs(config: Config, loss: Loss, model: Model, data: Dataset, source: DatasetSource) -> None:
    """A ConfigError at the last layer where its outputs do not fit the loss and targets, or end in the activation
    the loss applies itself; at the loss where it fits one output to class labels past 0 and 1."""
    last = ("model", "layers", len(model.layers) - 1)
    labels = _labels_for_values(loss, data)
    try:
        loss.check(model.output_shape, data.train.y.shape[1:], data.num_classes)
    except ValueError as exc:
        hint = (f"; {loss.registered_name} compares the outputs with the targets as values, but the targets are "
                f"integers, read as class labels ({source.labels_hint(data.num_classes)})") if labels else ""
        raise config.error(last, str(exc) + float_labels_hint(data) + hint) from None
    classes = data.num_classes or 0
    if labels and model.output_shape[-1:] == (1,) and classes > 2:
        raise config.error(("loss",), f"{loss.registered_name} fits the model's one output per sample to the "
                                      f"targets, but they are integers, read as class labels 0–{classes - 1}, "
                                      "which one output cannot tell apart (accuracy and eval's classes would be "
                                      f"read from it); {source.labels_hint(classes)}")
    if loss.applies and loss.applies == output_activation(model):
        raise config.error(last, f"the model ends in {loss.applies}, which {loss.registered_name} applies itself "
                                 f"to the model's outputs (logits); remove the final {loss.applies}")


def _labels_for_values(loss: Loss, data: Dataset) -> bool:
    """Whether a loss that compares outputs with values (mse) meets targets read as class labels (integers)."""
    return loss.applies is None and data.num_classes is not None and data.train.y.dtype.kind in "iu"


def float_labels_hint(data: Dataset) -> str:
    """A hint for an error about the targets, when they are floats of whole numbers from 0: class labels stored as
    floats, which nnctl reads as values (regression); empty otherwise."""
    y = data.train.y
    if data.num_classes is not None or y.dtype.kind != "f" or y.ndim != 1 or not (y >= 0).all() or (y % 1).any():
        return ""
    return ("; the targets are floats of whole numbers, read as values: if they are class labels, set "
            "data.targets: labels (or store them as integers: 0, not 0.0)")


def build(config: Config, weights: bool = True) -> Experiment:
    """Builds every piece of `config`, checking each against the config's lines; data is loaded here.

    The model starts from the arrays of `model.weights` when the config names a file, unless `weights` is False."""
    dtype_t = resolve_dtype(config.data["dtype"])
    settings = train_settings(config)
    source = data_source(config)
    data = load_data(config, source, dtype_t)
    rng = np.random.default_rng([config.data["seed"], 0])
    model = build_model(config, data.input_shape, dtype_t, rng)
    _check_first_layer(config, source, model)
    loss = LOSSES.build(config.data["loss"], config, ("loss",))
    _check_target_values(config, loss, data)
    data.to_device()
    loaded = load_into(model, config) if weights else None
    _check_outputs(config, loss, model, data, source)
    optimizer = OPTIMIZERS.build(config.data["optimizer"], config, ("optimizer",))
    _check_memory(config, model, settings, data, len(optimizer.slot_names))
    optimizer.bind(model.params(), model.grads(), model.lr_mults())
    schedule = SCHEDULES.build(config.spec("schedule"), config, ("schedule",))
    if settings.eval_every_steps and data.val is None:
        raise config.error(("train", "eval_every_steps"), "evaluating every N steps needs a validation split; "
                                                          "set data.validation (a fraction, a count or 'test')")
    metrics = _metrics(config, settings, data, model.output_shape)
    monitor, mode = _monitor(config, settings, data, metrics)
    return Experiment(config, dtype_t, data, model, loss, Decay(loss.l1, loss.l2, *model.decayed_arrays()),
                      optimizer, schedule, settings, metrics, monitor, mode, source, loaded)


def data_source(config: Config) -> DatasetSource:
    """The dataset source of the config's data section, its relative paths from the config's folder."""
    return DATASETS.build(config.data["data"], config, ("data",), **source_arguments(config))


def source_arguments(config: Config) -> dict[str, Any]:
    """What nnctl passes a data source itself, never read from the data section: the config's folder (relative
    paths start there) and the run's seed (a random validation split draws with it)."""
    return {"base_dir": str(config.base_dir), "run_seed": config.data.get("seed", 0)}


def load_data(config: Config, source: DatasetSource, dtype: type) -> Dataset:
    """The source's data; a value of the config that the data shows to be wrong is named at its file and line."""
    try:
        return source.load(dtype)
    except KeyValueError as exc:
        raise config.error(exc.key, exc.problem) from None


def initial_model(config: Config) -> Model:
    """The model a config builds, at initialization, for the input shape its dataset gives without reading
    its data (or reading as little as it must)."""
    source = data_source(config)
    rng = np.random.default_rng([config.data["seed"], 0])
    return build_model(config, source.input_shape(source.peek()), resolve_dtype(config.data["dtype"]), rng)


MAX_CONFUSION = 1000
"""The most classes eval shows a confusion matrix and per-class table for (a million cells)."""


def report(exp: Experiment, split: str) -> dict:
    """Loss, accuracy and error rate (or mse) and the run's other metrics, and for classifiers of up to
    MAX_CONFUSION classes (a binary cross-entropy's one output: two, per sample or per step) the class labels, the
    confusion matrix, per-class precision, recall and F1, and their macro average, on one split."""
    data = exp.data.split(split)
    if data is None:
        others = [name for name in ("test", "val", "train") if name != split and exp.data.split(name) is not None]
        raise NnctlError(f"the dataset of this experiment has no {split} split; --split {' or '.join(others)}")
    outputs, targets = predict(exp.model, data.x, exp.settings.eval_batch_size), to_device(data.y)
    num_classes = class_count(exp.data.num_classes, exp.loss, exp.model)
    metrics = list(dict.fromkeys([*(["accuracy", "error_rate"] if num_classes else ["mse"]), *exp.metrics]))
    result: dict[str, typing.Any] = {"split": split, "samples": len(data),
                                     **scores(exp.loss, outputs, targets, metrics)}
    if num_classes and num_classes <= MAX_CONFUSION:
        counts = confusion_matrix(to_host(target_labels(targets, outputs)), to_host(exp.loss.labels(outputs)),
                                  num_classes)
        labels = class_labels(exp.source.classes, exp.data.vocab or exp.source.class_names, num_classes)
        classes = per_class(counts, labels)
        result.update(classes=labels, confusion_matrix=counts.tolist(), per_class=classes,
                      macro_f1=macro_f1(counts, classes))
    return result


def class_count(num_classes: int | None, loss: Loss, model: Model) -> int | None:
    """The classes a model tells apart: the data's, or two for one binary cross-entropy output (0/1 targets, per
    sample or per step); None for a regression."""
    return num_classes or (2 if isinstance(loss, BinaryCrossEntropy) and model.output_shape[-1:] == (1,) else None)


def check_trains(exp: Experiment) -> None:
    """A ConfigError for a model that cannot learn: one with nothing to train (no parameters, or all of them
    frozen), or a language model that reads the tokens it is to predict."""
    if not exp.model.trained:
        why = ("every layer with parameters has trainable: false" if any(layer.params for layer in exp.model.layers)
               else "no layer of this model has parameters")
        raise exp.config.error(("model", "layers"), f"nothing to train: {why}")
    check_reads_no_targets(exp.config)


def check_reads_no_targets(config: Config) -> None:
    """Refuses a bidirectional recurrent layer in a model of text data: each step's target is the next step's
    input, which the layer's reversed pass reads, so the model would learn to copy it rather than predict it."""
    if not issubclass(DATASETS.split(config.data["data"], config, ("data",))[0], Text):
        return
    for path, cls, kwargs in layer_specs(config):
        if issubclass(cls, Recurrent) and kwargs.get("bidirectional"):
            raise config.error(
                (*path, "bidirectional"),
                "data.type text trains every step to predict the next token, which this layer's reversed pass "
                "reads from the steps ahead: the model would learn to copy it (a loss near 0) and generate "
                "nonsense, having never learnt to predict; use a one-way layer (bidirectional: false)")


def _check_first_layer(config: Config, source: DatasetSource, model: Model) -> None:
    """Refuses a model whose first layer does not read the indices a dataset gives (token ids, tree node tables)."""
    if source.indices and model.layers and not model.layers[0].takes_indices:
        readers = " or ".join(name for name in LAYERS if LAYERS.get(name).takes_indices)
        raise config.error(("model", "layers", 0), f"data.type {source.registered_name} gives indices (token ids or "
                                                   f"tree node tables), which only a first layer of type {readers} "
                                                   f"reads; a {model.layers[0].registered_name} would take them for "
                                                   "numbers")


def output_activation(model: Model) -> str | None:
    """The name of the activation the model's outputs pass through last, if any."""
    return layer_activation(model.layers[-1])


def layer_activation(layer: Layer) -> str | None:
    """The name of the activation a layer applies last: its own `activation`, or the layer itself."""
    activation = getattr(layer, "activation", None) or layer
    return activation.registered_name if isinstance(activation, Activation) else None


def _check_memory(config: Config, model: Model, settings: TrainSettings, data: Dataset, slots: int) -> None:
    """Refuses a model whose training would need more memory than one input may take, before a step runs."""
    batch = settings.batch_for(len(data.train))
    evaluated = min(settings.eval_batch_size, max(len(s) for s in (data.train, data.val, data.test) if s is not None))
    activations, working = model.kept_values()
    need = (model.num_params * (2 + slots) + (3 * activations + working) * max(batch, evaluated)) * model.itemsize
    problem = too_big(need, "training this model (its parameters, gradients, optimizer slots and the activations "
                            f"of one {'evaluation ' if evaluated > batch else ''}batch)")
    if problem:
        raise config.error(("train", "eval_batch_size") if evaluated > batch else ("model", "layers"), problem)


def most_epochs(config: Config) -> int:
    """The most epochs a config's run trains for: its train.steps where set (an epoch takes a step at least), else
    its train.epochs (or the default)."""
    train = config.data.get("train") or {}
    return train.get("steps") or train.get("epochs", _DEFAULT_EPOCHS)


def trained_through(config: Config, epochs: list[dict[str, typing.Any]]) -> bool:
    """Whether a run's epoch rows reach the end its config sets: train.steps optimizer steps where set, else
    train.epochs epochs."""
    train = config.data.get("train") or {}
    if train.get("steps"):
        return bool(epochs) and epochs[-1].get("step", 0) >= train["steps"]
    return len(epochs) >= train.get("epochs", _DEFAULT_EPOCHS)


_DEFAULT_EPOCHS = inspect.signature(TrainSettings).parameters["epochs"].default


def unrecorded(config: Config, metric: str) -> str | None:
    """Why the epoch rows of `config`'s runs cannot hold `metric`, as far as the config tells without its data
    (whether a default metric is accuracy or mse needs it); None where they may."""
    bare = metric.removeprefix("val_")
    listed = config.section("train").get("metrics")
    data = config.data.get("data")
    if metric.startswith("test_"):
        return "test metrics are recorded once, after the last epoch"
    if metric != bare and not (isinstance(data, dict) and data.get("validation") is not None):
        return "its runs have no validation split (set data.validation)"
    if bare != "loss" and isinstance(listed, list) and bare not in listed:
        return f"train.metrics lists {', '.join(map(str, listed)) or 'none'}"
    if bare not in ("loss", "accuracy", "mse") and listed is None:
        return "train.metrics is not set, which records accuracy (or mse without classes)"
    return None


def train_settings(config: Config) -> TrainSettings:
    """The `train:` section checked against TrainSettings' signature, then built."""

    def early_stopping(kwargs: dict) -> dict:
        spec = kwargs.get("early_stopping")
        built = spec if spec is None else construct(EarlyStopping, spec, config, ("train", "early_stopping"),
                                                    "early_stopping")
        return {**kwargs, "early_stopping": built}

    return construct(TrainSettings, config.section("train"), config, ("train",), "the train section",
                     resolve=early_stopping)


def _metrics(config: Config, settings: TrainSettings, data: Dataset, outputs: tuple[int, ...]) -> list[str]:
    if settings.metrics is None:
        return ["accuracy"] if data.num_classes else ["mse"]
    for i, name in enumerate(settings.metrics):
        if not is_metric(str(name)):
            raise config.error(("train", "metrics", i), f"unknown metric '{name}'{did_you_mean(name, METRICS)}; "
                                                        f"known: {', '.join(METRICS)}, top_K_accuracy (such as "
                                                        "top_5_accuracy)")
        if (top := TOP_K.fullmatch(str(name))) and int(top.group(1)) >= outputs[-1]:
            one = " (a sigmoid's probability of class 1): record accuracy instead" if outputs[-1] == 1 else ""
            count = f"{outputs[-1]} output" + ("s" if outputs[-1] > 1 else "")
            raise config.error(("train", "metrics", i), f"{name} ranks the model's {count}, one per class; K must "
                                                        f"be below that, else every target is among the top K{one}")
    return [m for m in settings.metrics if m != "loss"]


def _monitor(config: Config, settings: TrainSettings, data: Dataset, metrics: list[str]) -> tuple[str, str]:
    prefix = "val_" if data.val is not None else ""
    monitor = settings.monitor or f"{prefix}loss"
    prefixes = ["", "val_"] if data.val is not None else [""]
    known = [f"{p}{m}" for p in prefixes for m in ["loss", *metrics]]
    if monitor not in known:
        raise config.error(("train", "monitor"), f"cannot monitor '{monitor}'; this run records: {', '.join(known)}")
    mode = settings.mode
    if mode == "auto":
        mode = "min" if monitor.removeprefix("val_") in LOWER_IS_BETTER else "max"
    return monitor, mode

