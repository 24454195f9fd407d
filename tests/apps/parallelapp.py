"""A child-process app for the crash tests of parallel operations (tests/test_crash_parallel.py).

Usage::

    python tests/parallelapp.py SCENARIO DB LOG [--size N] [--hold]

SCENARIO is one of:

- ``map``: the workflow ``parallelapp.mapper`` (id :data:`MAP_ID`) maps the step
  ``parallelapp.work`` over ``range(N)`` with :func:`nbflow.map` at concurrency
  :data:`CONCURRENCY`. Each item sleeps a few milliseconds, logs ``item <i>`` and writes ``i`` to
  the stream ``notes`` from inside the step (at-least-once, credited to the item's step); after the
  map the body writes each result to the stream ``results`` (exactly once).
- ``gather``: the ``async def`` workflow ``parallelapp.gatherer`` (id :data:`GATHER_ID`) runs N
  rounds of ``await asyncio.gather(fetch(2r), fetch(2r + 1))`` (the second call finishes first),
  then the sequential step ``combine(r, pair)``, and writes the combined value to the stream
  ``rounds``. Steps log ``fetch <i>`` and ``combine <r>``.
- ``children``: the workflow ``parallelapp.parent`` (id :data:`PARENT_ID`) runs the step
  ``prepare`` (logs ``prepare <n>``), starts N children ``parallelapp.child(c)`` with
  :func:`nbflow.start`, waits for them, and sums their results in the step ``summarize`` (logs
  ``summarize <n>``). A child runs :data:`CHILD_STEPS` steps ``child_step(c, j)``, each logging
  ``child <c>.<j>``.

Every process is started ahead of time: it imports nbflow, prints ``ready`` and waits for a line on
stdin before it opens DB (a DuckDB file admits one process at a time, and the interpreter's start-up
is then not part of a run). It logs ``start -``, recovers what is interrupted
(:func:`nbflow.recover`) and waits for it, then calls the scenario's workflow under its fixed id
(which returns the recorded result, or runs a workflow whose start never became durable), logs
``done -`` and prints a JSON summary. With ``--hold`` it then waits to be killed, so that a kill
from the parent always lands.

Every side effect is one line ``<kind> <value> pid=<pid>`` appended to LOG with one ``O_APPEND``
write, made before the step returns: a step whose checkpoint is durable has logged. (A SIGKILL
does not lose what was written: the kernel keeps it; no fsync is needed, the machine does not
crash.) Workflows and steps have explicit names, so they are found again whatever this module is
called (``__main__`` here, ``tests.apps.parallelapp`` when imported).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nbflow

MAP_ID = "parallel-map"
GATHER_ID = "parallel-gather"
PARENT_ID = "parallel-parent"

#: The default size of each scenario: map items, gather rounds, children.
SIZES = {"map": 60, "gather": 20, "children": 4}
CONCURRENCY = 8
CHILD_STEPS = 3

_log_path: str = ""


def log_line(kind: str, value: Any) -> None:
    """Append ``<kind> <value> pid=<pid>`` to the side-effect log (one O_APPEND write)."""
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{kind} {value} pid={os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _work(seconds: float) -> None:
    time.sleep(seconds)  # simulated work, not a wait for a condition


# -- map --------------------------------------------------------------------------------------------


def item_value(i: int) -> int:
    """The result of map item ``i``."""
    return i * i + 1


@nbflow.step(name="parallelapp.work")
def work(i: int) -> int:
    """A map item: some work, a side effect, a stream item written from inside the step."""
    _work(0.004 + 0.003 * (i % 4))
    log_line("item", i)
    nbflow.write_stream("notes", i)
    return item_value(i)


@nbflow.workflow(name="parallelapp.mapper")
def mapper(n: int) -> list[int]:
    """Map ``work`` over ``range(n)``; then write each result to the stream ``results``."""
    results = nbflow.map(work, range(n), concurrency=CONCURRENCY)
    for value in results:
        nbflow.write_stream("results", value)
    return results


# -- gather -----------------------------------------------------------------------------------------


def page(i: int) -> str:
    """The result of ``fetch(i)``."""
    return f"page-{i}"


def combined(r: int) -> str:
    """The result of ``combine(r, ...)`` in a correct run."""
    return f"{r}:{page(2 * r)}+{page(2 * r + 1)}"


@nbflow.step(name="parallelapp.fetch")
async def fetch(i: int) -> str:
    """A gathered step; odd calls finish first, so checkpoints land out of call order."""
    await asyncio.sleep(0.002 if i % 2 else 0.008)  # simulated work
    log_line("fetch", i)
    return page(i)


@nbflow.step(name="parallelapp.combine")
async def combine(r: int, pair: list[str]) -> str:
    """The sequential step after each gather: its value shows what the gather returned."""
    await asyncio.sleep(0.001)  # simulated work
    log_line("combine", r)
    return f"{r}:{pair[0]}+{pair[1]}"


@nbflow.workflow(name="parallelapp.gatherer")
async def gatherer(rounds: int) -> list[str]:
    """``rounds`` gathers of two fetches, each followed by a combine and a stream item."""
    out = []
    for r in range(rounds):
        pair = await asyncio.gather(fetch(2 * r), fetch(2 * r + 1))
        value = await combine(r, list(pair))
        nbflow.write_stream("rounds", value)
        out.append(value)
    return out


# -- children ---------------------------------------------------------------------------------------


def child_value(c: int, j: int) -> int:
    """The result of ``child_step(c, j)``."""
    return 10 * c + j


@nbflow.step(name="parallelapp.child_step")
def child_step(c: int, j: int) -> int:
    """A step of child ``c``."""
    _work(0.01)
    log_line("child", f"{c}.{j}")
    return child_value(c, j)


@nbflow.workflow(name="parallelapp.child")
def child(c: int) -> list[int]:
    """A child: :data:`CHILD_STEPS` steps."""
    return [child_step(c, j) for j in range(CHILD_STEPS)]


@nbflow.step(name="parallelapp.prepare")
def prepare(n: int) -> list[int]:
    """The parent's first step: which children to start."""
    log_line("prepare", n)
    return list(range(n))


