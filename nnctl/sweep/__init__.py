"""Sweeps: a base config and a grid or list of overrides, each member a normal run in one sweep directory, run in
parallel worker processes or as Ray Tune trials; finished members are skipped and stopped ones resumed when run
again. Its modules, in reading order: sweep (the Sweep), spec, space, labels, members, workers, then the Ray
engine's ray_engine, ray_tune, ray_cluster, ray_params, ray_trials, ray_members."""

from nnctl.sweep.members import Member, Outcome, by_value
from nnctl.sweep.spec import MAX_MEMBERS, check_address
from nnctl.sweep.sweep import Sweep

__all__ = ["MAX_MEMBERS", "Member", "Outcome", "Sweep", "by_value", "check_address"]
"""What the CLI and its tables import."""
