"""A child-process app for the seeded fault run over ``nbflow.map`` (tests/test_map_faults.py).

Usage::

    python tests/apps/mapfaultapp.py EXECUTOR DB LOG [--size N] [--hold]

The workflow ``mapfault.pipeline`` (id :data:`WORKFLOW_ID`) maps the step ``mapfault.work`` over
``range(N)`` with :func:`nbflow.map` (concurrency 4, ``rate="500/s"``, a ``key``) on EXECUTOR, one
of :data:`EXECUTORS`: nbflow's own threads, an :class:`nbflow.Executor`, a
``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` (spawned workers) or a Dask ``LocalCluster``'s
executor (two worker processes). The step has ``retries=3``; item ``i`` fails its first
:func:`fails` ``(i)`` attempts, counted over every process (so a kill between attempts does not
make it fail more often). After the map, the body writes the items' ids to the stream ``results``
(exactly once) and returns them with the sum of their squares.

Every attempt appends ``attempt <i> pid=<owner>`` to LOG in one ``O_APPEND`` write before it
returns or raises, where ``owner`` is the app's pid (passed to worker processes in the
environment), so the test knows which run of the workflow made each attempt. As in
tests/apps/parallelapp.py, a process prints ``ready``, waits for a line on stdin, logs ``start -``,
recovers what is interrupted, calls the workflow under its fixed id, logs ``done -`` and prints
a JSON summary (with ``--hold`` it then waits to be killed).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: run the module tests.apps.mapfaultapp, whose
    # functions worker processes (a spawned pool's, Dask's) can import by that name
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.apps.mapfaultapp import main

    sys.exit(main())

import nbflow

WORKFLOW_ID = "map-fault"
EXECUTORS = ("threads", "nbflow-executor", "thread-pool", "process-pool", "dask")
SIZE = 24
_OWNER = "MAPFAULT_OWNER"
_LOG = "MAPFAULT_LOG"
_executor: list[Any] = []  # the executor the body maps on (none: nbflow's threads)


class Flaky(Exception):
    """What an item raises on the attempts it is made to fail."""


def fails(i: int) -> int:
    """How many attempts of item ``i`` fail (over all processes): 0, 1 or 2, by the item."""
    return (i * 7) % 3


def expected(size: int) -> dict[str, Any]:
    """The result of a run that nothing interrupted."""
    return {"ids": list(range(size)), "total": sum(i * i for i in range(size))}


def log_line(kind: str, value: Any) -> None:
    """Append ``<kind> <value> pid=<owner>`` to the log (one O_APPEND write)."""
    fd = os.open(os.environ[_LOG], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{kind} {value} pid={os.environ[_OWNER]}\n".encode())
    finally:
        os.close(fd)


def _attempts_so_far(i: int) -> int:
    with open(os.environ[_LOG]) as log:
        return sum(1 for line in log if line.startswith(f"attempt {i} "))


@nbflow.step(name="mapfault.work", retries=3, interval=0.002, backoff=1.0)
def work(i: int) -> dict[str, int]:
    """A map item: fails its first :func:`fails` attempts, then returns its own id and square."""
    before = _attempts_so_far(i)
    log_line("attempt", i)
    time.sleep(0.002 + 0.002 * (i % 3))  # simulated work
    if before < fails(i):
        raise Flaky(f"item {i} fails attempt {before + 1}")
    return {"i": i, "square": i * i}


@nbflow.workflow(name="mapfault.pipeline")
def pipeline(size: int) -> dict[str, Any]:
    """Map ``work`` over ``range(size)``, write the ids to ``results``, return ids and total."""
    executor = _executor[0] if _executor else None
    results = nbflow.map(
        work, range(size), concurrency=4, rate="500/s", executor=executor, key=lambda i: f"#{i}"
    )
    ids = [r["i"] for r in results]
    nbflow.write_stream("results", ids)
    return {"ids": ids, "total": sum(r["square"] for r in results)}


def make_executor(kind: str) -> tuple[Any, Any]:
    """The executor of ``kind`` and what to close after it (None for nbflow's threads)."""
    if kind == "threads":
        return None, None
    if kind == "nbflow-executor":
        pool: Any = nbflow.Executor(4)
        return pool, pool
    if kind == "thread-pool":
        pool = concurrent.futures.ThreadPoolExecutor(4)
        return pool, pool
    if kind == "process-pool":
        spawn = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn)
        return pool, pool
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    client = distributed.Client(cluster)
    return client.get_executor(), _Closing(client, cluster)


class _Closing:
    """Closes a Dask client, then its cluster."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def shutdown(self) -> None:
        for part in self.parts:
            part.close()


def _run(size: int) -> dict[str, Any]:
    log_line("start", "-")
    runtime = nbflow.runtime()
    interrupted = sorted(runtime.interrupted)
    recovered = {h.workflow_id: h.result(timeout=300) for h in nbflow.recover()}
    with nbflow.set_workflow_id(WORKFLOW_ID):
        called = nbflow.start(pipeline, size).result(timeout=300)
    log_line("done", "-")
    return {
        "pid": os.getpid(),
        "interrupted": interrupted,
        "recovered": recovered,
        "called": called,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, wait for the go-ahead on stdin, run the workflow."""
    parser = argparse.ArgumentParser(prog="mapfaultapp")
    parser.add_argument("executor", choices=EXECUTORS)
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--hold", action="store_true", help="wait to be killed at the end")
    args = parser.parse_args(argv)
    os.environ[_OWNER] = str(os.getpid())  # worker processes started from here inherit both
    os.environ[_LOG] = str(Path(args.log).resolve())
    executor, closing = make_executor(args.executor)
    if executor is not None:
        _executor.append(executor)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says when the previous process is gone
    nbflow.configure(args.db)
    summary = _run(args.size)
    print(json.dumps(summary), flush=True)
    if args.hold:
        threading.Event().wait()  # wait to be killed: the parent's kill must always land
    if closing is not None:
        closing.shutdown()
    return 0
