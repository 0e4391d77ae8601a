"""Trees/s of training configs/tree_rnn.yaml (recursive dim 32 -> dense 2, batch 32, Adam, float32), nnctl vs PyTorch.

PyTorch has no tree layer, so its side is the same algorithm written with torch ops and autograd: the nodes of
one height across the batch composed by one matrix product, on the same node tables, batches and optimizer.
PyTorch runs on one thread by default: its products here are 32x64, too small to split, and on a busy 2-core
machine a second thread made it ~100x slower (spinning), which would flatter nnctl.
Run: python benchmarks/bench_trees.py [--epochs N] [--subset N] [--threads T] [--side both|nnctl|pytorch]
(PyTorch side: pip install -e '.[bench]')
"""

from common import Bench, options, torch_fit

DIM, VOCAB, BATCH, LR = 32, 6, 32, 0.01


def torch_model():
    """The recursive network in torch ops: per height, one product over the batch's nodes of that height."""
    import torch

    class TreeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Parameter(torch.empty(VOCAB, DIM).uniform_(-0.05, 0.05))
            self.compose, self.classify = torch.nn.Linear(2 * DIM, DIM), torch.nn.Linear(DIM, 2)

        def forward(self, table: torch.Tensor) -> torch.Tensor:
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
            h = torch.zeros(n * m, DIM).index_put((leaves,), self.embedding[words[leaves]])
            for level in range(1, int(height.max()) + 1):
                nodes = torch.nonzero(height == level).squeeze(1)
                children = torch.cat([h[left[nodes]], h[right[nodes]]], dim=1)
                h = h.index_put((nodes,), torch.tanh(self.compose(children)))
            roots = torch.arange(n) * m + (table != -1).any(dim=2).sum(dim=1) - 1
            return self.classify(h[roots])

    torch.manual_seed(0)
    return TreeNet()


def main() -> None:
    parser = options(__doc__, epochs=15)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's intra-op threads")
    args = parser.parse_args()
    Bench(args, "tree_rnn.yaml", unit="trees/s").run(
        lambda data: torch_fit(torch_model(), data, BATCH, args.epochs, LR, threads=args.threads))


if __name__ == "__main__":
    main()
