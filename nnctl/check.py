"""`nnctl check`: a pre-flight of a config before a long run: one batch forward and backward, the initial loss
against its expected value, dead or saturated units at init, overfitting a few samples, and per-layer timing."""

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnctl.backend import synchronize
from nnctl.console import format_value
from nnctl.experiment import Experiment, layer_activation
from nnctl.losses import BinaryCrossEntropy, Loss, SoftmaxCrossEntropy, as_targets
from nnctl.metrics import scores

LOSS_RANGE = (0.5, 2.0)
"""An initial loss outside these multiples of the expected one is flagged."""
DEAD_FRACTION = 0.5
"""A layer with more than this share of its units dead (relu), or of its outputs saturated, is flagged."""
LARGEST_BATCH = 1024
"""`batch_size: full` is checked and timed on at most this many samples."""
PROBE = 256
"""The initial loss and the units are looked at on this many samples (a batch of 1 would say little)."""


@dataclass
class Finding:
    """One check: its name, whether it passed, and what it saw (or what to do); `inconclusive` where it could
    not tell (a slow but falling loss when the overfitting budget ran out)."""

    check: str
    passed: bool
    detail: str
    inconclusive: bool = False


@dataclass
class Timing:
    """Mean milliseconds of one layer's forward and backward pass over one batch."""

    layer: str
    kind: str
    forward_ms: float
    backward_ms: float


def preflight(exp: Experiment, samples: int = 20, steps: int = 1000, seconds: float = 60.0) -> list[Finding]:
    """Every check but timing, in order; the model is trained by the last one (overfitting `samples`)."""
    exp.model.set_rng(np.random.default_rng([exp.seed, 2]))
    x, t = batch(exp)
    probe_x, probe_t = exp.data.train.take(slice(PROBE))
    return [*data(exp), one_batch(exp, x, t), initial_loss(exp, probe_x, probe_t), *units_at_init(exp, probe_x),
            overfit(exp, samples, steps, seconds)]


def data(exp: Experiment) -> list[Finding]:
    """What `train` would warn of in the data as loaded (failed: a validation split of one class) and note about
    it (inconclusive: inputs of raw bytes, arrays no split is read from), else the splits' sizes."""
    warnings = [Finding("data", False, warning) for warning in exp.source.warnings]
    notes = [Finding("data", True, note.removeprefix("data: "), inconclusive=True) for note in exp.source.notes]
    if warnings or notes:
        return warnings + notes
    sizes = [f"{len(split):,} {name}" for name, split in (("training", exp.data.train), ("validation", exp.data.val),
                                                          ("test", exp.data.test)) if split is not None]
    return [Finding("data", True, f"{', '.join(sizes)} samples; nothing to warn of")]


def batch(exp: Experiment) -> tuple[np.ndarray, np.ndarray]:
    """The first training batch, of the configured size."""
    size = exp.settings.batch_size
    size = LARGEST_BATCH if size == "full" else size
    return exp.data.train.take(slice(size))


def one_batch(exp: Experiment, x: np.ndarray, t: np.ndarray) -> Finding:
    """Forward and backward through the whole model: a finite loss, finite gradients, and some gradient in
    every parameter."""
    model = exp.model
    value = exp.loss.forward(model.forward(x, training=True), t)
    model.backward(exp.loss.backward())
    if not math.isfinite(value):
        return Finding("forward and backward", False, f"the loss of the first batch is {value}")
    bad = [f"{layer.name}.{key}" for layer, key in model.trained if not np.isfinite(layer.grads[key]).all()]
    if bad:
        return Finding("forward and backward", False, f"non-finite gradients in {', '.join(bad)}")
    none = [f"{layer.name}.{key}" for layer, key in model.trained if not layer.grads[key].any()]
    if none:
        return Finding("forward and backward", False, f"no gradient reaches {', '.join(none)} (all exactly zero); "
                                                      "look for dead units or a zero initialization before it")
    return Finding("forward and backward", True, f"batch of {len(x)}: loss {value:.4g}, gradients finite and "
                                                 f"non-zero in all {len(model.trained)} parameter tensors")


