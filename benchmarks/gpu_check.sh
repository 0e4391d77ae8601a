#!/usr/bin/env bash
# Every GPU check in one go, on a machine with an NVIDIA GPU: installs nnctl with its test and bench extras and
# CuPy with its CUDA libraries (CUPY='cupy-cuda13x[ctk]' for a CUDA 13 driver; default cupy-cuda12x[ctk]), then
# runs the gpu tests, the GPU benchmarks against PyTorch CUDA (medians of three), and one full training of
# mnist_deep_cnn on the GPU. Whole logs go to LOG_DIR; exits 1 if any step failed.
# Usage: bash benchmarks/gpu_check.sh [LOG_DIR]   (SKIP_INSTALL=1: use the python3 and packages already there)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_check}
mkdir -p "$out"
if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m venv .venv && . .venv/bin/activate \
        && pip install -q -e '.[test,bench]' "${CUPY:-cupy-cuda12x[ctk]>=13,<15}" || exit 1
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
failed=()
step() {  # step NAME LOG COMMAND...: runs COMMAND, its whole output in LOG, and notes a failure
    local name=$1 log=$2
    shift 2
    "$@" > "$log" 2>&1 || failed+=("$name (see $log)")
}
step version "$out/version.log" python3 -m nnctl --version
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' >> "$out/version.log" 2>&1
cat "$out/version.log"
# -o addopts: the project's adds --dist, which a machine without pytest-xdist refuses
step tests "$out/tests.log" python3 -m pytest -q -p no:cacheprovider -o addopts=-ra -m gpu tests/test_gpu.py
tail -5 "$out/tests.log"
grep -q " skipped" "$out/tests.log" && failed+=("tests: some were skipped, so this machine lacks CuPy or a GPU")
step benchmarks "$out/bench.log" python3 benchmarks/run.py --device cuda --repeat 3
tail -12 "$out/bench.log"
start=$(date +%s)
step deep_cnn "$out/deep_cnn.log" python3 -m nnctl train configs/mnist_deep_cnn.yaml --device cuda \
    --runs-dir "$(mktemp -d)"
echo "mnist_deep_cnn on the GPU: $(($(date +%s) - start)) s" >> "$out/deep_cnn.log"
tail -8 "$out/deep_cnn.log"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "every GPU check passed"
