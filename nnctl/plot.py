"""PNG pictures of runs with matplotlib (an optional extra): learning curves, confusion matrix, filters,
activation histograms. Every figure has a fixed size in pixels (SIZES at DPI)."""

import math
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.backend import to_host
from nnctl.console import format_value, shown_label
from nnctl.errors import ConfigError, NnctlError
from nnctl.experiment import Experiment, report
from nnctl.model import Model
from nnctl.outputs import replacing
from nnctl.runs import Run, is_real

DPI = 100
SIZES = {"curves": (1200, 500), "confusion": (700, 600), "filters": (800, 800), "by_value": (800, 500)}
"""Width and height in pixels; activation histograms are 1200 wide and 300 high per row of five layers."""
INSTALL = "pip install 'nnctl[plot]'"
LARGEST = 1e300
"""The largest magnitude drawn: near float's limit (1.8e308) matplotlib's axis arithmetic overflows."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or an NnctlError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise NnctlError(f"plotting needs matplotlib, an optional extra; install it with: {INSTALL}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(size: tuple[int, int], rows: int = 1, cols: int = 1) -> tuple[Any, Any]:
    return pyplot().subplots(rows, cols, figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, squeeze=False)


def check_output(out: Path) -> None:
    """ConfigError, before any work, for an image name matplotlib cannot write."""
    kinds = pyplot().figure().canvas.get_supported_filetypes()
    pyplot().close("all")
    if out.suffix.lower().lstrip(".") not in kinds:
        raise ConfigError(f"{out}: unknown image kind '{out.suffix or out.name}'; name it *.png, *.svg or *.pdf "
                         f"(or one of: {', '.join(sorted(kinds))})")


def _save(fig: Any, out: Path) -> Path:
    try:
        with replacing(out, "the image") as f:  # never bbox_inches="tight": it changes the pixel size
            fig.savefig(f, dpi=DPI, format=out.suffix.lower().lstrip("."))
    finally:
        pyplot().close(fig)
    return out


def labels(runs: list[Run]) -> list[str]:
    """Each run's config name, or its directory name where config names repeat."""
    names = [run.config.get("name", run.name) for run in runs]
    return [name if names.count(name) == 1 else run.name for name, run in zip(names, runs, strict=True)]


