"""What every benchmark shares: an nnctl run of a config, the same training loop in PyTorch, and the report."""

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.config import load_config
from nnctl.data.dataset import Dataset
from nnctl.model import Model
from nnctl.runner import Runner

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def nnctl_fit(config: str, epochs: int, *overrides: str) -> tuple[float, float, Dataset]:
    """Trains configs/`config` with nnctl's own runner (no validation split, constant lr); returns samples/s of
    the whole fit (test evaluation included), the test accuracy, and the data for the peer."""
    path = CONFIGS / config
    overrides = (f"train.epochs={epochs}", "data.validation=null", "train.monitor=loss", "schedule.type=constant",
                 *overrides)
    with tempfile.TemporaryDirectory() as runs:
        runner = Runner.start(load_config(path, list(overrides)), Path(runs), quiet=True)
        start = time.perf_counter()
        summary = runner.fit()
        seconds = time.perf_counter() - start
    return len(runner.exp.data.train) * epochs / seconds, summary["test"]["test_accuracy"], runner.exp.data


def torch_fit(model: Any, data: Dataset, batch_size: int, epochs: int, lr: float,
              clip_norm: float | None = None, threads: int | None = None) -> tuple[float, float]:
    """The same loop in PyTorch on the CPU (on `threads` threads, else its own count): Adam, cross-entropy,
    shuffled batches, then test accuracy once, as nnctl's runner does; returns samples/s and the accuracy."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, xt, yt = (torch.from_numpy(a) for a in (data.train.x, data.train.y, data.test.x, data.test.y))
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            rows = order[i:i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[rows]), y[rows]).backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = sum(int((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum())
                       for i in range(0, len(xt), 1000)) / len(xt)
    return len(x) * epochs / (time.perf_counter() - start), accuracy


def peak_rss_mb() -> float:
    """The largest resident set this process has had so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile_layers(model: Model, x: np.ndarray, reps: int = 20) -> list[tuple[str, float, float]]:
    """(layer, forward ms, backward ms) per layer on the batch x: the fastest of `reps` training steps."""
    times = {layer.name: ([], []) for layer in model.layers}
    for _ in range(reps):
        h = x
        for layer in model.layers:
            start = time.perf_counter()
            h = layer.forward(h, training=True)
            times[layer.name][0].append(time.perf_counter() - start)
        dy = np.ones_like(h) / h.size
        for layer in reversed(model.layers):
            start = time.perf_counter()
            dy = layer.backward(dy)
            times[layer.name][1].append(time.perf_counter() - start)
    return [(name, 1e3 * min(f), 1e3 * min(b)) for name, (f, b) in times.items()]


def report(ours: float, accuracy: float, peer: tuple[float, float] | None, unit: str = "samples/s") -> None:
    """Prints both sides and the ratio (above 1: nnctl is faster)."""
    print(f"nnctl    {ours:10.0f} {unit}   test accuracy {accuracy:.4f}")
    if peer is None:
        print("pytorch  not installed (pip install -e '.[bench]'): no comparison")
        return
    import torch

    print(f"pytorch  {peer[0]:10.0f} {unit}   test accuracy {peer[1]:.4f}   "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"ratio    {ours / peer[0]:10.2f}x  (nnctl / pytorch; above 1 means nnctl is faster)")


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
