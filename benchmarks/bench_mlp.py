"""Samples/s of one training epoch of configs/mnist_mlp.yaml (batch 128, Adam, float32), nnctl vs PyTorch.

Both sides train the same 784-512-256-10 network with dropout 0.2 on the same 60,000 MNIST images in
shuffled batches of 128, then evaluate the 10,000 test images; PyTorch runs on the CPU in the same process.
Run: python benchmarks/bench_mlp.py [--epochs N]   (PyTorch side: pip install -e '.[bench]')
"""

import argparse

from common import have_torch, nnctl_fit, report, torch_fit


def torch_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    ours, accuracy, data = nnctl_fit("mnist_mlp.yaml", args.epochs)
    report(ours, accuracy, torch_fit(torch_model(), data, 128, args.epochs, 1e-3) if have_torch() else None)


if __name__ == "__main__":
    main()
