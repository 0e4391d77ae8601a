"""Samples/s of training configs/mnist_lstm.yaml (batch 128, Adam, clip_norm 5, float32), nnctl vs PyTorch.

Both sides train an LSTM of 128 units over the 28 rows of each MNIST image, then a dense layer of 10, on the
same images in shuffled batches of 128, then evaluate the test images; PyTorch (torch.nn.LSTM) runs on the CPU.
Run: python benchmarks/bench_lstm.py [--epochs N] [--subset N] [--threads T] [--side both|nnctl|pytorch]
(PyTorch side: pip install -e '.[bench]'). nnctl picks its BLAS threads itself (NNCTL_THREADS overrides).
"""

from common import Bench, options, torch_fit


def torch_model(cell: str = "LSTM"):
    """torch.nn.LSTM (or GRU) over the rows, then a dense layer on the last step."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, cell)(28, 128, batch_first=True)
            self.out = torch.nn.Linear(128, 10)

        def forward(self, x):
            return self.out(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    return Net()


def main(cell: str = "LSTM", config: str = "mnist_lstm.yaml", doc: str = __doc__) -> None:
    parser = options(doc)
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's thread count (default: its own)")
    args = parser.parse_args()
    Bench(args, config).run(lambda data: torch_fit(torch_model(cell), data, 128, args.epochs, 2e-3, clip_norm=5.0,
                                                   threads=args.threads, device=args.device))


if __name__ == "__main__":
    main()
