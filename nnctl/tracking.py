"""Run tracking in MLflow (the optional `mlflow` extra): the resolved config as params, every epoch's metrics,
the test metrics, and the checkpoints and summary as artifacts. A local store beside the run directories
(MLflow's own local default: a SQLite file, mlflow.db, with the artifacts in mlartifacts/) unless
MLFLOW_TRACKING_URI names another store or a tracking server."""

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from nnctl.config import Config
from nnctl.errors import NnctlError
from nnctl.files import read_bytes, real_path
from nnctl.runs import row_values, row_x

MAX_PARAM = 500
"""MLflow refuses longer parameter values; longer ones (inline data) are cut and marked."""
STATUS = {"finished": "FINISHED", "early_stopped": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
"""MLflow's HTTP settings where the user set none: a few short retries in training (MLflow's own: 7 retries over
about 4 minutes)."""
DB_ATTEMPTS = 3
"""Tries to open a database store (MLflow's own: 10, over about 100 s, with a warning for each), 0.4 s apart."""
FIRST_CONTACT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
"""The first request, where the user set none of these: a server that is not there fails the run at once."""
SCHEMES = {"http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}
ACCEPTED = ("accepted: http(s)://HOST:PORT (a tracking server), sqlite:///PATH.db, postgresql://, mysql:// or "
            "mssql:// (a database), databricks[://PROFILE], file:///FOLDER{file}; or unset it for the local store "
            "RUNS_DIR/mlflow.db")


class MLflow:
    """One MLflow run per run directory (a resumed run continues its MLflow run, whose id is in mlflow.json), in
    the experiment named after the config, or after the sweep of which the run is a member (named after it).

    A store that fails once the run is under way is a warning (through `warn`), after which nothing more is sent:
    training goes on, and the run directory keeps all that MLflow missed."""

    def __init__(self, config: Config, run_dir: Path, runs_dir: Path, warn: Callable[[str], None],
                 sweep: str | None = None):
        self.warn, self.lost, self.fresh = warn, False, False
        """`fresh`: this run made the MLflow run (none was in mlflow.json): a resumed run's earlier rows go in too."""
        with translated_errors():
            self._start(config, run_dir, runs_dir, sweep)

    def _start(self, config: Config, run_dir: Path, runs_dir: Path, sweep: str | None) -> None:
        self.client, self.uri = client(runs_dir)
        self.id_file = run_dir / "mlflow.json"
        if self.id_file.exists():
            self.run_id = recorded_id(self.id_file)
            with first_contact():
                self.client.get_run(self.run_id)
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.fresh = True
        with first_contact():
            experiment_id = self._experiment(sweep or config.data["name"], runs_dir)
        tags = {"nnctl.run_dir": str(real_path(run_dir)), **({"nnctl.sweep": sweep} if sweep else {})}
        self.run_id = self.client.create_run(experiment_id, run_name=config.data["name"] if sweep else run_dir.name,
                                             tags=tags).info.run_id
        self.id_file.write_text(json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}) + "\n")
        from mlflow.entities import Param

        params = [Param(key, value) for key, value in flatten(config.data).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _experiment(self, name: str, runs_dir: Path) -> str:
        """The id of the experiment `name`, made (with its artifacts beside the runs, in the local store) if new;
        another process making it at the same moment is no error."""
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment:
            return experiment.experiment_id
        artifacts = None if configured_uri() else (real_path(runs_dir) / "mlartifacts" / name).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    @staticmethod
    def check(config: Config) -> None:
        """Before a run starts: a ConfigError at `train.tracking` when MLflow is asked for and missing, an
        NnctlError when MLFLOW_TRACKING_URI names no store it takes."""
        if not tracked(config):
            return
        if importlib.util.find_spec("mlflow") is None:
            raise config.error(("train", "tracking"), "tracking in MLflow (--mlflow) needs the mlflow package: "
                                                      "pip install 'nnctl[mlflow]'")
        configured_uri()

    def append(self, row: dict[str, Any]) -> None:
        """An epoch's metrics at step = epoch (the rows of logged steps and of evaluations every N steps at step =
        the optimizer step, prefixed step_)."""
        where = f"epoch {row['epoch']}" if row["kind"] == "epoch" else f"step {row['step']}"
        self.extend([row], f"at {where}")

    def extend(self, rows: list[dict[str, Any]], when: str = "writing the earlier rows") -> None:
        """Rows as `append` logs them, a thousand metrics a request (MLflow's most)."""
        metrics = [metric for row in rows
                   for metric in _metrics(row_values(row), row_x(row), "" if row["kind"] == "epoch" else "step_")]
        self._send(when, lambda: self._batches(metrics))

    def close(self, summary: dict[str, Any], run_dir: Path) -> None:
        """The test metrics (at the tested weights' epoch), the checkpoints and summary as artifacts, then the
        run's end status (`summary`: summary.json's fields, or just its status)."""
        def finish() -> None:
            try:
                self._batches(_metrics(summary.get("test") or {}, (summary.get("test_on") or {}).get("epoch", 0)))
                for name in ("checkpoints/best.pkl", "checkpoints/last.pkl", "summary.json", "config.yaml"):
                    path = run_dir / name
                    if path.exists():
                        self.client.log_artifact(self.run_id, str(path),
                                                 str(Path(name).parent) if "/" in name else None)
            finally:
                self.client.set_terminated(self.run_id, STATUS.get(summary["status"], "FINISHED"))

        self._send("at the run's end", finish)

    def _batches(self, metrics: list[Any]) -> None:
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def _send(self, when: str, request: Callable[[], None]) -> None:
        """`request` unless an earlier one failed; its failure is one warning, and the last request sent."""
        if self.lost:
            return
        try:
            request()
        except Exception as exc:  # MLflow raises its own and the HTTP client's errors
            self.lost = True
            self.warn(f"{failure(exc, when)}; training goes on untracked (the run directory keeps every metric "
                      "and checkpoint), and the MLflow run stays as it was")


def _metrics(values: dict[str, float], step: int, prefix: str = "") -> list[Any]:
    """MLflow's Metric of each value, named with `prefix`, at `step`."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(prefix + key, float(value), now, step) for key, value in values.items()]


def prepare_store(runs_dir: Path, configs: Iterable[Config]) -> None:
    """Makes the local store RUNS_DIR/mlflow.db once, before parallel runs that track in it start (their processes
    would race to make its tables); NnctlError for an MLFLOW_TRACKING_URI that names no store. A no-op where no
    config tracks in MLflow, or mlflow is missing (each run says so)."""
    if not any(tracked(config) for config in configs) or importlib.util.find_spec("mlflow") is None:
        return
    if configured_uri() is None:
        with translated_errors():
            client(runs_dir)[0].search_experiments(max_results=1)


def tracked(config: Config) -> bool:
    """Whether `config` asks for MLflow tracking (train.tracking: mlflow)."""
    return config.section("train").get("tracking") == "mlflow"


def configured_uri() -> str | None:
    """MLFLOW_TRACKING_URI, or None where it is unset or blank (as MLflow reads it); NnctlError where it names no
    kind of store this MLflow takes (an unknown scheme, a file store it refuses)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.strip():
        return None
    found = re.match(r"([A-Za-z][\w.-]+)(\+[\w.-]+)?:", uri)  # not C:\ (a Windows path)
    scheme = found.group(1).lower() if found else ""
    if scheme in ("", "file") and file_store_refused():
        problem = (f"names a file store, which MLflow {importlib.metadata.version('mlflow')} refuses (in maintenance "
                   "mode) unless MLFLOW_ALLOW_FILE_STORE=true")
    elif scheme not in SCHEMES | {"", "file"} | plugin_schemes():
        problem = f"names a kind of store MLflow does not know ({scheme}:)"
    else:
        return uri
    allow = " (with MLFLOW_ALLOW_FILE_STORE=true)" if file_store_refused() else ""
    raise NnctlError(f"MLFLOW_TRACKING_URI={uri!r} {problem}; {ACCEPTED.format(file=allow)}")


def file_store_refused() -> bool:
    """Whether this MLflow refuses its file store (recent ones do, unless MLFLOW_ALLOW_FILE_STORE is true)."""
    from mlflow import environment_variables

    allow = getattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)
    return allow is not None and not allow.get()


