"""Crash tests: a real child process runs a workflow and is killed with SIGKILL; another recovers it.

The child is ``tests/apps/crashapp.py``. Each of its steps appends ``ran <i> pid=<pid>`` to a side-effect
log before returning, so the test knows which steps ran in which process. Between the kill and the
recovery the test opens the database itself and notes which checkpoints were durable at the moment
of the crash; the recovery must then run exactly the other steps, and the stream must hold each item
once.

Every scenario runs on a DuckDB file; a representative subset also runs on PostgreSQL (marked
``postgres``, a schema of its own on the session's throwaway server). There the server ends the
killed child's sessions a moment after the kill: the test waits until every one of them is gone
(the child's connections carry an application name of their own) before it takes its snapshot.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import crashapp
from tests.support.helpers import sql, wait_until
from tests.support.processes import child_env, is_postgres

pytestmark = pytest.mark.crash

APP = Path(crashapp.__file__).resolve()
N = crashapp.DEFAULT_STEPS
TOTAL = sum(range(N))

#: Kill points where the parent kills the child once the side-effect log has K lines.
PARENT_KILLS = [random.Random(seed).randint(1, 490) for seed in range(8)]
#: Kill points where the child kills itself inside step K.
SELF_KILLS = [0, 1, 2, 250, 498, 499]
#: The kill points that also run on PostgreSQL.
PG_PARENT_KILLS = PARENT_KILLS[:3]
PG_SELF_KILLS = [0, 499]

ON_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
STORES = ["duckdb", ON_POSTGRES]


def _cases(points: list[int], on_postgres: list[int]) -> list[Any]:
    """``(k, database)`` for every point on DuckDB and for ``on_postgres`` on PostgreSQL."""
    return [pytest.param(k, "duckdb", id=f"duckdb-{k}") for k in points] + [
        pytest.param(k, "postgres", id=f"postgres-{k}", marks=pytest.mark.postgres)
        for k in on_postgres
    ]


@dataclass
class Crash:
    """What a test knows after the kill and the recovery."""

    first_pid: int
    recovery_pid: int
    ran_first: list[int]  # steps that logged in the first process, in order
    ran_recovery: list[int]  # steps that logged in the recovery process, in order
    recorded: bool  # whether the workflow was recorded at the moment of the crash
    status_at_crash: str | None
    durable_steps: list[int]  # step indexes whose checkpoint was durable at the crash
    durable_items: list[tuple[Any, ...]]  # raw stream rows durable at the crash
    summary: dict[str, Any]  # what the recovery process printed


def _spawn(cwd: Path, *args: str, app_name: str | None = None) -> subprocess.Popen[str]:
    env = child_env()
    if app_name is not None:
        env["PGAPPNAME"] = app_name  # libpq gives each of the child's sessions this name
    return subprocess.Popen(
        [sys.executable, str(APP), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _log_lines(log: Path) -> list[tuple[int, int]]:
    """``(step index, pid)`` per complete line of the side-effect log."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # a line being written
        word, index, pid = line.split()
        assert word == "ran" and pid.startswith("pid="), line
        out.append((int(index), int(pid[4:])))
    return out


def _kill_at(proc: subprocess.Popen[str], log: Path, k: int) -> None:
    """SIGKILL the child once the log shows at least ``k`` lines."""

    def reached() -> bool:
        return len(_log_lines(log)) >= k or proc.poll() is not None

    wait_until(reached, timeout=60, interval=0.001)
    assert proc.poll() is None, f"the child ended before the kill: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err


