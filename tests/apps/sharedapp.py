"""A child-process app for the shared-store tests (tests/test_shared_store.py): several processes
on one PostgreSQL database.

Usage::

    python tests/sharedapp.py write DB ID N [--batch B] [--pause S]
                              [--gate-at I --gate-file F --gate-lines L] [--hold-file F]
    python tests/sharedapp.py read DB ID KEY --progress F [--mark V]
    python tests/sharedapp.py run DB LOG WORKFLOW ID... [--hold] [--hold-dir D] [--n N]
                              [--gate-at I] [--tick-work S] [--read KEY]
    python tests/sharedapp.py recover DB LOG [--ready F --barrier F]
    python tests/sharedapp.py observe DB LOG --events F --live ID --go F
    python tests/sharedapp.py cancel DB ID

``write`` calls the workflow ``sharedapp.writer`` under ID: N items 0..N-1 on the stream "items",
written from the workflow body with a pause of S seconds after every B items. With ``--gate-at``,
a step waits before item I until the file F has at least L lines (a reader in another process says
how far it got); with ``--hold-file``, after closing the stream a step waits until that file exists,
so the workflow stays PENDING with its stream closed. It prints ``{"pid", "result"}``.

``read`` waits until the workflow ID exists, reads its stream KEY from the start with
:func:`nbflow.read_stream`, appends each value as a line to F as it arrives, and notes the
workflow's status and how many items it had when it received the value V. It prints
``{"pid", "values", "status_at_mark", "items_at_mark"}``.

``run`` starts WORKFLOW (``gated`` or ``ticker``) under each ID, optionally reads the stream KEY of
each in a thread of its own (creating ``D/read-ended-<id>`` when that reader ends), waits for every
workflow and prints ``{"pid", "outcomes", "read"}``.
With ``--hold``, the gate step waits until ``D/release-<id>`` exists (and returns its text): such a
process is usually killed there. Every step appends ``ran <workflow id> <step> pid=<pid>`` to LOG.

``recover`` opens DB, creates F (``--ready``) and waits until the barrier file exists, so several
processes call :func:`nbflow.recover` at nearly the same time; it waits for every workflow it took
and prints ``{"pid", "recovered", "results"}``.

``observe`` is the other process of the no-takeover test; it appends one JSON line per event to
``--events``: ``recover`` (what :func:`nbflow.recover` took while the owner is alive), ``resumed``
(after :func:`nbflow.resume` of ``--live``: whether it runs here), ``result`` (what
``handle.result()`` returned once the owner finished it); then it waits for ``--go`` and recovers
again (``recovered``).

``cancel`` cancels ID and prints its status.

Workflows and steps have explicit names, so they are found again whatever this module is called
(``__main__`` here, ``tests.apps.sharedapp`` when imported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nbflow

#: How long a child waits for a file or a condition before it gives up (seconds).
CHILD_TIMEOUT = 120.0
#: Simulated work per ``ticker`` step (seconds), so that a cancel lands mid-run.
TICK_WORK = 0.002

_log_path: str = ""
_hold = False


def _log_ran(workflow_id: str | None, step: str) -> None:
    """Append ``ran <wf> <step> pid=<pid>`` to the side-effect log (one O_APPEND write)."""
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"ran {workflow_id} {step} pid={os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _await(predicate: Callable[[], Any], what: str, timeout: float = CHILD_TIMEOUT) -> Any:
    """Poll ``predicate`` every 5 ms until it is truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {os.getpid()}: {what} did not happen within {timeout} s")
        time.sleep(0.005)  # polling pace of this child, not a test wait


def count_lines(path: str | os.PathLike[str]) -> int:
    """How many complete lines the file has (0 if it does not exist)."""
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


# -- workflows ----------------------------------------------------------------------------------


@nbflow.step(name="sharedapp.await_lines")
def await_lines(path: str, lines: int) -> int:
    """Wait until the file ``path`` has at least ``lines`` lines; return how many it has."""
    return int(_await(lambda: count_lines(path) >= lines and count_lines(path), f"{lines} lines in {path}"))  # fmt: skip


@nbflow.step(name="sharedapp.await_file")
def await_file(path: str) -> str:
    """Wait until the file ``path`` exists; return its text."""
    _await(lambda: os.path.exists(path), f"the file {path}")
    return Path(path).read_text()


