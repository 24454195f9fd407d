"""Crash tests for durable sleep and messages: real child processes killed with SIGKILL, recovered.

The children run ``tests/apps/commapp.py``; what they do is logged one line per side effect, so the
test knows what ran in which process without opening the database while a child runs (a DuckDB
file admits one process at a time). After each kill the test waits until the killed child is gone
(on PostgreSQL: until the server has ended its sessions) and opens the database to note what was
durable at the crash; then a new process recovers.

- **sleep**: a workflow records the wake-up time of ``nbflow.sleep(S)``, is killed half-way
  through the sleep, and a recovering process sleeps only what is left.
- **recv**: a workflow receives N messages one ``recv`` at a time and is killed several times, at
  seeded random points and right after a ``recv`` returned (before the step that handles the
  message); each message is received exactly once, in send order, and none is left over.

Both run on a DuckDB file and on PostgreSQL (a schema of its own on the session's server).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import commapp
from tests.support.helpers import sql, wait_until
from tests.support.processes import child_env, is_postgres

pytestmark = [pytest.mark.crash, pytest.mark.slow]

APP = Path(commapp.__file__).resolve()
ON_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
STORES = ["duckdb", ON_POSTGRES]


# -- child processes ------------------------------------------------------------------------------


class Children:
    """The child processes of a test: each is killed (by its pid) and reaped when the test ends."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(
        self, *args: str, app_name: str | None = None, stdin: bool = False
    ) -> subprocess.Popen[str]:
        """Start ``commapp.py ARGS`` with stdout and stderr piped (and stdin, when asked)."""
        proc = subprocess.Popen(
            [sys.executable, str(APP), *args],
            cwd=self.cwd,
            env=child_env(app_name),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=60)


@contextmanager
def children(cwd: Path) -> Iterator[Children]:
    """A :class:`Children` whose processes are all gone when the block ends, however it ends."""
    kids = Children(cwd)
    try:
        yield kids
    finally:
        kids.close()


def _kill(proc: subprocess.Popen[str]) -> float:
    """SIGKILL a running child and reap it; returns the wall-clock time of the kill."""
    assert proc.poll() is None, f"the child ended before the kill: {proc.communicate()}"
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    return killed_at


