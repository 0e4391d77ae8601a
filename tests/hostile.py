"""Shared pieces of the hostile-input tests: a tiny valid config, the check that a run ended cleanly, and the key
paths into a config that mutations pick from."""

import os
import subprocess
from pathlib import Path

XOR = """\
name: xor
seed: 0
data: {type: logic, op: xor}
model:
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 2}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.05}
train: {epochs: 2, batch_size: 4}
"""


def clean_error(result: subprocess.CompletedProcess, code: int, *phrases: str) -> str:
    """Asserts `result` exited with `code` (no signal), one 'error:' message holding every phrase, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == code, f"exit {result.returncode}, expected {code}:\n{output}"
    assert "Traceback" not in output and "internal error" not in output, output
    assert [line[:6] for line in result.stderr.splitlines()].count("error:") == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, f"{phrase!r} not in:\n{result.stderr}"
    return result.stderr


def listing(*folders: Path) -> set[str]:
    """Every path under `folders`, to check that nothing was written."""
    return {str(Path(root) / name) for folder in folders for root, dirs, files in os.walk(folder)
            for name in dirs + files}


def paths(node, prefix=()):
    """Every key path into a config (or checkpoint), containers included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield from paths(value, prefix + (key,))
