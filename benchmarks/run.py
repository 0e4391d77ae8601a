"""Runs every benchmark, each side (nnctl, PyTorch) in its own process, and ends with one table of median ratios.

Each benchmark runs `--repeat` times; which side goes first alternates from run to run. Before each side it
prints the load average and how busy the CPUs were over the last second, with a warning when something else
keeps them busy (the figures then mean little: PyTorch's threads suffer more from sharing the cores than
nnctl). The 1-minute load average still holds the previous side's run; the second's measure does not.
Run: python benchmarks/run.py [--repeat 3] [--subset N] [--only cnn,lstm] [--trees] [--device cuda]
(PyTorch side: pip install -e '.[bench]'; --device cuda runs both sides on an NVIDIA GPU: nnctl through CuPy,
pip install -e '.[gpu]', against PyTorch CUDA)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import check_device, have_torch, require_mnist
from nnctl import threads

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("mlp", "cnn", "deep_cnn", "lstm", "gru")
"""The benchmarks run by default, all on MNIST (bench_trees reads its own small file)."""
BUSY = 0.15
"""The share of all CPUs' time that other processes may take in the second before a side starts (Linux)."""


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_share(seconds: float = 1.0) -> float | None:
    """The share of all CPUs' time spent outside idle over the next `seconds`, from /proc/stat; None elsewhere."""

    def ticks() -> list[int]:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]

    try:
        before = ticks()
        time.sleep(seconds)
        after = ticks()
    except OSError:
        return None
    spent = [b - a for a, b in zip(before, after, strict=False)]
    idle = spent[3] + spent[4]  # idle and iowait
    return 1 - idle / max(sum(spent), 1)


def run_side(bench: str, side: str, extra: list[str]) -> dict:
    """One side of one benchmark in a fresh process; its figures, or an 'error' entry."""
    load, busy = os.getloadavg()[0], busy_share()
    now = "" if busy is None else f", CPUs {100 * busy:.0f} % busy over the last second"
    warning = "   WARNING: the machine is busy" if busy is not None and busy > BUSY else ""
    print(f"  {bench:8s} {side:7s} load average {load:.2f}{now}{warning}", flush=True)
    done = subprocess.run([sys.executable, str(HERE / f"bench_{bench}.py"), "--side", side, "--json", *extra],
                          capture_output=True, text=True)
    lines = [json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("json ")]
    if done.returncode or not lines:
        print(done.stdout + done.stderr, file=sys.stderr)
        return {"error": f"exit {done.returncode}"}
    result = {**lines[-1], "load": load, "busy": busy}
    print(f"           {result['rate']:10.0f} {result['unit']}   accuracy {result['accuracy']:.4f}   "
          f"peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None, help="training samples per benchmark (default: all)")
    parser.add_argument("--only", default=None, help="comma-separated benchmarks, of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--trees", action="store_true", help="also bench_trees (trees/s)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: both sides on the GPU, against PyTorch CUDA")
    args = parser.parse_args()
    benches = args.only.split(",") if args.only else [*BENCHMARKS, *(["trees"] if args.trees else [])]
    unknown = [b for b in benches if not (HERE / f"bench_{b}.py").is_file()]
    if unknown:
        sys.exit(f"error: no benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}, trees")
    check_device(args.device)
    if set(benches) & set(BENCHMARKS):
        require_mnist()
    if not have_torch():
        sys.exit("error: PyTorch is not installed, and run.py compares nnctl with it: pip install -e '.[bench]' "
                 "(one benchmark's nnctl side alone: python benchmarks/bench_mlp.py --side nnctl)")
    extra = ([] if args.subset is None else ["--subset", str(args.subset)]) + ["--device", args.device]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_name()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, device {args.device}")
    print(threads.describe())
    if os.environ.get("OPENBLAS_CORETYPE"):
        print("warning: OPENBLAS_CORETYPE makes OpenBLAS run the kernels it names, not the best ones for this CPU "
              "(NumPy's products only); unset it, and OPENBLAS_L2_SIZE, for figures a user of this CPU would see")
    results: dict[str, list[dict]] = {b: [] for b in benches}
    start, turn = time.perf_counter(), 0
    for r in range(args.repeat):
        print(f"run {r + 1} of {args.repeat}")
        for bench in benches:
            sides = ("nnctl", "pytorch") if turn % 2 == 0 else ("pytorch", "nnctl")
            turn += 1
            results[bench].append({side: run_side(bench, side, extra) for side in sides})
    print(f"\n{len(benches) * args.repeat * 2} runs in {time.perf_counter() - start:.0f} s; medians of "
          f"{args.repeat}:\n")
    print(table(results))


def table(results: dict[str, list[dict]]) -> str:
    """Markdown: per benchmark, the median rate of each side, the median of the runs' ratios, peak RSS of each."""
    rows = ["| benchmark | nnctl | PyTorch | ratio | nnctl peak RSS | PyTorch peak RSS | RSS ratio | load at start "
            "| CPUs busy before |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for bench, runs in results.items():
        good = [r for r in runs if "error" not in r["nnctl"] and "error" not in r["pytorch"]]
        if not good:
            rows.append(f"| {bench} | failed | failed | | | | | | |")
            continue
        unit = good[0]["nnctl"]["unit"]

        def median(side: str, key: str, runs: list[dict] = good) -> float:
            return statistics.median(r[side][key] for r in runs)

        ratio = statistics.median(r["nnctl"]["rate"] / r["pytorch"]["rate"] for r in good)
        ours, theirs = median("nnctl", "peak_rss_mb"), median("pytorch", "peak_rss_mb")
        loads = [r[s]["load"] for r in good for s in ("nnctl", "pytorch")]
        shares = [r[s]["busy"] for r in good for s in ("nnctl", "pytorch") if r[s]["busy"] is not None]
        busy = f"{100 * min(shares):.0f}–{100 * max(shares):.0f} %" if shares else "n/a"
        rows.append(f"| {bench} | {median('nnctl', 'rate'):,.0f} {unit} | {median('pytorch', 'rate'):,.0f} {unit} | "
                    f"{ratio:.2f}× | {ours:.0f} MB | {theirs:.0f} MB | {ours / theirs:.2f}× | "
                    f"{min(loads):.2f}–{max(loads):.2f} | {busy} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
