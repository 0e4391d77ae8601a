"""Running the real CLI in a subprocess, as a user would, and serving files over real HTTP."""

import functools
import http.server
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from nnctl import backend
from nnctl.backend import to_host
from nnctl.builder import build_model
from nnctl.config import from_dict, load_config
from nnctl.data import cifar10
from nnctl.gradcheck import example_batch
from nnctl.layers import LAYERS

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def nnctl(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess:
    """`nnctl ARGS...` through `python -m nnctl`, capturing its output; the nnctl of this checkout runs wherever
    `cwd` is (the environment's installed one may be another checkout's)."""
    return subprocess.run([sys.executable, "-m", "nnctl", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout, env=checkout_env(env))


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    """The stdout of `nnctl ARGS...`, which must succeed."""
    result = nnctl(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG file's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def checkout_env(env: dict[str, str] | None) -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH, and `env` over it."""
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, **(env or {})}


def images_folder(root: Path) -> Path:
    """`root` made a tiny images dataset: the class folders dark/ and light/, four 8×8 RGB PNGs of noise each."""
    rng = np.random.default_rng(0)
    for name, low in (("dark", 0), ("light", 128)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.fromarray(rng.integers(low, low + 128, (8, 8, 3), np.uint8)).save(root / name / f"{i}.png")
    return root


def shipped_overrides(config: Path, tmp: Path) -> list[str]:
    """What a shipped config needs to run here: an images config's data.path pointed at a tiny folder made in `tmp`."""
    if load_config(config, []).data["data"]["type"] != "images":
        return []
    return [f"data.path={images_folder(tmp / 'images')}"]


def scale_gradient(monkeypatch, layer_class: type, key: str, factor: float = 1.01) -> None:
    """Makes `layer_class`'s backward scale its gradient of `key` by `factor`: a bug a gradient check must catch."""
    backward = layer_class.backward

    def off(self, dy):
        dx = backward(self, dy)
        self.grads[key] *= factor
        return dx

    monkeypatch.setattr(layer_class, "backward", off)


class Server:
    """A real HTTP server on 127.0.0.1 serving one folder (or answering as `handler` does), for the download
    tests."""

    def __init__(self, folder: Path | None = None, handler: type | None = None):
        handler = handler or functools.partial(_QuietHandler, directory=str(folder))
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


TWIN_TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
"""How closely a kernel's twin must give its reference's results (relative; also absolute where asked)."""


def assert_twin_equals_reference(kernel, twin, dtype, absolute: bool, to_device=np.copy) -> None:
    """Runs the kernel's reference and `twin` on copies of its example in `dtype` (moved by `to_device`): each
    returns, and writes in place, the same arrays within TWIN_TOLERANCE."""
    example = kernel.example(np.dtype(dtype))
    arrays = [i for i, a in enumerate(example) if isinstance(a, np.ndarray)]

    def outputs(run) -> tuple:
        """What a call gave: its result (or results), and the arrays it was handed, which it may write in place."""
        given = [to_device(a) if i in arrays else a for i, a in enumerate(example)]
        result = run(*given)
        return (*(result if isinstance(result, tuple) else (result,)), *(given[i] for i in arrays))

    tol = TWIN_TOLERANCE[dtype]
    for want, have in zip(outputs(kernel.reference), outputs(twin), strict=True):
        assert have.shape == want.shape and have.dtype == want.dtype
        np.testing.assert_allclose(to_host(have), to_host(want), rtol=tol, atol=tol if absolute else 0)


def layer_outputs(name: str, device: str) -> dict[str, np.ndarray]:
    """The registered layer's example on `device`, float64: its output, input gradient and parameter gradients,
    copied to the host."""
    cls = LAYERS.get(name)
    example = cls.example
    config = from_dict({"device": device, "model": {"layers": [{"type": name, **example["config"]}]}})
    rng = np.random.default_rng(0)
    model = build_model(config, tuple(example["input_shape"]), np.float64, rng)
    layer = model.layers[0]
    layer.input_grad = not cls.takes_indices
    layer.rng = np.random.default_rng(1)
    x = backend.to_device(example_batch(cls, example, model.input_shape, rng, 3))
    y = layer.forward(x, training=True)
    dy = backend.to_device(rng.standard_normal(y.shape))
    dx = layer.backward(dy)
    out = {"y": to_host(y), **{f"d{k}": to_host(g) for k, g in layer.grads.items()}}
    if dx is not None:
        out["dx"] = to_host(dx)
    return out


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
