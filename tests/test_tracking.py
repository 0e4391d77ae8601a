"""Run tracking in MLflow: params, per-epoch and test metrics and the checkpoints as artifacts, against a real
MLflow tracking server on 127.0.0.1 and the local SQLite store (one for a parallel sweep); one line, in seconds,
where mlflow is missing, the server is not there or MLFLOW_TRACKING_URI names no store; a refused resume leaves
the MLflow run as it was."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hostile import XOR, clean_error, listing

from helpers import CONFIGS, REPO, nnctl
from nnctl.tracking import MAX_PARAM, flatten

pytestmark = pytest.mark.no_kernels


def test_flatten_gives_dotted_string_params():
    params = flatten({"optimizer": {"type": "adam", "lr": 0.05}, "model": {"layers": [{"units": 4}, {"units": 1}]},
                      "data": {"x": list(range(1000))}, "schedule": None})
    assert params["optimizer.lr"] == "0.05" and params["optimizer.type"] == "adam"
    assert params["model.layers.0.units"] == "4" and params["model.layers.1.units"] == "1"
    assert params["schedule"] == "null"
    assert len(params["data.x"]) == MAX_PARAM and params["data.x"].endswith("...")


@pytest.mark.slow
def test_a_missing_mlflow_is_one_message(tmp_path):
    hide = ("import sys; sys.modules['mlflow'] = None; sys.argv = ['nnctl'] + sys.argv[1:]; "
            "from nnctl.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", hide, "train", str(CONFIGS / "xor_mlp.yaml"), "--mlflow",
                             "--runs-dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert "train.tracking: tracking in MLflow (--mlflow) needs the mlflow package: pip install 'nnctl[mlflow]'" \
        in result.stderr
    assert not any(tmp_path.iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLflowServer:
    """A real MLflow tracking server on 127.0.0.1 (its URL), with a SQLite store (its store URI) and served
    artifacts, that a test may stop."""

    def __init__(self, folder: Path):
        self.port, self.store = free_port(), f"sqlite:///{folder / 'mlflow.db'}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", self.store, "--artifacts-destination", str(folder / "artifacts"),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder, start_new_session=True)

    def stop(self, how: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, how)
            self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    """A running MLflowServer."""
    pytest.importorskip("mlflow", reason="the tracking tests need the mlflow extra: pip install 'nnctl[mlflow]'")
    server = MLflowServer(tmp_path)
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{server.url}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not answer within 120 s")
        yield server
    finally:
        server.stop()


def check_tracked(uri: str, experiment: str, run_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.params["optimizer.lr"] == "0.05" and run.data.params["train.epochs"] == "3"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["loss"])) for r in rows]
    names = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert names == {"checkpoints/best.pkl", "checkpoints/last.pkl"}
    fetched = Path(client.download_artifacts(run.info.run_id, "checkpoints/best.pkl", str(tmp_path)))
    assert fetched.read_bytes() == (run_dir / "checkpoints" / "best.pkl").read_bytes()
    test = json.loads((run_dir / "summary.json").read_text())["test"]
    assert test and {k: run.data.metrics[k] for k in test} == pytest.approx(test)  # test_loss, test_accuracy


@pytest.mark.slow
def test_a_run_is_tracked_on_a_real_mlflow_server(tmp_path, mlflow_server):
    runs = tmp_path / "runs"
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=3", "--mlflow", "--runs-dir", str(runs),
                   env={"MLFLOW_TRACKING_URI": mlflow_server.url})
    assert result.returncode == 0, result.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert not (runs / "mlflow.db").exists()
    check_tracked(mlflow_server.url, "xor_mlp", run_dir, tmp_path)


@pytest.mark.slow
def test_a_server_lost_mid_run_is_a_warning_and_training_goes_on(tmp_path, mlflow_server):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "nnctl", "train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=300",
               "--mlflow", "--runs-dir", str(runs), "-q"]
    training = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url})
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/metrics.jsonl")) or not next(runs.glob("*/metrics.jsonl")).stat().st_size:
        assert time.monotonic() < deadline and training.poll() is None, "no epoch was tracked"
        time.sleep(0.01)
    os.kill(training.pid, signal.SIGSTOP)  # the server dies (a SIGTERM would wait for the stopped request)
    try:
        mlflow_server.stop(signal.SIGKILL)
    finally:
        os.kill(training.pid, signal.SIGCONT)
    out, err = training.communicate(timeout=300)
    assert training.returncode == 0 and out == "", err
    (warning,) = err.splitlines()
    assert warning.startswith(f"warning: MLflow tracking at {mlflow_server.url} failed at epoch ")
    assert warning.endswith("; training goes on untracked (the run directory keeps every metric and checkpoint), "
                            "and the MLflow run stays as it was")  # the cause: refused, or reset mid-request
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 301))
    assert warning in (run_dir / "train.log").read_text()

    from mlflow.tracking import MlflowClient  # the server's own store: the epochs before the loss, then nothing

    (run,) = MlflowClient(mlflow_server.store).search_runs(["1"])
    assert run.info.status == "RUNNING"
    tracked = [(m.step, m.value) for m in MlflowClient(mlflow_server.store).get_metric_history(run.info.run_id,
                                                                                            "loss")]
    lost = int(warning.split("failed at epoch ")[1].split(":")[0])
    stored = len(tracked)  # the failed request's epoch too, where the server stored it before it went
    assert stored in (lost - 1, lost) and tracked == [(r["epoch"], pytest.approx(r["loss"])) for r in rows[:stored]]


@pytest.mark.slow
def test_a_local_store_beside_the_runs_is_the_default(tmp_path):
    pytest.importorskip("mlflow", reason="the tracking tests need the mlflow extra: pip install 'nnctl[mlflow]'")
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([shutil.which("nnctl", path=str(Path(sys.executable).parent)) or "nnctl", "train",
                             str(CONFIGS / "xor_mlp_tracked.yaml"), "train.epochs=3", "--runs-dir", str(runs)],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.name.startswith("xor_mlp_tracked-")]
    assert (runs / "mlartifacts" / "xor_mlp_tracked").is_dir()
    check_tracked(f"sqlite:///{(runs / 'mlflow.db').resolve()}", "xor_mlp_tracked", run_dir, tmp_path)


def without_mlflow_settings() -> dict[str, str]:
    """The environment without the user's MLflow settings (MLFLOW_TRACKING_URI, HTTP retries, logging)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def local_run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nnctl ARGS` with the local MLflow store (MLFLOW_TRACKING_URI unset) and `env` added, in `cwd`."""
    pytest.importorskip("mlflow", reason="the tracking tests need the mlflow extra: pip install 'nnctl[mlflow]'")
    return subprocess.run([sys.executable, "-m", "nnctl", *args], cwd=cwd, capture_output=True, text=True,
                          env={**without_mlflow_settings(), **(env or {})}, timeout=120)


