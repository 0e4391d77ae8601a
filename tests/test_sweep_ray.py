"""`nnctl sweep --engine ray` on real Ray clusters on this machine: one started with `ray start --head` (joined
with --address) and ones nnctl starts in its own process; tiny MNIST members of a few seconds each."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from helpers import CONFIGS, REPO, Server, nnctl

pytestmark = [pytest.mark.slow, pytest.mark.no_kernels,
              pytest.mark.xdist_group("ray")]  # one worker: one Ray cluster at a time

TINY = f"""\
base: {CONFIGS / 'mnist_mlp.yaml'}
overrides:
  data.subset: {{subset}}
  data.test_subset: 200
  data.validation: 200
  train.epochs: {{epochs}}
  train.batch_size: 32
  model.layers.0.units: 16
  model.layers.2.units: 16
"""


def sweep_file(tmp_path: Path, name: str, text: str, subset: int = 600, epochs: int = 3) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(subset=subset, epochs=epochs) + text)
    return path


def summaries(folder: Path) -> dict[str, dict]:
    """Each member's summary.json by its label."""
    return {p.parent.name.rsplit("-", 2)[0]: json.loads(p.read_text()) for p in folder.glob("*/summary.json")}


def epochs(run: Path) -> list[dict]:
    """The run's epoch rows without their wall times."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows if row["kind"] == "epoch"]


def workers(temp_dir: Path) -> list[int]:
    """The Ray worker processes of the cluster in `temp_dir` that are running a trial (Tune's working dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if proc.name.isdigit() and cwd.startswith(str(temp_dir)) and "working_dirs" in cwd:
            pids.append(int(proc.name))
    return pids


@contextlib.contextmanager
def head(**env: str):
    """A Ray head node on 127.0.0.1 in a subprocess (`ray start --head --block`) with `env` beside this process's
    environment: its address and temp dir.

    Its memory monitor is off: it kills the newest worker when memory runs short, which the tests running beside
    this one could cause, and here only the test kills."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(temp / "head.log", "w") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                                    "--port", str(port), "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
                                    "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "RAY_memory_monitor_refresh_ms": "0", **env})
    try:
        deadline = time.time() + 180
        while "Ray runtime started" not in (temp / "head.log").read_text():
            assert process.poll() is None and time.time() < deadline, (temp / "head.log").read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", temp
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # `ray stop` would stop every Ray on the machine; this one only
        process.wait(timeout=120)
        for pid in workers(temp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head that started without Ray's token authentication, and the token file that appeared in its ~/.ray
    after it started (as one appears when any ray.init starts a cluster of its own): its address, temp dir, and
    the environment in which nnctl sees that token too."""
    home = tmp_path_factory.mktemp("home")  # its ~/.ray: without a token when it starts
    with head(HOME=str(home)) as (address, temp):
        token = home / ".ray" / "auth_token"
        token.parent.mkdir(exist_ok=True)
        token.write_text("0" * 32)
        yield address, temp, {"HOME": str(home)}


def test_ray_grid_equals_the_local_engine_bit_for_bit_and_a_killed_worker_resumes(tmp_path, mnist_root, cluster):
    address, temp, stray_token = cluster
    path = sweep_file(tmp_path, "grid", "grid:\n  optimizer.lr: [0.01, 0.001]\n  seed: [0, 1]\nmax_failures: 2\n"
                                        "metric: accuracy\n", subset=3000, epochs=4)
    local = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "local"), "--jobs", "2")
    assert local.returncode == 0, local.stderr

    command = [sys.executable, "-m", "nnctl", "sweep", str(path), "--runs-dir", str(tmp_path / "ray"),
               "--address", address, "--jobs", "1"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **stray_token})  # a token the head never asked for
    deadline, killed = time.time() + 300, []
    while not killed and time.time() < deadline and process.poll() is None:
        for metrics in (tmp_path / "ray" / "grid").glob("*/metrics.csv"):
            if len(metrics.read_text().splitlines()) >= 3:  # two epochs done: one is surely Tune's checkpoint
                killed = workers(temp)
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=600)
    assert killed, f"no member was caught mid-run: {stdout}{stderr}"
    assert process.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr, stderr
    lost = "its worker was lost (The actor died unexpectedly before finishing this task.); restarting it from"
    assert lost in stdout and "(failure 1 of at most 2)" in stdout, stdout

    ours, theirs = summaries(tmp_path / "ray" / "grid"), summaries(tmp_path / "local" / "grid")
    assert sorted(ours) == sorted(theirs) == ["0.001_0", "0.001_1", "0.01_0", "0.01_1"]  # one run each
    for label in theirs:
        assert ours[label]["status"] == theirs[label]["status"] == "finished"
        assert ours[label]["final"] | {"time_s": 0} == theirs[label]["final"] | {"time_s": 0}, label
        assert ours[label]["test"] == theirs[label]["test"], label
        mine, local_run = Path(ours[label]["run_dir"]), Path(theirs[label]["run_dir"])
        assert epochs(mine) == epochs(local_run), label
    logs = {label: (Path(s["run_dir"]) / "train.log").read_text() for label, s in ours.items()}
    resumed = [label for label, text in logs.items() if "restarted this member from its last.pkl" in text]
    assert len(resumed) == 1, logs  # the killed member, continued in its own run directory

    listing = nnctl("runs", str(tmp_path / "ray" / "grid"))
    assert listing.returncode == 0 and listing.stdout.count("finished") == 4, listing.stdout