def expected_loss(loss: Loss, y: np.ndarray, t: np.ndarray) -> tuple[float, str] | None:
    """The loss of outputs y that say nothing (equal logits) about targets t, and its formula; None where it
    depends on the data. −Σ t·log(1/C) is ln C times each target row's sum (1.8 for 0.9/0.1 rows of ten
    classes), and class weights scale each row's term by its weight: the formula names the mean factor."""
    if isinstance(loss, SoftmaxCrossEntropy):
        classes = y.shape[-1]
        rows = as_targets(y, t)
        mass = rows.sum(axis=-1)
        whole = bool((abs(mass - 1) < 1e-6).all())  # labels, one-hot rows or soft ones that sum to 1
        if loss.class_weights is None and whole:
            return math.log(classes), f"ln {classes}"
        weights = 1.0 if loss.class_weights is None else rows @ loss.class_weights.astype(y.dtype)
        factor = float((mass * weights).mean())
        what = ("the targets' mean row sum" if loss.class_weights is None
                else "the targets' mean class weight" + ("" if whole else " times row sum"))
        return factor * math.log(classes), f"ln {classes} × {factor:.3g} ({what})"
    if isinstance(loss, BinaryCrossEntropy):
        return math.log(2), "ln 2"
    return None


def initial_loss(exp: Experiment, x: np.ndarray, t: np.ndarray) -> Finding:
    """The loss at init against the loss of outputs that say nothing: far above it, the initial
    outputs are too large (confidently wrong); far below it, the task may leak its answer."""
    y = exp.model.forward(x, training=False)
    value = exp.loss.forward(y, t)
    expected = expected_loss(exp.loss, y, t)
    if expected is None:
        return Finding("initial loss", True, f"{value:.4g} (not compared: a regression loss at init depends on the "
                                             "targets' scale, not on the model alone)")
    target, formula = expected
    ratio = value / target
    detail = f"{value:.4g}, expected about {formula} = {target:.4g} ({ratio:.3g}×)"
    if ratio > LOSS_RANGE[1]:
        last = exp.model.layers[-1].name
        return Finding("initial loss", False, f"{detail}: the initial outputs are too large; start {last} from "
                                              "smaller weights (weight_init) or check the input scaling")
    if ratio < LOSS_RANGE[0]:
        return Finding("initial loss", False, f"{detail}: suspiciously low before any training; check that the "
                                              "targets are not part of the inputs")
    return Finding("initial loss", True, detail)


def units_at_init(exp: Experiment, x: np.ndarray) -> list[Finding]:
    """Per layer ending in relu: its dead units (0 for every sample of x); in sigmoid or tanh: the share of its
    outputs saturated (sigmoid below 0.01 or above 0.99, |tanh| above 0.99). Seen as training sees them (batch
    statistics in batch norm)."""
    findings = []
    for layer in exp.model.layers:
        x = layer.forward(x, training=layer.trainable)
        kind = layer_activation(layer)
        if kind not in ("relu", "sigmoid", "tanh"):
            continue
        axis = 1 if x.ndim == 4 else -1  # channels of images, features otherwise
        units = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
        if kind == "relu":
            share = float((units <= 0).all(axis=0).mean())
            detail = f"{layer.name} (relu): {int(share * units.shape[1])} of {units.shape[1]} units dead on all " \
                     f"{len(x)} inputs"
        else:
            stuck = (units < 0.01) | (units > 0.99) if kind == "sigmoid" else np.abs(units) > 0.99
            share = float(stuck.mean())
            detail = f"{layer.name} ({kind}): {share:.0%} of its outputs saturated on {len(x)} inputs"
        if share > DEAD_FRACTION:
            findings.append(Finding("units at init", False, f"{detail}; change its weight_init or bias_init, or "
                                                            "the input scaling"))
        else:
            findings.append(Finding("units at init", True, detail))
    return findings