@nbflow.step(name="parallelapp.summarize")
def summarize(parts: list[list[int]]) -> dict[str, Any]:
    """The parent's last step: combine what the children returned."""
    log_line("summarize", len(parts))
    return {"parts": parts, "total": sum(sum(p) for p in parts)}


@nbflow.workflow(name="parallelapp.parent")
def parent(n: int) -> dict[str, Any]:
    """Start ``n`` children, wait for them, combine their results."""
    handles = [nbflow.start(child, c) for c in prepare(n)]
    return summarize([h.result() for h in handles])  # type: ignore[no-any-return]


def child_id(c: int) -> str:
    """The id of child ``c``: the parent's id and the function id of its start (prepare is 1)."""
    return f"{PARENT_ID}-{c + 2}"


# -- the scenarios ----------------------------------------------------------------------------------

WORKFLOWS: dict[str, tuple[str, Any]] = {
    "map": (MAP_ID, mapper),
    "gather": (GATHER_ID, gatherer),
    "children": (PARENT_ID, parent),
}


def expected(scenario: str, size: int) -> Any:
    """The result of a run of ``scenario`` that nothing interrupted."""
    if scenario == "map":
        return [item_value(i) for i in range(size)]
    if scenario == "gather":
        return [combined(r) for r in range(size)]
    parts = [[child_value(c, j) for j in range(CHILD_STEPS)] for c in range(size)]
    return {"parts": parts, "total": sum(sum(p) for p in parts)}


def _run(scenario: str, size: int) -> dict[str, Any]:
    runtime = nbflow.runtime()
    log_line("start", "-")
    interrupted = sorted(runtime.interrupted)
    handles = nbflow.recover()
    results = {handle.workflow_id: handle.result(timeout=120) for handle in handles}
    workflow_id, wf = WORKFLOWS[scenario]
    with nbflow.set_workflow_id(workflow_id):
        called = nbflow.start(wf, size).result(timeout=120)
    log_line("done", "-")
    return {
        "pid": os.getpid(),
        "interrupted": interrupted,
        "recovered": sorted(results),
        "results": results,
        "called": called,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, wait for the go-ahead on stdin, run one scenario."""
    global _log_path
    parser = argparse.ArgumentParser(prog="parallelapp")
    parser.add_argument("scenario", choices=sorted(WORKFLOWS))
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--hold", action="store_true", help="wait to be killed at the end")
    args = parser.parse_args(argv)
    _log_path = args.log
    size = SIZES[args.scenario] if args.size is None else args.size
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says when the previous process is gone
    nbflow.configure(args.db)
    summary = _run(args.scenario, size)
    print(json.dumps(summary), flush=True)
    if args.hold:
        threading.Event().wait()  # wait to be killed: the parent's kill must always land
    return 0


if __name__ == "__main__":
    sys.exit(main())
