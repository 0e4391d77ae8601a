"""The rich tables the command line prints: evaluations, models, confusion matrices, gradient checks, predictions,
runs and sweeps."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from nnctl.console import format_value, shown_label
from nnctl.runs import Run, diff_record

if TYPE_CHECKING:  # the modules of the commands whose results these tables show, which import them themselves
    from nnctl.check import Finding, Timing
    from nnctl.convert import Step
    from nnctl.gradcheck import Check
    from nnctl.model import Model
    from nnctl.predict import Predictions
    from nnctl.sweep import Outcome, Sweep


class Folding(Table):
    """A rich Table whose long cells (paths, run names) fold onto more lines where the terminal is narrow, instead
    of being cut short with '…'. Its columns are never narrower than their longest word (rich would squeeze them
    and break words and numbers): where they do not fit, it drops its borders, and where even that is too wide,
    prints each row as lines of `column: value`."""

    def add_column(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for box in (self.box, None):
            table = copy.copy(self)
            table.box = box
            if fitted := table.fitted(console, options):
                yield from super(Folding, fitted).__rich_console__(console, options)
                return
        yield from self.records()

    def fitted(self, console: Console, options: ConsoleOptions) -> Folding | None:
        """This table with each column as wide as it needs, or, where the whole does not fit, as wide as its
        longest word and a share of the room left; None where even its longest words do not fit."""
        if not self.show_header:
            return self
        room = options.max_width - len(self.columns) * (self.padding[1] + self.padding[3])
        if self.box:
            room -= len(self.columns) - 1 + 2 * self.show_edge
        sizes = [[Measurement.get(console, options, cell) for cell in (column.header, *column.cells)]
                 for column in self.columns]
        lows = [max(size.minimum for size in column) for column in sizes]
        highs = [max(size.maximum for size in column) for column in sizes]
        if sum(highs) <= room:
            return self
        if sum(lows) > room:
            return None
        fitted = copy.copy(self)
        fitted.columns = [copy.copy(column) for column in self.columns]
        spare, wanted = room - sum(lows), sum(highs) - sum(lows)
        for column, low, high in zip(fitted.columns, lows, highs, strict=True):
            column.width = low + (high - low) * spare // wanted
        return fitted

    def records(self) -> Iterator[RenderableType]:
        """The title, then each row as a grid of `header: cell` lines, a blank line before each."""
        if self.title:
            yield self.title
        for row in zip(*(column.cells for column in self.columns), strict=True):
            record = Table.grid(padding=(0, 1))
            record.add_column(style="table.header")
            record.add_column(overflow="fold")
            for column, cell in zip(self.columns, row, strict=True):
                record.add_row(f"{column.header}:" if column.header else "", cell)
            yield ""
            yield record


def confusion_table(counts: np.ndarray, labels: list[int | str]) -> Table:
    """Counts of (true, predicted) classes, named by their labels, the diagonal in bold."""
    table = Folding(title="confusion matrix (rows: true class, columns: predicted)")
    table.add_column("")
    for label in labels:
        table.add_column(shown_label(label), justify="right")
    for i, row in enumerate(counts):
        table.add_row(shown_label(labels[i]),
                      *(Text(str(v), style="bold" if i == j else "") for j, v in enumerate(row)))
    return table


def eval_table(result: dict, title: str) -> Table:
    """The loss and the other metrics of an evaluation (`experiment.report`)."""
    table = Folding(title=f"{title} ({result['samples']} samples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, float | int) and key not in ("samples", "checkpoint", "split"):
            table.add_row(key, format_value(value))
    return table


def model_rows(model: Model) -> list[dict[str, Any]]:
    """Per layer: its name, type, output shape, parameter count, whether it trains (None: nothing to train; a frozen
    dropout runs as in evaluation), and where its arrays came from: model.weights ("file"), its initializers
    ("init"), or None where it has none."""
    return [{"name": layer.name, "type": layer.registered_name, "output_shape": list(shape),
             "parameters": sum(p.size for p in layer.params.values()),
             "trainable": (True if layer.params else None) if layer.trainable else False,
             "weights": ("file" if layer.name in model.loaded else "init") if layer.params or layer.state else None}
            for layer, shape in zip(model.layers, model.shapes, strict=True)]


def model_table(model: Model, name: str) -> Table:
    """One row per layer, from `model_rows`; trainable reads yes, frozen, or blank."""
    table = Folding(title=f"{name}: input {list(model.input_shape)}")
    for column in ("#", "layer", "type", "output shape", "parameters", "trainable", "weights"):
        table.add_column(column, justify="right" if column in ("#", "parameters") else "left")
    for i, row in enumerate(model_rows(model), start=1):
        table.add_row(str(i), row["name"], row["type"], str(row["output_shape"]), f"{row['parameters']:,}",
                      {True: "yes", False: "frozen", None: ""}[row["trainable"]], row["weights"] or "")
    return table


def conversion_table(steps: list[Step], arrays: dict[str, np.ndarray], title: str) -> Table:
    """One row per array nnctl convert wrote (or layer it left out): its shape, where it came from, what was done."""
    table = Folding(title=title)
    for column in ("nnctl array", "shape", "from", "layout"):
        table.add_column(column)
    for step in steps:
        table.add_row(step.target, str(list(arrays[step.target].shape)) if step.target in arrays else "",
                      step.source, step.how)
    return table


def checks_table(checks: list[Check]) -> Table:
    """One row per gradient check: tensor, shape, relative error and the verdict."""
    table = Folding(title="gradient check (float64, central differences)")
    for column in ("target", "tensor", "shape", "relative error", "result"):
        table.add_column(column, justify="right" if column == "relative error" else "left")
    for c in checks:
        note = {"rule": " (perceptron rule: backward = dy)", "zero": " (both zero up to rounding)",
                "rounding": " (small gradients: the difference is the loss's rounding at this --eps)",
                "kinks": f" ({c.kinks} {'entry' if c.kinks == 1 else 'entries'} agreed only with a smaller step: a "
                         "ReLU or max-pool kink within ±eps, or --eps too large for them)"}.get(c.kind, "")
        if c.kind == "surrogate":
            table.add_row(c.target, c.tensor, "×".join(map(str, c.shape)), "—",
                          "not compared (behind the step's perceptron rule, which is no derivative)")
            continue
        result = Text.assemble(("ok", "") if c.passed else ("FAIL", "red"), note)
        table.add_row(c.target, c.tensor, "×".join(map(str, c.shape)), f"{c.error:.2e}", result)
    return table


SHOWN_STEPS = 10
"""The most time steps of each input the predictions table shows; -o writes them all."""


def predictions_table(result: Predictions, k: int) -> Table:
    """Each input's (or each time step's) class, its probability and the top k, or the raw outputs of a
    regression."""
    table = Folding(title=f"{len(result.names)} predictions")
    table.add_column("input")
    if result.classes is None:
        return _outputs_table(table, result)
    value = "probability" if result.probabilities else "output"
    values, classes = result.steps()
    if result.per_step:
        table.add_column("step", justify="right")
    if result.tokens:
        table.add_column("token", justify="right")
        if values.shape[1] > SHOWN_STEPS:
            table.title = (f"{table.title} (the first and last {SHOWN_STEPS // 2} of {values.shape[1]} steps; "
                           "-o writes all)")
    table.add_column("class", justify="right")
    table.add_column(value, justify="right")
    table.add_column(f"top {k} (class {value})")
    from nnctl.predict import top

    order, best = top(values, k)
    for i, name in enumerate(result.names):
        for n, t in enumerate(_shown_steps(values.shape[1]) if result.per_step else [0]):
            first = name if n == 0 else ""
            if t is None:
                table.add_row(first, "…", *[""] * (len(table.columns) - 2))
                continue
            c = classes[i, t]
            ranked = "  ".join(f"{shown_label(result.label(j))} {format_value(float(v))}"
                               for j, v in zip(order[i, t], best[i, t], strict=True))
            token = [shown_label(result.tokens[i][t])] if result.tokens else []
            table.add_row(first, *([str(t)] if result.per_step else []), *token, shown_label(result.label(c)),
                          format_value(float(values[i, t, c])), ranked)
    return table


def _outputs_table(table: Table, result: Predictions) -> Table:
    """`table` with a row of raw outputs per input: a regression's predictions."""
    table.add_column("outputs", justify="right")
    for name, row in zip(result.names, result.values, strict=True):
        table.add_row(name, "  ".join(f"{v:.6g}" for v in row))
    return table


