"""A PostgreSQL server that restarts under running workflows (issue 14, item 12).

The server is the test's own, restarted for real: ``pg_ctl stop -m fast`` drops every session,
then for a few seconds no server listens, then it starts again on the same port. Before, one
immediate reconnect (while the server was still down) failed the commit, the committer stopped
for good and every running workflow failed. Now the store rides out the restart with backoff
(30 s by default), and past its window fails clearly, so that a new runtime can recover the
workflows exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import nbflow
from nbflow import DatabaseError
from tests.support.helpers import wait_until
from tests.support.pgserver import PostgresServer, start_or_skip_reason

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STEPS = 60  # 3 s of steps: the restart lands well before the end
ran: list[int] = []
ran_lock = threading.Lock()


@nbflow.step(name="tests.pg_restart.work")
def work(i: int) -> int:
    with ran_lock:
        ran.append(i)
    nbflow.write_stream("rows", i)
    return i * i


@nbflow.workflow(name="tests.pg_restart.pipeline")
def pipeline(n: int) -> int:
    total = 0
    for i in range(n):
        total += work(i)
        nbflow.sleep(0.05)
    return total


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A server of this module's own (restarting the session's would disturb nothing, but an
    existing server given by URL cannot be restarted)."""
    found, reason = start_or_skip_reason()
    if found is None or found.existing_url:
        if found is not None:
            found.stop()
        pytest.skip(reason or "restarts need a server the tests start themselves")
    yield found
    found.stop()


@pytest.fixture
def url(server: PostgresServer) -> Iterator[str]:
    ran.clear()
    yield server.create_database()


def test_a_restart_of_a_few_seconds_is_ridden_out(server: PostgresServer, url: str) -> None:
    with nbflow.Runtime(url) as rt:
        handle = rt.start(pipeline, STEPS)
        wait_until(lambda: len(ran) >= 10, timeout=60)
        server.restart(outage=3.0)
        assert handle.result(timeout=120) == sum(i * i for i in range(STEPS))
        rows = list(rt.read_stream(handle.workflow_id, "rows", timeout=10))
    assert sorted(ran) == list(range(STEPS)) and len(ran) == STEPS  # each step once
    assert rows == list(range(STEPS))  # each item once, in order


def test_past_its_window_it_fails_clearly_and_recovers_exactly(
    server: PostgresServer, url: str
) -> None:
    rt = nbflow.Runtime(url)
    try:
        rt.store.reconnect.seconds = 1.0  # type: ignore[attr-defined]
        handle = rt.start(pipeline, STEPS)
        wait_until(lambda: len(ran) >= 10, timeout=60)
        server.restart(outage=4.0)
        with pytest.raises(DatabaseError, match="could not be reached for 1 s"):
            handle.result(timeout=60)
    finally:
        rt.close(timeout=5)
    before = list(ran)
    with nbflow.Runtime(url) as again:
        steps = again.list_steps(handle.workflow_id)
        durable = len([s for s in steps if s.name == "tests.pg_restart.work"])
        [resumed] = again.recover()
        assert resumed.result(timeout=120) == sum(i * i for i in range(STEPS))
        rows = list(again.read_stream(handle.workflow_id, "rows", timeout=10))
    assert rows == list(range(STEPS))
    # no step whose checkpoint was durable ran again
    assert ran[len(before) :] == list(range(durable, STEPS)) or sorted(set(ran)) == list(
        range(STEPS)
    )
    assert all(ran.count(i) == 1 for i in range(durable)), (durable, ran)
