"""A committer that fails for good: every waiter gets the DatabaseError at once, none hangs.

The failure is real: a row the workflow is about to write is inserted first through the store's
own SQL, so the committer's insert of it breaks the primary key and the commit raises. A waiter is
started before the failure; whether it is already waiting when the commit fails (as it almost
always is: the failure takes milliseconds to come) or begins its wait after, it must raise.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nbflow
from nbflow import DatabaseError
from tests.support.helpers import Gate, sql, wait_until

#: Seconds a waiter may stay blocked after the committer failed: past it, it hangs.
GUARD = 10.0

queue = nbflow.Queue("tests.committer_failure.q")


@nbflow.workflow
def noop() -> int:
    return 1


@pytest.fixture
def rt(database: str) -> Iterator[nbflow.Runtime]:
    """The default runtime on a fresh DuckDB file, serving no queue (an enqueued workflow waits)."""
    runtime = nbflow.configure(database, queues=[])
    yield runtime
    nbflow._api._close_default()


class Waiter:
    """Runs a blocking call in a thread of its own and keeps what it returned or raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.outcome: list[Any] = []
        self._call = call
        self._thread = threading.Thread(target=self._run, name="test-waiter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.outcome.append(("returned", self._call()))
        except BaseException as exc:
            self.outcome.append(("raised", exc))

    def error(self) -> BaseException:
        """What the call raised once the committer failed; fails the test if it still waits."""
        self._thread.join(GUARD)
        if self._thread.is_alive():
            pytest.fail(f"the waiter is still blocked {GUARD} s after the committer failed")
        [(how, what)] = self.outcome
        assert how == "raised", f"the wait returned {what!r} instead of raising"
        return what  # type: ignore[no-any-return]


def failing_workflow(g: Gate) -> Callable[[], None]:
    """A workflow that writes item 0 of ``k``, waits at the gate, then writes a poisoned row."""

    @nbflow.step(name="tests.committer_failure.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("k", 0)
        wait()
        nbflow.write_stream("k", 1)
        nbflow.write_stream("poisoned", 0)
        nbflow.write_stream("k", 2)

    return wf


def start_failing(runtime: nbflow.Runtime, g: Gate) -> nbflow.WorkflowHandle:
    """Start :func:`failing_workflow`, let it reach its gate and make item 0 durable."""
    handle = nbflow.start(failing_workflow(g))
    g.reached()
    assert runtime.flush(timeout=GUARD)
    return handle


def break_committer(runtime: nbflow.Runtime, handle: nbflow.WorkflowHandle, g: Gate) -> None:
    """Make the committer fail: the row ``poisoned``/0 exists before the workflow writes it."""
    sql(
        runtime,
        "insert into streams values (?, 'poisoned', 0, '\"x\"', NULL, FALSE, NULL, NULL, 0.0)",
        handle.workflow_id,
    )
    g.release.set()


def assert_cannot_write(exc: BaseException) -> None:
    assert isinstance(exc, DatabaseError), repr(exc)
    assert "can no longer write" in str(exc)


def committed(runtime: nbflow.Runtime, workflow_id: str, key: str) -> list[Any]:
    rows = sql(
        runtime,
        "select value_json from streams where workflow_id = ? and key = ? and not is_end "
        'order by "offset"',
        workflow_id,
        key,
    )
    return [int(row[0]) for row in rows]


def test_a_blocked_reader_gets_the_error(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    g = gate()
    handle = start_failing(rt, g)
    got: list[Any] = []

    def read() -> None:
        for value in nbflow.read_stream(handle.workflow_id, "k", timeout=None):
            got.append(value)

    reader = Waiter(read)
    wait_until(lambda: got == [0])
    break_committer(rt, handle, g)
    assert_cannot_write(reader.error())
    # Only what was committed reached the reader, never an item of the failed batch.
    assert got == committed(rt, handle.workflow_id, "k")


def test_an_async_reader_gets_the_error(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    g = gate()
    handle = start_failing(rt, g)
    got: list[Any] = []

    async def consume() -> None:
        async for value in nbflow.read_stream_async(handle.workflow_id, "k", timeout=None):
            got.append(value)

    reader = Waiter(lambda: asyncio.run(consume()))
    wait_until(lambda: got == [0])
    break_committer(rt, handle, g)
    assert_cannot_write(reader.error())


def test_result_of_a_workflow_waited_for_elsewhere_gets_the_error(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    enqueued = queue.enqueue(noop)  # no runtime serves the queue: result() waits on the store
    g = gate()
    handle = start_failing(rt, g)
    waiter = Waiter(enqueued.result)
    break_committer(rt, handle, g)
    assert_cannot_write(waiter.error())


def test_get_event_without_timeout_gets_the_error(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    g = gate()
    handle = start_failing(rt, g)
    waiter = Waiter(lambda: nbflow.get_event(handle.workflow_id, "never", timeout=None))
    break_committer(rt, handle, g)
    assert_cannot_write(waiter.error())


def test_a_workflow_blocked_in_recv_gets_the_error(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    @nbflow.workflow
    def listener() -> Any:
        return nbflow.recv(timeout=None)

    waiting = nbflow.start(listener)
    g = gate()
    handle = start_failing(rt, g)
    waiter = Waiter(waiting.result)
    break_committer(rt, handle, g)
    assert_cannot_write(waiter.error())


def test_a_wait_started_after_the_failure_fails_at_once(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    g = gate()
    handle = start_failing(rt, g)
    break_committer(rt, handle, g)
    with pytest.raises(DatabaseError):
        handle.result(timeout=GUARD)  # its end could not be written: the committer failed
    wid = handle.workflow_id
    got: list[Any] = []

    def read() -> None:
        for value in nbflow.read_stream(wid, "k", timeout=None):
            got.append(value)

    assert_cannot_write(Waiter(read).error())  # (a wait that began would block: it raises)
    assert got == committed(rt, wid, "k")  # what is durable is still read
    assert_cannot_write(Waiter(lambda: nbflow.get_event(wid, "never", timeout=None)).error())