def smoothed(values: list[float], factor: float) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing); factor 0 keeps the values."""
    out, average = np.empty(len(values)), 0.0
    for i, value in enumerate(values):
        average = factor * average + (1 - factor) * value
        out[i] = average / (1 - factor ** (i + 1)) if factor else value
    return out


def curves(runs: list[Run], metric: str, out: Path, smooth: float = 0.9) -> Path:
    """Left: `metric` per epoch (solid: train, dashed: validation); right, when any run recorded it per step
    (train.log_every_steps: the loss only, raw and smoothed; train.eval_every_steps: validation, dashed). Only
    finite values are drawn; a run with none is named in the legend as having nothing to plot. A `val_` metric
    is drawn as its metric: train and validation both."""
    metric = recorded_metric(runs, metric)
    by_epoch = [[_points(run.epochs(), "epoch", key) for key in (metric, f"val_{metric}")] for run in runs]
    steps = [_points(run.steps(), "step", metric) for run in runs]
    evals = [_points(run.evals(), "step", f"val_{metric}") for run in runs]
    empty = [not len(xy) and not len(ev) and not any(len(p) for p in points)
             for points, xy, ev in zip(by_epoch, steps, evals, strict=True)]
    if all(empty):
        raise NnctlError(_nothing_to_plot(runs, metric))
    fig, axes = _figure(SIZES["curves"], 1, 2 if any(len(s) for s in steps + evals) else 1)
    for i, (label, points, xy, ev, none) in enumerate(zip(labels(runs), by_epoch, steps, evals, empty,
                                                          strict=True)):
        color = f"C{i % 10}"
        _epoch_curves(axes[0][0], points, label, color, none)
        if len(xy) or len(ev):  # then there is a second, per-step, axis
            _step_curves(axes[0][1], xy, ev, label, color, smooth)
    axes[0][0].set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch (solid: train, dashed: validation)")
    axes[0][0].xaxis.get_major_locator().set_params(integer=True)
    if axes.shape[1] == 2:
        dashed = "; dashed: validation" if any(len(ev) for ev in evals) else ""
        axes[0][1].set(xlabel="step", ylabel=metric, title=f"{metric} per step (smoothed {smooth:g}{dashed})")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small" if len(runs) < 8 else "xx-small", ncol=1 if len(runs) < 12 else 2)
    fig.tight_layout()
    return _save(fig, out)


def _epoch_curves(ax: Any, points: list[np.ndarray], label: str, color: str, none: bool) -> None:
    """One run's train (solid) and validation (dashed) points per epoch, labelled once; an empty line in the
    legend saying so where the run has nothing to plot."""
    if none:
        ax.plot([], [], "-", color=color, label=f"{label}: nothing to plot")
    labelled = False
    for xy_epoch, style in zip(points, ("-", "--"), strict=True):
        if len(xy_epoch):
            ax.plot(*xy_epoch.T, style, color=color, marker="." if len(xy_epoch) <= 30 else None,
                    label=None if labelled else label)
            labelled = True


def _step_curves(ax: Any, xy: np.ndarray, ev: np.ndarray, label: str, color: str, smooth: float) -> None:
    """One run's values per step, raw (faint) and smoothed, and its validation per step (dashed)."""
    if len(xy):
        ax.plot(xy[:, 0], xy[:, 1], color=color, alpha=0.2, linewidth=0.8)
        ax.plot(xy[:, 0], smoothed(list(xy[:, 1]), smooth), color=color, label=label)
    if len(ev):
        ax.plot(ev[:, 0], ev[:, 1], "--", color=color, marker=".", label=None if len(xy) else label)


def recorded_metric(runs: list[Run], metric: str) -> str:
    """`metric` as curves and tables show it, a `val_` metric as its metric (train and validation both); NnctlError
    naming what the runs record when there are runs and none records it (or its val_ form)."""
    metric = metric.removeprefix("val_")
    recorded = {key for run in runs for row in run.history for key in row}
    if not runs or metric in recorded or f"val_{metric}" in recorded:
        return metric
    known = sorted(k for k in recorded if k not in ("kind", "epoch", "step", "lr", "time_s"))
    shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
    raise NnctlError(f"no run records the metric '{metric}'; they record: {shown or 'nothing yet'}; choose one "
                     "with --metric" + _damage_hint(runs))


def _points(rows: list[dict[str, Any]], x: str, y: str) -> np.ndarray:
    """The (x, y) pairs of the rows that hold both as drawable numbers, as an (n, 2) array of floats."""
    return np.array([(row[x], row[y]) for row in rows if drawable(row.get(x)) and drawable(row.get(y))],
                    dtype=np.float64).reshape(-1, 2)


def drawable(value: Any) -> bool:
    """A finite number (not a bool) of magnitude at most LARGEST."""
    return is_real(value) and abs(float(value)) <= LARGEST


def _damage_hint(runs: list[Run]) -> str:
    """'; RUN is damaged: what', naming the first damaged run, or ''."""
    damaged = [run for run in runs if run.damage]
    if not damaged:
        return ""
    more = f" ({len(damaged) - 1} more damaged)" if len(damaged) > 1 else ""
    return f"; {damaged[0].path} is damaged: {damaged[0].damage[0]}{more} (nnctl runs show RUN lists all)"


def _nothing_to_plot(runs: list[Run], metric: str) -> str:
    """Why no curve can be drawn: every value of `metric` is NaN, infinite or huge, or lacks its epoch or step."""
    where = str(runs[0].path) if len(runs) == 1 else f"none of the {len(runs)} runs"
    return (f"{where}: nothing to plot: no value of '{metric}' or 'val_{metric}' is a finite number (at most "
            f"{LARGEST:g} in size) with its epoch or step: NaN or infinite values mean the training diverged"
            + _damage_hint(runs))