def plugin_schemes() -> set[str]:
    """The URI schemes that installed MLflow plugins add (entry points mlflow.tracking_store)."""
    return {entry.name for entry in importlib.metadata.entry_points(group="mlflow.tracking_store")}


def client(runs_dir: Path) -> tuple[Any, str]:
    """An MlflowClient on MLFLOW_TRACKING_URI, else on the local store RUNS_DIR/mlflow.db, and that URI; MLflow's
    HTTP settings default to short retries, a database store is tried DB_ATTEMPTS times, and its INFO lines
    (database set-up) and retry warnings are quiet."""
    uri = configured_uri() or f"sqlite:///{real_path(runs_dir) / 'mlflow.db'}"
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow.store.db import utils as db_utils  # optional, and slow to import: only when asked for
    from mlflow.tracking import MlflowClient

    db_utils.MAX_RETRY_COUNT = min(db_utils.MAX_RETRY_COUNT, DB_ATTEMPTS)  # no setting for it: a module constant
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger(db_utils.__name__).setLevel(logging.ERROR)  # its retries' warnings: the error says why
    return MlflowClient(uri), uri


@contextlib.contextmanager
def first_contact() -> Iterator[None]:
    """The first requests to a server without retries and with a short time-out (where these settings are still
    HTTP_DEFAULTS', not the user's), so that a server that is not there fails the run in seconds, not minutes."""
    ours = {key: value for key, value in FIRST_CONTACT.items() if os.environ.get(key) == HTTP_DEFAULTS[key]}
    os.environ.update(ours)
    try:
        yield
    finally:
        os.environ.update({key: HTTP_DEFAULTS[key] for key in ours})


