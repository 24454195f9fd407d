"""Debounce (``nbflow.Debouncer``) on every store: DBOS's ``tests/test_debouncer.py`` restated,
and a burst whose process is killed before its period is over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.apps import debounceapp
from tests.support.helpers import sql, wait_until
from tests.support.processes import ROOT, child_env, is_postgres, run_together

pytestmark = pytest.mark.contract

#: A period no test waits for: only ``max_wait`` (or a shorter newer period) ends the burst.
FOREVER = 10_000_000
#: A period long enough that a burst's calls never outlast it on a busy machine.
PERIOD = 2.0


@nbflow.workflow(name="tests.debounce.echo")
def echo(x: Any) -> Any:
    return x


def runs_of_echo() -> int:
    return len(nbflow.list_workflows(name="tests.debounce.echo"))


def test_a_burst_starts_the_workflow_once_with_the_newest_arguments(rt: nbflow.Runtime) -> None:
    """DBOS ``test_debouncer``: the calls of a burst share one workflow, which runs once with the
    last call's arguments; the next burst is another workflow; ``set_workflow_id`` names it."""
    first = [nbflow.Debouncer(echo).debounce("key", PERIOD, x) for x in (0, 1, 2)]
    assert len({h.workflow_id for h in first}) == 1
    assert first[0].result(timeout=60) == 2
    assert first[-1].result(timeout=60) == 2
    assert runs_of_echo() == 1
    assert nbflow.get_workflow(first[0].workflow_id).result() == 2

    debouncer = nbflow.Debouncer(echo)
    second = [debouncer.debounce("key", PERIOD, x) for x in (3, 4)]
    assert second[0].workflow_id == second[1].workflow_id != first[0].workflow_id
    assert second[0].result(timeout=60) == 4
    assert runs_of_echo() == 2

    with nbflow.set_workflow_id("chosen-by-the-caller"):
        named = debouncer.debounce("key", 0.1, 5)
    assert named.workflow_id == "chosen-by-the-caller"
    assert named.result(timeout=60) == 5


def test_max_wait_starts_a_burst_that_keeps_coming(rt: nbflow.Runtime) -> None:
    """DBOS ``test_debouncer_timeout``: a huge period, a short ``max_wait``: the workflow starts
    after ``max_wait`` with the newest arguments; a newer call's shorter period ends a burst."""
    debouncer = nbflow.Debouncer(echo, max_wait=PERIOD)
    first, second = (debouncer.debounce("key", FOREVER, x) for x in (0, 1))
    assert first.workflow_id == second.workflow_id
    assert first.result(timeout=60) == 1
    third, fourth = (debouncer.debounce("key", FOREVER, x) for x in (2, 3))
    assert third.workflow_id == fourth.workflow_id != first.workflow_id
    assert fourth.result(timeout=60) == 3

    unbounded = nbflow.Debouncer(echo)
    long = unbounded.debounce("key", FOREVER, 4)
    short = unbounded.debounce("key", 0.2, 5)  # the newest call's period counts
    assert long.workflow_id == short.workflow_id != third.workflow_id
    assert long.result(timeout=60) == 5


def test_keys_are_debounced_apart(rt: nbflow.Runtime) -> None:
    """DBOS ``test_multiple_debouncers``: each key has its own burst."""
    one, two = nbflow.Debouncer(echo), nbflow.Debouncer(echo)
    a = [one.debounce("key_one", PERIOD, x) for x in (0, 1)]
    b = [two.debounce("key_two", PERIOD, x) for x in (2, 3)]
    assert a[0].workflow_id == a[1].workflow_id != b[0].workflow_id == b[1].workflow_id
    assert [a[0].result(timeout=60), b[0].result(timeout=60)] == [1, 3]


def test_a_waiting_burst_is_enqueued_and_cancelled_with_its_debouncer(rt: nbflow.Runtime) -> None:
    handle = nbflow.Debouncer(echo).debounce("key", FOREVER, 1)
    assert handle.status() is Status.DELAYED
    assert "debounced" in repr(handle)
    nbflow.cancel(handle.debouncer_id)
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=30)
    assert handle.status() is Status.CANCELLED
    assert runs_of_echo() == 0


@nbflow.workflow(name="tests.debounce.caller")
def caller() -> list[Any]:
    debouncer = nbflow.Debouncer(echo)
    a = debouncer.debounce("in-a-body", PERIOD, "a")
    b = debouncer.debounce("in-a-body", PERIOD, "b")
    return [a.workflow_id, b.workflow_id, a.result(timeout=60)]


