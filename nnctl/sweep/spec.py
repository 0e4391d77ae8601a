"""The keys of a sweep file: the classes whose constructors are its schema (the file, its search and its
scheduler), and the checks of their values."""

from typing import Literal

from nnctl.schema import brief

MAX_MEMBERS = 10_000
"""The most members one sweep may have (grid combinations, or samples, times the entries of `members`): a sweep
file that asks for more is refused, from the sizes alone, before any member is built."""
MAX_SEED = 2**31 - 1
"""The largest sweep seed: Optuna's TPE takes seeds below 2**32, and a re-run adds the members already drawn."""


class SweepSpec:
    """The keys of a sweep file; its constructor is the file's schema."""

    def __init__(self, base: str | dict, name: str | None = None, overrides: dict | None = None,
                 grid: dict | None = None, members: list[dict] | None = None, metric: str = "loss",
                 samples: int | None = None, seed: int = 0, search: str | dict | None = None,
                 scheduler: str | dict | None = None, engine: Literal["local", "ray"] = "local",
                 address: str | None = None, cpus_per_member: int | None = None, gpus_per_member: float = 0,
                 max_concurrent: int | None = None, max_failures: int = 2):
        check_samples(samples)
        for key, value, least in (("cpus_per_member", cpus_per_member, 1), ("max_concurrent", max_concurrent, 1),
                                  ("gpus_per_member", gpus_per_member, 0), ("max_failures", max_failures, 0),
                                  ("seed", seed, 0)):
            if value is not None and value < least:
                raise ValueError(f"{key} must be at least {least}, got {value}")
        check_address(address)
        if seed > MAX_SEED:
            raise ValueError(f"seed must be at most {MAX_SEED:,} (2**31 - 1), got {brief(seed)}; pick a smaller one")
        self.base, self.name, self.overrides = base, name, overrides or {}
        self.grid, self.members, self.metric = grid or {}, members or [{}], metric
        self.samples, self.seed = samples, seed
        self.search, self.scheduler, self.engine, self.address = search, scheduler, engine, address
        self.cpus_per_member, self.gpus_per_member = cpus_per_member, gpus_per_member
        self.max_concurrent, self.max_failures = max_concurrent, max_failures


class Search:
    """How members are chosen from the grid: every combination, `samples` drawn at random, or `samples`
    proposed one after another by Optuna's TPE from the results so far (Ray engine)."""

    def __init__(self, type: Literal["grid", "random", "tpe"] = "grid", samples: int | None = None,
                 metric: str = "val_loss", mode: Literal["min", "max"] = "min"):
        check_samples(samples)
        self.type, self.samples, self.metric, self.mode = type, samples, metric, mode


def check_address(address: str | None) -> None:
    """ValueError unless `address` is auto, local or HOST:PORT; also for a Ray Client address (ray://): there Ray
    Tune runs the sweep's driver on the cluster, and the callbacks that write and report each member's outcome
    cannot reach this process."""
    if address is None or address in ("auto", "local"):
        return
    if address.lower().startswith("ray://"):
        raise ValueError(f"address {address} is a Ray Client address, which cannot run a sweep: Ray Tune would run "
                         "its driver on the cluster, out of nnctl's reach; give the head's HOST:PORT (6379 by "
                         "default: open that port to this machine, or start the sweep on one of the cluster's)")
    host, _, port = address.rpartition(":")
    if not host.strip("[]") or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"address {address!r}: expected auto or HOST:PORT, the port from 1 to 65535 (a Ray head's "
                         "GCS port: 6379 unless `ray start --head --port` said otherwise)")


def check_samples(samples: int | None) -> None:
    """ValueError when `samples` asks for no member, or for more than a sweep may have."""
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if samples is not None and samples > MAX_MEMBERS:
        raise ValueError(f"samples must be at most {MAX_MEMBERS:,} (the most members a sweep may have), got "
                         f"{brief(samples)}; draw fewer")


class Scheduler:
    """Early stopping across members (Ray engine): ASHA stops the members whose `metric` trails the others'
    at the same epoch, first after `grace_period` epochs, keeping 1/`reduction_factor` at each rung."""

    def __init__(self, type: Literal["asha"], metric: str = "val_loss", mode: Literal["min", "max"] = "min",
                 grace_period: int = 1, reduction_factor: float = 3):
        if grace_period < 1:
            raise ValueError(f"grace_period must be at least 1, got {grace_period}")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be above 1, got {reduction_factor}")
        self.type, self.metric, self.mode = type, metric, mode
        self.grace_period, self.reduction_factor = grace_period, reduction_factor