ID_FILE_BYTES = 1 << 16
"""The most of mlflow.json read: nnctl writes a run id and a tracking URI there."""


def recorded_id(path: Path) -> str:
    """The MLflow run id a run's mlflow.json records; NnctlError where it is not a regular file of at most
    ID_FILE_BYTES (a FIFO would block the resume) or holds none."""
    raw = read_bytes(path, NnctlError, "run file", ID_FILE_BYTES)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        value = None
    run_id = value.get("run_id") if isinstance(value, dict) else None
    if not isinstance(run_id, str) or not run_id:
        raise NnctlError(f"{path}: holds no MLflow run id (it is damaged); move it away to track the rest of the run "
                         "as a new MLflow run")
    return run_id


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """MLflow's and its HTTP client's exceptions as one NnctlError line (see tracking_error)."""
    try:
        yield
    except NnctlError:
        raise
    except Exception as exc:  # MLflow raises its own and the HTTP client's errors
        raise tracking_error(exc) from None


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config data as dotted keys with string values: {'optimizer.lr': '0.001', ...}."""
    if isinstance(data, dict) and data:
        return {k: v for key, value in data.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        return {k: v for i, value in enumerate(data) for k, v in flatten(value, f"{prefix}{i}.").items()}
    text = json.dumps(data) if not isinstance(data, str) else data
    return {prefix.rstrip("."): text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 3] + "..."}


def tracking_error(exc: Exception) -> NnctlError:
    """An MLflow failure before training (server gone, store unwritable) as one line naming the store and cause."""
    return NnctlError(f"{failure(exc)}; check MLFLOW_TRACKING_URI or the server, or train without --mlflow")


def failure(exc: Exception, when: str = "") -> str:
    """'MLflow tracking at STORE failed[ WHEN]: CAUSE'."""
    where = os.environ.get("MLFLOW_TRACKING_URI", "").strip() or "the local store"  # blank: unset, as MLflow reads it
    return f"MLflow tracking at {where} failed{' ' + when if when else ''}: {cause(exc)}"


def cause(exc: Exception) -> str:
    """What went wrong, without MLflow's and urllib3's wrapping ('cannot connect: Connection refused', 'no answer
    in time'), else the message's first line."""
    text = str(exc).strip()
    errno = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", text)
    if errno and "Max retries exceeded" in text:
        return f"cannot connect: {errno.group(1).strip()}"
    if "Max retries exceeded" in text or "timeout exception" in text:
        reason = re.search(r"\(Caused by \w+\((.*)\)\)", text)
        return ("no answer in time (MLFLOW_HTTP_REQUEST_TIMEOUT)" if "timed out" in text or not reason
                else f"gave up: {reason.group(1)}")
    return text.splitlines()[0] if text else type(exc).__name__