def overfit(exp: Experiment, samples: int, steps: int, seconds: float) -> Finding:
    """Trains on the first `samples` training samples, in the configured batches, until it predicts every one
    right (classifiers) or its loss falls below 1 % of the initial one. Out of steps, a loss that has not even
    halved fails (a model that cannot learn at all is broken); a falling one, or any out of time, is inconclusive."""
    model, loss, optimizer = exp.model, exp.loss, exp.optimizer
    x, t = exp.data.train.take(slice(samples))
    size = exp.settings.batch_for(len(x))
    classifier = loss.applies is not None or exp.data.num_classes is not None
    name = f"overfit {len(x)} samples"
    first = loss.forward(model.forward(x, training=False), t)
    deadline = time.perf_counter() + seconds
    for step in range(1, steps + 1):
        start = (step - 1) * size % len(x)
        loss.forward(model.forward(x[start:start + size], training=True), t[start:start + size])
        model.backward(loss.backward())
        optimizer.step()
        result = scores(loss, model.forward(x, training=False), t, ["accuracy"])
        if not math.isfinite(result["loss"]):
            return Finding(name, False, f"the loss became {result['loss']} at step {step}; try a smaller "
                                        "optimizer.lr")
        if (result["accuracy"] == 1.0) if classifier else result["loss"] <= 0.01 * first:
            return Finding(name, True, f"done in {step} steps (loss {first:.4g} → {result['loss']:.4g})")
        if time.perf_counter() > deadline:
            break
    reached = (f"{step} steps, " + (f"accuracy {format_value(float(result['accuracy']))}, " if classifier else "")
               + f"loss {first:.4g} → {result['loss']:.4g}")
    if result["loss"] > 0.5 * first and step == steps:
        return Finding(name, False, f"could not: the loss did not even halve ({reached}); check optimizer.lr, "
                                    "the initialization and the targets")
    if result["loss"] > 0.5 * first:
        return Finding(name, True, f"out of time before the loss halved ({reached}); give it more with --seconds",
                       inconclusive=True)
    return Finding(name, True, f"not yet overfit, but learning ({reached}); give it more with --steps or "
                               "--seconds", inconclusive=True)


def time_layers(exp: Experiment, repeats: int = 5, seconds: float = 60.0) -> list[Timing]:
    """Each layer's forward and backward over one batch, in training mode, averaged over `repeats` passes after
    one warm-up pass, or over those done within `seconds` (at least one)."""
    x, t = batch(exp)
    exp.model.set_rng(np.random.default_rng([exp.seed, 2]))
    _timed_pass(exp, x, t)
    deadline = time.perf_counter() + seconds
    passes = [_timed_pass(exp, x, t)]
    while len(passes) < repeats and time.perf_counter() < deadline:
        passes.append(_timed_pass(exp, x, t))
    forward, backward = (1e3 * np.mean([p[k] for p in passes], axis=0) for k in (0, 1))
    return [Timing(layer.name, layer.registered_name, f, b)
            for layer, f, b in zip(exp.model.layers, forward, backward, strict=True)]


def _timed_pass(exp: Experiment, x: Any, t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of each layer's forward and of its backward in one training step on (x, t)."""
    layers = exp.model.layers
    forward, backward = np.zeros(len(layers)), np.zeros(len(layers))
    y = x
    for i, layer in enumerate(layers):
        start = _now()
        y = layer.forward(y, training=layer.trainable)
        forward[i] = _now() - start
    exp.loss.forward(y, t)
    dy: Any = exp.loss.backward()
    for i in range(len(layers) - 1, exp.model.first_trained - 1, -1):  # as Model.backward does
        start = _now()
        dy = layers[i].backward(dy)
        backward[i] = _now() - start
    return forward, backward


def _now() -> float:
    """The clock, once the device has finished what was queued (else a GPU layer would time its launch only)."""
    synchronize()
    return time.perf_counter()
