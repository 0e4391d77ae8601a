"""Ray Tune, imported with the settings nnctl runs it under; NnctlError naming the extra where it is missing."""

import os

from nnctl.errors import NnctlError

__all__ = ["INSTALL", "ASHAScheduler", "grpc", "ray", "services", "tune"]

INSTALL = "pip install 'nnctl[ray]'"
# Tune's own progress tables and metric checks: nnctl prints its own lines, and a failed member's last report
# carries its error instead of the metric.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
try:
    import grpc  # type: ignore[import-untyped]  # the ray extra installs it: Ray itself no longer needs it
    import ray
    from ray import tune
    from ray._private import services
    from ray.tune.schedulers import ASHAScheduler
except ImportError as exc:
    raise NnctlError(f"the Ray engine needs Ray Tune ({exc}); install it with {INSTALL}") from None
