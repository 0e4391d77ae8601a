"""Samples/s of training configs/mnist_lstm.yaml (batch 128, Adam, clip_norm 5, float32), nnctl vs PyTorch.

Both sides train an LSTM of 128 units over the 28 rows of each MNIST image, then a dense layer of 10, on the
same images in shuffled batches of 128, then evaluate the test images; PyTorch (torch.nn.LSTM) runs on the
CPU in the same process. Run: python benchmarks/bench_lstm.py [--epochs N] [--subset N]
(PyTorch side: pip install -e '.[bench]'). On a small or shared machine give both sides the same threads:
OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lstm.py --threads 1
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nnctl.config import load_config
from nnctl.runner import Runner

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mnist_lstm.yaml"


def nnctl_train(epochs: int, subset: int) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trains with nnctl's own runner; returns samples/s, test accuracy and the data for the peer."""
    config = load_config(CONFIG, [f"train.epochs={epochs}", f"data.subset={subset}", "data.validation=null",
                                   "train.monitor=loss", "schedule.type=constant"])
    with tempfile.TemporaryDirectory() as runs:
        runner = Runner.start(config, CONFIG.parent, Path(runs), quiet=True)
        data = runner.exp.data
        start = time.perf_counter()
        summary = runner.fit()
        seconds = time.perf_counter() - start
    return (len(data.train) * epochs / seconds, summary["test"]["test_accuracy"],
            data.train.x, data.train.y, data.test.x, data.test.y)


def torch_train(epochs: int, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> tuple[float, float]:
    """The same network, optimizer, clipping, batches and evaluation in PyTorch on the CPU."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(28, 128, batch_first=True)
            self.out = torch.nn.Linear(128, 10)

        def forward(self, x):
            return self.out(self.lstm(x)[0][:, -1])

    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, xt, yt = (torch.from_numpy(a) for a in (x, y, xt, yt))
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            rows = order[i:i + 128]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[rows]), y[rows]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
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
    parser.add_argument("--subset", type=int, default=60000, help="training images used (all 60,000 by default)")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's thread count (default: its own)")
    args = parser.parse_args()
    ours, accuracy, x, y, xt, yt = nnctl_train(args.epochs, args.subset)
    print(f"nnctl    {ours:10.0f} samples/s   test accuracy {accuracy:.4f}")
    try:
        import torch
    except ImportError:
        print("pytorch  not installed (pip install -e '.[bench]'): no comparison")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    theirs, torch_accuracy = torch_train(args.epochs, x, y, xt, yt)
    print(f"pytorch  {theirs:10.0f} samples/s   test accuracy {torch_accuracy:.4f}   "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"ratio    {ours / theirs:10.2f}x  (nnctl / pytorch; above 1 means nnctl is faster)")


if __name__ == "__main__":
    main()