def test_asha_stops_the_worse_members_early(tmp_path, mnist_root):
    # one member at a time, the best first: each later one trails it at the first rung and is stopped there
    path = sweep_file(tmp_path, "asha", "grid:\n  optimizer.lr: [0.003, 0.00001, 0.000003, 0.000001]\n"
                                        "scheduler: {type: asha, metric: val_loss, mode: min, grace_period: 1, "
                                        "reduction_factor: 2}\nmax_concurrent: 1\nengine: ray\n", epochs=4)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout + result.stderr
    found = summaries(tmp_path / "runs" / "asha")
    assert found["0.003"]["status"] == "finished" and found["0.003"]["epochs"] == 4
    stopped = [label for label, s in found.items() if s["status"] == "early_stopped"]
    assert len(stopped) >= 2, found
    for label in stopped:
        assert found[label]["epochs"] < 4 and found[label]["stopped_by"] == "sweep"
        assert len(epochs(Path(found[label]["run_dir"]))) == found[label]["epochs"]
    listing = nnctl("runs", str(tmp_path / "runs"))
    assert listing.stdout.count("early_stopped (by the sweep)") == len(stopped), listing.stdout

    again = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert again.returncode == 0 and "4 members, 4 already done, 0 to run" in again.stdout, again.stderr
    assert summaries(tmp_path / "runs" / "asha") == found


def test_asha_lets_a_member_budgeted_in_steps_run_to_its_end(tmp_path, mnist_root):
    """80 steps of 13 an epoch (400 samples in batches of 32) end in epoch 7, past train.epochs (2): ASHA must
    not stop the member at its last rung before then."""
    path = sweep_file(tmp_path, "steps", "grid:\n  train.steps: [80]\nscheduler: {type: asha, metric: val_loss, "
                                         "mode: min, grace_period: 1, reduction_factor: 2}\nengine: ray\n", epochs=2)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout + result.stderr
    (summary,) = summaries(tmp_path / "runs" / "steps").values()
    assert summary["status"] == "finished" and (summary["steps"], summary["epochs"]) == (80, 7), summary


def test_tpe_proposes_members_in_the_space_and_the_table_ranks_them(tmp_path, mnist_root):
    path = sweep_file(tmp_path, "tpe", "grid:\n  optimizer.lr: {loguniform: [1.0e-4, 0.03]}\n"
                                       "  model.layers.0.units: {integer: [8, 24]}\n"
                                       "  optimizer.type: [adam, sgd]\n"
                                       "search: {type: tpe, samples: 5, metric: val_loss, mode: min}\n"
                                       "engine: ray\nmax_concurrent: 2\nseed: 1\n", epochs=2)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a tpe search of 5 members, 0 already done, 5 to run" in result.stdout
    folder = tmp_path / "runs" / "tpe"
    runs = [p.parent for p in folder.glob("*/summary.json")]
    assert len(runs) == 5
    configs = [yaml.safe_load((run / "config.yaml").read_text()) for run in runs]
    for config in configs:
        assert 1e-4 <= config["optimizer"]["lr"] <= 0.03 and config["optimizer"]["type"] in ("adam", "sgd")
        assert 8 <= config["model"]["layers"][0]["units"] <= 24
    assert len({c["optimizer"]["lr"] for c in configs}) == 5  # proposed, not repeated

    table = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(table) == 5
    val_loss = {p.name: json.loads((p / "summary.json").read_text())["final"]["val_loss"] for p in runs}
    shown = [line.split("│")[-2].strip() for line in table]
    assert [val_loss[name] for name in shown] == sorted(val_loss.values())  # best first

    again = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert again.returncode == 0 and "5 members, 5 already done, 0 to run" in again.stdout, again.stderr
    assert sorted(p.parent for p in folder.glob("*/summary.json")) == sorted(runs)


