"""Samples/s of training configs/mnist_cnn.yaml (batch 100, Adam, float32), nnctl vs PyTorch, with a profile
of nnctl's forward and backward by layer and the peak memory of the nnctl epoch.

Both sides train conv 30@5×5 → ReLU → max pool 2 → dense 100 → ReLU → dense 10 on the same 60,000 MNIST images
in shuffled batches of 100, then evaluate the 10,000 test images; PyTorch runs on the CPU in the same process.
Run: python benchmarks/bench_cnn.py [--epochs N]   (PyTorch side: pip install -e '.[bench]')
"""

import argparse

import numpy as np

from common import CONFIGS, have_torch, nnctl_fit, peak_rss_mb, profile_layers, report, torch_fit
from nnctl.builder import build_model
from nnctl.config import load_config


def torch_model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 30, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(30 * 12 * 12, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))


def print_profile(x: np.ndarray) -> None:
    model = build_model(load_config(CONFIGS / "mnist_cnn.yaml"), x.shape[1:], np.float32, np.random.default_rng(0))
    model.set_rng(np.random.default_rng(0))
    rows = profile_layers(model, x)
    total = sum(f + b for _, f, b in rows)
    print(f"profile of one training step, batch {len(x)} (fastest of 20; optimizer not included):")
    for name, forward, backward in rows:
        print(f"  {name:12s} forward {forward:6.2f} ms   backward {backward:6.2f} ms   "
              f"{100 * (forward + backward) / total:5.1f} %")
    print(f"  {'total':12s} {total:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    ours, accuracy, data = nnctl_fit("mnist_cnn.yaml", args.epochs)
    print(f"peak RSS of the nnctl run (data, model, {args.epochs} epoch(s)): {peak_rss_mb():.0f} MB")
    print_profile(data.train.x[:100])
    report(ours, accuracy, torch_fit(torch_model(), data, 100, args.epochs, 1e-3) if have_torch() else None)


if __name__ == "__main__":
    main()
