"""What every benchmark shares: its options, an nnctl run of a config, the same training loop in PyTorch, and
the report (samples/s, test accuracy and peak memory of each side, and their ratio)."""

import argparse
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import backend, kernels, threads
from nnctl.builder import build_model
from nnctl.config import load_config
from nnctl.data import DATASETS
from nnctl.data.dataset import Dataset
from nnctl.data.mnist import FILES, MNIST
from nnctl.data.source import data_root
from nnctl.experiment import build
from nnctl.model import Model
from nnctl.runner import Runner

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def options(doc: str, epochs: int = 1) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--subset", type=int, default=None,
                        help="training samples used, and as many test samples (default: all)")
    parser.add_argument("--side", choices=("both", "nnctl", "pytorch"), default="both",
                        help="which side to run (benchmarks/run.py runs each in its own process)")
    parser.add_argument("--json", action="store_true", help="also print each side's figures as one JSON line")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: both sides on the GPU (nnctl through CuPy)")
    return parser


def check_device(device: str) -> None:
    """Stops with nnctl's own one-line message when `device` cannot be used here (no CuPy, no GPU, no such card)."""
    try:
        backend.use(device)
    except (backend.DeviceError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    backend.use("cpu")


def require_mnist() -> None:
    """Stops with one line naming the missing file when MNIST is not in the data directory: a benchmark
    measures training, it does not wait on a download."""
    folder = (data_root(None, CONFIGS) / MNIST.subfolder).resolve()
    missing = [folder / name for name in FILES if not (folder / name).is_file()]
    if missing:
        given = os.environ.get("NNCTL_DATA_DIR")
        why = f"NNCTL_DATA_DIR={given}" if given else "NNCTL_DATA_DIR is not set"
        raise SystemExit(f"error: MNIST not found: {missing[0]} is missing ({why}); set NNCTL_DATA_DIR to the "
                         "folder that holds mnist/, e.g. NNCTL_DATA_DIR=../shared/data")


class Bench:
    """One benchmark: a shipped config (with overrides) trained by nnctl, and `peer` training the same network
    in PyTorch on the same data; `run` trains the sides asked for and reports them."""

    def __init__(self, args: argparse.Namespace, config: str, *overrides: str, unit: str = "samples/s"):
        check_device(args.device)
        if issubclass(DATASETS.get(load_config(CONFIGS / config).section("data")["type"]), MNIST):
            require_mnist()
        self.args, self.config, self.unit = args, config, unit
        subset = () if args.subset is None else (f"data.subset={args.subset}", f"data.test_subset={args.subset}")
        self.overrides = (f"train.epochs={args.epochs}", "data.validation=null", "train.monitor=loss",
                          "schedule.type=constant", f"device={args.device}", *overrides, *subset)

    def run(self, peer: Callable[[Dataset], tuple[float, float]] | None,
            after_nnctl: Callable[[Dataset], None] | None = None) -> None:
        data, rates = None, {}
        if self.args.side in ("both", "nnctl"):
            compile_s, compiled = kernels.warm_up()
            rate, accuracy, data = self.nnctl_fit()
            rates["nnctl"] = rate
            self.show("nnctl", rate, accuracy, kernels=kernels.ACTIVE, compile_s=round(compile_s, 2),
                      compiled=compiled, threads=threads.describe())
            if after_nnctl and self.args.device == "cpu":  # a GPU's kernels run asynchronously: no host timings
                after_nnctl(data)
        if self.args.side in ("both", "pytorch"):
            if not have_torch():
                print("pytorch  not installed (pip install -e '.[bench]'): no comparison")
                return
            import torch

            data = data or build(load_config(CONFIGS / self.config, [*self.overrides, "device=cpu"])).data
            rates["pytorch"], accuracy = peer(data)
            self.show("pytorch", rates["pytorch"], accuracy, torch=torch.__version__, threads=torch.get_num_threads())
        if len(rates) == 2:
            print(f"ratio    {rates['nnctl'] / rates['pytorch']:10.2f}x  (nnctl / pytorch; above 1: nnctl is faster)")

    def nnctl_fit(self) -> tuple[float, float, Dataset]:
        """Trains the config with nnctl's own runner (no validation split, constant lr); returns samples/s of
        the whole fit (test evaluation included), the test accuracy, and the data for the peer."""
        path = CONFIGS / self.config
        threads.apply_override()
        with tempfile.TemporaryDirectory() as runs:
            runner = Runner.start(load_config(path, list(self.overrides)), Path(runs), quiet=True)
            start = time.perf_counter()
            summary = runner.fit()  # ends with the test metrics, read back to the host: the GPU has finished
            seconds = time.perf_counter() - start
        data = runner.exp.data
        return len(data.train) * self.args.epochs / seconds, summary["test"]["test_accuracy"], data

    def show(self, side: str, rate: float, accuracy: float, **extra: Any) -> None:
        rss = peak_rss_mb()
        details = ", ".join(f"{k} {v}" for k, v in extra.items() if k != "compiled")
        print(f"{side:8s} {rate:10.0f} {self.unit}   test accuracy {accuracy:.4f}   peak RSS {rss:.0f} MB"
              f"{' (both sides)' if side == 'pytorch' and self.args.side == 'both' else ''}   ({details})")
        if side == "nnctl" and extra.get("kernels") == "numba":
            print(f"         kernels compiled in {extra['compile_s']:.2f} s before the run"
                  f"{' (first run: cached for the next)' if extra['compiled'] else ' (loaded from the cache)'}")
        if self.args.json:
            print("json " + json.dumps({"side": side, "rate": rate, "unit": self.unit, "accuracy": accuracy,
                                        "peak_rss_mb": rss, **extra}))


def torch_fit(model: Any, data: Dataset, batch_size: int, epochs: int, lr: float,
              clip_norm: float | None = None, threads: int | None = None, device: str = "cpu") -> tuple[float, float]:
    """The same loop in PyTorch on `device` (on the CPU with `threads` threads, else its own count): Adam,
    cross-entropy, shuffled batches, then test accuracy once, as nnctl's runner does; returns samples/s and the
    accuracy. On a GPU the data goes over once, as nnctl's does."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, xt, yt = (torch.from_numpy(backend.to_host(a)).to(device)
                    for a in (data.train.x, data.train.y, data.test.x, data.test.y))
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), device=device)
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
    if device != "cpu":
        torch.cuda.synchronize()
    return len(x) * epochs / (time.perf_counter() - start), accuracy


def peak_rss_mb() -> float:
    """The largest resident set this process has had so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile_layers(model: Model, x: np.ndarray, reps: int = 20) -> list[tuple[str, float, float]]:
    """(layer, forward ms, backward ms) per layer on the batch x: the fastest of `reps` training steps, with BLAS
    on the threads the model's own steps give it (without, mnist_deep_cnn's convs profiled 40 % slower)."""
    times = {layer.name: ([], []) for layer in model.layers}
    with threads.blas_limit(model.blas_threads):
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


def print_profile(config: str, x: np.ndarray) -> None:
    """The per-layer profile of one training step of `config`'s model on the batch x (optimizer not included)."""
    model = build_model(load_config(CONFIGS / config), x.shape[1:], x.dtype.type, np.random.default_rng(0))
    model.set_rng(np.random.default_rng(0))
    rows = profile_layers(model, x)
    total = sum(f + b for _, f, b in rows)
    print(f"profile of one training step of {config}, batch {len(x)} (fastest of 20; optimizer not included):")
    for name, forward, backward in rows:
        print(f"  {name:12s} forward {forward:6.2f} ms   backward {backward:6.2f} ms   "
              f"{100 * (forward + backward) / total:5.1f} %")
    print(f"  {'total':12s} {total:6.2f} ms")


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
