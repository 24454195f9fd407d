"""What only the PostgreSQL store does: several runtimes share one database.

Two runtimes in one process on the same URL are two executors, as two processes would be: each has
its own connections, executor lock and listener. (Separate processes: ``tests/test_shared_store.py``.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import Gate, sql, wait_until

pytestmark = pytest.mark.postgres

gates: dict[str, Gate] = {}
body_runs: list[str] = []


@nbflow.step(name="tests.pg.wait")
def wait_at(name: str) -> str:
    gates[name].wait()
    return name


@nbflow.workflow(name="tests.pg.blocked")
def blocked(name: str) -> str:
    return wait_at(name)


@nbflow.workflow(name="tests.pg.counted")
def counted(tag: str) -> str:
    body_runs.append(tag)
    return tag


@nbflow.workflow(name="tests.pg.writer")
def writer(n: int, name: str) -> int:
    for i in range(n):
        nbflow.write_stream("items", i)
        if i == n // 2:
            wait_at(name)
    return n


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[nbflow.Runtime, nbflow.Runtime]]:
    """Two runtimes on one PostgreSQL database; every gate is released before they close."""
    gates.clear()
    body_runs.clear()
    a, b = nbflow.Runtime(pg_url), nbflow.Runtime(pg_url)
    try:
        yield a, b
    finally:
        for g in gates.values():
            g.release.set()
        a.close()
        b.close()


def gate(name: str) -> Gate:
    gates[name] = Gate()
    return gates[name]


def test_a_reader_in_another_runtime_sees_items_live(
    two: tuple[nbflow.Runtime, nbflow.Runtime],
) -> None:
    a, b = two
    g = gate("half")
    handle = a.start(writer, 200, "half")
    g.reached()  # half the items are written; the workflow waits
    got: list[Any] = []
    reader = threading.Thread(
        target=lambda: got.extend(b.read_stream(handle.workflow_id, "items", timeout=30))
    )
    reader.start()
    wait_until(lambda: len(got) >= 101)  # read live, while the workflow is still running
    assert b.status(handle.workflow_id) == Status.PENDING
    g.release.set()
    reader.join(30)
    assert got == list(range(200))


def test_a_reader_falls_back_to_polling_without_notifications(
    two: tuple[nbflow.Runtime, nbflow.Runtime],
) -> None:
    """A reader whose notifications never come still gets every item (it polls every second)."""
    a, b = two
    a.store._channel = "nbflow_nobody_listens_here"  # type: ignore[attr-defined]
    g = gate("half")
    handle = a.start(writer, 20, "half")
    g.reached()
    got: list[Any] = []
    reader = threading.Thread(
        target=lambda: got.extend(b.read_stream(handle.workflow_id, "items", timeout=30))
    )
    reader.start()
    wait_until(lambda: len(got) >= 11)
    g.release.set()
    reader.join(30)
    assert got == list(range(20))


def test_a_running_workflow_is_not_recovered_by_another_runtime(
    two: tuple[nbflow.Runtime, nbflow.Runtime],
) -> None:
    a, b = two
    g = gate("run")
    handle = a.start(blocked, "run")
    g.reached()
    assert b.recover() == []
    assert b.interrupted == []
    resumed = b.resume(handle.workflow_id)  # running elsewhere: a handle, nothing run here
    assert g.calls == 1
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.append(resumed.result(timeout=30)))
    waiter.start()
    g.release.set()
    waiter.join(30)
    assert result == ["run"] and g.calls == 1


def test_a_closed_runtimes_workflows_are_recovered_by_another(pg_url: str) -> None:
    gates.clear()
    g = gate("crash")
    with nbflow.Runtime(pg_url) as b:
        a = nbflow.Runtime(pg_url)
        handle = a.start(blocked, "crash")
        g.reached()
        a.close(timeout=0)  # its session ends: the workflow is interrupted
        wait_until(lambda: b.store.pending_workflows())
        with pytest.raises(nbflow.WorkflowInterruptedError):
            b.get_workflow(handle.workflow_id).result(timeout=5)
        g.release.set()
        wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("nbflow-workflow")])  # fmt: skip
        [recovered] = b.recover()
        assert recovered.result(timeout=30) == "crash"


def test_the_same_id_started_in_two_runtimes_runs_once(
    two: tuple[nbflow.Runtime, nbflow.Runtime],
) -> None:
    a, b = two
    handles = []
    barrier = threading.Barrier(2)

    def start(runtime: nbflow.Runtime) -> None:
        barrier.wait()
        with nbflow.set_workflow_id("same"):
            handles.append(runtime.start(counted, "x"))

    threads = [threading.Thread(target=start, args=(r,)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [h.result(timeout=30) for h in handles] == ["x", "x"]
    assert body_runs == ["x"]


def test_cancel_from_another_runtime_stops_the_workflow(
    two: tuple[nbflow.Runtime, nbflow.Runtime],
) -> None:
    a, b = two
    g = gate("half")
    handle = a.start(writer, 10, "half")
    g.reached()
    b.cancel(handle.workflow_id)
    wait_until(lambda: a.execution(handle.workflow_id) is None or a.execution(handle.workflow_id).cancelled)  # type: ignore[union-attr]  # fmt: skip
    g.release.set()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=30)
    assert a.status(handle.workflow_id) == b.status(handle.workflow_id) == Status.CANCELLED
    assert list(b.read_stream(handle.workflow_id, "items", timeout=10)) == list(range(6))


def test_commits_survive_a_dropped_connection(
    two: tuple[nbflow.Runtime, nbflow.Runtime],
) -> None:
    """The server ends every session of both runtimes (committers, listeners, pools); they come
    back, and nothing is lost."""
    a, b = two
    g = gate("half")
    handle = a.start(writer, 100, "half")
    g.reached()
    ended = sql(b, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'")  # fmt: skip
    assert len(ended) >= 4  # two listeners, a committer, a pooled connection at least
    g.release.set()
    assert handle.result(timeout=30) == 100
    assert list(b.read_stream(handle.workflow_id, "items", timeout=10)) == list(range(100))


def test_schemas_keep_histories_apart(pg_url: str) -> None:
    other = pg_url.rsplit("schema=", 1)[0] + "schema=" + pg_url.rsplit("schema=", 1)[1] + "_b"
    body_runs.clear()
    with nbflow.Runtime(pg_url) as a, nbflow.Runtime(other) as b:
        a.start(counted, "a").result(timeout=30)
        assert len(a.list_workflows()) == 1
        assert len(b.list_workflows()) == 0


def test_the_password_never_shows(pg_url: str) -> None:
    url = pg_url.replace("postgres@", "postgres:s3cret@", 1)
    with nbflow.Runtime(url) as runtime:  # trust authentication ignores the password
        assert "s3cret" not in runtime.database and "s3cret" not in repr(runtime)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(nbflow.DatabaseError) as info:
        nbflow.Runtime("postgresql://nobody:pw@127.0.0.1:1/none")
    message = str(info.value)
    assert "Cannot connect" in message and "Check that the PostgreSQL server runs" in message
    assert "pw@" not in message


def test_a_bad_schema_name_is_refused(pg_url: str) -> None:
    with pytest.raises(nbflow.DatabaseError, match="not a plain SQL name"):
        nbflow.Runtime(pg_url + "x; drop table workflows")


def test_a_newer_schema_version_is_refused(pg_url: str) -> None:
    with nbflow.Runtime(pg_url) as runtime:
        sql(runtime, "insert into nbflow_schema values (999)")
    with pytest.raises(nbflow.SchemaVersionError, match="Upgrade nbflow"):
        nbflow.Runtime(pg_url)
