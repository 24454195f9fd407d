"""Several real processes on one PostgreSQL database: live reads, recovery, takeover, cancel, tail.

The children are ``tests/apps/sharedapp.py`` (and the ``nbflow`` command). Their steps append
``ran <workflow id> <step> pid=<pid>`` to a side-effect log, so a test knows which step ran in which
process; processes wait for each other through files, never for a fixed time. Each test has a
schema of its own on the session's throwaway server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import sharedapp
from tests.support.helpers import sql, wait_until
from tests.support.processes import child_env

pytestmark = pytest.mark.postgres

APP = Path(sharedapp.__file__).resolve()
#: Seconds a test waits for a child to finish at most (a hang fails the test, it does not stall).
CHILD_TIMEOUT = 120


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start children; any child still running when the test ends is killed and reaped."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, app: bool = True, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        command = [sys.executable, str(APP), *args] if app else [sys.executable, *args]
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=child_env(), stdout=stdout, stderr=subprocess.PIPE, text=True
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=CHILD_TIMEOUT)


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a child that prints one JSON line at its end; fail with its stderr otherwise."""
    out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, f"the child failed ({proc.returncode}):\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def _kill9(proc: subprocess.Popen[str]) -> None:
    assert proc.poll() is None, f"the child ended before the kill: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=CHILD_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL


