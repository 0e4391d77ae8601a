"""Samples/s of one training epoch of configs/mnist_mlp.yaml (batch 128, Adam, float32), nnctl vs PyTorch.

Both sides train the same 784-512-256-10 network with dropout 0.2 on the same 60,000 MNIST images in
shuffled batches of 128, then evaluate the 10,000 test images; PyTorch runs on the CPU in the same process.
Run: python benchmarks/bench_mlp.py [--epochs N]   (PyTorch side: pip install -e '.[bench]')
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nnctl.config import load_config
from nnctl.runner import Runner

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mnist_mlp.yaml"


def nnctl_epoch(epochs: int) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trains with nnctl's own runner; returns samples/s, test accuracy and the data for the peer."""
    config = load_config(CONFIG, [f"train.epochs={epochs}", "data.validation=null", "train.monitor=loss",
                                   "schedule.type=constant"])
    with tempfile.TemporaryDirectory() as runs:
        runner = Runner.start(config, CONFIG.parent, Path(runs), quiet=True)
        data = runner.exp.data
        start = time.perf_counter()
        summary = runner.fit()
        seconds = time.perf_counter() - start
    return (len(data.train) * epochs / seconds, summary["test"]["test_accuracy"],
            data.train.x, data.train.y, data.test.x, data.test.y)


def torch_epoch(epochs: int, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> tuple[float, float]:
    """The same network, optimizer, batches and evaluation in PyTorch on the CPU."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, xt, yt = (torch.from_numpy(a) for a in (x, y, xt, yt))
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            rows = order[i:i + 128]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = sum(int((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum())
                           for i in range(0, len(xt), 1000)) / len(xt)
    seconds = time.perf_counter() - start
    return len(x) * epochs / seconds, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    ours, accuracy, x, y, xt, yt = nnctl_epoch(args.epochs)
    print(f"nnctl    {ours:10.0f} samples/s   test accuracy {accuracy:.4f}")
    try:
        import torch
    except ImportError:
        print("pytorch  not installed (pip install -e '.[bench]'): no comparison")
        return
    theirs, torch_accuracy = torch_epoch(args.epochs, x, y, xt, yt)
    print(f"pytorch  {theirs:10.0f} samples/s   test accuracy {torch_accuracy:.4f}   "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"ratio    {ours / theirs:10.2f}x  (nnctl / pytorch; above 1 means nnctl is faster)")


if __name__ == "__main__":
    main()
