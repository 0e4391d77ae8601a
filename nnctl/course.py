"""What defines a run's course: the config less the few keys a resume may change, and a hash of it that every
checkpoint keeps, so `--resume` with an override that would change the run is refused with the keys named."""

import hashlib
import json
from collections.abc import Iterable
from typing import Any

HASH_FREE = ("name", "device", "train.epochs", "train.early_stopping", "train.eval_every", "train.eval_batch_size",
             "train.log_every_steps", "train.tensorboard", "optimizer.lr", "optimizer.clip_norm",
             "data.root", "data.mirror", "data.test_subset")
"""The keys a checkpoint's course hash leaves out: those a resume could change when the hash was introduced. It
stays fixed, so that every checkpoint's hash still checks; a resume may change more (MAY_CHANGE)."""
MAY_CHANGE = (*HASH_FREE, "train.steps", "train.eval_every_steps", "train.keep_every", "train.tracking",
              "train.keep_every_steps")
"""Keys a resume may change; everything else defines the course. The lr may change as the epochs (or steps) may: a
schedule scales whatever base lr it is given, as it follows whatever length it is given."""


def free_keys(config: dict[str, Any]) -> tuple[str, ...]:
    """The keys a resume of `config`'s run may change: MAY_CHANGE, less data.test_subset where the test split is
    the validation split too (data.validation: test): there it picks best.pkl and steers the schedules."""
    if (config.get("data") or {}).get("validation") == "test":
        return tuple(key for key in MAY_CHANGE if key != "data.test_subset")
    return MAY_CHANGE


PINNED = ("data.vocab",)
"""Keys a checkpoint sets itself when it is used (the vocabulary its ids mean), so never a change of course."""


def course(config: dict[str, Any], free: tuple[str, ...] = MAY_CHANGE) -> dict[str, Any]:
    """The config's keys that define the run's course (all but `free`), as flat dotted keys."""
    free = (*free, *PINNED)
    return {key: value for key, value in flatten(config).items()
            if not any(key == f or key.startswith(f + ".") for f in free)}


def course_hash(config: dict[str, Any], free: tuple[str, ...] = MAY_CHANGE) -> str:
    """A short hash of `course(config, free)`."""
    text = json.dumps(course(config, free), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed(before: dict[str, Any], after: dict[str, Any], free: tuple[str, ...] = MAY_CHANGE) -> list[str]:
    """'key: old -> new' for every course key (all but `free`) that differs between two configs."""
    a, b = course(before, free), course(after, free)
    return [f"{key}: {a.get(key, '(absent)')!r} -> {b.get(key, '(absent)')!r}"
            for key in sorted(a.keys() | b.keys()) if key not in a or key not in b or a[key] != b[key]]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.1}} -> {'optimizer.lr': 0.1}; list items are numbered; the shorthand `loss: mse`
    is {'loss.type': 'mse'}, as the loaders read it."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    elif isinstance(data, str) and prefix.count(".") == 0 and prefix in ("loss", "optimizer", "schedule"):
        return {f"{prefix}.type": data}
    else:
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
