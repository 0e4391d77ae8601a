"""The local engine: a sweep's members trained in worker processes, each with its share of the BLAS threads;
a Ctrl-C, a SIGTERM or the sweep's process gone stops them after their step."""

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import active_children, get_context
from pathlib import Path
from typing import Any

from nnctl.console import terminated
from nnctl.errors import NnctlError, quiet_arithmetic
from nnctl.runner import Runner
from nnctl.runs import load_run
from nnctl.sweep.members import Member, Outcome
from nnctl.trained import UNTRUSTED

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def run_members(todo: list[Member], sweep_dir: Path, sweep: str, jobs: int, threads: int,
                report: Callable[[Outcome], None] | None) -> dict[str, Outcome]:
    """Trains `todo` in `jobs` worker processes of `threads` BLAS threads each; each member's outcome by its
    label, reported as it comes."""
    outcomes: dict[str, Outcome] = {}
    context = get_context("spawn")
    interrupted = context.Event()
    with _blas_threads(threads), \
            ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context,
                                initializer=_in_worker, initargs=(interrupted,)) as pool:
        futures = {pool.submit(run_member, member, sweep_dir, sweep): member for member in todo}
        try:
            for future in as_completed(futures):
                status, error, run_dir = future.result()
                member = futures[future]
                run = load_run(run_dir) if run_dir else None
                outcomes[member.label] = Outcome(member, status, run, error)
                if report:
                    report(outcomes[member.label])
        except KeyboardInterrupt:
            _stop_members(interrupted, list(futures))
            raise
    return outcomes


def _stop_members(interrupted: Any, futures: list[Future]) -> None:
    """After a Ctrl-C or SIGTERM: the members not started are cancelled (those queued in a worker already see
    `interrupted` and do not start), and after a SIGTERM the running ones get one too, stopping after their step."""
    interrupted.set()
    for future in futures:
        future.cancel()
    if terminated():  # a Ctrl-C reaches the workers from the terminal; a `kill` of this one does not
        for worker in active_children():
            worker.terminate()


_INTERRUPTED: Any = None
"""In a worker process: the sweep's event, set once Ctrl-C stopped the sweep."""


def _in_worker(interrupted: Any) -> None:
    global _INTERRUPTED
    _INTERRUPTED = interrupted
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()


def _stop_when_orphaned(parent: int) -> None:
    """In a worker, once the sweep's process is gone (killed with -9): no member starts, and a SIGTERM every
    second stops the one in flight after its step, as a SIGTERM to the sweep would, then ends the idle worker,
    which would otherwise wait for members forever."""
    while os.getppid() == parent:
        time.sleep(1)
    _INTERRUPTED.set()
    while True:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)


def run_member(member: Member, sweep_dir: Path, sweep: str) -> tuple[str, str | None, Path | None]:
    """Trains one member of the sweep named `sweep` (in a worker process); its status, why it failed, and its run
    directory if made."""
    if _INTERRUPTED is not None and _INTERRUPTED.is_set():
        return "stopped", "the sweep was interrupted before it started", None
    quiet_arithmetic()  # a diverging member is one row of the report, not warnings among the others' lines
    runner = None
    try:
        if member.resume is not None:
            data = member.config.data.get("data")
            here = [f"data.{key}={json.dumps(data[key])}" for key in UNTRUSTED  # the sweep file's, not the checkpoint's
                    if isinstance(data, dict) and data.get(key) is not None]
            runner = Runner.resume(member.resume, here, sweep_dir, quiet=True, sweep=sweep)
        else:
            runner = Runner.start(member.config, sweep_dir, quiet=True, sweep=sweep)
        return runner.fit()["status"], None, runner.run_dir
    except NnctlError as exc:
        return "failed", str(exc), runner.run_dir if runner else None
    except Exception as exc:  # one member's bug must not stop the others; it is reported with the rest
        return "failed", f"internal error: {type(exc).__name__}: {exc}", runner.run_dir if runner else None
    except KeyboardInterrupt:
        return "stopped", "interrupted", runner.run_dir if runner else None


@contextmanager
def _blas_threads(count: int) -> Iterator[None]:
    """Worker processes started inside get `count` BLAS threads each, so parallel members do not oversubscribe."""
    saved = {name: os.environ.get(name) for name in THREAD_VARS}
    os.environ.update({name: str(count) for name in THREAD_VARS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