def confusion(exp: Experiment, split: str, out: Path, title: str) -> Path:
    """The confusion matrix of the model on `split`, counts written in the cells."""
    result = report(exp, split)
    if "confusion_matrix" not in result:
        raise NnctlError(f"{title}: a confusion matrix needs a classifier; this model predicts numbers")
    counts = np.array(result["confusion_matrix"])
    labels = [shown_label(label) for label in result["classes"]]
    fig, axes = _figure(SIZES["confusion"])
    ax = axes[0][0]
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    if len(counts) <= 20:
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > counts.max() / 2 else "black")
    ax.set(xlabel="predicted class", ylabel="true class", xticks=range(len(counts)), yticks=range(len(counts)),
           xticklabels=labels, yticklabels=labels,
           title=f"{title}\non {split}: accuracy {format_value(float(result['accuracy']))} ({result['samples']} "
                 "samples)")
    fig.tight_layout()
    return _save(fig, out)


def filters(model: Model, out: Path, title: str) -> Path:
    """The first conv layer's filters (W of shape (filters, in_channels, kh, kw)) as a grid of images."""
    layer = next((layer for layer in model.layers if getattr(layer.params.get("W"), "ndim", 0) == 4), None)
    if layer is None:
        kinds = ", ".join(layer.registered_name for layer in model.layers)
        raise NnctlError(f"{title}: --filters shows the first conv layer's filters, and this model has none "
                         f"(its layers: {kinds})")
    w = to_host(layer.params["W"]).astype(np.float64)
    cols = math.ceil(math.sqrt(len(w)))
    rows = math.ceil(len(w) / cols)
    fig, axes = _figure(SIZES["filters"], rows, cols)
    for ax, f in zip(axes.flat, w, strict=False):
        f = (f - f.min()) / (np.ptp(f) or 1.0)
        ax.imshow(f.transpose(1, 2, 0) if len(f) == 3 else f.mean(axis=0), cmap=None if len(f) == 3 else "gray",
                  interpolation="nearest")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"{title}: {layer.name}, {len(w)} filters of {list(w.shape[1:])}")
    return _save(fig, out)


def activations(exp: Experiment, split: str, samples: int, out: Path, title: str) -> Path:
    """A histogram of every layer's outputs for the first `samples` inputs of `split`, in eval mode."""
    data = exp.data.split(split)
    if data is None:
        raise NnctlError(f"{title}: the dataset has no {split} split")
    x = data.x[:samples]
    n = len(exp.model.layers)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = _figure((1200, 300 * rows), rows, cols)
    for ax, layer in zip(axes.flat, exp.model.layers, strict=False):
        x = layer.forward(x, training=False)
        values = to_host(x).astype(np.float64).ravel()
        ax.hist(values, bins=30, color="C0")
        ax.set_title(f"{layer.name}: mean {values.mean():.3g}, std {values.std():.3g}", fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{title}: outputs of each layer for {len(data.x[:samples])} {split} samples")
    fig.tight_layout()
    return _save(fig, out)


def by_value(points: dict[str, list[tuple[float, float]]], key: str, metric: str, out: Path, title: str) -> Path:
    """A final metric against one swept number, one line per group of members; log x when it spans decades."""
    points = {group: [(x, y) for x, y in xy if drawable(x) and drawable(y)] for group, xy in points.items()}
    xs = [x for xy in points.values() for x, _ in xy]
    if not xs:
        raise NnctlError(f"{title}: nothing to plot: no member has a finite {key} and {metric}")
    fig, axes = _figure(SIZES["by_value"])
    ax = axes[0][0]
    for i, (group, xy) in enumerate(points.items()):
        if xy:
            ax.plot(*np.array(sorted(xy), dtype=np.float64).T, marker="o", color=f"C{i % 10}", label=group or None)
    if min(xs) > 0 and max(xs) / min(xs) >= 100:
        ax.set_xscale("log")
    ax.set(xlabel=key, ylabel=metric, title=title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, out)