def _ran(log: Path) -> list[tuple[str, str, int]]:
    """``(workflow id, step, pid)`` per complete line of the side-effect log."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # a line being written
        word, workflow_id, step, pid = line.split()
        assert word == "ran" and pid.startswith("pid="), line
        out.append((workflow_id, step, int(pid[4:])))
    return out


def _entered(log: Path, step: str | None = None, *, wid: str | None = None) -> set[str]:
    """The workflows that entered ``step`` so far, or with ``wid`` the steps that workflow entered."""
    if wid is not None:
        return {s for w, s, _ in _ran(log) if w == wid}
    return {w for w, s, _ in _ran(log) if s == step}


def _release(hold_dir: Path, workflow_id: str, text: str) -> None:
    """Let a held gate step return ``text``: the release file appears with its text, atomically."""
    temporary = hold_dir / f"release-{workflow_id}.tmp"
    temporary.write_text(text)
    temporary.replace(hold_dir / f"release-{workflow_id}")


def _ended(proc: subprocess.Popen[str]) -> bool:
    """Whether a child has ended (a wait for a child's progress stops early when it died)."""
    return proc.poll() is not None


def _events(path: Path) -> dict[str, dict[str, Any]]:
    """The events an ``observe`` child wrote so far, by name."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines(keepends=True)
    return {e["event"]: e for e in (json.loads(line) for line in lines if line.endswith("\n"))}


def _stream_rows(rt: nbflow.Runtime, workflow_id: str, key: str) -> list[tuple[Any, ...]]:
    """Raw rows ``(offset, value_json, is_end)`` of a stream, in offset order."""
    return sql(
        rt,
        'SELECT "offset", value_json, is_end FROM streams WHERE workflow_id = ? AND key = ? '
        'ORDER BY "offset"',
        workflow_id,
        key,
    )


def _interrupted(rt: nbflow.Runtime) -> set[str]:
    """The workflows the server judges interrupted right now (PENDING, their executor gone)."""
    return {row.workflow_id for row in rt.store.pending_workflows()}


def test_two_processes_read_a_stream_live(pg_url: str, tmp_path: Path, spawn: Any) -> None:
    """A writes 10,000 items in paced batches; B reads them live from the start, in another
    process: every item once, in order. A waits halfway until B has item 4,000, so B provably
    read while A's workflow was still PENDING."""
    n, wid, progress = 10_000, "live-writer", tmp_path / "progress.txt"
    reader = spawn("read", pg_url, wid, "items", "--progress", str(progress), "--mark", "4000")
    writer = spawn(
        "write", pg_url, wid, str(n), "--batch", "500", "--pause", "0.1",
        "--gate-at", str(n // 2), "--gate-file", str(progress), "--gate-lines", "4001",
    )  # fmt: skip
    wrote = _finish(writer)
    read = _finish(reader)
    assert wrote["result"] == n
    assert read["values"] == list(range(n)), "not every item once, in order"
    assert read["status_at_mark"] == "PENDING" and read["items_at_mark"] == 4001
    assert [json.loads(line) for line in progress.read_text().splitlines()] == list(range(n))
    with nbflow.Runtime(pg_url) as rt:
        assert rt.status(wid) == nbflow.Status.SUCCESS
        rows = _stream_rows(rt, wid, "items")
        assert [r[0] for r in rows] == list(range(n + 1))  # contiguous offsets, then the end
        assert [json.loads(r[1]) for r in rows[:-1]] == list(range(n))
        assert rows[-1][2] is True and not any(r[2] for r in rows[:-1])
        # the gate step ran in A and saw B's progress file at 4,001 lines or more
        (gate,) = [s for s in rt.list_steps(wid) if s.name == "sharedapp.await_lines"]
        assert gate.status == "SUCCESS"


def test_concurrent_recover_takes_each_workflow_once(
    pg_url: str, tmp_path: Path, spawn: Any
) -> None:
    """50 workflows interrupted by kill -9 inside a step; three processes recover() at once: each
    workflow is taken by exactly one of them, its remaining steps run once, and all succeed."""
    log, count = tmp_path / "side-effects.log", 50
    ids = [f"rec-{k:02d}" for k in range(count)]
    first = spawn("run", pg_url, str(log), "gated", *ids, "--hold", "--hold-dir", str(tmp_path))
    with nbflow.Runtime(pg_url) as rt:
        wait_until(lambda: _entered(log, "gate") == set(ids) or _ended(first), timeout=60)
        # every `prepare` checkpoint is durable: those steps must never run again
        prepared = "SELECT count(*) FROM steps WHERE name = 'sharedapp.prepare'"
        wait_until(lambda: sql(rt, prepared)[0][0] == count, timeout=60)
        _kill9(first)
        wait_until(lambda: _interrupted(rt) == set(ids), timeout=60)

    barrier = tmp_path / "barrier"
    ready = [tmp_path / f"ready-{i}" for i in range(3)]
    recoverers = [
        spawn("recover", pg_url, str(log), "--ready", str(r), "--barrier", str(barrier))
        for r in ready
    ]
    wait_until(lambda: all(r.exists() for r in ready) or any(map(_ended, recoverers)), 60)
    barrier.touch()
    reports = [_finish(p) for p in recoverers]

    taken = [wid for report in reports for wid in report["recovered"]]
    assert sorted(taken) == ids, f"recovered twice or not at all: {Counter(taken)}"
    pids = {p.pid for p in recoverers}
    by_pid = {report["pid"]: set(report["recovered"]) for report in reports}
    for report in reports:
        for wid, outcome in report["results"].items():
            assert outcome == {"result": {"token": "not held", "finished_by": report["pid"]}}, wid
    ran = _ran(log)
    assert {pid for _, _, pid in ran} <= {first.pid, *pids}
    for wid in ids:
        steps = Counter((step, pid) for w, step, pid in ran if w == wid)
        (owner,) = [pid for pid, taken_ids in by_pid.items() if wid in taken_ids]
        # before the crash: prepare and gate ran in the first process; after it, gate (which
        # never returned) and after ran once, in the process that took the workflow
        expected = [("prepare", first.pid), ("gate", first.pid), ("gate", owner), ("after", owner)]
        assert steps == Counter(expected), (wid, steps)
    with nbflow.Runtime(pg_url) as rt:
        assert {w.workflow_id: w.status for w in rt.list_workflows(limit=1000)} == dict.fromkeys(
            ids, nbflow.Status.SUCCESS
        )
        assert _interrupted(rt) == set()


def test_a_live_workflow_is_never_taken_over(pg_url: str, tmp_path: Path, spawn: Any) -> None:
    """While A runs two workflows blocked in a step, B's recover() takes neither and B's resume()
    does not run the live one: B's result() waits for A to finish it. Once A is killed with the
    other one still blocked, B's recover() takes that one and it succeeds."""
    log, events, go = tmp_path / "side-effects.log", tmp_path / "events.jsonl", tmp_path / "go"
    live, dead = "wf-live", "wf-dead"
    a = spawn("run", pg_url, str(log), "gated", live, dead, "--hold", "--hold-dir", str(tmp_path))
    wait_until(lambda: _entered(log, "gate") == {live, dead} or _ended(a), timeout=60)

    b = spawn("observe", pg_url, str(log), "--events", str(events), "--live", live, "--go", str(go))
    wait_until(lambda: "resumed" in _events(events) or _ended(b), timeout=60)
    seen = _events(events)
    assert seen["recover"]["ids"] == [], "recover() took a workflow a live process runs"
    assert seen["resumed"]["running_here"] is False, "resume() took over a live workflow"
    assert "result" not in seen and b.poll() is None  # B waits: A's workflow has not finished
    with nbflow.Runtime(pg_url) as rt:
        assert rt.status(live) == rt.status(dead) == nbflow.Status.PENDING
        assert _interrupted(rt) == set()

    _release(tmp_path, live, "released by the test")
    wait_until(lambda: "result" in _events(events) or _ended(b), timeout=60)
    result = _events(events)["result"]
    # the token exists only since the release: B's result() waited for A to finish the workflow
    assert result == {
        "event": "result",
        "pid": b.pid,
        "result": {"token": "released by the test", "finished_by": a.pid},
    }
    assert [(s, pid) for w, s, pid in _ran(log) if w == live] == [
        ("prepare", a.pid), ("gate", a.pid), ("after", a.pid),
    ]  # fmt: skip

    _kill9(a)
    with nbflow.Runtime(pg_url) as rt:
        wait_until(lambda: _interrupted(rt) == {dead}, timeout=60)
    go.touch()
    report = _finish_events(b, events)
    assert report["ids"] == [dead]
    assert report["results"] == {dead: {"result": {"token": "not held", "finished_by": b.pid}}}
    assert [(s, pid) for w, s, pid in _ran(log) if w == dead] == [
        ("prepare", a.pid), ("gate", a.pid), ("gate", b.pid), ("after", b.pid),
    ]  # fmt: skip
    with nbflow.Runtime(pg_url) as rt:
        assert rt.status(live) == rt.status(dead) == nbflow.Status.SUCCESS


def _finish_events(proc: subprocess.Popen[str], events: Path) -> dict[str, Any]:
    """Wait for an ``observe`` child to end; its ``recovered`` event."""
    _, err = proc.communicate(timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, f"the child failed ({proc.returncode}):\n{err}"
    return _events(events)["recovered"]


def test_cancel_from_another_process(pg_url: str, tmp_path: Path, spawn: Any) -> None:
    """B cancels a workflow that A runs (blocked in a step): A's own reader of the workflow's
    stream ends at once; once the step returns, A's workflow stops at its next checkpoint instead
    of running its remaining ticks, and its status stays CANCELLED."""
    log, wid, n, gate_at = tmp_path / "side-effects.log", "ticker", 10_000, 50
    a = spawn(
        "run", pg_url, str(log), "ticker", wid, "--n", str(n), "--gate-at", str(gate_at),
        "--hold", "--hold-dir", str(tmp_path), "--read", "ticks",
    )  # fmt: skip
    wait_until(lambda: f"tick{gate_at}" in _entered(log, wid=wid) or _ended(a), timeout=60)

    b = spawn("cancel", pg_url, wid)
    assert _finish(b)["status"] == "CANCELLED"
    # A's reader ends on the cancel, while A's workflow is still inside tick 50
    wait_until(lambda: (tmp_path / f"read-ended-{wid}").exists() or _ended(a), timeout=60)
    assert not _ended(a) and f"tick{gate_at + 1}" not in _entered(log, wid=wid)
    _release(tmp_path, wid, "go on")
    report = _finish(a)

    assert report["outcomes"][wid]["error"] == "WorkflowCancelledError"
    # tick 50 returned; its checkpoint was the next one, and the workflow stopped there
    ticks = [int(step[4:]) for w, step, pid in _ran(log) if w == wid]
    assert ticks == list(range(gate_at + 1)), f"A ran on after the cancel: {len(ticks)} ticks"
    assert report["read"][wid] == {"values": list(range(gate_at)), "ended": True}
    with nbflow.Runtime(pg_url) as rt:
        assert rt.status(wid) == nbflow.Status.CANCELLED  # A did not overwrite it
        assert [s.function_id for s in rt.list_steps(wid)] == [2 * i + 1 for i in range(gate_at)]
        rows = _stream_rows(rt, wid, "ticks")
        assert [r[0] for r in rows] == list(range(gate_at + 1)), rows[-5:]
        assert [json.loads(r[1]) for r in rows[:-1]] == list(range(gate_at))
        assert rows[-1][2] is True and not any(r[2] for r in rows[:-1]), rows[-5:]


def test_cancel_while_the_owner_writes_keeps_the_stream_whole(
    pg_url: str, tmp_path: Path, spawn: Any
) -> None:
    """B cancels while A writes a stream item per step as fast as it can: however the two race,
    the stream ends with exactly one end marker, after every item, and every reader (A's own, and
    a new one) gets the same items, each once, and never the end marker as a value."""
    log, wid, n = tmp_path / "side-effects.log", "busy", 1_000_000
    a = spawn(
        "run", pg_url, str(log), "ticker", wid, "--n", str(n), "--tick-work", "0",
        "--hold-dir", str(tmp_path), "--read", "ticks",
    )  # fmt: skip
    wait_until(lambda: len(_ran(log)) >= 1000 or _ended(a), timeout=60)
    assert _finish(spawn("cancel", pg_url, wid))["status"] == "CANCELLED"
    report = _finish(a)

    assert report["outcomes"][wid]["error"] == "WorkflowCancelledError"
    assert len(_ran(log)) < n, "A did not stop"
    with nbflow.Runtime(pg_url) as rt:
        assert rt.status(wid) == nbflow.Status.CANCELLED
        rows = _stream_rows(rt, wid, "ticks")
        ends = [offset for offset, _, is_end in rows if is_end]
        assert ends == [len(rows) - 1], (
            f"end markers at {ends[:5]} of {len(rows)} rows: A's items were committed after the "
            "cancel's end marker, or the marker was dropped"
        )
        items = [json.loads(value) for _, value, _ in rows[:-1]]
        assert items == list(range(len(items)))
        assert report["read"][wid] == {"values": items, "ended": True}
        assert list(rt.read_stream(wid, "ticks", timeout=10)) == items


def test_cli_tail_follows_another_process(pg_url: str, tmp_path: Path, spawn: Any) -> None:
    """``nbflow tail`` follows a stream another process writes, prints every item, and exits when
    the stream closes (while the workflow is still PENDING). The writer waits halfway until tail
    has printed 100 lines, so tail really followed it live."""
    n, wid, printed, hold = 200, "tailed", tmp_path / "tail.out", tmp_path / "hold"
    writer = spawn(
        "write", pg_url, wid, str(n), "--batch", "10", "--pause", "0.01",
        "--gate-at", "100", "--gate-file", str(printed), "--gate-lines", "100",
        "--hold-file", str(hold),
    )  # fmt: skip
    with nbflow.Runtime(pg_url) as rt:
        wait_until(lambda: rt.exists(wid) or _ended(writer), timeout=60)
    with printed.open("w") as out:
        tail = spawn("-m", "nbflow", "--db", pg_url, "tail", wid, "items", app=False, stdout=out)
        _, err = tail.communicate(timeout=CHILD_TIMEOUT)
    assert tail.returncode == 0, err
    assert printed.read_text().splitlines() == [json.dumps(i) for i in range(n)]
    with nbflow.Runtime(pg_url) as rt:
        # tail ended because the stream closed, not because the workflow ended
        assert rt.status(wid) == nbflow.Status.PENDING
        hold.touch()
        assert _finish(writer)["result"] == n
        assert rt.status(wid) == nbflow.Status.SUCCESS
