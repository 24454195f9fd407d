"""A child-process app for the crash tests of durable sleep and messages (test_crash_communication).

Usage::

    python tests/commapp.py sleep DB LOG --seconds S
    python tests/commapp.py sleep-recover DB LOG
    python tests/commapp.py inbox DB LOG [--messages N] [--self-kill-after-recv K]
                                         [--sender thread|none] [--window W] [--hold]
    python tests/commapp.py send DB LOG [--messages N] [--window W]

Every side effect is one line appended to LOG (one ``O_APPEND`` write), whose first word says what
happened and whose last word is ``pid=<pid>``, so the parent sees what ran in which process without
opening the database (a DuckDB file admits one process at a time).

``sleep`` runs the workflow ``commapp.sleeper`` under :data:`SLEEPER_ID`: a step logging
``before t=<time>``, then ``nbflow.sleep(S)``, then a step logging ``after t=<time>``. A watcher
thread polls the process's own store until the ``nbflow.sleep`` step is committed and logs
``sleep-durable wake_at=<recorded wake-up time>``. The process then waits to be killed.

``sleep-recover`` is started *before* the kill, so that its interpreter start-up is not part of
the time the test measures: it imports nbflow, prints ``ready``, and opens DB only when a line
arrives on its stdin. It logs ``recover t=<time>`` just before :func:`nbflow.recover`, waits for
the recovered workflows and prints a JSON summary.

``inbox`` recovers what is interrupted, then calls the workflow ``commapp.inbox`` under
:data:`INBOX_ID` (which starts it, or returns its recorded result). The workflow receives N
messages on :data:`TOPIC`, one ``recv`` at a time, and logs each one from a step
(``got <m>``). ``--self-kill-after-recv K`` makes the process SIGKILL itself right after the K-th
``recv`` of the workflow (1-based) returned, before the step that logs it: the message's
consumption is durable by then, its step is not. ``--sender thread`` also runs a sender in a
thread of this process (on DuckDB no other process can send). ``--hold`` waits to be killed after
the summary, so that a kill from the parent always lands.

``send`` sends the messages from a process of its own (PostgreSQL) until all N are sent.

A sender sends the messages 0, 1, …, N-1 in this order, each once, and logs ``sent <m>`` after
:func:`nbflow.send` returned (the message is durable then). It sends the next one only while fewer
than W messages wait in the ``messages`` table (W = 1: each only after the previous one was
received; W = N: as fast as it can). A sender that starts after a crash continues after the highest
message sent so far, read from the database in one statement (received or still waiting).

Workflows and steps have explicit names, so they are found again whatever this module is called.
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
from tests.support.helpers import sql

SLEEPER_ID = "comm-sleeper"
INBOX_ID = "comm-inbox"
TOPIC = "inbox"
#: The name of the checkpoint that records a ``recv`` on :data:`TOPIC`.
RECV_STEP = f"nbflow.recv({TOPIC!r})"
DEFAULT_MESSAGES = 30
#: How long a ``recv`` of the inbox waits for a message; a None received fails the test.
RECV_TIMEOUT = 30.0
#: How often a sender and the sleep watcher look at the database again (seconds).
POLL = 0.002

_log_path: str = ""
_self_kill_after_recv: int | None = None


def log_line(text: str) -> None:
    """Append ``<text> pid=<pid>`` to the side-effect log (one O_APPEND write, no buffering)."""
    fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text} pid={os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hold() -> None:
    """Wait to be killed: the parent's kill must always land."""
    threading.Event().wait()


# -- durable sleep ------------------------------------------------------------------------------


@nbflow.step(name="commapp.before_sleep")
def before_sleep() -> float:
    """Log the time the workflow reached its sleep."""
    now = time.time()
    log_line(f"before t={now!r}")
    return now


@nbflow.step(name="commapp.after_sleep")
def after_sleep() -> float:
    """Log the wall-clock time the step after the sleep ran."""
    now = time.time()
    log_line(f"after t={now!r}")
    return now


@nbflow.workflow(name="commapp.sleeper")
def sleeper(seconds: float) -> float:
    """A step, a durable sleep of ``seconds``, a step; returns when the last step ran."""
    before_sleep()
    nbflow.sleep(seconds)
    return after_sleep()


def _watch_sleep(runtime: nbflow.Runtime) -> None:
    """Log ``sleep-durable wake_at=<t>`` once the sleep's checkpoint is committed."""
    while True:
        for row in runtime.store.list_steps(SLEEPER_ID):
            if row.name == "nbflow.sleep":
                log_line(f"sleep-durable wake_at={json.loads(row.output_json or 'null')!r}")
                return
        time.sleep(POLL)  # polling the store: the committer has no hook for a test


