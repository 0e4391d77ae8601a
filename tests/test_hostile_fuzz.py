"""Seeded, time-bounded fuzzing: random mutations of a valid config end in a finished run or a clean error."""

import copy
import itertools
import random
import shutil
import signal
import time
import traceback
import warnings
from pathlib import Path

import pytest
import yaml
from hostile import XOR, clean_error, paths

from helpers import CONFIGS, images_folder, nnctl
from nnctl.config import load_config
from nnctl.errors import NnctlError, quiet_arithmetic
from nnctl.limits import ENV
from nnctl.runner import Runner

pytestmark = pytest.mark.slow  # each test runs the CLI or trains

VALUES = [None, 0, -1, 1, 2, 3.5, -0.0, 1e-300, 1e300, float("nan"), float("inf"), 10**12, True, "", "x", "relu",
          "adam", "full", [], [1], [[1, 2]], {}, {"type": "x"}, {"type": "dense", "units": 3}, "../..", "/tmp",
          "\u00b2", "a..b", [None], {"a": {"b": [1]}}]
KEYS = ["type", "units", "lr", "epochs", "batch_size", "activation", "name", "seed", "dtype", "momentum", "patience",
        "weight_init", "schedule", "dropout", "rate", "filters", "kernel_size", "op", "subset", "validation",
        "metrics", "monitor", "clip_norm", "one_hot", "root", "mirror", "path", "x", "y", "<<", "layers"]
BASE = yaml.safe_load(XOR.replace("epochs: 2", "epochs: 1"))


def mutate(rng: random.Random, base: dict = BASE, values: list = VALUES, keys: list[str] = KEYS) -> dict:
    config = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        candidates = [p for p in paths(config) if p]
        if not candidates:
            break
        path = rng.choice(candidates)
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.5:
            parent[path[-1]] = copy.deepcopy(rng.choice(values))
        elif action < 0.65 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.85 and isinstance(parent, dict):
            parent[rng.choice(keys)] = copy.deepcopy(rng.choice(values))
        elif isinstance(parent[path[-1]], list):
            parent[path[-1]] = parent[path[-1]] * rng.randint(0, 3)
    return config


def text_mutation(rng: random.Random) -> str:
    text = bytearray(XOR.encode())
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(text))
        choice = rng.random()
        if choice < 0.4:
            text[i] = rng.choice(b"{}[]:,-&*!|>'\"#\t\n\x07 %@`?")
        elif choice < 0.7:
            del text[i: i + rng.randint(1, 8)]
        else:
            text[i:i] = rng.choice([b"&a ", b"*a", b"<<: ", b"!!python/object:os.system ", b"\xff", b"\n  - "])
    return text.decode("utf-8", errors="replace")


def outcome(path: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    """'ok' or 'error', or a failure description with the traceback for anything that is not an NnctlError."""
    path.write_text(text)
    try:
        with warnings.catch_warnings():
            quiet_arithmetic()  # as `nnctl train` does: a run that diverges ends in the NaN check's message alone
            Runner.start(load_config(path, overrides), path.parent / "runs", quiet=True).fit()
        return "ok"
    except NnctlError:
        return "error"
    except Exception:
        return f"bug on:\n{text}\n{traceback.format_exc()}"


@pytest.mark.no_kernels  # XOR's two dense layers: what it tries is config reading
@pytest.mark.parametrize("kind, count", [("structure", 300), ("text", 200)])
def test_random_mutations_end_in_a_run_or_a_clean_error(tmp_path, monkeypatch, kind, count):
    monkeypatch.setenv(ENV, "256M")
    rng = random.Random(11)
    deadline = time.monotonic() + 90
    seen = {"ok": 0, "error": 0}
    for i in range(count):
        if time.monotonic() > deadline:
            break
        text = yaml.safe_dump(mutate(rng)) if kind == "structure" else text_mutation(rng)
        result = outcome(tmp_path / str(i) / "c.yaml", text) if (tmp_path / str(i)).mkdir() is None else ""
        assert result in seen, result
        seen[result] += 1
    assert seen["ok"] and seen["error"] and sum(seen.values()) >= 50, seen


SHIPPED_VALUES = [*VALUES, "same", "valid", [2, 2], [3, 1], [0, 5], 28, 784, {"shift": 2}, "char", "word", "float64",
                  "sigmoid"]
SHIPPED_KEYS = [*KEYS, "filters", "kernel_size", "stride", "padding", "dilation", "pool_size", "return_sequences",
                "vocab_size", "dim", "seq_len", "level", "augment", "normalize", "flatten", "beta1", "eps",
                "weight_decay", "factor", "warmup", "steps", "keep_every", "log_every_steps", "test_on", "classes",
                "use_bias", "reset_after", "samples", "test_samples", "alphabet", "shape"]
SMALL = ("data.subset=64", "data.test_subset=64", "train.epochs=1", "train.steps=null")
"""A slice of each run; a mutated config that cannot take it is an error like any other."""


class TookTooLong(BaseException):
    """Raised by the alarm: a BaseException, so that `outcome` does not take it for a bug of the run's own."""


def test_mutations_of_every_shipped_config_end_in_a_run_or_a_clean_error(tmp_path, monkeypatch, mnist_root):
    """The same over every shipped config (conv, recurrent, tree, text, generated data) on 64 samples: each layer's
    and dataset's checks meet values they were not written for, and none may crash or draw on for a minute."""
    monkeypatch.setenv(ENV, "512M")
    shutil.copytree(CONFIGS, tmp_path / "configs")
    images_folder(tmp_path / "configs" / "images" / "train")  # where images_cnn.yaml looks
    files = sorted(p for p in (tmp_path / "configs").glob("*.yaml") if "cifar" not in p.name)  # no CIFAR-10 here
    rng = random.Random(3)
    deadline, seen = time.monotonic() + 60, {"ok": 0, "error": 0}

    def stop(*_):
        raise TookTooLong

    previous = signal.signal(signal.SIGALRM, stop)
    try:
        for i in itertools.count():
            if time.monotonic() > deadline:
                break
            source = rng.choice(files)
            text = yaml.safe_dump(mutate(rng, yaml.safe_load(source.read_text()), SHIPPED_VALUES, SHIPPED_KEYS))
            signal.alarm(60)
            try:
                result = outcome(source.with_name(f"m{i}.yaml"), text, SMALL)  # beside its base configs
            except TookTooLong:
                result = f"ran on for a minute on 64 samples:\n{text}"
            finally:
                signal.alarm(0)
            assert result in seen, result
            seen[result] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert seen["ok"] and seen["error"] and sum(seen.values()) >= 50, seen


def test_a_handful_of_mutations_through_the_real_cli(tmp_path):
    rng = random.Random(5)
    for i in range(5):
        folder = tmp_path / str(i)
        folder.mkdir()
        (folder / "c.yaml").write_text(yaml.safe_dump(mutate(rng)))
        result = nnctl("train", "c.yaml", "-q", cwd=folder, env={ENV: "256M"}, timeout=120)
        if result.returncode:
            clean_error(result, result.returncode)
        assert result.returncode in (0, 1, 2), result.stderr
