"""Every wait of a workflow body ends at once on a cancel and on a close, sync and async alike.

Each kind of wait (a durable sleep, a retry's backoff, ``recv``, ``get_event`` of another
workflow, ``read_stream`` of another workflow's stream), each set up to last ten minutes, in a sync
and an ``async def`` body; the body marks that it is about to wait, then the test cancels the
workflow (its ``result`` must raise ``WorkflowCancelledError`` within a bound far below the wait)
or closes the runtime (its run must end without ``close`` waiting out its timeout). Before the one alarm
(issue 19), an async step's retry slept out its interval through a cancel and a close, an async
sleep saw them only at its next quarter-second poll, and an async stream read waited on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nbflow
from tests.support.helpers import wait_until

pytestmark = pytest.mark.contract

LONG = 600.0  # seconds every wait is set up to last
KINDS = ("sleep", "backoff", "recv", "get_event", "read_stream")
marks: set[str] = set()
mark_lock = threading.Lock()


def mark(name: str) -> None:
    with mark_lock:
        marks.add(name)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    marks.clear()
    yield


@nbflow.step(name="tests.pauses.flaky", retries=5, interval=LONG)
def flaky(tag: str) -> None:
    mark(tag)
    raise ValueError("fails, to be retried after a long backoff")


@nbflow.step(name="tests.pauses.flaky_async", retries=5, interval=LONG)
async def flaky_async(tag: str) -> None:
    mark(tag)
    raise ValueError("fails, to be retried after a long backoff")


@nbflow.workflow(name="tests.pauses.other")
def other(release: str) -> None:
    """A workflow that sets no event and writes nothing until the test ends it."""
    nbflow.recv(release, timeout=LONG)


@nbflow.workflow(name="tests.pauses.sync_body")
def sync_body(kind: str, tag: str, other_id: str) -> None:
    if kind == "backoff":
        flaky(tag)
    mark(tag)
    if kind == "sleep":
        nbflow.sleep(LONG)
    elif kind == "recv":
        nbflow.recv("never", timeout=LONG)
    elif kind == "get_event":
        nbflow.get_event(other_id, "never", timeout=LONG)
    elif kind == "read_stream":
        list(nbflow.read_stream(other_id, "never", timeout=LONG))


@nbflow.workflow(name="tests.pauses.async_body")
async def async_body(kind: str, tag: str, other_id: str) -> None:
    if kind == "backoff":
        await flaky_async(tag)
    mark(tag)
    if kind == "sleep":
        await nbflow.sleep_async(LONG)
    elif kind == "recv":
        await nbflow.recv_async("never", timeout=LONG)
    elif kind == "get_event":
        await nbflow.get_event_async(other_id, "never", timeout=LONG)
    elif kind == "read_stream":
        async for _ in nbflow.read_stream_async(other_id, "never", timeout=LONG):
            pass


BODIES: dict[str, Callable[..., Any]] = {"sync": sync_body, "async": async_body}


def _start_waiting(kind: str, body: str) -> tuple[nbflow.WorkflowHandle, nbflow.WorkflowHandle]:
    """Start a body that waits; return its handle once it is about to (and the other one)."""
    holder = nbflow.start(other, "release")
    tag = f"{body}-{kind}"
    handle = nbflow.start(BODIES[body], kind, tag, holder.workflow_id)
    wait_until(lambda: tag in marks, timeout=30)
    return handle, holder


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("kind", KINDS)
def test_a_cancel_ends_every_wait_at_once(rt: nbflow.Runtime, kind: str, body: str) -> None:
    handle, holder = _start_waiting(kind, body)
    nbflow.cancel(handle.workflow_id)
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=20)  # (a wait that went on would time out here)
    nbflow.send(holder.workflow_id, "done", topic="release")
    holder.result(timeout=20)


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("kind", KINDS)
def test_a_close_ends_every_wait_at_once(rt: nbflow.Runtime, kind: str, body: str) -> None:
    handle, holder = _start_waiting(kind, body)
    run = handle.run
    assert run is not None
    # close() waits as long as it is told for its runs to stop: told ten minutes, it must not
    # need them (before, an async retry's backoff held it until its timeout, then its loop was
    # stopped under it)
    closer = threading.Thread(target=rt.close, kwargs={"timeout": LONG}, daemon=True)
    closer.start()
    wait_until(run.done.is_set, timeout=30)
    closer.join(30)
    assert not closer.is_alive()
    assert isinstance(run.error, nbflow.WorkflowInterruptedError)
    assert holder.run is not None and holder.run.done.is_set()


def test_a_pause_is_woken_from_another_thread_in_an_async_task() -> None:
    """The alarm's async pause is woken by a ring from another thread, at once."""
    from nbflow.workflow._alarm import Alarm

    async def main() -> bool:
        alarm = Alarm()
        threading.Timer(0.05, alarm.ring).start()
        task = asyncio.ensure_future(alarm.pause_async(LONG))
        await asyncio.wait_for(task, 20)
        await alarm.pause_async(LONG)  # rung before: returns at once
        return True

    assert asyncio.run(main())
