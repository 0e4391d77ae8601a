"""Samples/s of training configs/mnist_deep_cnn.yaml (batch 100, Adam, float32; augmentation off), nnctl vs
PyTorch, with a profile of nnctl's forward and backward by layer.

Both sides train six 3×3 convs (16, 16, 32, 32, 64, 64, padding 1, ReLU) with a 2×2 max pool after every second
(the last one 'same': 7 → 4), dense 50 → ReLU → dropout 0.5 → dense 10 → dropout 0.5, on the same 60,000 MNIST
images in shuffled batches of 100, then evaluate the 10,000 test images; PyTorch runs on the CPU. The config's
augmentation (random shifts) is switched off on the nnctl side, as PyTorch's side has none.
Run: python benchmarks/bench_deep_cnn.py [--epochs N] [--subset N] [--side both|nnctl|pytorch]
(PyTorch side: pip install -e '.[bench]')
"""

from common import Bench, options, print_profile, torch_fit


def torch_model():
    import torch

    def conv(cin, cout):
        return [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.ReLU()]

    torch.manual_seed(0)
    return torch.nn.Sequential(
        *conv(1, 16), *conv(16, 16), torch.nn.MaxPool2d(2),
        *conv(16, 32), *conv(32, 32), torch.nn.MaxPool2d(2),
        *conv(32, 64), *conv(64, 64), torch.nn.MaxPool2d(2, ceil_mode=True), torch.nn.Flatten(),
        torch.nn.Linear(64 * 4 * 4, 50), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(50, 10), torch.nn.Dropout(0.5))


def main() -> None:
    args = options(__doc__).parse_args()
    Bench(args, "mnist_deep_cnn.yaml", "data.augment=null").run(
        lambda data: torch_fit(torch_model(), data, 100, args.epochs, 1e-3, device=args.device),
        None if args.json else lambda data: print_profile("mnist_deep_cnn.yaml", data.train.x[:100]))


if __name__ == "__main__":
    main()
