"""The Ray cluster a sweep runs on: joined at --address once its GCS answers (with Ray's token where it wants
one), or started on this machine; a member that asks for more than the cluster has is refused."""

import logging
import os
import socket
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError
from nnctl.sweep.ray_tune import grpc, ray, services
from nnctl.sweep.sweep import Sweep
from nnctl.sweep.workers import THREAD_VARS


def connect(address: str | None, threads: int) -> None:
    """Joins the cluster at `address` (after checking it answers, as Ray would wait minutes), or starts one here."""
    answer = _check_answers(address) if address not in (None, "auto", "local") else None
    env = {"env_vars": {name: str(threads) for name in THREAD_VARS}}
    here: dict[str, Any] = {"include_dashboard": False} if address in (None, "local") else {}
    try:
        if address is not None and address != "local" and "RAY_AUTH_MODE" not in os.environ:  # a running cluster
            if answer is None:  # auto: the cluster started on this machine
                answer = _gcs_answer(services.get_ray_address_from_environment("auto", None))
            os.environ["RAY_AUTH_MODE"] = "token" if _needs_token(answer, address) else "disabled"
            ray._raylet.Config.initialize("")  # type: ignore[attr-defined]  # Ray read the mode on import
        ray.init(address=address or "local", runtime_env=env, logging_level=logging.ERROR, log_to_driver=False, **here)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise NnctlError(f"--address {address}: cannot join the Ray cluster: {exc}") from None
    logging.getLogger("ray").setLevel(logging.CRITICAL)  # a lost worker is reported by Members, not a traceback


def check_resources(sweep: Sweep, joined: bool) -> None:
    """An error where a member asks for more CPUs or GPUs than the whole cluster has (Tune would wait for them
    forever): a ConfigError for the cluster started here, an NnctlError for a `joined` one (short of machines)."""
    has = ray.cluster_resources()
    for key, kind, asked in (("cpus_per_member", "CPU", sweep.spec.cpus_per_member or 1),
                             ("gpus_per_member", "GPU", sweep.spec.gpus_per_member)):
        if asked > has.get(kind, 0):
            where = "the Ray cluster joined" if joined else "this machine's Ray cluster"
            problem = f"each member asks for {asked:g} {kind}{'' if asked == 1 else 's'}, but {where} has " \
                      f"{has.get(kind, 0):g}"
            if joined:
                raise NnctlError(f"{key}: {problem}; add machines with {kind}s to the cluster or lower {key}")
            raise sweep.file.error((key,), f"{problem}; lower it")


def _check_answers(address: str) -> grpc.StatusCode:
    """The GCS's answer at `address` (HOST:PORT), or NnctlError where none answers: Ray waits minutes on a port
    where nothing listens, or something else does (a web server)."""
    host, _, port = address.rpartition(":")  # checked by sweep.check_address
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise NnctlError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
                         "`ray start --head --port PORT` and give its address, or leave --address out to "
                         "run on this machine alone") from None
    answer = _gcs_answer(address)
    if answer not in (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED):
        raise NnctlError(f"--address {address}: something listens there, but it does not answer as a Ray head's GCS "
                         f"does (gRPC: {answer.name.lower().replace('_', ' ')}); give the address that `ray start "
                         "--head` printed (HOST:6379 by default)")
    return answer


def _gcs_answer(address: str) -> grpc.StatusCode:
    """The status of a call of the GCS method GetClusterId at `address` (HOST:PORT) within 5 s: OK from a Ray GCS,
    UNAUTHENTICATED from one that wants its token; UNIMPLEMENTED from another gRPC server, and UNAVAILABLE or
    DEADLINE_EXCEEDED from no gRPC server."""
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")(b"", timeout=5)  # a valid empty request
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def _needs_token(answer: grpc.StatusCode, given: str) -> bool:
    """Whether to send Ray's token to the cluster at --address `given`, from its GCS's `answer` to a call without
    one: a token another cluster left in ~/.ray must not go to one that runs without (Ray would send it to
    `auto`'s)."""
    if answer != grpc.StatusCode.UNAUTHENTICATED:
        return False
    if not os.environ.get("RAY_AUTH_TOKEN") and \
            not Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").is_file():
        raise NnctlError(f"--address {given}: the Ray cluster there requires its token; copy ~/.ray/auth_token "
                         "from its head machine to this one, or set RAY_AUTH_TOKEN")
    return True
