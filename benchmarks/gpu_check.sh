#!/usr/bin/env bash
# Every GPU check in one go, on a machine with an NVIDIA GPU: installs nnctl with its gpu, test and bench extras
# (CuPy for CUDA 12; on CUDA 13 install cupy-cuda13x first), then runs the gpu tests, the GPU benchmarks against
# PyTorch CUDA (medians of three), and one full training of mnist_deep_cnn on the GPU. Logs go to LOG_DIR.
# Usage: bash benchmarks/gpu_check.sh [LOG_DIR]   (SKIP_INSTALL=1: use the python3 and packages already there)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_check}
mkdir -p "$out"
if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test,gpu,bench]' || exit 1
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -m nnctl --version | tee "$out/version.log"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tail -40 | tee "$out/tests.log"
python3 benchmarks/run.py --device cuda --repeat 3 2>&1 | tee "$out/bench.log" | tail -12
start=$(date +%s)
python3 -m nnctl train configs/mnist_deep_cnn.yaml --device cuda --runs-dir "$(mktemp -d)" 2>&1 | tail -8 \
    | tee "$out/deep_cnn.log"
echo "mnist_deep_cnn on the GPU: $(($(date +%s) - start)) s" | tee -a "$out/deep_cnn.log"