def _shown_steps(count: int) -> list[int | None]:
    """The steps the predictions table shows of `count`: all up to SHOWN_STEPS, else the first and last
    SHOWN_STEPS // 2 around a None (a '…' row)."""
    if count <= SHOWN_STEPS:
        return list(range(count))
    half = SHOWN_STEPS // 2
    return [*range(half), None, *range(count - half, count)]


def runs_table(runs: list[Run], root: Path) -> Table:
    """One row per run: where it is, when it started, its status, epochs (or, under train.steps, steps) done of
    those planned, best metric, wall time."""
    table = Folding(title=f"runs under {root}")
    for column in ("run", "started", "status", "done", "best", "wall time"):
        table.add_column(column, justify="right" if column in ("done", "wall time") else "left")
    for run in runs:
        train = run.config.get("train")
        train = train if isinstance(train, dict) else {}
        unit = "steps" if train.get("steps") else "epochs"
        planned = train.get(unit)
        done = f"{run.summary.get(unit, 0)}" + (f"/{planned}" if planned else "") + f" {unit}"
        table.add_row(str(run.path.relative_to(root)) if run.path != root else run.name,
                      f"{run.started:%Y-%m-%d %H:%M:%S}",
                      run.status + (f" (by the {run.summary['stopped_by']})" if run.summary.get("stopped_by") else ""),
                      done,
                      run.best(), f"{run.summary.get('wall_time_s', 0):.1f} s")
    return table


