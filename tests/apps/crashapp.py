"""A child-process app for the crash tests (tests/test_crash.py): run a workflow, get killed, recover.

Usage::

    python tests/crashapp.py run DB LOG [--self-kill K] [--steps N] [--slow-disk S]
    python tests/crashapp.py step-writes DB LOG [--self-kill K] [--steps N]
    python tests/crashapp.py recover DB LOG [--workflow ID] [--steps N]

``run`` starts the workflow ``crashapp.pipeline`` under the fixed id :data:`PIPELINE_ID`: N steps,
each returning its index, and one stream item per step written from the workflow body.
``step-writes`` starts ``crashapp.step_writes`` under :data:`STEP_WRITES_ID`, whose steps write
their item from *inside* the step (at-least-once). Every step appends ``ran <i> pid=<pid>`` to LOG
before it returns, so the parent can see which steps ran in which process. With ``--self-kill K``
the process kills itself with SIGKILL inside step K (after logging it; for ``step-writes``, after
its stream item is durable). Without it the parent kills the process; a process that finishes its
workflow waits to be killed, so the kill always lands.

``recover`` opens DB, calls :func:`nbflow.recover`, waits for every recovered workflow, then calls
the workflow ``--workflow`` again under its fixed id (which returns the recorded result, or runs a
workflow whose start never became durable) and prints a JSON summary on stdout.

Workflows and steps have explicit names, so they are found again whatever this module is called
(``__main__`` here, ``tests.apps.crashapp`` when imported).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nbflow

PIPELINE_ID = "crash-pipeline"
STEP_WRITES_ID = "crash-step-writes"
DEFAULT_STEPS = 500
#: Simulated work per step (seconds), so that a kill from the parent lands mid-run.
STEP_WORK = 0.001

_log_path: str = ""
_self_kill: int | None = None


def _log_ran(i: int) -> None:
    """Append ``ran <i> pid=<pid>`` to the side-effect log (one O_APPEND write, no buffering)."""
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"ran {i} pid={os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@nbflow.step(name="crashapp.work")
def work(i: int) -> int:
    """A step with a side effect: it logs that it ran, then returns its index."""
    _log_ran(i)
    if i == _self_kill:
        _die()
    time.sleep(STEP_WORK)  # simulated work, not a wait for a condition
    return i


@nbflow.workflow(name="crashapp.pipeline")
def pipeline(n: int) -> int:
    """N checkpointed steps; one stream item per step, written from the workflow body."""
    total = 0
    for i in range(n):
        value = work(i)
        nbflow.write_stream("items", value)
        total += value
    return total


@nbflow.step(name="crashapp.write_in_step")
def write_in_step(i: int) -> int:
    """A step that writes its stream item itself (at-least-once), then logs that it ran."""
    nbflow.write_stream("items", i)
    _log_ran(i)
    if i == _self_kill:
        nbflow.runtime().flush()  # the item is durable, the step's checkpoint is not
        _die()
    time.sleep(STEP_WORK)
    return i


@nbflow.workflow(name="crashapp.step_writes")
def step_writes(n: int) -> int:
    """N steps, each writing one stream item from inside the step."""
    total = 0
    for i in range(n):
        total += write_in_step(i)
    return total


WORKFLOWS = {PIPELINE_ID: pipeline, STEP_WRITES_ID: step_writes}


def _run(workflow_id: str, n: int) -> None:
    with nbflow.set_workflow_id(workflow_id):
        WORKFLOWS[workflow_id](n)
    print("finished", flush=True)
    threading.Event().wait()  # wait to be killed: the parent's kill must always land


def _recover(workflow_id: str, n: int) -> None:
    runtime = nbflow.runtime()
    interrupted = list(runtime.interrupted)
    handles = nbflow.recover()
    results = {handle.workflow_id: handle.result(timeout=120) for handle in handles}
    # A workflow whose start never became durable is not recorded, so recover() cannot see it:
    # call it again under its id. A recorded one returns its result and never runs twice.
    with nbflow.set_workflow_id(workflow_id):
        called = WORKFLOWS[workflow_id](n)
    summary = {
        "pid": os.getpid(),
        "interrupted": interrupted,
        "recovered": sorted(results),
        "results": results,
        "called": called,
    }
    print(json.dumps(summary), flush=True)


def _slow_down(runtime: nbflow.Runtime, seconds: float) -> None:
    """Simulate a slow disk: every commit of the write log takes ``seconds`` longer."""
    store = runtime.store
    commit = store.commit

    def slow_commit(ops: Any) -> set[str]:
        time.sleep(seconds)  # simulated latency, not a wait for a condition
        return commit(ops)

    store.commit = slow_commit  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    global _log_path, _self_kill
    parser = argparse.ArgumentParser(prog="crashapp")
    parser.add_argument("command", choices=["run", "step-writes", "recover"])
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--self-kill", type=int, default=None)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--workflow", choices=sorted(WORKFLOWS), default=PIPELINE_ID)
    parser.add_argument(
        "--slow-disk", type=float, default=0.0, help="seconds each commit takes longer"
    )
    args = parser.parse_args(argv)
    _log_path = args.log
    _self_kill = args.self_kill
    runtime = nbflow.configure(args.db)
    if args.slow_disk:
        _slow_down(runtime, args.slow_disk)
    if args.command == "run":
        _run(PIPELINE_ID, args.steps)
    elif args.command == "step-writes":
        _run(STEP_WRITES_ID, args.steps)
    else:
        _recover(args.workflow, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