def _summary(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    """Wait for a child that ends by itself, and return the JSON summary it printed last."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"the child failed ({proc.returncode}): {err}"
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert summary["pid"] == proc.pid
    return summary


def _wait_gone(database: str, pid: int, app_name: str) -> None:
    """On PostgreSQL, wait until the server has ended every session of the killed child.

    Until then its executor still counts as alive (so its workflow is not interrupted yet), and a
    transaction it sent before it died may still commit. On DuckDB the kernel released the file
    lock with the process.
    """
    if not is_postgres(database):
        return
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?"

    def gone(rt: nbflow.Runtime) -> bool:
        if sql(rt, query, app_name)[0][0]:
            return False
        rows = sql(rt, "SELECT executor_id FROM executors WHERE pid = ?", pid)
        return not any(rt.store.executor_alive(executor_id) for (executor_id,) in rows)

    with nbflow.Runtime(database) as rt:
        wait_until(lambda: gone(rt), timeout=60)


# -- the side-effect log --------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of the side-effect log: ``<kind> [<value>] pid=<pid>``."""

    kind: str
    value: str | None
    pid: int


def _lines(log: Path) -> list[Line]:
    """The complete lines of the log (a line being written is left out)."""
    if not log.exists():
        return []
    out = []
    for text in log.read_text().splitlines(keepends=True):
        if not text.endswith("\n"):
            break
        words = text.split()
        assert words[-1].startswith("pid=") and len(words) in (2, 3), text
        out.append(Line(words[0], words[1] if len(words) == 3 else None, int(words[-1][4:])))
    return out


def _time(line: Line, name: str) -> float:
    """The float of a ``<name>=<float>`` value."""
    assert line.value is not None and line.value.startswith(f"{name}="), line
    return float(line.value[len(name) + 1 :])


# -- durable sleep --------------------------------------------------------------------------------

#: How long the workflow sleeps. The test kills it half-way, so the recovery has S/2 left; both
#: outcomes the test tells apart (sleep what is left, or sleep S again) are S/2 = 3 s apart.
SLEEP = 6.0
#: Scheduling slack between the wake-up and the step after it (a quarter of S: 1.5 s).
SLACK = SLEEP / 4


@pytest.mark.parametrize("database", STORES, indirect=True)
def test_sleep_after_a_kill_sleeps_only_what_is_left(tmp_path: Path, database: str) -> None:
    """SIGKILL half-way through ``nbflow.sleep(S)``: the recovering process wakes at the recorded
    wake-up time, not a full S after it started, and the step after the sleep runs once, there.

    This is a check of behaviour, not of speed. The recovery is started before the kill and only
    waits for a line on stdin, so its start-up is not in the measured time; it resumes with about
    S/2 left. Sleeping what is left ends at the recorded wake-up time W; sleeping S again would end
    at R + S, where R (when recover() was called) is less than W, so at least S/2 = 3 s later
    than W. The bounds below leave S/4 = 1.5 s for scheduling on a loaded machine, far from both.
    """
    log, app_name = tmp_path / "side-effects.log", f"commapp-{uuid.uuid4().hex[:12]}"
    with children(tmp_path) as kids:
        first = kids.spawn("sleep", database, str(log), "--seconds", str(SLEEP), app_name=app_name)
        rec = kids.spawn("sleep-recover", database, str(log), stdin=True)
        assert rec.stdout is not None and rec.stdin is not None
        assert rec.stdout.readline().strip() == "ready"

        def durable() -> Line | None:
            assert first.poll() is None, f"the child ended: {first.communicate()}"
            return next((ln for ln in _lines(log) if ln.kind == "sleep-durable"), None)

        durable_line = wait_until(durable, timeout=60, interval=0.001)
        assert durable_line is not None
        wake_at = _time(durable_line, "wake_at")
        time.sleep(max(0.0, wake_at - SLEEP / 2 - time.time()))  # half-way through the sleep
        killed_at = _kill(first)
        assert wake_at - killed_at > SLEEP / 2 - SLACK, "the kill came late in the sleep"
        _wait_gone(database, first.pid, app_name)

        with nbflow.Runtime(database) as db:  # what was durable at the crash
            assert db.interrupted == [commapp.SLEEPER_ID]
            assert db.status(commapp.SLEEPER_ID) == nbflow.Status.PENDING
            steps = sql(
                db,
                "SELECT function_id, name, output_json FROM steps WHERE workflow_id = ? "
                "ORDER BY function_id",
                commapp.SLEEPER_ID,
            )
        assert [(f, name) for f, name, _ in steps] == [
            (1, "commapp.before_sleep"),
            (2, "nbflow.sleep"),
        ]
        assert json.loads(steps[1][2]) == wake_at

        rec.stdin.write("go\n")
        rec.stdin.flush()
        summary = _summary(rec)

    lines = _lines(log)
    assert {ln.pid for ln in lines} == {first.pid, rec.pid}, lines
    assert [ln.kind for ln in lines if ln.pid == first.pid] == ["before", "sleep-durable"]
    [recover_line, after_line] = [ln for ln in lines if ln.pid == rec.pid]
    assert recover_line.kind == "recover" and after_line.kind == "after", lines
    recover_at, after_at = _time(recover_line, "t"), _time(after_line, "t")

    assert summary["interrupted"] == [commapp.SLEEPER_ID]
    assert summary["results"] == {commapp.SLEEPER_ID: after_at}
    # The recovery really had time left to sleep (else it would not test "only what is left").
    assert recover_at < wake_at, (recover_at, wake_at)
    # Never before the recorded wake-up time.
    assert after_at >= wake_at, (after_at, wake_at)
    # About what was left, not S again: sleeping S again would put it at recover_at + S.
    assert after_at - wake_at < SLACK, (
        f"the recovering process slept {after_at - recover_at:.2f} s with "
        f"{wake_at - recover_at:.2f} s left (S = {SLEEP} s)"
    )
    assert after_at < killed_at + SLEEP - SLACK

    with nbflow.Runtime(database) as db:
        assert db.status(commapp.SLEEPER_ID) == nbflow.Status.SUCCESS
        assert db.get_workflow(commapp.SLEEPER_ID).result() == after_at
        names = [s.name for s in db.list_steps(commapp.SLEEPER_ID)]
        assert names == ["commapp.before_sleep", "nbflow.sleep", "commapp.after_sleep"]
        [(recorded,)] = sql(
            db,
            "SELECT output_json FROM steps WHERE workflow_id = ? AND name = 'nbflow.sleep'",
            commapp.SLEEPER_ID,
        )
        assert json.loads(recorded) == wake_at  # the replay kept the first wake-up time
        assert db.interrupted == []


# -- messages -------------------------------------------------------------------------------------

N = commapp.DEFAULT_MESSAGES


@dataclass(frozen=True)
class Kill:
    """One round of the receiver: how it is killed.

    ``parent``: the test kills it once it logged ``k`` messages, then ``delay`` seconds later.
    ``self``: it kills itself right after the ``k``-th recv of the workflow returned, where ``k``
    counts from the number of recvs recorded at the start of the round (``k`` = 0: the last recv).
    """

    how: str
    k: int
    delay: float = 0.0


def _plan(seed: int) -> list[Kill]:
    """Four seeded kills, parent and self in turn, then a self kill after the last recv."""
    rng = random.Random(seed)
    kills = []
    for round_ in range(4):
        if round_ % 2 == 0:
            kills.append(Kill("parent", rng.randint(1, 4), rng.uniform(0.0, 0.02)))
        else:
            kills.append(Kill("self", rng.randint(1, 4)))
    return [*kills, Kill("self", 0)]


@dataclass
class Snapshot:
    """What was durable after a crash of the receiver."""

    pid: int
    status: str | None
    received: list[Any]  # recv checkpoints' values, in function-id order
    handled: list[Any]  # "got" checkpoints' values, in function-id order
    waiting: list[Any]  # messages still in the table, oldest first


@dataclass
class Run:
    """Everything a recv test saw."""

    snapshots: list[Snapshot] = field(default_factory=list)
    self_kills: list[tuple[int, int]] = field(default_factory=list)  # (pid, k-th recv)
    summary: dict[str, Any] = field(default_factory=dict)  # printed by the last receiver


def _snapshot(database: str, pid: int) -> Snapshot:
    """Open the crashed database (nothing runs in it) and check what was durable."""
    wid = commapp.INBOX_ID
    with nbflow.Runtime(database) as db:
        status = db.status(wid).value if db.exists(wid) else None
        steps = sql(
            db,
            "SELECT function_id, name, output_json FROM steps WHERE workflow_id = ? "
            "ORDER BY function_id",
            wid,
        )
        waiting = sql(
            db,
            "SELECT value_json FROM messages WHERE destination_id = ? "
            "ORDER BY created_at, message_id",
            wid,
        )
    # Function ids: recv i is 2i + 1, the step that logs its message 2i + 2; checkpoints become
    # durable in program order, so they are a prefix.
    assert [f for f, _, _ in steps] == list(range(1, len(steps) + 1)), steps
    assert all(name == (commapp.RECV_STEP if f % 2 else "commapp.got") for f, name, _ in steps)
    received = [json.loads(v) for f, _, v in steps if f % 2]
    handled = [json.loads(v) for f, _, v in steps if not f % 2]
    return Snapshot(pid, status, received, handled, [json.loads(v) for (v,) in waiting])


def _check_snapshot(snap: Snapshot) -> None:
    """The invariants of what is durable after any crash of the receiver."""
    # Each message received once, in send order; the ones waiting are the next ones, in order.
    assert snap.received == list(range(len(snap.received))), snap
    assert snap.handled == snap.received[: len(snap.handled)], snap
    assert len(snap.received) - 1 <= len(snap.handled) <= len(snap.received), snap
    first = len(snap.received)
    assert snap.waiting == list(range(first, first + len(snap.waiting))), snap
    if snap.received:
        assert snap.status in ("PENDING", "SUCCESS"), snap


def _kill_receiver_from_parent(proc: subprocess.Popen[str], log: Path, kill: Kill) -> None:
    """SIGKILL the receiver once it logged ``kill.k`` messages, ``kill.delay`` seconds later."""

    def reached() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the receiver ended before the kill: {proc.communicate()}")
        return sum(1 for ln in _lines(log) if ln.kind == "got" and ln.pid == proc.pid) >= kill.k

    wait_until(reached, timeout=60, interval=0.001)
    time.sleep(kill.delay)  # a seeded point a little later: mid-recv, mid-step or waiting
    _kill(proc)


def _receive_with_kills(
    tmp_path: Path, database: str, sender: str, window: int, plan: list[Kill]
) -> tuple[Run, list[Line]]:
    """Run the receiver through ``plan``'s kills, then to the end; return what happened."""
    log, run = tmp_path / "side-effects.log", Run()
    common = [database, str(log), "--messages", str(N), "--window", str(window)]
    with children(tmp_path) as kids:
        send_proc = None
        if sender == "process":
            send_proc = kids.spawn("send", *common, app_name=f"sender-{uuid.uuid4().hex[:12]}")
        as_sender = ["--sender", "thread"] if sender == "thread" else []
        recorded = 0
        for kill in plan:
            app_name = f"commapp-{uuid.uuid4().hex[:12]}"
            args = ["inbox", *common, *as_sender, "--hold"]
            if kill.how == "self":
                k = N if kill.k == 0 else recorded + kill.k
                assert recorded < k <= N, f"the plan left no recv to kill at: {kill}, {recorded}"
                proc = kids.spawn(*args, "--self-kill-after-recv", str(k), app_name=app_name)
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == -signal.SIGKILL, f"no self kill: {out} {err}"
                run.self_kills.append((proc.pid, k))
            else:
                proc = kids.spawn(*args, app_name=app_name)
                _kill_receiver_from_parent(proc, log, kill)
            _wait_gone(database, proc.pid, app_name)
            snap = _snapshot(database, proc.pid)
            _check_snapshot(snap)
            if kill.how == "self":
                # The k-th recv returned: its message is consumed and recorded, its step is not.
                assert len(snap.received) == k and len(snap.handled) == k - 1, snap
                assert k - 1 not in snap.waiting
            run.snapshots.append(snap)
            recorded = len(snap.received)
        last = kids.spawn("inbox", *common, *as_sender)
        run.summary = _summary(last)
        if send_proc is not None:
            _, err = send_proc.communicate(timeout=120)
            assert send_proc.returncode == 0, err
    return run, _lines(log)


def _check_inbox(database: str, run: Run, lines: list[Line]) -> None:
    """The workflow ended with the N messages in order, each received once, none left over."""
    wid, messages = commapp.INBOX_ID, list(range(N))
    summary = run.summary
    assert summary["called"] == messages
    if run.snapshots[-1].status == "PENDING":
        assert summary["interrupted"] == [wid]
        assert summary["results"] == {wid: messages}

    with nbflow.Runtime(database) as db:
        assert db.status(wid) == nbflow.Status.SUCCESS
        assert db.get_workflow(wid).result() == messages
        steps = sql(
            db,
            "SELECT function_id, name, output_json FROM steps WHERE workflow_id = ? "
            "ORDER BY function_id",
            wid,
        )
        assert sql(db, "SELECT count(*) FROM messages") == [(0,)]  # none left over
        assert db.interrupted == []
    received = [json.loads(v) for _, name, v in steps if name == commapp.RECV_STEP]
    handled = [json.loads(v) for _, name, v in steps if name == "commapp.got"]
    assert [f for f, _, _ in steps] == list(range(1, 2 * N + 1))
    assert received == messages, "a recv checkpoint per message, in send order, each once"
    assert handled == messages

    # Every message was sent once and logged by its step; a step re-ran only where its
    # checkpoint was not durable at a crash (steps are at least once; recv is exactly once).
    sent = [int(ln.value or "") for ln in lines if ln.kind == "sent"]
    assert sorted(sent) == sorted(set(sent)) and set(sent) <= set(messages)
    got = [(int(ln.value or ""), ln.pid) for ln in lines if ln.kind == "got"]
    assert {m for m, _ in got} == set(messages)
    pids = [snap.pid for snap in run.snapshots] + [summary["pid"]]
    assert {p for _, p in got} <= set(pids)
    redone: set[int] = set()  # messages whose step ran in a killed process, not durably
    start = 0  # the first message a process handles: the one after the last durable step
    for i, pid in enumerate(pids):
        mine = [m for m, p in got if p == pid]
        assert mine == list(range(start, start + len(mine))), (pid, start, mine)
        if i < len(run.snapshots):  # a killed process: at most its last step was not durable
            start = len(run.snapshots[i].handled)
            assert [m for m in mine if m >= start] in ([], [start]), (pid, mine, start)
            redone |= {m for m in mine if m >= start}
    twice = Counter(m for m, _ in got) - Counter(messages)
    assert set(twice) == redone and all(n == 1 for n in twice.values()), (twice, redone)
    # A self kill after the k-th recv: its message was logged only after the recovery.
    for pid, k in run.self_kills:
        assert [ln.value for ln in lines if ln.kind == "kill-after-recv" and ln.pid == pid] == [
            str(k - 1)
        ]
        assert (k - 1, pid) not in got


RECV_CASES = [
    # (database, sender, window, seed): window 1 sends each message after the previous one was
    # received (the receiver mostly waits in recv); window N does not pace the sender, which sends
    # as fast as it can (several messages wait in the table at the kills). The sender is a thread of each receiving process
    # (on DuckDB no other process can open the file) or, on PostgreSQL, a process of its own that
    # lives through all the receiver's crashes.
    pytest.param("duckdb", "thread", 1, 11, id="duckdb-thread-w1"),
    pytest.param("duckdb", "thread", N, 12, id="duckdb-thread-unpaced"),
    pytest.param(
        "postgres", "process", 1, 13, id="postgres-process-w1", marks=pytest.mark.postgres
    ),
    pytest.param("postgres", "thread", 3, 14, id="postgres-thread-w3", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(
    ("database", "sender", "window", "seed"), RECV_CASES, indirect=["database"]
)
def test_recv_receives_each_message_once_across_kills(
    tmp_path: Path, database: str, sender: str, window: int, seed: int
) -> None:
    """Kill the receiver five times — from outside at seeded points, and from inside right after a
    recv returned (before the step that handles its message), the last one after the last recv —
    and recover it each time: it ends with the N messages in send order, one recv checkpoint per
    message, each message's deletion durable with its checkpoint, and none left in the table."""
    plan = _plan(seed)
    run, lines = _receive_with_kills(tmp_path, database, sender, window, plan)
    assert len(run.snapshots) == len(plan)
    _check_inbox(database, run, lines)


def test_recv_kill_plans_vary() -> None:
    """The seeds give different kill points, and each plan ends with a kill after the last recv."""
    plans = [_plan(seed) for seed in (11, 12, 13, 14)]
    assert len({tuple(plan) for plan in plans}) == len(plans)
    assert all(plan[-1] == Kill("self", 0) for plan in plans)