def _sleep(runtime: nbflow.Runtime, seconds: float) -> None:
    threading.Thread(target=_watch_sleep, args=(runtime,), daemon=True).start()
    with nbflow.set_workflow_id(SLEEPER_ID):
        sleeper(seconds)
    print("finished", flush=True)
    _hold()


def _sleep_recover(db: str) -> None:
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says when the killed process is gone and the file is free
    runtime = nbflow.configure(db)
    interrupted = list(runtime.interrupted)
    log_line(f"recover t={time.time()!r}")
    handles = nbflow.recover()
    results = {handle.workflow_id: handle.result(timeout=120) for handle in handles}
    summary = {"pid": os.getpid(), "interrupted": interrupted, "results": results}
    print(json.dumps(summary), flush=True)


# -- messages -----------------------------------------------------------------------------------


@nbflow.step(name="commapp.got")
def got(message: Any) -> Any:
    """The side effect of a received message: log it."""
    log_line(f"got {json.dumps(message)}")
    return message


@nbflow.workflow(name="commapp.inbox")
def inbox(n: int) -> list[Any]:
    """Receive ``n`` messages on :data:`TOPIC`, logging each from a step; return them in order."""
    received = []
    for i in range(n):
        message = nbflow.recv(TOPIC, timeout=RECV_TIMEOUT)
        if i + 1 == _self_kill_after_recv:
            log_line(f"kill-after-recv {json.dumps(message)}")
            _die()
        received.append(got(message))
    return received


def sent_so_far(runtime: nbflow.Runtime) -> list[Any]:
    """The messages sent to the inbox so far: received (recorded by a recv) or still waiting.

    One statement, so one snapshot: a message received meanwhile is counted once either way.
    """
    rows = sql(
        runtime,
        "SELECT value_json FROM messages WHERE destination_id = ? "
        "UNION ALL SELECT output_json FROM steps WHERE workflow_id = ? AND name = ?",
        INBOX_ID,
        INBOX_ID,
        RECV_STEP,
    )
    return [json.loads(value) for (value,) in rows]


def _waiting(runtime: nbflow.Runtime) -> int:
    rows = sql(runtime, "SELECT count(*) FROM messages WHERE destination_id = ?", INBOX_ID)
    return int(rows[0][0])


def send_all(runtime: nbflow.Runtime, n: int, window: int) -> None:
    """Send the messages not sent yet, in order, keeping at most ``window`` of them waiting."""
    while not runtime.exists(INBOX_ID):
        time.sleep(POLL)  # nothing to send to until the workflow is recorded
    numbers = [m for m in sent_so_far(runtime) if isinstance(m, int)]
    for message in range(max(numbers, default=-1) + 1, n):
        while _waiting(runtime) >= window:
            time.sleep(POLL)  # polling the table: paces the sender, not a correctness wait
        nbflow.send(INBOX_ID, message, topic=TOPIC)
        log_line(f"sent {message}")


def _inbox(runtime: nbflow.Runtime, n: int, sender: str, window: int, hold: bool) -> None:
    thread = None
    if sender == "thread":
        thread = threading.Thread(target=send_all, args=(runtime, n, window), daemon=True)
        thread.start()
    interrupted = list(runtime.interrupted)
    handles = nbflow.recover()
    results = {handle.workflow_id: handle.result(timeout=120) for handle in handles}
    with nbflow.set_workflow_id(INBOX_ID):
        called = inbox(n)
    if thread is not None:
        thread.join(timeout=60)
    summary = {
        "pid": os.getpid(),
        "interrupted": interrupted,
        "results": results,
        "called": called,
    }
    print(json.dumps(summary), flush=True)
    if hold:
        _hold()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    global _log_path, _self_kill_after_recv
    parser = argparse.ArgumentParser(prog="commapp")
    parser.add_argument("command", choices=["sleep", "sleep-recover", "inbox", "send"])
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the workflow sleeps")
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--self-kill-after-recv", type=int, default=None)
    parser.add_argument("--sender", choices=["thread", "none"], default="none")
    parser.add_argument("--window", type=int, default=1, help="messages waiting at most")
    parser.add_argument("--hold", action="store_true", help="wait to be killed at the end")
    args = parser.parse_args(argv)
    _log_path = args.log
    _self_kill_after_recv = args.self_kill_after_recv
    if args.command == "sleep-recover":
        _sleep_recover(args.db)
        return 0
    runtime = nbflow.configure(args.db)
    if args.command == "sleep":
        _sleep(runtime, args.seconds)
    elif args.command == "inbox":
        _inbox(runtime, args.messages, args.sender, args.window, args.hold)
    else:
        send_all(runtime, args.messages, args.window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
