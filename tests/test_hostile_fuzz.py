"""Seeded, time-bounded fuzzing: random mutations of a valid config end in a finished run or a clean error."""

import copy
import random
import time
import traceback

import pytest
import yaml
from hostile import XOR, clean_error

from helpers import nnctl
from nnctl.config import load_config
from nnctl.errors import NnctlError
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


def paths(node, prefix=()):
    """Every key path into the config, containers included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield from paths(value, prefix + (key,))


def mutate(rng: random.Random) -> dict:
    config = copy.deepcopy(BASE)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in paths(config) if p])
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.5:
            parent[path[-1]] = copy.deepcopy(rng.choice(VALUES))
        elif action < 0.65 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.85 and isinstance(parent, dict):
            parent[rng.choice(KEYS)] = copy.deepcopy(rng.choice(VALUES))
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


def outcome(tmp_path, text: str) -> str:
    """'ok' or 'error', or a failure description with the traceback for anything that is not an NnctlError."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        Runner.start(load_config(path), tmp_path / "runs", quiet=True).fit()
        return "ok"
    except NnctlError:
        return "error"
    except Exception:
        return f"bug on:\n{text}\n{traceback.format_exc()}"


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
        result = outcome(tmp_path / str(i), text) if (tmp_path / str(i)).mkdir() is None else ""
        assert result in seen, result
        seen[result] += 1
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
