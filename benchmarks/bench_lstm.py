"""Samples/s of training configs/mnist_lstm.yaml (batch 128, Adam, clip_norm 5, float32), nnctl vs PyTorch.

Both sides train an LSTM of 128 units over the 28 rows of each MNIST image, then a dense layer of 10, on the
same images in shuffled batches of 128, then evaluate the test images; PyTorch (torch.nn.LSTM) runs on the
CPU in the same process. Run: python benchmarks/bench_lstm.py [--epochs N] [--subset N]
(PyTorch side: pip install -e '.[bench]'). On a small or shared machine give both sides the same threads:
OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lstm.py --threads 1
"""

import argparse

from common import have_torch, nnctl_fit, report, torch_fit


def torch_model():
    """torch.nn.LSTM over the rows, then a dense layer on the last step."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(28, 128, batch_first=True)
            self.out = torch.nn.Linear(128, 10)

        def forward(self, x):
            return self.out(self.lstm(x)[0][:, -1])

    torch.manual_seed(0)
    return Net()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subset", type=int, default=60000, help="training images used (all 60,000 by default)")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's thread count (default: its own)")
    args = parser.parse_args()
    ours, accuracy, data = nnctl_fit("mnist_lstm.yaml", args.epochs, f"data.subset={args.subset}")
    peer = torch_fit(torch_model(), data, 128, args.epochs, 2e-3, clip_norm=5.0, threads=args.threads) \
        if have_torch() else None
    report(ours, accuracy, peer)


if __name__ == "__main__":
    main()
