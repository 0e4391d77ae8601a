"""Run tracking in MLflow (the optional `mlflow` extra): the resolved config as params, every epoch's metrics,
and the checkpoints and summary as artifacts. A local store beside the run directories (MLflow's own local
default: a SQLite file, mlflow.db, with the artifacts in mlartifacts/) unless MLFLOW_TRACKING_URI names another
store or a tracking server."""

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from nnctl.config import Config
from nnctl.errors import NnctlError

MAX_PARAM = 500
"""MLflow refuses longer parameter values; longer ones (inline data) are cut and marked."""
STATUS = {"finished": "FINISHED", "early_stopped": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}


class MLflow:
    """One MLflow run per run directory (a resumed run continues its MLflow run, whose id is in mlflow.json)."""

    def __init__(self, config: Config, run_dir: Path, runs_dir: Path):
        try:
            self._start(config, run_dir, runs_dir)
        except NnctlError:
            raise
        except Exception as exc:  # MLflow raises its own and the HTTP client's errors
            raise tracking_error(exc) from None

    def _start(self, config: Config, run_dir: Path, runs_dir: Path) -> None:
        from mlflow.tracking import MlflowClient  # optional, and slow to import: only when asked for

        local = Path(runs_dir).resolve()
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{local / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.id_file = run_dir / "mlflow.json"
        if self.id_file.exists():
            self.run_id = json.loads(self.id_file.read_text())["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = config.data["name"]
        experiment = self.client.get_experiment_by_name(name)
        artifacts = None if "MLFLOW_TRACKING_URI" in os.environ else (local / "mlartifacts" / name).as_uri()
        experiment_id = (experiment.experiment_id if experiment
                         else self.client.create_experiment(name, artifact_location=artifacts))
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name,
                                             tags={"nnctl.run_dir": str(run_dir.resolve())}).info.run_id
        self.id_file.write_text(json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}) + "\n")
        from mlflow.entities import Param

        params = [Param(key, value) for key, value in flatten(config.data).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    @staticmethod
    def check(config: Config) -> None:
        """Before a run starts: a ConfigError at `train.tracking` when MLflow is asked for and missing."""
        if config.section("train").get("tracking") == "mlflow" and importlib.util.find_spec("mlflow") is None:
            raise config.error(("train", "tracking"), "tracking in MLflow (--mlflow) needs the mlflow package: "
                                                      "pip install 'nnctl[mlflow]'")

    def append(self, row: dict[str, Any]) -> None:
        """An epoch's metrics at step = epoch (per-step rows at step = the optimizer step, prefixed step_)."""
        kind = row["kind"]
        prefix = "" if kind == "epoch" else "step_"
        for key, value in row.items():
            if key not in ("kind", "epoch", "step") and isinstance(value, int | float):
                self.client.log_metric(self.run_id, prefix + key, float(value), step=row[kind])

    def close(self, status: str, run_dir: Path) -> None:
        """The checkpoints and summary as artifacts, then the run's end status."""
        try:
            for name in ("checkpoints/best.pkl", "checkpoints/last.pkl", "summary.json", "config.yaml"):
                path = run_dir / name
                if path.exists():
                    self.client.log_artifact(self.run_id, str(path), str(Path(name).parent) if "/" in name else None)
        finally:
            self.client.set_terminated(self.run_id, STATUS.get(status, "FINISHED"))


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config data as dotted keys with string values: {'optimizer.lr': '0.001', ...}."""
    if isinstance(data, dict) and data:
        return {k: v for key, value in data.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        return {k: v for i, value in enumerate(data) for k, v in flatten(value, f"{prefix}{i}.").items()}
    text = json.dumps(data) if not isinstance(data, str) else data
    return {prefix.rstrip("."): text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 3] + "..."}


def tracking_error(exc: Exception) -> NnctlError:
    """An MLflow failure (server gone, store unwritable) as one message."""
    where = os.environ.get("MLFLOW_TRACKING_URI", "the local store")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return NnctlError(f"MLflow tracking at {where} failed: {first}; check MLFLOW_TRACKING_URI or the server, or "
                      "train without --mlflow")