def sweep_table(sweep: Sweep, outcomes: list[Outcome], metric: str) -> Table:
    """One row per sweep member: status, epochs, the final metric in each split, wall time, run."""
    table = Folding(title=f"sweep {sweep.name} ({sweep.dir})")
    columns = ["member", "status", "epochs", metric, f"val_{metric}", f"test_{metric}", "wall time", "run"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("member", "status", "run") else "right")
    for o in outcomes:
        run = o.run
        final = run.final_metrics() if run else {}
        shown = o.status if o.status != "skipped" or run is None else f"done before ({run.status})"
        table.add_row(o.member.label, shown, str(run.summary.get("epochs", "")) if run else "",
                      *(format_value(final.get(k, "")) for k in columns[3:6]),
                      f"{run.summary.get('wall_time_s', 0):.1f} s" if run else "", run.name if run else "")
    return table


def run_tables(run: Run) -> list[Table]:
    """One run's summary and final metrics, then its per-epoch rows."""
    s = run.summary
    table = Folding(title=f"run {run.path}", show_header=False)
    table.add_column("key")
    table.add_column("value")
    rows = [("name", run.config.get("name")), ("started", f"{run.started:%Y-%m-%d %H:%M:%S}"), ("status", run.status),
            ("epochs", s.get("epochs")), ("steps", s.get("steps")),
            ("wall time", f"{s['wall_time_s']:.1f} s" if "wall_time_s" in s else None),  # absent: damaged
            ("seed", s.get("seed")), ("parameters", f"{s['num_params']:,}" if "num_params" in s else None),
            ("best", run.best()),
            *[(key, format_value(value)) for key, value in run.final_metrics().items()],
            ("error", s.get("error"))]
    for key, value in rows:
        if value not in (None, ""):
            table.add_row(key, str(value))
    epochs = run.epochs()
    if not epochs:
        return [table]
    history = Folding(title="per epoch")
    columns = [k for k in epochs[0] if k not in ("kind", "step")]
    for column in columns:
        history.add_column(column, justify="right")
    for row in epochs:
        history.add_row(*(format_value(row.get(column, "")) for column in columns))
    return [table, history]


def diff_tables(a: Run, b: Run) -> list[Table]:
    """The config keys that differ between two runs, then their results side by side (`diff_record`)."""
    record = diff_record(a, b)
    table = Folding(title=f"config keys that differ ({len(record['config'])})")
    for column in ("key", *record["runs"]):
        table.add_column(column)
    for key, values in record["config"].items():
        table.add_row(key, *("—" if value is None else str(value) for value in values))
    metrics = Folding(title="results")
    for column in ("metric", *record["runs"]):
        metrics.add_column(column, justify="left" if column == "metric" else "right")
    for key, values in record["results"].items():
        if key == "wall_time_s":
            metrics.add_row("wall time", *(f"{value:.1f} s" for value in values))
        elif key in ("status", "epochs"):
            metrics.add_row(key, *map(str, values))
        else:
            metrics.add_row(key, *(format_value("—" if value is None else value) for value in values))
    return [table, metrics]


def findings_table(findings: list[Finding]) -> Table:
    """One row per pre-flight check: what was checked, the verdict and what it saw."""
    table = Folding(title="pre-flight check")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for f in findings:
        result = Text("FAIL", "red") if not f.passed else Text("unsure", "yellow") if f.inconclusive else "ok"
        table.add_row(f.check, result, f.detail)
    return table


def timing_table(timings: list[Timing], batch: int) -> Table:
    """Milliseconds per layer forward and backward over one batch, and the totals."""
    table = Folding(title=f"time per layer, batch of {batch} (ms, mean of the timed passes)")
    for column in ("layer", "type", "forward", "backward"):
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for t in timings:
        table.add_row(t.layer, t.kind, f"{t.forward_ms:.3f}", f"{t.backward_ms:.3f}")
    table.add_row("total", "", f"{sum(t.forward_ms for t in timings):.3f}",
                  f"{sum(t.backward_ms for t in timings):.3f}")
    return table


def per_class_table(rows: list[dict]) -> Table:
    """Precision, recall, F1 and support of each class."""
    table = Folding(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(shown_label(row["class"]),
                      *(format_value(float(row[key])) for key in ("precision", "recall", "f1")), str(row["support"]))
    return table