def local_runs(store: Path) -> list:
    """Every MLflow run in the local store `store` (a mlflow.db), of every experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store.resolve()}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.slow
def test_an_unreachable_server_is_one_line_within_seconds(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there; MLflow's own retries take about 4 minutes
    started = time.monotonic()
    result = local_run("train", "-q", str(CONFIGS / "xor_mlp.yaml"), "--mlflow", "--runs-dir", str(tmp_path / "r"),
                       cwd=tmp_path, env={"MLFLOW_TRACKING_URI": url})
    assert time.monotonic() - started < 20
    clean_error(result, 1, f"error: MLflow tracking at {url} failed: cannot connect: Connection refused;")
    assert "Max retries" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not any((tmp_path / "r").iterdir())  # the run directory made for it is gone


@pytest.mark.slow
def test_a_database_that_cannot_be_opened_is_one_line_within_seconds(tmp_path):
    uri = f"sqlite:///{tmp_path}"  # a folder: MLflow's own retries take about 100 s, with a warning for each
    started = time.monotonic()
    result = local_run("train", "-q", str(CONFIGS / "xor_mlp.yaml"), "--mlflow", "--runs-dir", str(tmp_path / "r"),
                       cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    assert time.monotonic() - started < 20
    clean_error(result, 1, f"error: MLflow tracking at {uri} failed:")
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("uri, problem", [
    ("foo://bar", "names a kind of store MLflow does not know (foo:)"),
    ("file:///dev/null/x", "names a file store, which MLflow"),
])
def test_a_tracking_uri_mlflow_cannot_take_is_named_with_the_kinds_it_takes(tmp_path, uri, problem):
    (tmp_path / "x.yaml").write_text(XOR)
    result = local_run("train", "x.yaml", "--mlflow", "--runs-dir", "r", cwd=tmp_path,
                       env={"MLFLOW_TRACKING_URI": uri})
    clean_error(result, 1, f"MLFLOW_TRACKING_URI={uri!r} {problem}", "accepted: http(s)://HOST:PORT",
                "sqlite:///PATH.db")
    assert listing(tmp_path) == {str(tmp_path / "x.yaml")}  # no run folder, no mlruns/ or mlartifacts/


@pytest.mark.slow
def test_a_quiet_local_run_prints_nothing_and_logs_its_test_metrics(tmp_path):
    (tmp_path / "x.yaml").write_text(XOR)
    result = local_run("train", "-q", "x.yaml", "--mlflow", "--runs-dir", "r", cwd=tmp_path,
                       env={"MLFLOW_TRACKING_URI": ""})  # blank, as MLflow reads it: unset
    assert result.returncode == 0 and result.stdout + result.stderr == ""  # no MLflow INFO lines (database set-up)
    (run,) = local_runs(tmp_path / "r" / "mlflow.db")
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("xor-*/summary.json")]
    assert set(summary["test"]) == {"test_loss", "test_accuracy"}
    assert {k: run.data.metrics[k] for k in summary["test"]} == pytest.approx(summary["test"])


@pytest.mark.slow
def test_a_refused_resume_leaves_the_mlflow_run_finished(tmp_path):
    (tmp_path / "x.yaml").write_text(XOR)
    assert local_run("train", "-q", "x.yaml", "--mlflow", "--runs-dir", "r", cwd=tmp_path).returncode == 0
    (run_dir,) = (tmp_path / "r").glob("xor-*")
    result = local_run("train", "-q", "--resume", str(run_dir), cwd=tmp_path)
    clean_error(result, 1, "the run already trained 2 of 2 epochs")
    (run,) = local_runs(tmp_path / "r" / "mlflow.db")
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_tracking_turned_on_at_a_resume_gets_the_rows_before_it_too(tmp_path):
    (tmp_path / "x.yaml").write_text(XOR)
    assert local_run("train", "-q", "x.yaml", "--runs-dir", "r", cwd=tmp_path).returncode == 0
    (run_dir,) = (tmp_path / "r").glob("xor-*")
    result = local_run("train", "-q", "--resume", str(run_dir), "train.epochs=4", "--mlflow", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = local_runs(tmp_path / "r" / "mlflow.db")
    from mlflow.tracking import MlflowClient

    history = MlflowClient(f"sqlite:///{(tmp_path / 'r' / 'mlflow.db').resolve()}").get_metric_history(
        run.info.run_id, "loss")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["loss"])) for r in rows]
    assert len(rows) == 4


SWEEP = """\
name: tracked
base: x.yaml
overrides: {train.tracking: mlflow}
grid:
  optimizer.lr: [0.01, 0.02, 0.03, 0.04]
