"""Members per minute of one 8-member sweep on the local engine and on Ray (a cluster nnctl starts on this
machine), Ray's overhead, and the member-epochs ASHA saves on a learning-rate search.

The sweep: configs/mnist_mlp.yaml on an MNIST subset, a grid of 4 learning rates × 2 seeds, 2 members at a time
on both engines (`--jobs 2`); the wall time is the whole `nnctl sweep` command, Ray's start-up included, and
the members' final metrics must agree between the engines. The learning-rate search: 8 log-spaced rates from
1e-5 to 0.1 with Adam, run to the end on Ray, then again with ASHA (grace period 1, reduction factor 3).
Run: python benchmarks/bench_sweep.py [--subset N] [--epochs N]   (needs pip install -e '.[ray]')
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CONFIGS, require_mnist

HEAD = """\
base: {base}
overrides:
  data.subset: {subset}
  data.validation: 1000
  data.test_subset: 1000
  train.epochs: {epochs}
"""


def sweep(folder: Path, name: str, body: str, args: argparse.Namespace, *options: str) -> tuple[float, dict]:
    """Runs `nnctl sweep` on a sweep file of `body`; its wall time and each member's summary by run name."""
    path = folder / f"{name}.yaml"
    path.write_text(HEAD.format(base=CONFIGS / "mnist_mlp.yaml", subset=args.subset, epochs=args.epochs) + body)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nnctl", "sweep", str(path), "--runs-dir",
                             str(folder / "runs"), *options], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"nnctl sweep {name} failed:\n{result.stdout}{result.stderr}")
    summaries = [json.loads(p.read_text()) for p in (folder / "runs" / name).glob("*/summary.json")]
    return seconds, {s["name"]: s for s in summaries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=10000, help="training images per member")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    require_mnist()
    grid = "grid:\n  optimizer.lr: [0.003, 0.001, 0.0003, 0.0001]\n  seed: [0, 1]\n"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local_s, local = sweep(folder, "local", grid, args, "--jobs", "2")
        ray_s, on_ray = sweep(folder, "ray", grid, args, "--jobs", "2", "--engine", "ray")
        same = all(local[k]["final"] | {"time_s": 0} == on_ray[k]["final"] | {"time_s": 0} for k in local)
        print(f"8-member sweep ({args.subset} images, {args.epochs} epochs, 2 at a time, {os.cpu_count()} cores):")
        for engine, seconds in (("local", local_s), ("ray", ray_s)):
            print(f"  {engine:5s}  {seconds:7.1f} s   {8 * 60 / seconds:6.2f} members/min")
        print(f"  Ray's overhead: {100 * (ray_s / local_s - 1):+.1f} % of the local wall time "
              f"({ray_s - local_s:+.1f} s); final metrics equal: {same}")

        rates = "grid:\n  optimizer.lr: [1.0e-5, 3.7e-5, 1.4e-4, 5.2e-4, 1.9e-3, 7.2e-3, 2.7e-2, 0.1]\n"
        asha = "scheduler: {type: asha, metric: val_loss, mode: min, grace_period: 1, reduction_factor: 3}\n"
        full_s, full = sweep(folder, "full", rates, args, "--jobs", "2", "--engine", "ray")
        asha_s, stopped = sweep(folder, "asha", rates + asha, args, "--jobs", "2", "--engine", "ray")
        full_epochs, asha_epochs = (sum(s["epochs"] for s in runs.values()) for runs in (full, stopped))
        best = min(full.values(), key=lambda s: s["final"]["val_loss"])["name"]
        kept = min(stopped.values(), key=lambda s: s["final"]["val_loss"])["name"]
        print(f"learning-rate search, 8 members × {args.epochs} epochs on Ray:")
        print(f"  without ASHA  {full_epochs:3d} member-epochs  {full_s:7.1f} s   best {best}")
        print(f"  with ASHA     {asha_epochs:3d} member-epochs  {asha_s:7.1f} s   best {kept}   "
              f"({sum(s['status'] == 'early_stopped' for s in stopped.values())} stopped early; "
              f"{full_epochs - asha_epochs} member-epochs saved, {100 * (1 - asha_epochs / full_epochs):.0f} %)")


if __name__ == "__main__":
    main()