@nbflow.workflow(name="sharedapp.writer")
def writer(
    n: int,
    batch: int,
    pause: float,
    gate_at: int | None,
    gate_file: str | None,
    gate_lines: int,
    hold_file: str | None,
) -> int:
    """N items on the stream "items" from the body, paced; optionally gated and held (see above)."""
    for i in range(n):
        if i == gate_at and gate_file is not None:
            await_lines(gate_file, gate_lines)
        nbflow.write_stream("items", i)
        if (i + 1) % batch == 0:
            time.sleep(pause)  # pacing the writer, not a wait for a condition
    nbflow.close_stream("items")
    if hold_file is not None:
        await_file(hold_file)
    return n


@nbflow.step(name="sharedapp.prepare")
def prepare() -> int:
    """A step that returns at once (its checkpoint is durable before the gate)."""
    _log_ran(nbflow.current_workflow_id(), "prepare")
    return os.getpid()


@nbflow.step(name="sharedapp.gate")
def gate(hold_dir: str) -> str:
    """With ``--hold``, wait until ``hold_dir/release-<id>`` exists and return its text."""
    workflow_id = nbflow.current_workflow_id()
    _log_ran(workflow_id, "gate")
    if not _hold:
        return "not held"
    path = os.path.join(hold_dir, f"release-{workflow_id}")
    _await(lambda: os.path.exists(path), f"the release of {workflow_id}")
    return Path(path).read_text()


@nbflow.step(name="sharedapp.after")
def after() -> int:
    """The step after the gate: it runs once the gate has returned."""
    _log_ran(nbflow.current_workflow_id(), "after")
    return os.getpid()


@nbflow.workflow(name="sharedapp.gated")
def gated(hold_dir: str) -> dict[str, Any]:
    """``prepare``, ``gate``, ``after``; the result says what the gate returned and who finished."""
    prepare()
    token = gate(hold_dir)
    finished_by = after()
    nbflow.write_stream("out", token)
    return {"token": token, "finished_by": finished_by}


@nbflow.step(name="sharedapp.tick")
def tick(i: int, hold_dir: str, gate_at: int, work: float) -> int:
    """Tick ``i``: logs, works ``work`` seconds; tick ``gate_at`` waits for its release (--hold)."""
    workflow_id = nbflow.current_workflow_id()
    _log_ran(workflow_id, f"tick{i}")
    if i == gate_at and _hold:
        path = os.path.join(hold_dir, f"release-{workflow_id}")
        _await(lambda: os.path.exists(path), f"the release of {workflow_id}")
    if work:
        time.sleep(work)  # simulated work, not a wait for a condition
    return i


@nbflow.workflow(name="sharedapp.ticker")
def ticker(n: int, hold_dir: str, gate_at: int, work: float) -> int:
    """N ticks, each a step followed by a stream item "ticks" written from the body."""
    for i in range(n):
        nbflow.write_stream("ticks", tick(i, hold_dir, gate_at, work))
    return n


# -- commands -----------------------------------------------------------------------------------


def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _outcome(handle: nbflow.WorkflowHandle) -> dict[str, Any]:
    try:
        return {"result": handle.result(timeout=CHILD_TIMEOUT)}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


def _cmd_write(args: argparse.Namespace) -> None:
    with nbflow.set_workflow_id(args.id):
        result = writer(args.n, args.batch, args.pause, args.gate_at, args.gate_file, args.gate_lines, args.hold_file)  # fmt: skip
    _print({"pid": os.getpid(), "result": result})


def _cmd_read(args: argparse.Namespace) -> None:
    runtime = nbflow.runtime()
    _await(lambda: runtime.exists(args.id), f"workflow {args.id}")
    values: list[Any] = []
    status_at_mark = None
    items_at_mark = None
    with open(args.progress, "a") as progress:
        for value in nbflow.read_stream(args.id, args.key, timeout=60):
            values.append(value)
            progress.write(f"{json.dumps(value)}\n")
            progress.flush()
            if value == args.mark:
                status_at_mark = runtime.status(args.id).value
                items_at_mark = len(values)
    _print(
        {
            "pid": os.getpid(),
            "values": values,
            "status_at_mark": status_at_mark,
            "items_at_mark": items_at_mark,
        }
    )


