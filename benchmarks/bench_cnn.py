"""Samples/s of training configs/mnist_cnn.yaml (batch 100, Adam, float32), nnctl vs PyTorch, with a profile
of nnctl's forward and backward by layer.

Both sides train conv 30@5×5 → ReLU → max pool 2 → dense 100 → ReLU → dense 10 on the same 60,000 MNIST images
in shuffled batches of 100, then evaluate the 10,000 test images; PyTorch runs on the CPU.
Run: python benchmarks/bench_cnn.py [--epochs N] [--subset N] [--side both|nnctl|pytorch]
(PyTorch side: pip install -e '.[bench]')
"""

from common import Bench, options, print_profile, torch_fit


def torch_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 30, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(30 * 12 * 12, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))


def main() -> None:
    args = options(__doc__).parse_args()
    Bench(args, "mnist_cnn.yaml").run(
        lambda data: torch_fit(torch_model(), data, 100, args.epochs, 1e-3, device=args.device),
        None if args.json else lambda data: print_profile("mnist_cnn.yaml", data.train.x[:100]))


if __name__ == "__main__":
    main()