def _wait_self_kill(proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"the child did not kill itself: {err}"


def _executor_gone(rt: nbflow.Runtime, pid: int) -> bool:
    """Whether no executor of process ``pid`` holds its lock any more (PostgreSQL)."""
    rows = sql(rt, "SELECT executor_id FROM executors WHERE pid = ?", pid)
    return not any(rt.store.executor_alive(executor_id) for (executor_id,) in rows)


def _wait_sessions_gone(database: str, pid: int, app_name: str) -> None:
    """On PostgreSQL, wait until the server has ended every session of the killed child.

    Until then its executor still counts as alive, and a transaction it sent before it died may
    still commit: a snapshot taken earlier would not be the state the recovery starts from.
    """
    if not is_postgres(database):
        return  # DuckDB: the kernel released the file lock with the process
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?"
    with nbflow.Runtime(database) as rt:
        wait_until(lambda: sql(rt, query, app_name)[0][0] == 0 and _executor_gone(rt, pid), 60)


def _step_index(function_id: int, workflow_id: str) -> int:
    """The step index of a checkpoint: pipeline steps are at odd ids (step, write, step, ...)."""
    if workflow_id == crashapp.PIPELINE_ID:
        assert function_id % 2 == 1, function_id
        return (function_id - 1) // 2
    return function_id - 1


Snapshot = tuple[bool, str | None, list[int], list[tuple[Any, ...]]]


def _snapshot(database: str, workflow_id: str) -> Snapshot:
    """Open the crashed database (nothing runs) and note what was durable at the crash."""
    with nbflow.Runtime(database) as rt:
        if not rt.exists(workflow_id):
            return False, None, [], []
        assert rt.interrupted == [workflow_id] or rt.status(workflow_id) == nbflow.Status.SUCCESS
        steps = rt.list_steps(workflow_id)
        durable = [_step_index(s.function_id, workflow_id) for s in steps]
        assert all(s.status == "SUCCESS" for s in steps), steps
        items = _stream_rows(rt, workflow_id)
        return True, rt.status(workflow_id).value, durable, items


def _stream_rows(rt: nbflow.Runtime, workflow_id: str) -> list[tuple[Any, ...]]:
    """Raw rows of the stream "items": (offset, value_json, is_end, function_id, attempt)."""
    return sql(
        rt,
        'SELECT "offset", value_json, is_end, function_id, attempt FROM streams '
        "WHERE workflow_id = ? AND key = 'items' ORDER BY \"offset\"",
        workflow_id,
    )


def _crash_and_recover(
    tmp_path: Path,
    database: str,
    command: str,
    workflow_id: str,
    *,
    parent_kill: int | None = None,
    self_kill: int | None = None,
    steps: int = N,
    slow_disk: float = 0.0,
) -> Crash:
    log, app_name = tmp_path / "side-effects.log", f"crashapp-{uuid.uuid4().hex[:12]}"
    extra = ["--steps", str(steps)]
    if self_kill is not None:
        slow = ["--slow-disk", str(slow_disk)] if slow_disk else []
        args = [command, database, str(log), "--self-kill", str(self_kill), *slow, *extra]
        proc = _spawn(tmp_path, *args, app_name=app_name)
        _wait_self_kill(proc)
    else:
        assert parent_kill is not None
        proc = _spawn(tmp_path, command, database, str(log), *extra, app_name=app_name)
        _kill_at(proc, log, parent_kill)
    first_pid = proc.pid
    _wait_sessions_gone(database, first_pid, app_name)
    recorded, status, durable, items = _snapshot(database, workflow_id)

    rec = _spawn(tmp_path, "recover", database, str(log), "--workflow", workflow_id, *extra)
    out, err = rec.communicate(timeout=120)
    assert rec.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["pid"] == rec.pid

    lines = _log_lines(log)
    assert {pid for _, pid in lines} <= {first_pid, rec.pid}, lines
    return Crash(
        first_pid=first_pid,
        recovery_pid=rec.pid,
        ran_first=[i for i, pid in lines if pid == first_pid],
        ran_recovery=[i for i, pid in lines if pid == rec.pid],
        recorded=recorded,
        status_at_crash=status,
        durable_steps=durable,
        durable_items=items,
        summary=summary,
    )


def _check_pipeline(database: str, crash: Crash) -> None:
    """The invariants of a crashed and recovered pipeline (writes from the workflow body)."""
    wid = crashapp.PIPELINE_ID
    s = crash.durable_steps
    # Checkpoints become durable in program order: the durable steps are a prefix 0..len(S)-1.
    assert s == list(range(len(s)))
    # Each step ran at most once in the first process, in order, and every durable step ran there.
    assert crash.ran_first == list(range(len(crash.ran_first)))
    assert set(s) <= set(crash.ran_first)
    # Stream writes from the body are durable in order with the checkpoints: after step i's
    # checkpoint comes item i, so the durable items are a prefix of 0.., one behind the steps at most.
    values = [json.loads(v) for _, v, is_end, _, _ in crash.durable_items if not is_end]
    assert values == list(range(len(values)))
    assert len(s) - 1 <= len(values) <= len(s)
    assert [r[0] for r in crash.durable_items] == list(range(len(crash.durable_items)))
    assert all(r[3] is not None and r[4] is None for r in crash.durable_items if not r[2])
    if crash.recorded and len(s) < N:
        assert crash.status_at_crash == "PENDING"
        assert crash.summary["interrupted"] == [wid]
        assert crash.summary["recovered"] == [wid]
        assert crash.summary["results"] == {wid: TOTAL}
    assert crash.summary["called"] == TOTAL

    # No step whose checkpoint was durable ran again; every other step ran exactly once more.
    assert sorted(crash.ran_recovery) == sorted(set(range(N)) - set(s))
    assert crash.ran_recovery == sorted(set(crash.ran_recovery)), "a step ran twice in recovery"
    ran_twice = set(crash.ran_first) & set(crash.ran_recovery)
    assert ran_twice == set(crash.ran_first) - set(s)

    with nbflow.Runtime(database) as rt:
        assert rt.status(wid) == nbflow.Status.SUCCESS
        assert rt.get_workflow(wid).result() == TOTAL
        assert list(rt.read_stream(wid, "items", timeout=10)) == list(range(N))
        rows = _stream_rows(rt, wid)
        assert [r[0] for r in rows] == list(range(N + 1))  # contiguous offsets, then the end
        assert rows[-1][2] is True and not any(r[2] for r in rows[:-1])
        steps = rt.list_steps(wid)
        assert [st.function_id for st in steps] == [2 * i + 1 for i in range(N)]
        assert {st.name for st in steps} == {"crashapp.work"}
        assert rt.interrupted == []


@pytest.mark.parametrize(
    ("k", "database"), _cases(PARENT_KILLS, PG_PARENT_KILLS), indirect=["database"]
)
def test_parent_kill_at_random_point(tmp_path: Path, database: str, k: int) -> None:
    """SIGKILL from outside once K steps ran: recovery re-runs exactly the non-durable steps, and the
    stream holds 0..499 once each, in order."""
    crash = _crash_and_recover(tmp_path, database, "run", crashapp.PIPELINE_ID, parent_kill=k)
    assert len(crash.ran_first) >= k
    _check_pipeline(database, crash)


@pytest.mark.parametrize(
    ("k", "database"), _cases(SELF_KILLS, PG_SELF_KILLS), indirect=["database"]
)
def test_self_kill_inside_step(tmp_path: Path, database: str, k: int) -> None:
    """SIGKILL from inside step K: step K never returned, so it runs again; nothing durable does."""
    crash = _crash_and_recover(tmp_path, database, "run", crashapp.PIPELINE_ID, self_kill=k)
    assert crash.ran_first == list(range(k + 1))
    assert k not in crash.durable_steps
    assert k in crash.ran_recovery
    _check_pipeline(database, crash)


@pytest.mark.parametrize("database", STORES, indirect=True)
def test_workflow_is_recorded_before_its_first_step_runs(tmp_path: Path, database: str) -> None:
    """A crash inside the first step must leave the workflow recorded (PENDING), so recover() finds
    it: its step ran a side effect, and a workflow started with a generated id could not be found
    and called again. A slow disk (each commit 0.3 s longer) makes the window wide."""
    crash = _crash_and_recover(
        tmp_path, database, "run", crashapp.PIPELINE_ID, self_kill=0, slow_disk=0.3
    )
    assert crash.ran_first == [0]
    assert crash.recorded, "step 0 ran, but the workflow was not durable when the process died"
    assert crash.status_at_crash == "PENDING"
    assert crash.summary["recovered"] == [crashapp.PIPELINE_ID]
    _check_pipeline(database, crash)


def test_kill_points_are_distinct() -> None:
    """The suite kills at 14 distinct points (the parametrization really varies); the seeded
    fault runs (test_faults, test_crash_parallel, test_map_faults) kill at many more."""
    points = {("parent", k) for k in PARENT_KILLS} | {("self", k) for k in SELF_KILLS}
    assert len(set(PARENT_KILLS)) == len(PARENT_KILLS)
    assert len(points) == 14


# -- writes from inside steps: at-least-once, told apart by (function_id, attempt) ---------------

STEP_WRITES_N = 200


def _step_write_rows(database: str) -> list[tuple[Any, ...]]:
    wid = crashapp.STEP_WRITES_ID
    with nbflow.Runtime(database) as rt:
        assert rt.status(wid) == nbflow.Status.SUCCESS
        assert rt.get_workflow(wid).result() == sum(range(STEP_WRITES_N))
        rows = _stream_rows(rt, wid)
        read = list(rt.read_stream(wid, "items", timeout=10))
    assert [r[0] for r in rows] == list(range(len(rows)))  # contiguous offsets
    assert rows[-1][2] is True and not any(r[2] for r in rows[:-1])
    items = rows[:-1]
    assert read == [json.loads(r[1]) for r in items]
    return items


def _check_step_writes(items: list[tuple[Any, ...]], durable_steps: list[int]) -> Counter[int]:
    """Every value is present; copies of a value come from the same step with distinct attempts
    1, 2, ...; a step whose checkpoint was durable at the crash wrote its item once."""
    by_value: dict[int, list[tuple[int, int]]] = {}
    for _, value_json, _, function_id, attempt in items:
        by_value.setdefault(json.loads(value_json), []).append((function_id, attempt))
    assert sorted(by_value) == list(range(STEP_WRITES_N))
    for value, writers in by_value.items():
        assert {f for f, _ in writers} == {value + 1}, (value, writers)  # step i is function i+1
        assert sorted(a for _, a in writers) == list(range(1, len(writers) + 1)), (value, writers)
    for i in durable_steps:
        assert len(by_value[i]) == 1, (i, by_value[i])
    return Counter({v: len(w) for v, w in by_value.items() if len(w) > 1})


@pytest.mark.parametrize("database", STORES, indirect=True)
def test_step_write_then_kill_is_duplicated_with_distinct_attempts(
    tmp_path: Path, database: str
) -> None:
    """A step writes its item, the item is durable, the process dies before the step's checkpoint:
    after recovery the item appears twice, the copies told apart by attempt 1 and 2."""
    k = 120
    crash = _crash_and_recover(
        tmp_path, database, "step-writes", crashapp.STEP_WRITES_ID, self_kill=k, steps=STEP_WRITES_N
    )
    assert crash.recorded and crash.durable_steps == list(range(k))
    assert crash.ran_recovery == list(range(k, STEP_WRITES_N))
    items = _step_write_rows(database)
    assert [json.loads(r[1]) for r in items] == [*range(k + 1), *range(k, STEP_WRITES_N)]
    dup = [(r[3], r[4]) for r in items if json.loads(r[1]) == k]
    assert dup == [(k + 1, 1), (k + 1, 2)]
    assert _check_step_writes(items, crash.durable_steps) == Counter({k: 2})


@pytest.mark.parametrize(
    ("seed", "database"), _cases([101, 102, 103], [101]), indirect=["database"]
)
def test_step_writes_parent_kill(tmp_path: Path, database: str, seed: int) -> None:
    """A kill from outside mid-run: every item is present, duplicates only from steps that were
    not durable, each copy with its own attempt number."""
    k = random.Random(seed).randint(1, STEP_WRITES_N - 10)
    crash = _crash_and_recover(
        tmp_path,
        database,
        "step-writes",
        crashapp.STEP_WRITES_ID,
        parent_kill=k,
        steps=STEP_WRITES_N,
    )
    s = crash.durable_steps
    assert s == list(range(len(s)))
    assert sorted(crash.ran_recovery) == sorted(set(range(STEP_WRITES_N)) - set(s))
    items = _step_write_rows(database)
    duplicated = _check_step_writes(items, s)
    assert set(duplicated) <= set(crash.ran_first) & set(crash.ran_recovery)
    assert all(n == 2 for n in duplicated.values())