def _cmd_run(args: argparse.Namespace) -> None:
    handles = []
    for workflow_id in args.ids:
        with nbflow.set_workflow_id(workflow_id):
            if args.workflow == "gated":
                handles.append(nbflow.start(gated, args.hold_dir))
            else:
                handles.append(
                    nbflow.start(ticker, args.n, args.hold_dir, args.gate_at, args.tick_work)
                )
    read: dict[str, Any] = {}
    readers = []
    if args.read:

        def read_one(workflow_id: str) -> None:
            got: list[Any] = []
            try:
                for value in nbflow.read_stream(workflow_id, args.read, timeout=CHILD_TIMEOUT):
                    got.append(value)
                read[workflow_id] = {"values": got, "ended": True}
            except Exception as exc:
                read[workflow_id] = {"values": got, "ended": False, "error": repr(exc)}
            Path(args.hold_dir, f"read-ended-{workflow_id}").touch()

        for workflow_id in args.ids:
            thread = threading.Thread(target=read_one, args=(workflow_id,), name="sharedapp-reader")
            thread.start()
            readers.append(thread)
    outcomes = {h.workflow_id: _outcome(h) for h in handles}
    for thread in readers:
        thread.join(CHILD_TIMEOUT)
    _print({"pid": os.getpid(), "outcomes": outcomes, "read": read})


def _cmd_recover(args: argparse.Namespace) -> None:
    nbflow.runtime()  # open the database before the barrier
    if args.ready:
        Path(args.ready).write_text(str(os.getpid()))
        _await(lambda: os.path.exists(args.barrier), "the barrier")
    handles = nbflow.recover()
    results = {h.workflow_id: _outcome(h) for h in handles}
    _print({"pid": os.getpid(), "recovered": [h.workflow_id for h in handles], "results": results})


def _cmd_observe(args: argparse.Namespace) -> None:
    runtime = nbflow.runtime()

    def event(name: str, **fields: Any) -> None:
        with open(args.events, "a") as f:
            f.write(json.dumps({"event": name, "pid": os.getpid(), **fields}) + "\n")

    event("recover", ids=[h.workflow_id for h in nbflow.recover()])
    handle = nbflow.resume(args.live)
    event("resumed", running_here=runtime.execution(args.live) is not None)
    event("result", **_outcome(handle))
    _await(lambda: os.path.exists(args.go), "the go file")
    handles = nbflow.recover()
    event("recovered", ids=[h.workflow_id for h in handles], results={h.workflow_id: _outcome(h) for h in handles})  # fmt: skip


def _cmd_cancel(args: argparse.Namespace) -> None:
    nbflow.cancel(args.id)
    _print({"pid": os.getpid(), "status": nbflow.get_workflow(args.id).status().value})


def main(argv: list[str] | None = None) -> int:
    global _log_path, _hold
    parser = argparse.ArgumentParser(prog="sharedapp")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write")
    p.add_argument("db")
    p.add_argument("id")
    p.add_argument("n", type=int)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--pause", type=float, default=0.1)
    p.add_argument("--gate-at", type=int)
    p.add_argument("--gate-file")
    p.add_argument("--gate-lines", type=int, default=0)
    p.add_argument("--hold-file")
    p = sub.add_parser("read")
    p.add_argument("db")
    p.add_argument("id")
    p.add_argument("key")
    p.add_argument("--progress", required=True)
    p.add_argument("--mark", type=int)
    p = sub.add_parser("run")
    p.add_argument("db")
    p.add_argument("log")
    p.add_argument("workflow", choices=["gated", "ticker"])
    p.add_argument("ids", nargs="+")
    p.add_argument("--hold", action="store_true")
    p.add_argument("--hold-dir", default=".")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--gate-at", type=int, default=-1)
    p.add_argument("--tick-work", type=float, default=TICK_WORK)
    p.add_argument("--read")
    p = sub.add_parser("recover")
    p.add_argument("db")
    p.add_argument("log")
    p.add_argument("--ready")
    p.add_argument("--barrier")
    p = sub.add_parser("observe")
    p.add_argument("db")
    p.add_argument("log")
    p.add_argument("--events", required=True)
    p.add_argument("--live", required=True)
    p.add_argument("--go", required=True)
    p = sub.add_parser("cancel")
    p.add_argument("db")
    p.add_argument("id")
    args = parser.parse_args(argv)
    _log_path = getattr(args, "log", "")
    _hold = getattr(args, "hold", False)
    runtime = nbflow.configure(args.db)
    try:
        {
            "write": _cmd_write,
            "read": _cmd_read,
            "run": _cmd_run,
            "recover": _cmd_recover,
            "observe": _cmd_observe,
            "cancel": _cmd_cancel,
        }[args.command](args)
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
