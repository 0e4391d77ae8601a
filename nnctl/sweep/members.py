"""A sweep's members and how each ended, and the final metric of the members against each grid value."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnctl.config import Config
from nnctl.runs import Run
from nnctl.schema import finite, is_number
from nnctl.sweep.labels import short


@dataclass
class Member:
    """One run of a sweep: its label (also its config name), its config, and what to do with it."""

    label: str
    config: Config
    values: dict[str, Any]
    """The grid values of this member, by grid key."""
    group: str
    """The member's name from `members`, or ''."""
    resume: Path | None = None
    """The last.pkl of a stopped earlier run of this member, set by Sweep.plan."""
    previous: Run | None = None
    """The newest earlier run of this member (the same resolved config) in the sweep directory."""


@dataclass
class Outcome:
    """How a member ended in this sweep: skipped, finished, early_stopped, stopped or failed."""

    member: Member
    status: str
    run: Run | None = None
    error: str | None = None


def by_value(outcomes: list[Outcome], metric: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """For each numeric grid key: the final `metric` (validation if recorded) against the key's value,
    grouped by the member's other values."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for outcome in outcomes:
        run = outcome.run
        if run is None or not run.epochs():
            continue
        final = run.epochs()[-1]
        value: Any = final.get(f"val_{metric}", final.get(metric))
        if not (is_number(value) and finite(value)):
            continue
        for key, x in outcome.member.values.items():
            if is_number(x) and finite(x):
                others = [outcome.member.group] + [short(v, k) for k, v in outcome.member.values.items() if k != key]
                curves.setdefault(key, {}).setdefault(" ".join(o for o in others if o), []).append((x, value))
    return {key: groups for key, groups in curves.items() if max(len(xy) for xy in groups.values()) > 1}
