"""Hostile places to write: a disk that fills midway (a cap on file size makes writes past it fail with EFBIG, as
ENOSPC would), FIFOs, devices and folders where the output goes, names NumPy would change. Every output is written
whole or not at all: the file it replaces is kept, nothing is left behind, and the user reads one line."""

import json
import os
import resource
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from hostile import XOR, clean_error, listing
from safetensors.numpy import save_file

from helpers import REPO, nnctl
from nnctl.errors import NnctlError
from nnctl.outputs import MODE, replacing

CAP = 200
"""Bytes a file may grow to in `capped`; every output below is larger."""


class Work(NamedTuple):
    """What the commands read: a trained run, its config, inputs for it and a PyTorch-style weights file."""

    run: Path
    config: Path
    inputs: Path
    source: Path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Work:
    folder = tmp_path_factory.mktemp("outputs")
    config = folder / "xor.yaml"
    config.write_text(XOR)
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", rng.normal(size=(40, 2)))
    save_file({"0.weight": rng.normal(size=(4, 2)).astype(np.float32), "0.bias": np.zeros(4, np.float32),
               "2.weight": rng.normal(size=(2, 4)).astype(np.float32), "2.bias": np.zeros(2, np.float32)},
              str(folder / "w.safetensors"))
    trained = nnctl("train", str(config), "--runs-dir", str(folder / "runs"), "-q")
    assert trained.returncode == 0, trained.stderr
    (run,) = (folder / "runs").iterdir()
    return Work(run, config, folder / "x.npy", folder / "w.safetensors")


WRITERS: dict[str, Callable[[Work, Path], list[str]]] = {
    "predictions.json": lambda w, out: ["predict", str(w.run), str(w.inputs), "-o", str(out)],
    "predictions.csv": lambda w, out: ["predict", str(w.run), str(w.inputs), "-o", str(out)],
    "predictions.npy": lambda w, out: ["predict", str(w.run), str(w.inputs), "-o", str(out)],
    "features.npy": lambda w, out: ["predict", str(w.run), str(w.inputs), "--layer", "dense_1", "-o", str(out)],
    "weights.npz": lambda w, out: ["export", str(w.run), "-o", str(out)],
    "model.onnx": lambda w, out: ["export", str(w.run), "--format", "onnx", "-o", str(out)],
    "converted.npz": lambda w, out: ["convert", str(w.source), "-c", str(w.config), "-o", str(out)],
    "curves.png": lambda w, out: ["plot", str(w.run), "-o", str(out)],
}
"""Every command that writes a file the user names with -o, by the name of its output."""