def test_ctrl_c_stops_a_ray_sweep_and_running_it_again_resumes(tmp_path, mnist_root):
    path = sweep_file(tmp_path, "stop", "grid:\n  seed: [0, 1]\nengine: ray\nmax_concurrent: 1\n", subset=10000,
                      epochs=3)
    command = [sys.executable, "-m", "nnctl", "sweep", str(path), "--runs-dir", str(tmp_path / "runs")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own process group, as a terminal's Ctrl-C reaches
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        metrics = list((tmp_path / "runs").glob("stop/*/metrics.csv"))
        if metrics and len(metrics[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stdout + stderr
    assert "members stop by the end of their current epoch and resume from the last one they finished. Run the " \
           "sweep again to resume them." in stderr and "Traceback" not in stderr
    (run,) = (tmp_path / "runs" / "stop").glob("0-*")
    stopped = json.loads((run / "summary.json").read_text())
    assert stopped["status"] == "stopped" and 1 <= stopped["epochs"] < 3
    assert len(epochs(run)) == stopped["epochs"], stopped  # stopped where an epoch ended

    again = nnctl(*command[3:])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 members, 0 already done, 2 to run" in again.stdout
    found = summaries(tmp_path / "runs" / "stop")
    assert {k: (s["status"], s["epochs"]) for k, s in found.items()} == {"0": ("finished", 3), "1": ("finished", 3)}
    assert found["0"]["run_dir"] == str(run)  # the same run directory, continued from its last.pkl
    assert len(epochs(run)) == 3


def test_auto_joins_the_running_cluster_without_a_token_another_cluster_left(tmp_path, mnist_root, cluster):
    address, _, stray_token = cluster
    path = sweep_file(tmp_path, "g", "grid:\n  seed: [0]\n", subset=400, epochs=1)
    joined = nnctl("sweep", str(path), "--address", "auto", "--runs-dir", str(tmp_path / "runs"), timeout=300,
                   env={"RAY_ADDRESS": address, **stray_token})
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert [s["status"] for s in summaries(tmp_path / "runs" / "g").values()] == ["finished"]


def test_a_cluster_with_a_token_is_joined_with_it_and_without_it_refused_at_once(tmp_path, mnist_root):
    token = "5" * 32
    path = sweep_file(tmp_path, "g", "grid:\n  seed: [0]\n", subset=400, epochs=1)
    without = {"RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")}
    with head(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token) as (address, _):
        refused = nnctl("sweep", str(path), "--address", address, "--runs-dir", str(tmp_path / "a"), env=without,
                        timeout=60)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert f"--address {address}: the Ray cluster there requires its token" in refused.stderr
        assert not (tmp_path / "a").exists()
        joined = nnctl("sweep", str(path), "--address", address, "--runs-dir", str(tmp_path / "b"),
                       env={**without, "RAY_AUTH_TOKEN": token}, timeout=300)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert [s["status"] for s in summaries(tmp_path / "b" / "g").values()] == ["finished"]


def test_without_ray_the_engine_says_how_to_install_it(tmp_path):
    path = sweep_file(tmp_path, "g", "grid:\n  seed: [0, 1]\n")
    hide = "import sys; sys.modules['ray'] = None; from nnctl.cli import main; sys.argv[0] = 'nnctl'; main()"
    result = subprocess.run([sys.executable, "-c", hide, "sweep", str(path), "--engine", "ray", "--runs-dir",
                             str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "pip install 'nnctl[ray]'" in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "runs").glob("g/*/summary.json"))


def test_a_bad_address_is_one_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    path = sweep_file(tmp_path, "g", "grid:\n  seed: [0, 1]\n")
    result = nnctl("sweep", str(path), "--address", f"127.0.0.1:{port}", "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 1 and f"--address 127.0.0.1:{port}: no Ray cluster answers there" in result.stderr
    assert "ray start --head" in result.stderr and "Traceback" not in result.stderr
    for address in ("127.0.0.1", "127.0.0.1:99999", "127.0.0.1:0", "host:-5", ":6379", "host:6³", "host:"):
        result = nnctl("sweep", str(path), "--address", address, "--runs-dir", str(tmp_path / "runs"))
        assert result.returncode == 2 and result.stderr == (
            f"error: --address {address!r}: expected auto or HOST:PORT, the port from 1 to 65535 (a Ray head's GCS "
            "port: 6379 unless `ray start --head --port` said otherwise)\n"), result.stderr
    assert not (tmp_path / "runs").exists()


def test_an_address_where_something_else_listens_is_refused_in_seconds(tmp_path):
    """A web server, or a port that takes connections and says nothing: Ray would wait on each for minutes."""
    path = sweep_file(tmp_path, "g", "grid:\n  seed: [0, 1]\n")
    with Server(tmp_path) as web, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog, and nothing is ever read or written
        for address, answer in ((web.url.removeprefix("http://").rstrip("/"), "unavailable"),
                                (f"127.0.0.1:{silent.getsockname()[1]}", "deadline exceeded")):
            started = time.monotonic()
            result = nnctl("sweep", str(path), "--address", address, "--runs-dir", str(tmp_path / "runs"),
                           timeout=120)
            assert time.monotonic() - started < 30
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            assert f"error: --address {address}: something listens there, but it does not answer as a Ray head's " \
                   f"GCS does (gRPC: {answer}); give the address that `ray start --head` printed" in result.stderr
    assert not list((tmp_path / "runs").glob("g/*/summary.json"))


def test_a_ray_client_address_is_refused_before_anything_runs(tmp_path):
    """Through ray:// Tune runs the sweep's driver on the cluster, where nnctl's callbacks cannot report."""
    plain = sweep_file(tmp_path, "g", "grid:\n  seed: [0, 1]\n")
    named = sweep_file(tmp_path, "h", "address: ray://head:10001\ngrid:\n  seed: [0, 1]\n")
    given = nnctl("sweep", str(plain), "--address", "ray://head:10001", "--runs-dir", str(tmp_path / "runs"))
    assert given.returncode == 2 and given.stderr.startswith(
        "error: --address ray://head:10001 is a Ray Client address, which cannot run a sweep"), given.stderr
    in_file = nnctl("sweep", str(named), "--runs-dir", str(tmp_path / "runs"))
    line = TINY.count("\n") + 1  # the first line after TINY's
    assert in_file.returncode == 2 and f"h.yaml:{line}: address: address ray://head:10001 is a Ray Client " \
        "address" in in_file.stderr, in_file.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, message", [
    ("grid:\n  optimizer.lr: {uniform: [0.1, 0.01]}\nsamples: 3\n", "s.yaml:11: grid.optimizer.lr: uniform: "
                                                                     "[0.1, 0.01]: expected low < high"),
    ("grid:\n  optimizer.lr: {loguniform: [0, 0.1]}\nsamples: 3\n", "expected 0 < low < high"),
    ("grid:\n  optimizer.lr: {normal: [0, 1]}\nsamples: 3\n", "expected a non-empty list of values, or a range"),
    ("grid:\n  model.layers.0.units: {integer: [8, 16.5]}\n", "expected integers low < high"),
    ("grid:\n  optimizer.lr: {uniform: [0.001, 0.1]}\n", "a uniform range has no list of values to try them all"),
    ("grid:\n  optimizer.lr: [0.1]\nsearch: tpe\n", "a tpe search needs samples: N"),
    ("grid:\n  optimizer.lr: [0.1]\nsearch: {type: tpe, samples: 3}\n", "s.yaml:12: search: search type tpe needs "
                                                                        "the Ray engine"),
    # a range's end, which no member drawn yet has
    ("engine: ray\ngrid:\n  optimizer.lr: [0.1]\n  train.batch_size: {integer: [0, 64]}\nsearch: {type: tpe, "
     "samples: 3}\n", "a member the tpe search may draw (optimizer.lr=0.1, train.batch_size=0): "),
    ("grid:\n  optimizer.lr: [0.1]\nscheduler: {type: hyperband}\n", "scheduler.type: expected 'asha'"),
    ("grid:\n  optimizer.lr: [0.1]\nscheduler: {type: asha, grace_period: 0}\n", "grace_period must be at least 1"),
    ("grid:\n  optimizer.lr: [0.1]\nscheduler: asha\n", "a scheduler needs the Ray engine"),
    ("grid:\n  optimizer.lr: [0.1]\ncpus_per_member: 0\n", "cpus_per_member must be at least 1"),
])
def test_sweep_space_and_engine_mistakes(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(TINY.format(subset=100, epochs=1) + text)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


XOR_SWEEP = f"""\
name: tx
engine: ray
base: {CONFIGS / 'xor_mlp.yaml'}
overrides: {{train.epochs: 5}}
"""


@pytest.mark.parametrize("text, message", [
    ("grid: {optimizer.lr: {loguniform: [0.01, 0.5]}}\nsearch: {type: tpe, samples: 2, metric: val_accuracy, "
     "mode: max}\n", "search.metric: val_accuracy is not recorded by the runs of a member the tpe search may draw "
                     "(optimizer.lr=0.01): its runs have no "
                     "validation split (set data.validation)"),
    ("grid: {optimizer.lr: {loguniform: [0.01, 0.5]}}\nsearch: {type: tpe, samples: 2, metric: top_5_accuracy, "
     "mode: max}\n", "search.metric: top_5_accuracy is not recorded by the runs of a member the tpe search may "
                     "draw (optimizer.lr=0.01): train.metrics lists accuracy"),
    ("grid: {optimizer.lr: [0.01, 0.1]}\nscheduler: {type: asha, metric: val_loss}\n",
     "scheduler.metric: val_loss is not recorded by the runs of member optimizer.lr=0.01: its runs have no "
     "validation split"),
    ("grid: {optimizer.lr: [0.01, 0.1]}\nscheduler: {type: asha, metric: test_loss}\n",
     "test_loss is not recorded by the runs of member optimizer.lr=0.01: test metrics are recorded once, after the "
     "last epoch"),
])
def test_a_metric_the_members_do_not_record_is_refused_before_training(tmp_path, text, message):
    path = tmp_path / "tx.yaml"
    path.write_text(XOR_SWEEP + text)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_default_metric_the_config_cannot_tell_fails_the_member_at_its_first_report(tmp_path, mnist_root):
    """Without train.metrics a run records accuracy, or mse where the data has no classes: known only from the
    data, so the member's first report says it."""
    path = sweep_file(tmp_path, "m", "grid:\n  train.metrics: [null]\nscheduler: {type: asha, metric: val_mse}\n"
                                     "engine: ray\n", subset=400, epochs=2)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    found = summaries(tmp_path / "runs" / "m")
    assert list(found) == ["None"], result.stdout
    summary = found["None"]
    assert summary["status"] == "failed" and summary["epochs"] == 1, summary
    assert summary["error"] == "the sweep reads val_mse, which this run does not record; it records lr, loss, " \
                               "accuracy, val_loss, val_accuracy, time_s"


@pytest.mark.parametrize("text, message", [
    (f"cpus_per_member: {os.cpu_count() + 1}\n", f"tx.yaml:6: cpus_per_member: each member asks for "
                                                  f"{os.cpu_count() + 1} CPUs, but this machine's Ray cluster has "
                                                  f"{os.cpu_count()}; lower it"),
    ("gpus_per_member: 1000\n", "tx.yaml:6: gpus_per_member: each member asks for 1000 GPUs, but this machine's Ray "
                                "cluster has"),
])
def test_a_member_larger_than_the_cluster_is_refused_before_it_starts(tmp_path, text, message):
    path = tmp_path / "tx.yaml"
    path.write_text(XOR_SWEEP + "grid: {optimizer.lr: [0.01]}\n" + text)
    result = nnctl("sweep", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_cluster_joined_that_is_short_of_a_member_s_cpus_is_one_error(tmp_path, cluster):
    address, _, home = cluster
    path = tmp_path / "tx.yaml"
    path.write_text(XOR_SWEEP + "grid: {optimizer.lr: [0.01]}\ncpus_per_member: 3\n")
    result = nnctl("sweep", str(path), "--address", address, "--runs-dir", str(tmp_path / "runs"), timeout=120,
                   env=home)
    assert result.returncode == 1 and result.stderr == (
        "error: cpus_per_member: each member asks for 3 CPUs, but the Ray cluster joined has 2; add machines "
        "with CPUs to the cluster or lower cpus_per_member\n"), result.stdout + result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("record, cause", [
    ("Failure # 1 (occurred at 2026-12-06_11-26-31)\nThe actor died unexpectedly before finishing this task.\n"
     "\tclass_name: ImplicitFunc\n\tpid: 4059\n", "The actor died unexpectedly before finishing this task."),
    ("Failure # 1 (occurred at 2026-12-06_11-26-31)\nThe actor died unexpectedly before finishing this task.\n"
     "Failure # 2 (occurred at 2026-12-06_11-27-02)\nray::ImplicitFunc.train() (pid=4100, ip=127.0.0.1)\n"
     "  File \"ray_trials.py\", line 168, in train_member\nMemoryError: cannot allocate\n",
     "MemoryError: cannot allocate"),
    ("", "no error recorded"),
])
def test_a_lost_member_says_what_tune_recorded_of_its_latest_failure(tmp_path, record, cause):
    from nnctl.sweep import ray_members
    (tmp_path / "error.txt").write_text(record)
    assert ray_members.cause(SimpleNamespace(error_file=str(tmp_path / "error.txt"))) == cause
    assert ray_members.cause(SimpleNamespace(error_file=None)) == "no error recorded"
