"""Samples/s of training configs/mnist_gru.yaml (batch 128, Adam, clip_norm 5, float32), nnctl vs PyTorch.

Both sides train a GRU of 128 units (reset-after, as torch.nn.GRU) over the 28 rows of each MNIST image, then a
dense layer of 10, on the same images in shuffled batches of 128, then evaluate the test images.
Run: python benchmarks/bench_gru.py [--epochs N] [--subset N] [--threads T] [--side both|nnctl|pytorch]
(PyTorch side: pip install -e '.[bench]')
"""

import bench_lstm

if __name__ == "__main__":
    bench_lstm.main("GRU", "mnist_gru.yaml", __doc__)
