"""A child-process app for the fault-injection run (tests/test_faults.py): a mixed load under faults.

Usage::

    python tests/faultapp.py DB LOG [--commit-error N] [--pause-at N] [--hold]

The app opens DB (a DuckDB file, or a PostgreSQL URL whose sessions are named ``nbflow-faultapp``),
recovers what is interrupted (:func:`nbflow.recover`), then starts :data:`WORKFLOWS` workflows
``faults.mixed(k)`` under fixed ids (an existing one is found, not started again) and, for each, a
reader of its stream ``rows`` with no timeout. A ``mixed`` workflow runs, in order:

- :data:`STEPS` steps ``work``, each followed by a body write of ``"k:i"`` to the stream ``rows``;
- a child workflow ``faults.child`` started from the body, and its result;
- :func:`nbflow.map` of the step ``square`` over 6 items;
- a message sent to itself (``send``) and received (``recv``).

Every step appends ``step <label> pid=<pid>`` to LOG (one ``O_APPEND`` write) before it returns,
and returns ``{"label": <label>, "value": …}``: the parent reads the labels of the durable
checkpoints from the database, and the log tells which ran in which process.

``--pause-at N`` makes the step that completes this process's Nth side effect create ``LOG.paused``
and wait for a line on stdin: the parent injects a fault at a known point, then lets it go on.
``--commit-error N`` makes the commits after this process's Nth step fail (the store raises a
``DatabaseError``, as a full disk or a lost server would): the committer stops, and every writer,
waiter and reader must get the error at once. The app then prints a JSON summary: results, errors,
readers that did not end within :data:`READER_GUARD` seconds (hangs), and the rows each reader saw.
With ``--hold`` it waits to be killed after printing (so that a kill from the parent lands).
"""

from __future__ import annotations

import argparse
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

WORKFLOWS = 3
STEPS = 12
CHILD_STEPS = 3
MAP_ITEMS = 6
READER_GUARD = 30.0
STEP_WORK = 0.005  # seconds of simulated work per step

_log_path = ""
_count = [0]  # steps done in this process
_count_lock = threading.Lock()
_pause_at = [0]  # --pause-at: the step after which to wait for the parent (0: never)
_fail_after = [0]  # --commit-error: the step after which the next commit fails (0: never)
_fail_next = threading.Event()


def _log(label: str) -> None:
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"step {label} pid={os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _done(label: str, value: int) -> dict[str, Any]:
    time.sleep(STEP_WORK)  # simulated work, so that a fault from the parent lands mid-run
    _log(label)
    with _count_lock:
        _count[0] += 1
        pause = _count[0] == _pause_at[0]
        if _count[0] == _fail_after[0]:
            _fail_next.set()
    if pause:  # the parent injects its fault now, then says go (a line on stdin)
        Path(f"{_log_path}.paused").touch()
        sys.stdin.readline()
    return {"label": label, "value": value}


@nbflow.step(name="faults.work")
def work(k: int, i: int) -> dict[str, Any]:
    return _done(f"work:{k}:{i}", k * 100 + i)


@nbflow.step(name="faults.child_step")
def child_step(k: int, j: int) -> dict[str, Any]:
    return _done(f"child:{k}:{j}", j)


@nbflow.step(name="faults.square")
def square(x: int) -> dict[str, Any]:
    return _done(f"square:{x // 10}:{x % 10}", (x % 10) ** 2)


@nbflow.workflow(name="faults.child")
def child(k: int) -> int:
    return sum(child_step(k, j)["value"] for j in range(CHILD_STEPS))


@nbflow.workflow(name="faults.mixed")
def mixed(k: int) -> int:
    total = 0
    for i in range(STEPS):
        total += work(k, i)["value"]
        nbflow.write_stream("rows", f"{k}:{i}")
    total += nbflow.start(child, k).result(timeout=120)
    total += sum(r["value"] for r in nbflow.map(square, [k * 10 + x for x in range(MAP_ITEMS)]))
    me = nbflow.current_workflow_id()
    assert me is not None
    nbflow.send(me, k, topic="self")
    total += nbflow.recv(topic="self", timeout=60)
    return total


def expected(k: int) -> int:
    """What ``mixed(k)`` returns."""
    work_sum = sum(k * 100 + i for i in range(STEPS))
    return work_sum + sum(range(CHILD_STEPS)) + sum(x * x for x in range(MAP_ITEMS)) + k


def workflow_id(k: int) -> str:
    return f"mixed-{k}"


def _fail_commit(rt: nbflow.Runtime, n: int) -> None:
    """Make the first commit after this process's ``n``-th step raise, as a failing disk or
    server would (there is always one: that step's checkpoint)."""
    store: Any = rt.store
    commit = store.commit
    _fail_after[0] = n

    def failing(ops: Any) -> Any:
        if _fail_next.is_set():
            raise nbflow.DatabaseError(f"injected: a commit after step {n} failed", path=store.url)
        return commit(ops)

    store.commit = failing


def _read(rt: nbflow.Runtime, wid: str, out: dict[str, Any]) -> None:
    try:
        out["rows"] = list(rt.read_stream(wid, "rows", timeout=None))
    except Exception as exc:
        out["error"] = type(exc).__name__


def _run(rt: nbflow.Runtime) -> dict[str, Any]:
    summary: dict[str, Any] = {"results": {}, "errors": {}, "hangs": [], "rows": {}}
    try:
        summary["recovered"] = sorted(h.workflow_id for h in rt.recover())
        handles = {}
        for k in range(WORKFLOWS):
            with nbflow.set_workflow_id(workflow_id(k)):
                handles[k] = rt.start(mixed, k)
    except nbflow.NbflowError as exc:
        summary["errors"]["start"] = type(exc).__name__
        return summary
    readers = {}
    for k in handles:
        out: dict[str, Any] = {}
        thread = threading.Thread(
            target=_read, args=(rt, workflow_id(k), out), name=f"nbflow-reader-{k}", daemon=True
        )
        thread.start()
        readers[k] = (thread, out)
    for k, handle in handles.items():
        try:
            summary["results"][str(k)] = handle.result(timeout=120)
        except Exception as exc:
            summary["errors"][str(k)] = type(exc).__name__
    for k, (thread, out) in readers.items():
        thread.join(READER_GUARD)
        if thread.is_alive():
            summary["hangs"].append(k)
        summary["rows"][str(k)] = out.get("rows", out.get("error"))
    return summary


def main(argv: list[str] | None = None) -> int:
    global _log_path
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--commit-error", type=int)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--pause-at", type=int, default=0)
    args = parser.parse_args(argv)
    _log_path = args.log
    _pause_at[0] = args.pause_at
    rt = nbflow.configure(args.db)
    if args.commit_error:
        _fail_commit(rt, args.commit_error)
    summary = _run(rt)
    print(json.dumps(summary), flush=True)
    if args.hold:
        threading.Event().wait()
    rt.close(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
