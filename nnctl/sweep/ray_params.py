"""A sweep's members as Tune's trial parameters and back: the grid's and random search's members by their
index, TPE's space as Tune's distributions, and an earlier run's point in that space."""

from typing import Any

from nnctl.config import expand_path, key_path
from nnctl.runs import Run
from nnctl.sweep.members import Member
from nnctl.sweep.ray_tune import tune
from nnctl.sweep.space import Range
from nnctl.sweep.sweep import Sweep


def param_space(sweep: Sweep, todo: list[Member]) -> dict[str, Any]:
    """The grid's and random search's members, by their index."""
    labels = [m.label for m in sweep.members]
    return {"member": tune.grid_search([labels.index(m.label) for m in todo])}


def tpe_space(sweep: Sweep) -> dict[str, Any]:
    """TPE's space as Tune's distributions; a list of values as the index of the value (Optuna's choices must
    be plain scalars)."""
    space = {}
    for key, values in sweep.space.items():
        if isinstance(values, Range):
            space[key] = {"uniform": tune.uniform, "loguniform": tune.loguniform}.get(
                values.kind, lambda low, high: tune.randint(low, high + 1))(values.low, values.high)
        else:
            space[key] = tune.choice(list(range(len(values))))
    return space


def member_of_params(sweep: Sweep, params: dict[str, Any]) -> Member:
    """The member a trial's `params` stand for: a grid's by its index, a TPE search's by its values."""
    if "member" in params:
        return sweep.members[params["member"]]
    return sweep.member({key: params[key] if isinstance(values, Range) else values[params[key]]
                         for key, values in sweep.space.items()})


def _values(sweep: Sweep, config: dict[str, Any]) -> dict[str, Any]:
    """A run's values of the grid's keys (a `*` key: its first match), None where the config lacks one."""
    values: dict[str, Any] = {}
    for key in sweep.space:
        paths = expand_path(config, key_path(key))
        node: Any = config
        try:
            for part in paths[0] if paths else ():
                node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        values[key] = node
    return values


def encode(sweep: Sweep, run: Run) -> dict[str, Any] | None:
    """An earlier member's point in TPE's space, or None when its values are not in the space."""
    point = {}
    for key, value in _values(sweep, run.config).items():
        values = sweep.space[key]
        if isinstance(values, Range):
            point[key] = value
        elif value in values:
            point[key] = values.index(value)
        else:
            return None
    return point


def member_of_run(sweep: Sweep, run: Run) -> Member:
    """The member an earlier run of a TPE search was, from its config's values of the grid's keys."""
    return sweep.member(_values(sweep, run.config))
