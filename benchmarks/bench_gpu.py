"""Samples/s of one training epoch on an NVIDIA GPU: nnctl (CuPy) against PyTorch CUDA, in the same process.

The MLP, CNN, deep CNN and LSTM of the CPU benchmarks, each config as shipped but with device=cuda (the deep
CNN without augmentation, as PyTorch's side has none), then the test set; PyTorch's side is the same network on
the same GPU, its data on the device as nnctl's is. Run: python benchmarks/bench_gpu.py [--only NAME] [--epochs N]
(needs CuPy: pip install -e '.[gpu]', and torch with CUDA)
"""

import argparse

import bench_cnn
import bench_lstm
import bench_mlp

from common import nnctl_fit, report, torch_fit


def deep_cnn_model():
    import torch

    torch.manual_seed(0)
    nn = torch.nn

    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]

    return nn.Sequential(*conv(1, 16), *conv(16, 16), nn.MaxPool2d(2), *conv(16, 32), *conv(32, 32),
                         nn.MaxPool2d(2), *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                         nn.Linear(64 * 4 * 4, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 10), nn.Dropout(0.5))


CASES = {  # name: (config, torch model, batch size, lr, clip_norm, nnctl overrides)
    "mlp": ("mnist_mlp.yaml", bench_mlp.torch_model, 128, 1e-3, None, ()),
    "cnn": ("mnist_cnn.yaml", bench_cnn.torch_model, 100, 1e-3, None, ()),
    "deep_cnn": ("mnist_deep_cnn.yaml", deep_cnn_model, 100, 1e-3, None, ("data.augment=null",)),
    "lstm": ("mnist_lstm.yaml", bench_lstm.torch_model, 128, 2e-3, 5.0, ()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", choices=list(CASES), default=None)
    args = parser.parse_args()
    for name, (config, model, batch, lr, clip, overrides) in CASES.items():
        if args.only not in (None, name):
            continue
        print(f"== {name} ({config}, batch {batch}, cuda)")
        ours, accuracy, data = nnctl_fit(config, args.epochs, "device=cuda", *overrides)
        report(ours, accuracy, torch_fit(model(), data, batch, args.epochs, lr, clip, device="cuda"))


if __name__ == "__main__":
    main()
