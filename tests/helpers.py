"""Running the real CLI in a subprocess, as a user would, and serving files over real HTTP."""

import functools
import http.server
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np

from nnctl.data import cifar10

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def nnctl(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess:
    """`nnctl ARGS...` through `python -m nnctl.cli`, capturing its output."""
    return subprocess.run([sys.executable, "-m", "nnctl.cli", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


class Server:
    """A real HTTP server on 127.0.0.1 serving one folder, for the download tests."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def kernel_outputs(result, given: list, is_array=lambda a: isinstance(a, np.ndarray)) -> tuple:
    """What a kernel call gave: its result (or results) and the arrays it was handed, which it may write in place."""
    return (*(result if isinstance(result, tuple) else (result,)), *(a for a in given if is_array(a)))


def cifar_batches(per_batch: int = 4, seed: int = 0) -> dict[str, bytes]:
    """CIFAR-10's six batch files in the real format (protocol-2 pickles of dicts with bytes keys), random pixels."""
    rng = np.random.default_rng(seed)
    return {name: pickle.dumps({b"batch_label": b"a batch", b"labels": rng.integers(0, 10, per_batch).tolist(),
                                b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                                b"filenames": [b"img.png"] * per_batch}, protocol=2)
            for name in [*cifar10.TRAIN_BATCHES, "test_batch"]}


def cifar_archive(path: Path, batches: dict[str, bytes]) -> bytes:
    """Writes `batches` into a cifar-10-python.tar.gz-style archive at `path`; returns its bytes."""
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in batches.items():
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path.read_bytes()
