"""Run tracking in MLflow: params, per-epoch metrics and the checkpoints as artifacts, against a real MLflow
tracking server on 127.0.0.1 and the local file store; a clear message where mlflow is missing."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on 127.0.0.1, with a SQLite store and served artifacts."""
    pytest.importorskip("mlflow", reason="the tracking tests need the mlflow extra: pip install 'nnctl[mlflow]'")
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not answer within 120 s")
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


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


@pytest.mark.slow
def test_a_run_is_tracked_on_a_real_mlflow_server(tmp_path, mlflow_server):
    runs = tmp_path / "runs"
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "train.epochs=3", "--mlflow", "--runs-dir", str(runs),
                   env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert not (runs / "mlflow.db").exists()
    check_tracked(mlflow_server, "xor_mlp", run_dir, tmp_path)


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


@pytest.mark.slow
def test_an_unreachable_server_is_one_message_before_training(tmp_path):
    pytest.importorskip("mlflow", reason="the tracking tests need the mlflow extra: pip install 'nnctl[mlflow]'")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = nnctl("train", str(CONFIGS / "xor_mlp.yaml"), "--mlflow", "--runs-dir", str(tmp_path),
                   env={"MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert result.returncode == 1
    assert f"error: MLflow tracking at {url} failed:" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