def capped(*args: str, cap: int = CAP, stdout: Path | None = None) -> subprocess.CompletedProcess:
    """`nnctl ARGS...` whose files (and `stdout`, a file, where given) may not grow past `cap` bytes: a write beyond
    fails with EFBIG (File too large), as a write to a full disk fails with ENOSPC."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    with open(stdout or os.devnull, "w") as out:
        result = subprocess.run([sys.executable, "-m", "nnctl", *args], cwd=REPO, text=True, timeout=300,
                                stdout=out if stdout else subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)
    result.stdout = result.stdout or ""  # in the file `stdout`, where given
    return result


@pytest.mark.slow
@pytest.mark.no_kernels
@pytest.mark.parametrize("name", WRITERS)
def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_nothing(work, tmp_path, name):
    out = tmp_path / name
    out.write_bytes(b"old")
    args = WRITERS[name](work, out)
    clean_error(capped(*args, "--force"), 1, f"{out}: cannot write", "File too large")
    assert out.read_bytes() == b"old" and listing(tmp_path) == {str(out)}, "the old file stays, no temporary file"
    out.unlink()
    clean_error(capped(*args), 1, f"{out}: cannot write", "File too large")
    assert listing(tmp_path) == set(), "a new path is left empty"
    out.write_bytes(b"old")
    written = nnctl(*args, "--force")
    assert written.returncode == 0, written.stderr
    assert out.read_bytes() != b"old" and listing(tmp_path) == {str(out)}
    assert stat.S_IMODE(out.stat().st_mode) == MODE, "the permissions a file made by open() gets, not 0600"


@pytest.mark.slow
@pytest.mark.no_kernels
def test_training_stops_with_one_line_when_a_checkpoint_cannot_be_written(work, tmp_path):
    runs = tmp_path / "runs"
    result = capped("train", str(work.config), "--runs-dir", str(runs), "-q", cap=1500)  # the other files fit
    clean_error(result, 1, ".pkl: cannot write the checkpoint: File too large")
    (run,) = runs.iterdir()
    assert list((run / "checkpoints").iterdir()) == [], "no partial checkpoint, no temporary file"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "cannot write the checkpoint: File too large" in summary["error"]


@pytest.mark.slow
@pytest.mark.no_kernels
def test_any_write_the_system_refuses_is_one_line_not_a_bug(work, tmp_path):
    result = capped("train", str(work.config), "--runs-dir", str(tmp_path / "runs"), "-q", cap=100)
    clean_error(result, 1, "config.yaml: cannot write the run's config: File too large")  # before any checkpoint
    assert list((tmp_path / "runs").iterdir()) == [], "no empty run folder that `runs list` cannot show"


@pytest.mark.slow
@pytest.mark.no_kernels
@pytest.mark.parametrize("layer", [[], ["--layer", "dense_1"]])
def test_an_array_is_written_under_the_exact_name_given(work, tmp_path, layer):
    out, other = tmp_path / "P.NPY", tmp_path / "P.NPY.npy"  # np.save(name) would add .npy to this one
    other.write_bytes(b"keep")
    args = ["predict", str(work.run), str(work.inputs), *layer, "-o", str(out)]
    written = nnctl(*args)
    assert written.returncode == 0, written.stderr
    assert other.read_bytes() == b"keep" and np.load(out).shape[0] == 40
    clean_error(nnctl(*args), 1, f"{out} exists; give --force")


SPECIAL: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (os.mkfifo, "not a regular file (a FIFO, device or socket)"),
    "device": (lambda path: path.symlink_to("/dev/null"), "not a regular file (a FIFO, device or socket)"),
    "folder": (Path.mkdir, "a folder; give the output file's name"),
}
"""Things that may stand where an output goes, how to make one, and what the refusal says."""


@pytest.mark.slow
@pytest.mark.no_kernels
@pytest.mark.parametrize("name", WRITERS)
def test_an_output_that_is_not_a_regular_file_is_refused_before_any_work(tmp_path, name):
    missing = Work(*(tmp_path / "missing" / part for part in ("run", "c.yaml", "x.npy", "w.safetensors")))
    for kind, (make, phrase) in SPECIAL.items():
        out = tmp_path / kind / name
        out.parent.mkdir()
        make(out)
        before = out.lstat()
        clean_error(nnctl(*WRITERS[name](missing, out), "--force", timeout=60), 1, f"{out}: {phrase}")
        assert out.lstat().st_mode == before.st_mode and out.lstat().st_ino == before.st_ino


@pytest.mark.slow
@pytest.mark.no_kernels
def test_plot_replaces_an_existing_image_only_with_force(work, tmp_path):
    out = tmp_path / "curves.png"
    out.write_bytes(b"old")
    clean_error(nnctl("plot", str(work.run), "-o", str(out)), 1, f"{out} exists; give --force to replace it")
    assert out.read_bytes() == b"old"
    assert "--force" in nnctl("plot", "--help").stdout


def test_a_failed_block_leaves_the_old_file_and_no_temporary_file(tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    for failure, expected in ((OSError(28, "No space left on device"), NnctlError), (KeyError("x"), KeyError)):
        with pytest.raises(expected) as raised, replacing(out, "the thing") as f:
            f.write(b"new, half written")
            raise failure
        assert raised.type is expected, "only an OSError becomes an NnctlError"
        assert out.read_bytes() == b"old" and listing(tmp_path) == {str(out)}


def test_an_oserror_names_the_file_and_the_reason(tmp_path):
    with pytest.raises(NnctlError, match=r"out\.bin: cannot write the thing: No space left on device"), \
            replacing(tmp_path / "out.bin", "the thing"):
        raise OSError(28, "No space left on device")
    assert listing(tmp_path) == set()


def test_a_symlinked_output_replaces_its_target(tmp_path):
    target, link = tmp_path / "target.npy", tmp_path / "link.npy"
    target.write_bytes(b"old")
    link.symlink_to(target)
    with replacing(link, "the array") as f:
        f.write(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


@pytest.mark.slow
@pytest.mark.no_kernels
def test_a_resume_that_cannot_write_the_metrics_keeps_them_whole(tmp_path):
    config = tmp_path / "xor.yaml"
    config.write_text(XOR)
    trained = nnctl("train", str(config), "train.epochs=6", "train.log_every_steps=1", "--runs-dir",
                    str(tmp_path / "runs"), "-q")
    assert trained.returncode == 0, trained.stderr
    (run,) = (tmp_path / "runs").iterdir()
    before = {name: (run / name).read_bytes() for name in ("metrics.csv", "metrics.jsonl")}
    assert len(before["metrics.jsonl"]) > 1000 > len((run / "config.yaml").read_bytes())
    files = listing(run)
    clean_error(capped("train", "--resume", str(run), "train.epochs=7", "-q", cap=1000), 1,
                f"{run / 'metrics.jsonl'}: cannot write the run's metrics: File too large")
    assert {name: (run / name).read_bytes() for name in before} == before, "the metrics as they were"
    assert listing(run) == files, "no temporary file left"
    resumed = nnctl("train", "--resume", str(run), "train.epochs=7", "-q")
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
@pytest.mark.no_kernels
def test_a_summary_that_cannot_be_written_is_named_and_leaves_nothing_half_written(work, tmp_path):
    runs = tmp_path / "runs"
    result = capped("train", str(work.config), "--runs-dir", str(runs), "-q", cap=450)  # the config fits
    (run,) = runs.iterdir()
    clean_error(result, 1, f"{run / 'summary.json'}: cannot write the run's summary: File too large")
    assert not [path for path in listing(run) if path.endswith(".tmp")], "no temporary file left"


@pytest.mark.slow
@pytest.mark.no_kernels
@pytest.mark.parametrize("printer", ["runs list", "runs show", "schema"])
def test_output_redirected_to_a_full_disk_is_an_error_not_a_cut_short_success(work, tmp_path, printer):
    args = {"runs list": ["runs", "list", str(work.run.parent), "--json"], "runs show": ["runs", "show", str(work.run)],
            "schema": ["schema"]}[printer]
    out = tmp_path / "out.txt"
    clean_error(capped(*args, stdout=out), 1, "stdout: File too large")
    assert out.stat().st_size == CAP
    whole = nnctl(*args)
    assert whole.returncode == 0 and len(whole.stdout) > CAP, whole.stderr
