"""Recovery limits: ``@nbflow.workflow(max_recovery_attempts=N)``.

The body of a workflow starts at most N + 1 times (its first run and N recoveries); the next
recovery marks it MAX_RECOVERY_ATTEMPTS_EXCEEDED instead of running it, and nothing recovers it
again until ``nbflow.resume`` does. Restates DBOS's ``tests/test_failures.py::test_dead_letter_queue``
(the scenario the issue names "max recovery attempts with a process killed each time").
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.apps import poisonapp
from tests.support.helpers import interrupt, sql, wait_until
from tests.support.processes import ROOT, child_env

pytestmark = pytest.mark.contract

_APP = ROOT / "tests" / "apps" / "poisonapp.py"

#: How many times each workflow of this module ran its body in this process, by id.
_starts: dict[str, int] = {}


def _waits() -> str:
    """A body that says it started, then waits for a message: a runtime closed under it leaves it
    PENDING, as a crash would."""
    workflow_id = nbflow.current_workflow_id()
    assert workflow_id is not None
    _starts[workflow_id] = _starts.get(workflow_id, 0) + 1
    return str(nbflow.recv("go", timeout=600))


@nbflow.workflow(name="tests.recovery_limits.blocked", max_recovery_attempts=2)
def blocked() -> str:
    return f"got {_waits()}"


@nbflow.workflow(name="tests.recovery_limits.unlimited", max_recovery_attempts=None)
def unlimited() -> str:
    return _waits()


@nbflow.workflow(name="tests.recovery_limits.by_default")
def by_default() -> str:
    return _waits()


@nbflow.workflow(name="tests.recovery_limits.never_again", max_recovery_attempts=0)
def never_again() -> str:
    return _waits()


def _started(workflow_id: str, times: int) -> None:
    wait_until(lambda: _starts.get(workflow_id, 0) >= times, timeout=30)


def test_the_recovery_past_the_limit_gives_up(database: str) -> None:
    """DBOS test_dead_letter_queue: recovered ``max_recovery_attempts`` times, each run starts its
    body again; the next recovery marks it MAX_RECOVERY_ATTEMPTS_EXCEEDED without running it, a
    call with its id and ``result()`` raise MaxRecoveryAttemptsExceededError, and ``resume``
    runs it on to its end with a new count."""
    workflow_id = f"blocked-{uuid.uuid4().hex[:8]}"
    runtime = nbflow.configure(database)
    with nbflow.set_workflow_id(workflow_id):
        nbflow.start(blocked)
    _started(workflow_id, 1)
    interrupt(runtime)
    for attempt in (1, 2):  # max_recovery_attempts=2: two recoveries run it
        runtime = nbflow.configure(database)
        [handle] = [h for h in nbflow.recover() if h.workflow_id == workflow_id]
        assert handle.status() == Status.PENDING
        _started(workflow_id, attempt + 1)
        assert nbflow.list_workflows(id_prefix=workflow_id)[0].recovery_attempts == attempt
        interrupt(runtime)
    with nbflow.configure(database):
        recovered = nbflow.recover()
        assert workflow_id not in [h.workflow_id for h in recovered]
        [skipped] = [s for s in recovered.skipped if s.workflow_id == workflow_id]
        assert "gave up at recovery 3 (max_recovery_attempts=2)" in skipped.reason
        assert _starts[workflow_id] == 3  # the third recovery did not run it
        [info] = nbflow.list_workflows(id_prefix=workflow_id)
        assert info.status == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
        assert info.status.is_final and info.status.word == "gave up"
        assert info.recovery_attempts == 3
        assert info.ended_at is not None
        assert info.error is not None and info.error.startswith("MaxRecoveryAttemptsExceededError")
        handle = nbflow.get_workflow(workflow_id)
        with pytest.raises(nbflow.MaxRecoveryAttemptsExceededError) as raised:
            handle.result(timeout=10)
        assert (raised.value.workflow_id, raised.value.attempts, raised.value.limit) == (
            workflow_id,
            3,
            2,
        )
        assert f"nbflow.resume({workflow_id!r})" in str(raised.value)
        # A call with its id does not run the body again: it says why it will not end.
        with (
            nbflow.set_workflow_id(workflow_id),
            pytest.raises(nbflow.MaxRecoveryAttemptsExceededError),
        ):
            blocked()
        assert workflow_id not in [h.workflow_id for h in nbflow.recover()]
        assert nbflow.list_workflows(status="gave up")[0].workflow_id == workflow_id
        # resume lifts it: it runs again, from a count of 0, to its end.
        resumed = nbflow.resume(workflow_id)
        _started(workflow_id, 4)
        assert nbflow.list_workflows(id_prefix=workflow_id)[0].recovery_attempts == 0
        nbflow.send(workflow_id, "at last", topic="go")
        assert resumed.result(timeout=30) == "got at last"
        assert handle.result(timeout=30) == "got at last"
        assert nbflow.get_workflow(workflow_id).status() == Status.SUCCESS
        with nbflow.set_workflow_id(workflow_id):  # an ended workflow: its result, every time
            assert blocked() == "got at last"


def test_no_limit_and_the_default(database: str) -> None:
    """DBOS test_dead_letter_queue's end: ``max_recovery_attempts=None`` recovers for ever; the
    default allows 100 recoveries (as DBOS's DEFAULT_MAX_RECOVERY_ATTEMPTS), and gives up at
    the 101st."""
    assert by_default.max_recovery_attempts == 100  # type: ignore[attr-defined]
    runtime = nbflow.configure(database)
    free, capped = nbflow.start(unlimited), nbflow.start(by_default)
    _started(free.workflow_id, 1)
    _started(capped.workflow_id, 1)
    interrupt(runtime)
    runtime = nbflow.configure(database)  # both as if recovered 100 times already
    sql(runtime, "UPDATE workflows SET recovery_attempts = 100")
    recovered = nbflow.recover()
    [again] = recovered
    assert again.workflow_id == free.workflow_id
    [skipped] = recovered.skipped
    assert skipped.workflow_id == capped.workflow_id
    assert "gave up at recovery 101 (max_recovery_attempts=100)" in skipped.reason
    assert nbflow.get_workflow(capped.workflow_id).status() == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
    [info] = nbflow.list_workflows(id_prefix=free.workflow_id)
    assert (info.status, info.recovery_attempts) == (Status.PENDING, 101)
    _started(free.workflow_id, 2)
    nbflow.send(free.workflow_id, "x", topic="go")
    assert again.result(timeout=30) == "x"


@nbflow.workflow(name="tests.recovery_limits.once_more", max_recovery_attempts=1)
def once_more() -> str:
    return _waits()


def test_a_call_with_the_id_of_an_interrupted_workflow_is_a_recovery(database: str) -> None:
    """Starting (or calling) a workflow with the id of an interrupted one resumes it: that counts
    as a recovery too, held to the same limit."""
    workflow_id = f"again-{uuid.uuid4().hex[:8]}"
    for run in (1, 2):
        runtime = nbflow.configure(database)
        with nbflow.set_workflow_id(workflow_id):
            nbflow.start(once_more)
        _started(workflow_id, run)
        assert nbflow.list_workflows(id_prefix=workflow_id)[0].recovery_attempts == run - 1
        interrupt(runtime)
    with nbflow.configure(database):
        with nbflow.set_workflow_id(workflow_id):
            handle = nbflow.start(once_more)
        with pytest.raises(nbflow.MaxRecoveryAttemptsExceededError, match="recovery 2"):
            handle.result(timeout=10)
        assert _starts[workflow_id] == 2


def test_processes_recovering_at_once_count_each_recovery_once(pg_url: str) -> None:
    """Two runtimes (two executors) recover the same interrupted workflows at the same time:
    each workflow is taken by one of them, and counted once."""
    first = nbflow.Runtime(pg_url)
    handles = [first.start(unlimited) for _ in range(12)]
    for h in handles:
        _started(h.workflow_id, 1)
    interrupt(first)
    a, b = nbflow.Runtime(pg_url), nbflow.Runtime(pg_url)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            found = [f.result() for f in [pool.submit(a.recover), pool.submit(b.recover)]]
        taken = sorted(h.workflow_id for recovered in found for h in recovered)
        assert taken == sorted(h.workflow_id for h in handles)
        counts = {w.workflow_id: w.recovery_attempts for w in a.list_workflows()}
        assert counts == {h.workflow_id: 1 for h in handles}
    finally:
        b.close(timeout=0)
        interrupt(a)  # (waits until the workflow threads of both are gone)


def test_max_recovery_attempts_is_checked() -> None:
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="max_recovery_attempts must be a whole number"):
            nbflow.workflow(max_recovery_attempts=bad)(lambda: None)  # type: ignore[arg-type]


def test_the_status_has_words_everywhere() -> None:
    status = Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
    assert Status.parse("gave up") is Status.parse("MAX_RECOVERY_ATTEMPTS_EXCEEDED") is status
    assert Status.parse("Gave-Up") is status and status.word == "gave up"
    assert status.is_final and list(Status)[-1] is status


def test_a_workflow_that_gave_up_shows_everywhere(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new status reads "gave up" in the tables (text and HTML, in the danger colour), the
    live view ends on it (danger), the CLI lists and prunes it by that word, and a resume says
    what it had been."""
    pytest.importorskip("IPython")
    from nbflow.cli import main
    from nbflow.notebook._state import ViewState
    from nbflow.notebook._tables import workflow_table as html_table
    from nbflow.text._format import format_resume
    from nbflow.text._tables import workflow_table

    runtime = nbflow.configure(str(db_path))
    handle = nbflow.start(never_again)  # max_recovery_attempts=0: its first recovery gives up
    _started(handle.workflow_id, 1)
    interrupt(runtime)
    with nbflow.configure(str(db_path)) as rt:
        [skipped] = nbflow.recover().skipped
        assert "gave up at recovery 1 (max_recovery_attempts=0)" in skipped.reason
        rows = nbflow.list_workflows()
        assert "gave up" in workflow_table(rows)
        html = html_table(rows, "workflows", rt)._repr_html_()
        assert "gave up" in html
        state = ViewState(handle.workflow_id)
        state.status = str(rows[0].status)
        assert state.final and state.word == "gave up"
        assert state.frame(0.0).bar_style == "danger"
        assert format_resume(handle.workflow_id, rows[0].status) == (
            f"resumed: workflow {handle.workflow_id} (had given up)"
        )
    assert main(["--db", str(db_path), "list", "--status", "gave up"]) == 0
    assert handle.workflow_id in capsys.readouterr().out
    assert (
        main(["--db", str(db_path), "prune", "--older-than", "0.001", "--status", "gave-up"]) == 0
    )
    capsys.readouterr()
    with nbflow.configure(str(db_path)):
        assert nbflow.list_workflows() == []


# -- a real process killed each time ------------------------------------------------------------


def _child(
    database: str, mode: str, workflow_id: str, log: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(_APP), database, mode, workflow_id, str(log)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"the app failed ({done.returncode}): {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.crash
def test_a_poison_input_kills_its_process_until_the_limit(database: str, tmp_path: Path) -> None:
    """DBOS test_dead_letter_queue with real crashes: a workflow whose body kills its process
    (kill -9) is recovered by a new process each time, ``max_recovery_attempts`` (2) times; the
    next process's recover marks it MAX_RECOVERY_ATTEMPTS_EXCEEDED and lives on. Once the cause
    is fixed, ``resume`` runs it to its end."""
    log, workflow_id = tmp_path / "starts.log", f"poison-{uuid.uuid4().hex[:8]}"
    assert _child(database, "start", workflow_id, log).returncode == -9
    for _ in range(poisonapp.LIMIT):
        assert _child(database, "recover", workflow_id, log).returncode == -9
    skipped = _summary(_child(database, "recover", workflow_id, log))["skipped"]
    assert "gave up at recovery 3 (max_recovery_attempts=2)" in skipped[workflow_id]
    pids = [line.split()[1] for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(pids) == poisonapp.LIMIT + 1 == len(set(pids))  # once per process, 3 processes
    with nbflow.configure(database):
        [info] = nbflow.list_workflows(id_prefix=workflow_id)
        assert (info.status, info.recovery_attempts) == (Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED, 3)
        assert nbflow.recover() == []  # never again by itself
        with pytest.raises(nbflow.MaxRecoveryAttemptsExceededError):
            nbflow.get_workflow(workflow_id).result(timeout=10)
        Path(f"{log}.fixed").touch()
        assert nbflow.resume(workflow_id).result(timeout=60) == "done"
        [info] = nbflow.list_workflows(id_prefix=workflow_id)
        assert (info.status, info.recovery_attempts) == (Status.SUCCESS, 0)
    assert len(log.read_text(encoding="utf-8").splitlines()) == poisonapp.LIMIT + 2
