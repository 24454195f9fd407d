"""A process judged dead while it runs on is fenced (issue 14, item 13; PostgreSQL).

Process A runs a workflow; the server drops A's sessions (``pg_terminate_backend``) while A keeps
running, so A holds no executor lock and is judged dead; process B recovers the workflow. When A's
step returns, A writes again (its connection comes back). Before, A's writes were committed and A
ran the workflow on beside B: the steps after the takeover ran twice. Now every write of a
workflow as its runner is fenced by its owner: A's writes are left out and A stops the workflow
with ``WorkflowInterruptedError`` saying it was taken over; B runs it to the end, each step's
checkpoint once.

The two "processes" are two runtimes of this process (each has its own executor, sessions and
lock; ``application_name`` tells their sessions apart). While B claims the workflow, the database
refuses new connections, so A cannot come back before B has it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

import nbflow
from nbflow import WorkflowInterruptedError
from tests.support.helpers import wait_until
from tests.support.pgserver import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ran: list[tuple[str, int, int]] = []  # (runner, item, thread) of every step call
gates: dict[str, threading.Event] = {}
arrived: dict[str, threading.Event] = {}


@nbflow.step(name="tests.fencing.work")
def work(i: int) -> int:
    # A runs item 0 first, in its workflow's thread; every call from another thread is B's
    first = ran[0][2] if ran else threading.get_ident()
    runner = "A" if threading.get_ident() == first else "B"
    ran.append((runner, i, threading.get_ident()))
    nbflow.write_stream("by", f"{runner}:{i}")
    if i == 1 and not arrived[runner].is_set():  # each runner's first call of item 1 waits
        arrived[runner].set()
        assert gates[runner].wait(60), "the test never released the gate"
    return i * 10


@nbflow.workflow(name="tests.fencing.pipeline")
def pipeline(n: int) -> list[int]:
    return [work(i) for i in range(n)]


def named(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[tuple[str, str]]:
    """A database of this test's own (it refuses connections for a while), and its name."""
    url = pg_server.create_database()
    yield url, url.rsplit("/", 1)[1].split("?")[0]


def test_a_process_judged_dead_is_fenced_and_stops(
    pg_server: PostgresServer, database: tuple[str, str]
) -> None:
    pg_url, name = database
    ran.clear()
    for runner in ("A", "B"):
        gates[runner], arrived[runner] = threading.Event(), threading.Event()
    a = nbflow.Runtime(named(pg_url, "nbflow-A"))
    b = nbflow.Runtime(named(pg_url, "nbflow-B"))
    try:
        with nbflow.set_workflow_id("fenced"):
            handle = a.start(pipeline, 5)
        assert arrived["A"].wait(30)
        a.flush()
        b.flush()
        admin(pg_server, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin(
                pg_server,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'nbflow-A'",
            )
            wait_until(lambda: not b.store.executor_alive(handle_executor(b)), timeout=30)
            [taken] = b.recover()
            assert arrived["B"].wait(30)  # B runs it: item 0 replayed, item 1 called
        finally:
            admin(pg_server, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        gates["A"].set()  # A's step returns: A writes its checkpoint, and would go on
        with pytest.raises(WorkflowInterruptedError, match="another process took it over"):
            handle.result(timeout=60)
        gates["B"].set()
        assert taken.result(timeout=60) == [0, 10, 20, 30, 40]
    finally:
        gates["A"].set()
        gates["B"].set()
        a.close(timeout=10)
        b.close(timeout=10)
    calls = {runner: [i for r, i, _ in ran if r == runner] for runner in ("A", "B")}
    # B ran every item after the takeover once; A stopped at its first write after it (it may
    # have run ahead of that write's commit: steps whose checkpoint was never durable)
    assert calls["B"] == [1, 2, 3, 4], calls
    assert calls["A"][:2] == [0, 1], calls
    with nbflow.Runtime(pg_url) as check:
        steps = [s.function_id for s in check.list_steps("fenced")]
        items = list(check.read_stream("fenced", "by", timeout=10))
    assert steps == [1, 2, 3, 4, 5], steps
    # A:1 was written (and durable) before the takeover; nothing of A's after it
    assert items == ["A:0", "A:1", "B:1", "B:2", "B:3", "B:4"], items


def admin(server: PostgresServer, statement: str) -> None:
    """Run ``statement`` on the server's ``postgres`` database (a database cannot refuse
    connections from a session of its own)."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def handle_executor(rt: nbflow.Runtime) -> str | None:
    row = rt.store.get_workflow("fenced")
    return None if row is None else row.executor_id
