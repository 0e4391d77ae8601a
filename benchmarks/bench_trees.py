"""Trees/s of training configs/tree_rnn.yaml (recursive dim 32 -> dense 2, batch 32, Adam, float32), nnctl vs PyTorch.

PyTorch has no tree layer, so its side is the same algorithm written with torch ops and autograd: the nodes of
one height across the batch composed by one matrix product, on the same node tables, batches and optimizer.
PyTorch runs on one thread by default: its products here are 32x64, too small to split, and on a busy 2-core
machine a second thread made it ~100x slower (spinning), which would flatter nnctl.
Run: python benchmarks/bench_trees.py [--epochs N] [--threads T]   (PyTorch side: pip install -e '.[bench]')
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nnctl.config import load_config
from nnctl.runner import Runner

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tree_rnn.yaml"
DIM, VOCAB, BATCH, LR = 32, 6, 32, 0.01


def nnctl_run(epochs: int) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trains with nnctl's own runner; returns trees/s, test accuracy and the data for the peer."""
    config = load_config(CONFIG, [f"train.epochs={epochs}", "data.validation=null", "train.monitor=loss"])
    with tempfile.TemporaryDirectory() as runs:
        runner = Runner.start(config, CONFIG.parent, Path(runs), quiet=True)
        data = runner.exp.data
        start = time.perf_counter()
        summary = runner.fit()
        seconds = time.perf_counter() - start
    return (len(data.train) * epochs / seconds, summary["test"]["test_accuracy"],
            data.train.x, data.train.y, data.test.x, data.test.y)


def torch_run(epochs: int, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> tuple[float, float]:
    """The same model, batching by height, optimizer and evaluation in PyTorch on the CPU."""
    import torch

    torch.manual_seed(0)
    embedding = torch.nn.Parameter(torch.empty(VOCAB, DIM).uniform_(-0.05, 0.05))
    compose, classify = torch.nn.Linear(2 * DIM, DIM), torch.nn.Linear(DIM, 2)
    params = [embedding, *compose.parameters(), *classify.parameters()]
    optimizer = torch.optim.Adam(params, lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward(table: torch.Tensor) -> torch.Tensor:
        n, m = table.shape[:2]
        offset = (torch.arange(n) * m)[:, None]
        words = table[..., 0].reshape(-1)
        left, right = (table[..., 1] + offset).reshape(-1), (table[..., 2] + offset).reshape(-1)
        parents = torch.nonzero(table[..., 1].reshape(-1) >= 0).squeeze(1)
        height = torch.zeros(n * m, dtype=torch.long)
        for _ in range(m):
            above = 1 + torch.maximum(height[left[parents]], height[right[parents]])
            if torch.equal(above, height[parents]):
                break
            height[parents] = above
        leaves = torch.nonzero(words >= 0).squeeze(1)
        h = torch.zeros(n * m, DIM).index_put((leaves,), embedding[words[leaves]])
        for level in range(1, int(height.max()) + 1):
            nodes = torch.nonzero(height == level).squeeze(1)
            children = torch.cat([h[left[nodes]], h[right[nodes]]], dim=1)
            h = h.index_put((nodes,), torch.tanh(compose(children)))
        roots = torch.arange(n) * m + (table != -1).any(dim=2).sum(dim=1) - 1
        return classify(h[roots])

    x, y, xt, yt = (torch.from_numpy(a) for a in (x, y, xt, yt))
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            rows = order[i:i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(forward(x[rows]), y[rows]).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((forward(xt).argmax(1) == yt).float().mean())
    seconds = time.perf_counter() - start
    return len(x) * epochs / seconds, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's intra-op threads")
    args = parser.parse_args()
    ours, accuracy, x, y, xt, yt = nnctl_run(args.epochs)
    print(f"nnctl    {ours:10.0f} trees/s   test accuracy {accuracy:.4f}")
    try:
        import torch
    except ImportError:
        print("pytorch  not installed (pip install -e '.[bench]'): no comparison")
        return
    torch.set_num_threads(args.threads)
    theirs, torch_accuracy = torch_run(args.epochs, x, y, xt, yt)
    print(f"pytorch  {theirs:10.0f} trees/s   test accuracy {torch_accuracy:.4f}   "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"ratio    {ours / theirs:10.2f}x  (nnctl / pytorch; above 1 means nnctl is faster)")


if __name__ == "__main__":
    main()