def test_a_debounce_in_a_workflow_is_a_checkpoint(rt: nbflow.Runtime) -> None:
    """DBOS ``test_debouncer`` (its second half): debounced from a workflow body, and replayed
    (here by a fork that reuses every step): the replay gets the same workflow, starts no new
    burst, and runs nothing again."""
    handle = nbflow.start(caller)
    a_id, b_id, value = handle.result(timeout=60)
    assert a_id == b_id and value == "b"
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names == ["nbflow.debounce", "nbflow.debounce"]
    replayed = nbflow.fork(handle.workflow_id, from_step=len(names) + 1).result(timeout=60)
    assert replayed == [a_id, b_id, "b"]
    assert len(nbflow.list_workflows(name="nbflow.debounce")) == 1
    assert runs_of_echo() == 1


@pytest.mark.parametrize("period", [-1, "1", None, True, float("nan")])
def test_a_bad_period_is_refused(rt: nbflow.Runtime, period: Any) -> None:
    with pytest.raises(ValueError, match="period"):
        nbflow.Debouncer(echo).debounce("key", period, 1)
    assert nbflow.list_workflows(include_internal=True) == []


@pytest.mark.parametrize("max_wait", [-0.5, "10", True])
def test_a_bad_max_wait_is_refused(max_wait: Any) -> None:
    with pytest.raises(ValueError, match="max_wait"):
        nbflow.Debouncer(echo, max_wait=max_wait)


def test_a_debouncer_needs_a_workflow_and_a_text_key(rt: nbflow.Runtime) -> None:
    with pytest.raises(TypeError, match=r"@nbflow\.workflow"):
        nbflow.Debouncer(len)
    with pytest.raises(nbflow.InvalidValueError, match="debounce key"):
        nbflow.Debouncer(echo).debounce(3, 1.0, 1)  # type: ignore[arg-type]


# -- a kernel restart: the burst's process killed before its period is over -----------------------


@pytest.fixture
def child(database: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The app (``tests/apps/debounceapp.py``), debouncing three calls with a 3 s period."""
    app = ROOT / "tests" / "apps" / "debounceapp.py"
    name = f"debounceapp-{os.getpid()}-{tmp_path.name}"[:60]
    proc = subprocess.Popen(
        [sys.executable, str(app), database, "3", "burst"],
        cwd=tmp_path,
        env=child_env(name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    proc.app_name = name  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)


def _gone(database: str, proc: subprocess.Popen[str]) -> None:
    """On PostgreSQL, wait until the killed child's sessions ended and its executor no longer
    counts as alive (then its workflows can be recovered)."""
    if not is_postgres(database):
        return

    def gone(rt: nbflow.Runtime) -> bool:
        active = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?"
        if sql(rt, active, proc.app_name)[0][0]:  # type: ignore[attr-defined]
            return False
        rows = sql(rt, "SELECT executor_id FROM executors WHERE pid = ?", proc.pid)
        return not any(rt.store.executor_alive(executor_id) for (executor_id,) in rows)

    with nbflow.Runtime(database) as rt:
        wait_until(lambda: gone(rt), timeout=60)


@pytest.mark.crash
def test_a_pending_debounce_survives_its_process_killed(
    database: str, child: subprocess.Popen[str]
) -> None:
    """The process of a burst is killed (``kill -9``) before the period is over; a new runtime
    on the same database recovers the debouncer, which starts the workflow once, with the
    newest arguments, in the new process."""
    assert child.stdout is not None
    ids = json.loads(child.stdout.readline())
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    _gone(database, child)
    rt = nbflow.configure(database)
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.get_workflow(ids["target"])  # killed before it started
    recovered = {h.workflow_id for h in rt.recover()}
    assert ids["debouncer"] in recovered
    assert nbflow.get_workflow(ids["debouncer"]).result(timeout=60) == ids["target"]
    outcome = nbflow.get_workflow(ids["target"]).result(timeout=60)
    assert outcome == {"threshold": 2, "pid": os.getpid()}
    assert len(nbflow.list_workflows(name=debounceapp.analyse.name)) == 1


@pytest.mark.postgres
def test_calls_from_two_processes_join_one_burst(pg_url: str, tmp_path: Path) -> None:
    """Two processes call for one key at the same moment (on PostgreSQL): both get a handle of
    the same workflow, which runs once, with one of their arguments."""
    app = ROOT / "tests" / "apps" / "debounceapp.py"
    commands = [[sys.executable, str(app), pg_url, "3", f"call:{value}"] for value in (10, 20)]
    outs = run_together(commands, tmp_path)
    ids = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    assert ids[0] == ids[1]
    rt = nbflow.configure(pg_url)
    rt.recover()  # the burst's process has ended: it is run on here
    assert nbflow.get_workflow(ids[0]["debouncer"]).result(timeout=60) == ids[0]["target"]
    outcome = nbflow.get_workflow(ids[0]["target"]).result(timeout=60)
    assert outcome["threshold"] in (10, 20)
    assert len(nbflow.list_workflows(name=debounceapp.analyse.name)) == 1