"""


@pytest.mark.slow
def test_a_parallel_sweep_tracks_every_member_in_one_local_store(tmp_path):
    (tmp_path / "x.yaml").write_text(XOR)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    result = local_run("sweep", "sweep.yaml", "--runs-dir", "r", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # the workers do not race to make mlflow.db
    runs = local_runs(tmp_path / "r" / "tracked" / "mlflow.db")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert sorted(r.data.params["optimizer.lr"] for r in runs) == ["0.01", "0.02", "0.03", "0.04"]
    assert sorted(r.info.run_name for r in runs) == ["0.01", "0.02", "0.03", "0.04"]  # the members' labels
    assert {r.data.tags["nnctl.sweep"] for r in runs} == {"tracked"}


@pytest.mark.slow
def test_two_sweeps_in_one_store_are_an_experiment_each(tmp_path):
    (tmp_path / "x.yaml").write_text(XOR)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("first", "second"):
        (tmp_path / f"{name}.yaml").write_text(SWEEP.replace("name: tracked", f"name: {name}"))
        result = local_run("sweep", f"{name}.yaml", "--runs-dir", "r", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
        assert result.returncode == 0, result.stdout + result.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert set(experiments) - {"Default"} == {"first", "second"}
    for name in ("first", "second"):
        runs = client.search_runs([experiments[name]])
        assert sorted(r.info.run_name for r in runs) == ["0.01", "0.02", "0.03", "0.04"]
        assert {r.data.tags["nnctl.sweep"] for r in runs} == {name}
