"""Workload (r): the process that is killed, leaving interrupted workflows behind.

``python -m benchmarks._crashed --system nbflow|dbos --dir DIR [--url URL] --workflows N
--steps K`` opens the system on the database of the benchmark's :class:`~benchmarks._stores.Place`
(nbflow: ``DIR/nbflow.duckdb`` or the PostgreSQL database ``URL``; DBOS: ``DIR/dbos.sqlite`` or
``URL``, with DBOS's default executor id, ``local``) and starts ``N`` workflows
``interrupted(K)``: each records ``K`` trivial steps, then blocks (see
:data:`benchmarks._systems.BLOCKER`). Once every one of them blocks and what they wrote is durable,
it prints ``ready`` and waits; the benchmark process then kills it with ``SIGKILL``, as a crash
would. The database is left as a killed process leaves it: ``N`` PENDING workflows, each with
``K`` recorded steps, owned by a process that is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks._stores import Place

__all__ = ["crash", "main"]

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 300.0  # importing, launching and starting N workflows (DBOS on SQLite: slow)


def crash(system: str, place: Place, workflows: int, steps: int) -> None:
    """Run the child on ``place`` until its workflows block, then kill it with ``SIGKILL``.

    Raises:
        RuntimeError: The child failed or did not get ready in time.
    """
    command = [
        sys.executable,
        "-m",
        "benchmarks._crashed",
        "--system",
        system,
        "--dir",
        str(place.directory),
        "--workflows",
        str(workflows),
        "--steps",
        str(steps),
        *(["--url", place.pg_url] if place.pg_url else []),
    ]
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert process.stdout is not None
        timer = threading.Timer(READY_TIMEOUT, process.kill)
        timer.start()
        try:
            line = process.stdout.readline()
        finally:
            timer.cancel()
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            process.stdout.close()
        if line.strip() != "ready":
            stderr.seek(0)
            raise RuntimeError(
                f"the crashed process was not ready (said {line!r}):\n{stderr.read()[-3000:]}"
            )


def main(argv: list[str] | None = None) -> int:
    """Start the workflows, wait until they all block and are durable, say so, and wait."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._crashed", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--system", choices=("nbflow", "dbos"), required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--url", default=None, help="the PostgreSQL database")
    parser.add_argument("--workflows", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)
    from benchmarks._systems import BLOCKER, NbflowSystem, System

    BLOCKER.blocking = True
    system: System
    if args.system == "dbos":
        from benchmarks._dbos_system import DbosSystem

        system = DbosSystem()
    else:
        system = NbflowSystem()
    system.open(Place(args.dir, args.url))
    for _ in range(args.workflows):
        system.start_interrupted(args.steps)
    for _ in range(args.workflows):
        if not BLOCKER.reached.acquire(timeout=READY_TIMEOUT):
            raise TimeoutError("the workflows did not all reach the point where they block")
    system.make_durable()
    print("ready", flush=True)
    threading.Event().wait()  # until killed
    return 0


if __name__ == "__main__":
    sys.exit(main())
