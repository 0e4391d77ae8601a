"""What `--resume` and `--init-from` check before a run goes on: the checkpoint a path stands for, whether it
continues its own run folder in place (and is that run's), whether overrides keep its course; a checkpoint's
arrays as the start of another config's model."""

import os
import shlex
from pathlib import Path
from typing import Any

from nnctl.checkpoint import Checkpoint
from nnctl.config import REQUIRED_SECTIONS
from nnctl.course import HASH_FREE, changed, course_hash, free_keys
from nnctl.errors import CheckpointError, ConfigError
from nnctl.layers import Layer
from nnctl.model import Model
from nnctl.run_files import MetricFiles
from nnctl.runs import DONE, read_config, read_summary, with_defaults


def check_course(saved: Checkpoint, config: dict[str, Any], path: Path) -> None:
    """CheckpointError for a checkpoint whose config was edited; ConfigError (a command-line mistake) when the
    overrides would make the resumed run's course another than the checkpoint's."""
    if saved.course is not None and saved.course != course_hash(saved.config, HASH_FREE):
        raise CheckpointError(f"{path}: its config does not match the run it holds (the course hash it was written "
                              "with differs); it was edited, so it is not resumed")
    free = free_keys(saved.config)
    if course_hash(config, free) != course_hash(saved.config, free) and \
            changed(with_defaults(saved.config), with_defaults(config), free):  # not only keys given their defaults
        changes = "; ".join(changed(saved.config, config, free))
        raise ConfigError(f"{path}: --resume would change the run's course: {changes}."
                          f" On resume only these may change: {', '.join(free)}. To start a "
                          f"new run from its weights with another config, use: nnctl train CONFIG --init-from "
                          f"{path}")


def init_weights(model: Model, saved: Checkpoint, path: Path, config: str) -> None:
    """--init-from: the checkpoint's arrays copied into the model of the config being trained; CheckpointError
    naming the first array that differs, and how to start from the layers that fit."""
    try:
        model.load_state_dict(saved.model)
    except (KeyError, ValueError, TypeError) as exc:
        fit = _fitting_layers(model, saved.model)
        quoted = shlex.quote(str(path))
        hint = (f"; to start from the layers that fit, run nnctl export {quoted} -o w.npz and give {config} "
                f"model.weights: {{path: w.npz, layers: [{', '.join(fit)}]}} instead of --init-from" if fit else "")
        raise CheckpointError(f"{path}: its weights do not fit the model of {config}, the config being trained: "
                              f"{exc}{hint}") from None


def _fitting_layers(model: Model, saved: dict[str, Any]) -> list[str]:
    """The model's layers with arrays whose every array the saved state holds, in the same shape."""
    def fits(layer: Layer) -> bool:
        entry = saved.get(layer.name) or {}
        mine = {**layer.params, **layer.state}
        theirs = {**entry.get("params", {}), **entry.get("state", {})}
        return mine.keys() == theirs.keys() and all(theirs[k].shape == v.shape for k, v in mine.items())

    return [layer.name for layer in model.layers if (layer.params or layer.state) and fits(layer)]


def resume_source(path: Path) -> Path:
    """The checkpoint `--resume PATH` continues: PATH, or a run folder's checkpoints/last.pkl; CheckpointError when
    that last.pkl is missing, naming the best.pkl that may be there instead and what it can be used for."""
    last = path / "checkpoints" / "last.pkl" if path.is_dir() else path
    if last.exists() or not (last.name == "last.pkl" and last.parent.name == "checkpoints"):
        return last
    best = last.with_name("best.pkl")
    quoted = shlex.quote(str(best))
    instead = (f"; its {best} can be resumed into a new run folder (nnctl train --resume {quoted}) or start a new "
               f"run of a config from its weights (nnctl train CONFIG --init-from {quoted})" if best.is_file() else "")
    raise CheckpointError(f"{last}: missing (a run writes it after every epoch), so the run in {last.parent.parent} "
                          f"cannot go on where it stopped{instead}")


def run_ended(run_dir: Path) -> bool:
    """Whether the run folder's summary.json says its run ended (finished or early stopped, test metrics written)."""
    return read_summary(run_dir, []).get("status") in DONE


def own_run_of(path: Path) -> Path | None:
    """The run folder a checkpoint continues in place: its own when it is that run's checkpoints/last.pkl, as named
    (a link to a run's last.pkl from elsewhere branches, as a copy does)."""
    path = Path(os.path.abspath(path))
    return path.parent.parent if path.name == "last.pkl" and path.parent.name == "checkpoints" else None


def check_own_run(saved: Checkpoint, run_dir: Path, path: Path) -> None:
    """CheckpointError when the run folder's config.yaml or metrics say its last.pkl is another run's (a copy put
    there), before anything in the folder is written."""
    why = _other_config(saved, run_dir) or _other_metrics(saved, run_dir)
    if why:
        raise CheckpointError(f"{path}: not this run's checkpoint: {why}. Nothing was changed. To go on from that "
                              f"checkpoint in a new run folder, copy it out of {path.parent} and resume the copy "
                              f"(nnctl train --resume COPY.pkl); to go on with this run, put its own last.pkl back")


def _other_config(saved: Checkpoint, run_dir: Path) -> str | None:
    """How the run folder's config.yaml defines another course than the checkpoint's config, or None; a missing or
    damaged config.yaml (one without a config's sections) says nothing (the resume writes it again)."""
    path, folder = run_dir / "config.yaml", read_config(run_dir, [])
    if not set(REQUIRED_SECTIONS) <= folder.keys() or course_hash(folder) == course_hash(saved.config):
        return None
    changes = changed(folder, saved.config)
    more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
    return (f"it holds a run of {saved.config.get('name')!r} whose course differs from that of {path} (a run of "
            f"{folder.get('name')!r}): {'; '.join(changes[:3])}{more}")


def _other_metrics(saved: Checkpoint, run_dir: Path) -> str | None:
    """How the epochs the checkpoint has trained differ from those the folder's metrics.jsonl records, or None; a
    missing or unreadable metrics.jsonl says nothing (the resume writes it again)."""
    files = MetricFiles(run_dir, [])
    recorded = files.recorded_epochs()
    if recorded is None:
        return None
    rows, whole = recorded
    saved_rows = [row for row in saved.history if row["kind"] == "epoch"]
    if len(rows) < len(saved_rows):
        return None if not whole else (f"it has trained {len(saved_rows)} epochs but {files.jsonl_path} records "
                                       f"{len(rows)}")
    for row, mine in zip(saved_rows, rows, strict=False):
        if any(row.get(key) != mine.get(key) for key in ("epoch", "step", "loss")):
            return (f"its epoch {row.get('epoch')} (step {row.get('step')}, loss {row.get('loss')}) is not the one "
                    f"{files.jsonl_path} records (step {mine.get('step')}, loss {mine.get('loss')})")
    return None
