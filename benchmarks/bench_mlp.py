"""Samples/s of one training epoch of configs/mnist_mlp.yaml (batch 128, Adam, float32), nnctl vs PyTorch.

Both sides train the same 784-512-256-10 network with dropout 0.2 on the same 60,000 MNIST images in
shuffled batches of 128, then evaluate the 10,000 test images; PyTorch runs on the CPU.
Run: python benchmarks/bench_mlp.py [--epochs N] [--subset N] [--side both|nnctl|pytorch]
(PyTorch side: pip install -e '.[bench]')
"""

from common import Bench, options, torch_fit


def torch_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 10))


def main() -> None:
    args = options(__doc__).parse_args()
    Bench(args, "mnist_mlp.yaml").run(
        lambda data: torch_fit(torch_model(), data, 128, args.epochs, 1e-3, device=args.device))


if __name__ == "__main__":
    main()
