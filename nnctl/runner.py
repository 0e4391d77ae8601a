"""The training loop: batches, steps, epoch-end evaluation, checkpoints, clean stops and exact resumes."""

import contextlib
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import __version__, checkpoint
from nnctl.checkpoint import Checkpoint
from nnctl.config import Config
from nnctl.console import format_value, note_terminated, stdout_closed, why_stopped
from nnctl.data import Split
from nnctl.errors import CheckpointError, NnctlError, TrainingError
from nnctl.experiment import Experiment, build, check_reads_no_targets, check_trains
from nnctl.metrics import MetricSums, evaluate
from nnctl.outputs import REFUSALS, replacing
from nnctl.resume import check_course, check_own_run, init_weights, own_run_of, resume_source, run_ended
from nnctl.run_files import (
    Checkpoints,
    MetricFiles,
    Monitor,
    Progress,
    RunLock,
    check_run_files,
    leftovers,
    new_run_dir,
    write_summary,
)
from nnctl.tensorboard import TensorBoard
from nnctl.tracking import MLflow
from nnctl.trained import Trained
from nnctl.yaml_loader import dump_yaml


class Runner:
    """Trains one experiment into one run directory."""

    def __init__(self, exp: Experiment, run_dir: Path, quiet: bool = False, lock: RunLock | None = None):
        self.exp, self.run_dir = exp, run_dir
        self.lock = lock or RunLock(run_dir)
        self.files = MetricFiles(run_dir, self._columns())
        self.checkpoints = Checkpoints(run_dir)
        self.tensorboard = TensorBoard(run_dir) if exp.settings.tensorboard else None
        self.tracker: MLflow | None = None  # opened last, by _track, once nothing can refuse the run
        self.progress = Progress(run_dir / "train.log", quiet)
        es = exp.settings.early_stopping
        self.monitor = Monitor(exp.monitored, exp.monitor_mode, es.min_delta if es else 0.0)
        seed = exp.seed
        self.data_rng = np.random.default_rng([seed, 1])
        self.dropout_rng = np.random.default_rng([seed, 2])
        exp.model.set_rng(self.dropout_rng)
        self.epoch = self.batch = self.step = 0
        self.order: np.ndarray | None = None
        self.sums = self._sums()
        self.history: list[dict[str, Any]] = []
        self.elapsed_before = 0.0
        self.stop_requested = False
        self.on_epoch: Callable[[dict[str, Any]], None] | None = None
        """Called with each epoch's row once its metrics, last.pkl and summary are written (by a sweep engine)."""

    # -- set-up --------------------------------------------------------------------------------------------

    @classmethod
    def start(cls, config: Config, runs_dir: Path, quiet: bool = False, init_from: Path | None = None,
              sweep: str | None = None) -> "Runner":
        """A fresh run: builds the experiment (its model from the weights of the checkpoint `init_from`, checked by
        name and shape), then makes runs/<name>-<time>/ with the resolved config; `sweep`: the sweep it is a member
        of (its MLflow experiment)."""
        exp = build(config, weights=init_from is None)  # --init-from supplies every array, model.weights none
        check_trains(exp)
        if init_from is not None:
            init_weights(exp.model, checkpoint.load(init_from), Path(init_from), config.source)
        TensorBoard.check(exp.config)
        MLflow.check(exp.config)
        run_dir = new_run_dir(runs_dir, exp.config.data["name"])
        try:
            runner = cls(exp, run_dir, quiet)
            for note in exp.source.notes:
                runner.progress.say(note)
            for warning in exp.source.warnings:
                runner.progress.warn(warning)
            if exp.weights:
                runner.progress.say(exp.weights.describe())
            runner._write_config()
            runner.files.rewrite([])
            runner._track(True, sweep)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)  # made just now, nothing trained in it: not left half made
            raise
        return runner

    @classmethod
    def resume(cls, path: Path, overrides: list[str], runs_dir: Path, quiet: bool = False,
               sweep: str | None = None) -> "Runner":
        """Continues exactly where a checkpoint stopped: a run's last.pkl in its own run directory; any other
        checkpoint (best.pkl, a copy) in a new one under `runs_dir`, so no later metrics are overwritten."""
        path = resume_source(Path(path))
        own_run = own_run_of(path)
        lock = RunLock(own_run) if own_run else None  # before anything in the folder is read to be checked
        if own_run:
            check_run_files(own_run)
        trained = Trained.load(path)
        assert trained.saved is not None, "Trained.load keeps its checkpoint"
        if own_run:
            check_own_run(trained.saved, own_run, path)
        config = trained.overridden(overrides)
        check_course(trained.saved, config.data, path)
        check_reads_no_targets(config)  # a run made before train refused such a model
        exp = trained.experiment(overrides)
        TensorBoard.check(exp.config)
        MLflow.check(exp.config)
        if own_run:  # what a kill left half-written
            for leftover in leftovers(own_run):
                leftover.unlink(missing_ok=True)
        run_dir = own_run or new_run_dir(runs_dir, exp.config.data["name"])
        runner = cls(exp, run_dir, quiet, lock)
        try:
            runner._restore(trained.saved, path, finish=own_run is not None and not run_ended(own_run))
        except NnctlError:
            if not own_run:  # the new folder was made for this resume only
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        runner._write_config()
        runner.files.rewrite(runner.history)
        runner._track(not own_run, sweep)
        for sink in (runner.tensorboard, runner.tracker):  # turned on at this resume: the rows before it too
            if sink and sink.fresh:
                sink.extend(runner.history)
        return runner

    def _track(self, fresh: bool, sweep: str | None) -> None:
        """Starts (or reopens) the run's MLflow run, if tracked, once every check that refuses a run has passed;
        a `fresh` run directory, made for this run only, is removed when MLflow cannot start."""
        if self.exp.settings.tracking != "mlflow":
            return
        try:
            self.tracker = MLflow(self.exp.config, self.run_dir, self.run_dir.parent, self.progress.warn, sweep)
        except NnctlError:
            if fresh:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _restore(self, saved: Checkpoint, path: Path, finish: bool) -> None:
        """Takes up the checkpoint's state; one whose budget is spent is refused, unless `finish` (its own run has
        not ended): stopped after its last epoch but before its test evaluation, the run is then finished."""
        self._take_up(saved, path)
        self._check_position(path)
        if not finish:
            self._check_budget(path)

    def _take_up(self, saved: Checkpoint, path: Path) -> None:
        """The optimizer, generators, position, history and monitor as the checkpoint left them; CheckpointError
        where they do not fit this config."""
        self._set_generators(saved.rng, path)
        try:
            self.exp.optimizer.load_state_dict(saved.optimizer)
            progress = saved.progress
            self.epoch, self.batch, self.step = progress["epoch"], progress["batch"], progress["step"]
            self.exp.optimizer.lr = progress["lr"]
            self.order, self.sums = progress["order"], self._sums(progress["sums"])
            self.history = list(saved.history)
            self.monitor.load(saved.monitor)
            self.elapsed_before = saved.elapsed
            self.exp.schedule.load_state_dict(progress.get("schedule", {}))
        except (KeyError, ValueError, TypeError, IndexError, OverflowError) as exc:
            raise CheckpointError(f"{path}: cannot resume from it with this config: {exc}") from None

    def _set_generators(self, states: dict[str, Any], path: Path) -> None:
        """The data and dropout generators as the checkpoint left them; CheckpointError naming a state NumPy
        refuses (a count past 128 bits, a negative one, text where a number goes)."""
        for name, rng in (("data", self.data_rng), ("dropout", self.dropout_rng)):
            try:
                rng.bit_generator.state = states[name]
            except (KeyError, ValueError, TypeError, OverflowError) as exc:
                raise CheckpointError(f"{path}: its 'rng.{name}' is not a state of NumPy's "
                                      f"{type(rng.bit_generator).__name__} generator ({exc})") from None

    def _check_position(self, path: Path) -> None:
        """CheckpointError where the batch and sample order taken up do not fit this run's training split."""
        n, (_, batches) = len(self.exp.data.train), self._batching()
        order = self.order
        if self.batch > batches or (order is not None and not _permutation(order, n)) \
                or (self.batch and self.exp.data.shuffle and order is None):
            raise CheckpointError(f"{path}: its position (epoch {self.epoch + 1}, batch {self.batch}, an order of "
                                  f"{'no' if order is None else len(order)} samples) does not fit {n} training "
                                  f"samples in {batches} batches, each sample once")

    def _check_budget(self, path: Path) -> None:
        """NnctlError where the run already spent its budget, naming the override that trains it longer."""
        if not self._done():
            return
        steps = self.exp.settings.steps
        if steps:
            raise NnctlError(f"{path}: the run already took {self.step} of {steps} steps; to train longer, add an "
                             f"override such as train.steps={self.step + 1000}")
        raise NnctlError(f"{path}: the run already trained {self.epoch} of {self.exp.settings.epochs} epochs; "
                         f"to train longer, add an override such as train.epochs={self.epoch + 5}")

    def _sums(self, sums: dict[str, float] | None = None) -> MetricSums:
        return MetricSums(self.exp.metrics, sums, penalty=bool(self.exp.decay))

    def _columns(self) -> list[str]:
        metrics = ["loss", *self.exp.metrics]
        val = [f"val_{m}" for m in metrics] if self.exp.data.val is not None else []
        penalty = ["penalty"] if self.exp.decay else []
        return ["kind", "epoch", "step", "lr", metrics[0], *penalty, *metrics[1:], *val, "time_s"]

    def _write_config(self) -> None:
        header = (f"# resolved config of this run (overrides applied); nnctl {__version__}\n"
                  f"# relative data paths are relative to {self.exp.config.base_dir}\n")
        text = dump_yaml(self.exp.config.data)
        with replacing(self.run_dir / "config.yaml", "the run's config") as f:
            f.write((header + text).encode())

    # -- the loop ------------------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Trains to the configured epoch count, or until early stopping or Ctrl-C; returns the summary (and ends
        the MLflow run, if any, with the checkpoints as artifacts)."""
        try:
            summary = self._fit()
        except BaseException as exc:
            if self.tracker:
                self.tracker.close({"status": "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"},
                                   self.run_dir)
            self.lock.release()
            raise
        if self.tracker:
            self.tracker.close(summary, self.run_dir)
        self.lock.release()
        return summary

    def _fit(self) -> dict[str, Any]:
        """Trains, then tests; the summary says how it ended, also when the run's files cannot be written."""
        self.started = time.perf_counter()
        try:
            self._write_summary("running")
            return self._end(self._train())
        except TrainingError as exc:
            with contextlib.suppress(NnctlError):  # the summary itself may be what cannot be written
                self._write_summary("failed", error=str(exc))
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in REFUSALS:  # a full disk, a quota: the user's to fix
                refused = TrainingError(f"{exc.filename or self.run_dir}: cannot write the run's files: "
                                        f"{exc.strerror or exc}; the last checkpoint written whole is kept")
                with contextlib.suppress(NnctlError):  # the summary may not fit either
                    self._write_summary("failed", error=str(refused))
                raise refused from None
            self._write_summary("failed", error=f"internal error: {type(exc).__name__}: {exc}")  # a bug in nnctl
            raise
        except KeyboardInterrupt:
            self._write_summary("stopped", error="interrupted at once by a second Ctrl-C; last.pkl holds the "
                                                 "end of the last finished epoch")
            raise

    def _train(self) -> str:
        """The epochs, with Ctrl-C and SIGTERM asking for a stop after the current step; how they ended: finished,
        stopped or early_stopped."""
        previous = _catch_stops(self)
        try:
            if self.step == 0 and self.exp.settings.eval_every_steps:
                self._evaluate_at_step()  # the curves start from the untrained model
            while not self._done():
                if self._run_epoch():
                    self._check_finite(f"at epoch {self.epoch + 1}, batch {self.batch}")
                    return "stopped"
                if self._end_epoch():
                    return "early_stopped"
            return "finished"
        finally:
            _restore_handlers(previous)
            if self.tensorboard:
                self.tensorboard.close()

    def _end(self, status: str) -> dict[str, Any]:
        """A stopped run's last.pkl and resume command, or an ended run's test metrics; the summary either way."""
        if status == "stopped":
            self.checkpoints.save_last(self._payload())
            self.progress.say(f"{why_stopped()}stopped at epoch {self.epoch + 1}, batch {self.batch}. "
                              f"Resume with: nnctl train --resume {shlex.quote(str(self.checkpoints.last))}")
            return self._write_summary(status)
        es = self.exp.settings.early_stopping
        restored = None
        if status == "early_stopped" and es and es.restore_best and self.checkpoints.best.exists():
            best = checkpoint.load(self.checkpoints.best)
            self.exp.model.load_state_dict(best.model)
            restored = best.progress["epoch"]
        test, tested = self._test_metrics(restored)
        return self._write_summary(status, test=test, tested=tested)

    def _run_epoch(self) -> bool:
        """Runs the rest of the current epoch's batches; True if Ctrl-C asked to stop."""
        data, settings = self.exp.data.train, self.exp.settings
        n = len(data)
        size, batches = self._batching()
        if self.batch == 0:
            self.order = self.data_rng.permutation(n) if self.exp.data.shuffle else None
            self.sums = self._sums()
        with self.progress.bar(batches, self.batch, self.epoch + 1, math.ceil(self._epochs())) as bar:
            numbers = range(self.batch, batches)
            rows = (slice(b * size, (b + 1) * size) if self.order is None else self.order[b * size:(b + 1) * size]
                    for b in numbers)
            for b, (x, t) in zip(numbers, data.batches(rows), strict=True):
                if settings.steps and self.step >= settings.steps:
                    break  # the budget ends mid-epoch: this epoch ends here (also when resumed right there)
                if self.exp.data.augment:
                    x = self.exp.data.augment(x, self.data_rng)
                self._train_step(x, t, batches)
                self.batch = b + 1
                self._keep_step()
                bar.update()
                if self.stop_requested or stdout_closed():  # Ctrl-C, or `nnctl train ... | head` has read enough
                    return True
        return False

    def _done(self) -> bool:
        """Whether the budget is spent: train.steps optimizer steps and the epoch they end in when set, else
        train.epochs epochs."""
        steps = self.exp.settings.steps
        return self.step >= steps and self.batch == 0 if steps else self.epoch >= self.exp.settings.epochs

    def _epochs(self) -> float:
        """The run's length in epochs (fractional under train.steps), for schedules and progress lines."""
        steps = self.exp.settings.steps
        return steps / self._batching()[1] if steps else self.exp.settings.epochs

    def _batching(self) -> tuple[int, int]:
        """The batch size and the number of batches in an epoch."""
        n = len(self.exp.data.train)
        size = self.exp.settings.batch_for(n)
        return size, math.ceil(n / size)

    def _train_step(self, x: np.ndarray, t: np.ndarray, batches: int) -> None:
        exp = self.exp
        exp.schedule.set_lr(exp.optimizer, self.step, batches, self._epochs())
        y = exp.model.forward(x, training=True)
        value = exp.loss.train_forward(y, t)  # label smoothing in training only
        penalty = exp.decay.penalty() if exp.decay else 0.0
        if not math.isfinite(value + penalty):
            raise self._diverged(f"the loss became {value + penalty} at epoch {self.epoch + 1}, step {self.step + 1}")
        self.sums.add(exp.loss, value, y, t, penalty)
        exp.model.backward(exp.loss.backward())
        if exp.decay:
            exp.decay.add_grads()
        exp.optimizer.step()
        self.step += 1
        every = exp.settings.log_every_steps
        if every and self.step % every == 0:
            self._record(self._row("step", {"loss": value, **({"penalty": penalty} if exp.decay else {})}))
        if exp.settings.eval_every_steps and self.step % exp.settings.eval_every_steps == 0:
            self._evaluate_at_step()

    def _evaluate_at_step(self) -> None:
        """A row of kind `eval`: the validation metrics at this step (train.eval_every_steps)."""
        val = self.exp.data.val
        assert val is not None  # build refuses eval_every_steps without a validation split
        self._record(self._row("eval", self._evaluate(val, "val_")))

    def _end_epoch(self) -> bool:
        """Metrics, checkpoints and the epoch line; True when early stopping says stop."""
        self.epoch, self.batch, self.order = self.epoch + 1, 0, None
        row = self._epoch_row()
        self._record(row)
        self._check_finite(f"at the end of epoch {self.epoch}")
        value = row.get(self.monitor.name)
        improved = isinstance(value, float | int) and math.isfinite(value) and self.monitor.update(value)
        if self.monitor.name in row:
            self.exp.schedule.observe(row[self.monitor.name], self.monitor.mode)
        self._save_checkpoints(improved)
        self.progress.epoch(row, math.ceil(self._epochs()))
        self._write_summary("running")  # the heartbeat that tells `nnctl runs` this process is alive, and its epochs
        if self.on_epoch:
            self.on_epoch(row)
        return self._early_stopped()

    def _epoch_row(self) -> dict[str, Any]:
        """The epoch's training metrics, and its validation metrics every train.eval_every epochs and at the end."""
        values, val = self.sums.result(), self.exp.data.val
        if val is not None and (self.epoch % self.exp.settings.eval_every == 0 or self._done()):
            values.update(self._evaluate(val, "val_"))
        return self._row("epoch", values)

    def _row(self, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        """A metric row of `kind` (epoch, step or eval) holding `values`, at this point of training."""
        epoch = self.epoch if kind == "epoch" else self.epoch + 1  # the epoch just ended, or the one under way
        return {"kind": kind, "epoch": epoch, "step": self.step, "lr": self.exp.optimizer.lr, **values,
                "time_s": round(self._elapsed(), 3)}

    def _save_checkpoints(self, improved: bool) -> None:
        """last.pkl, best.pkl when the monitored metric `improved`, and epoch-NNNN.pkl every train.keep_every."""
        payload = self._payload()
        self.checkpoints.save_last(payload)
        if improved:
            self.checkpoints.save_best(payload)
        keep_every = self.exp.settings.keep_every
        if keep_every and self.epoch % keep_every == 0:
            self.checkpoints.save_kept(payload, f"epoch-{self.epoch:04d}")

    def _keep_step(self) -> None:
        """checkpoints/step-NNNNNNNN.pkl every train.keep_every_steps optimizer steps, where the weights are finite."""
        every = self.exp.settings.keep_every_steps
        if every and self.step % every == 0:
            self._check_finite(f"at step {self.step}")
            self.checkpoints.save_kept(self._payload(), f"step-{self.step:08d}")

    def _early_stopped(self) -> bool:
        """Whether the monitored metric has not improved for train.early_stopping.patience evaluations (said so)."""
        es = self.exp.settings.early_stopping
        if not (es and self.monitor.wait >= es.patience):
            return False
        by = f" by more than {es.min_delta:g}" if es.min_delta else ""
        self.progress.say(f"early stopping: {self.monitor.name} has not improved{by} for {es.patience} "
                          f"evaluations (best {format_value(self.monitor.best)})")
        return True

    def _check_finite(self, when: str) -> None:
        """TrainingError if a parameter is NaN or infinite: such weights are never saved as last or best."""
        bad = [f"{layer.name}.{key}" for layer in self.exp.model.layers for key, value in layer.params.items()
               if not np.isfinite(value).all()]
        if bad:
            raise self._diverged(f"the parameters {', '.join(bad)} became NaN or infinite {when} (they were not saved)")

    def _diverged(self, what: str) -> TrainingError:
        """The error for a run whose loss or parameters stopped being finite: `what` happened, and what to do."""
        kept = (f"The last good checkpoint is {self.checkpoints.last}. " if self.checkpoints.last.exists()
                else "No epoch had finished, so no checkpoint was written. ")
        return TrainingError(f"{what}; training stopped. {kept}Try a smaller optimizer.lr (now "
                             f"{self.exp.optimizer.base_lr:g}) or set optimizer.clip_norm.")

    def _test_metrics(self, restored: int | None) -> tuple[dict[str, float], dict[str, Any]] | tuple[None, None]:
        """The test split's metrics of best.pkl's weights (train.test_on: best, when there is one) or of the
        final ones (those of epoch `restored` where early stopping restored the best); and which, of what epoch."""
        test = self.exp.data.test
        if test is None:
            return None, None
        tested, epoch = ("last", self.epoch) if restored is None else ("best", restored)
        if self.exp.settings.test_on == "best" and self.checkpoints.best.exists():
            saved = checkpoint.load(self.checkpoints.best)
            self.exp.model.load_state_dict(saved.model)
            tested, epoch = "best", saved.progress["epoch"]
        metrics = self._evaluate(test, "test_")
        self.progress.say(f"test ({tested} weights, epoch {epoch})  "
                          + "  ".join(f"{k} {format_value(v)}" for k, v in metrics.items()))
        return metrics, {"weights": tested, "epoch": epoch}

    def _evaluate(self, split: Split, prefix: str) -> dict[str, float]:
        """The loss and metrics of the model on `split`, named with `prefix` (val_, test_)."""
        exp = self.exp
        return evaluate(exp.model, exp.loss, split.x, split.y, exp.metrics, exp.settings.eval_batch_size, prefix=prefix)

    # -- what is written -----------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def _payload(self) -> Checkpoint:
        exp = self.exp
        inputs = exp.input_recipe()
        return Checkpoint(
            config=exp.config.data, base_dir=str(exp.config.base_dir), model=exp.model.state_dict(),
            optimizer=exp.optimizer.state_dict(),
            rng={"data": self.data_rng.bit_generator.state, "dropout": self.dropout_rng.bit_generator.state},
            progress={"epoch": self.epoch, "batch": self.batch, "step": self.step, "lr": self.exp.optimizer.lr,
                      "order": None if self.order is None else self.order.copy(), "sums": self.sums.totals(),
                      "schedule": exp.schedule.state_dict()},
            history=list(self.history), monitor=self.monitor.state(), elapsed=self._elapsed(), inputs=inputs)

    def _record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        self.files.append(row)
        if self.tensorboard:
            self.tensorboard.append(row)
        if self.tracker:
            self.tracker.append(row)

    def _write_summary(self, status: str, test: dict | None = None, error: str | None = None,
                       tested: dict | None = None) -> dict[str, Any]:
        epochs = [row for row in self.history if row["kind"] == "epoch"]
        summary = {
            "name": self.exp.config.data["name"], "run_dir": str(self.run_dir), "status": status,
            "epochs": self.epoch, "steps": self.step, "wall_time_s": round(self._elapsed(), 3),
            "final": epochs[-1] if epochs else None,
            "best": {"monitor": self.monitor.name, "mode": self.monitor.mode, "value": self.monitor.best},
            "test": test, "test_on": tested, "error": error, "seed": self.exp.seed,
            "num_params": self.exp.model.num_params, "frozen_params": self.exp.model.num_frozen,
            "weights_from": self.exp.model.loaded, "pid": os.getpid(), "host": socket.gethostname(),
            "heartbeat": time.time(),
            "versions": {"nnctl": __version__, "numpy": np.__version__, "python": platform.python_version()},
        }
        write_summary(self.run_dir, summary)
        return summary


def _catch_stops(runner: Runner) -> dict[int, Any]:
    """A first Ctrl-C or SIGTERM asks the loop to stop after the current step; a second Ctrl-C interrupts at once
    (a second SIGTERM changes nothing: a sweep passes its own on to its members). Returns the handlers it replaced
    (none off the main thread, where signals cannot be caught)."""

    def handler(signum, frame):
        if runner.stop_requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        runner.stop_requested = True
        if signum == signal.SIGTERM:
            note_terminated()
            runner.progress.say("\nterminated (SIGTERM): stopping after this step")
        else:
            runner.progress.say("\nstopping after this step (Ctrl-C again to abort at once)")

    try:
        return {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave the signals alone
        return {}


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _permutation(order: np.ndarray, n: int) -> bool:
    """Whether `order` holds each of the sample numbers 0 to n - 1 once, as an epoch's shuffle does."""
    return len(order) == n and bool(np.array_equal(np.sort(order), np.arange(n)))
