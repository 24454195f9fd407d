"""Workflow features composed with each other: gathered async steps, children started or enqueued
from a workflow, streams read from a workflow, handles across a resume, forks and timeouts, async
waits. Each test is one of the defects nbflow 0.1 had off the paved road; all run on both stores.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import nbflow_threads, sql, wait_until

pytestmark = pytest.mark.contract

ran: list[Any] = []
release = threading.Event()


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    ran.clear()
    release.set()
    yield
    release.set()


def crash(rt: nbflow.Runtime) -> None:
    """Close the runtime under running workflows, as a crash would (they stay PENDING)."""
    rt.close(timeout=0)
    release.set()
    wait_until(lambda: not [t for t in nbflow_threads() if t.name.startswith("nbflow-")])


# -- asyncio.gather of async steps (defect 2) -----------------------------------------------------


@nbflow.step(name="tests.composition.fetch")
async def fetch(i: int) -> str:
    ran.append(i)
    await asyncio.sleep(0)  # let the other gathered steps start meanwhile
    nbflow.write_stream("pages", f"page-{i}")
    return f"page-{i}"


@nbflow.step(name="tests.composition.hold")
async def hold() -> str:
    ran.append("hold")
    while not release.is_set():
        await asyncio.sleep(0.01)
    return "held"


@nbflow.workflow(name="tests.composition.gathered")
async def gathered() -> list[str]:
    first = await asyncio.gather(fetch(1), fetch(2))
    return [*first, await fetch(3), await hold()]


def test_gathered_async_steps_replay_in_call_order(rt: nbflow.Runtime, database: str) -> None:
    release.clear()
    handle = nbflow.start(gathered)
    wait_until(lambda: "hold" in ran)  # fetch(3) is recorded; the workflow waits in hold()
    rt.flush()
    crash(rt)
    ran.clear()
    with nbflow.configure(database) as again:
        [resumed] = again.recover()
        # nbflow 0.1 gave ['page-1', 'page-3', 'page-3', 'held']: fetch(2) ran unrecorded
        assert resumed.result(timeout=30) == ["page-1", "page-2", "page-3", "held"]
        assert ran == ["hold"]  # every fetch came from its checkpoint
        steps = again.list_steps(handle.workflow_id)
        assert [s.function_id for s in steps] == [1, 2, 3, 4]
        # the stream items of gathered steps are credited to the steps, not to the body
        rows = sql(
            again,
            "SELECT function_id, attempt FROM streams WHERE workflow_id = ? AND key = 'pages' "
            "AND NOT is_end ORDER BY function_id",
            handle.workflow_id,
        )
        assert [r[0] for r in rows] == [1, 2, 3] and all(r[1] is not None for r in rows)


# -- async steps from sync workflows, children awaited, async waits (defect 8) --------------------


@nbflow.workflow(name="tests.composition.sync_calls_async")
def sync_calls_async() -> str:
    return fetch(7)  # type: ignore[no-any-return]


def test_an_async_step_in_a_sync_workflow_returns_its_value(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(sync_calls_async)
    assert handle.result(timeout=30) == "page-7"
    assert [s.name for s in nbflow.list_steps(handle.workflow_id)] == ["tests.composition.fetch"]


@nbflow.workflow(name="tests.composition.async_child")
async def async_child(i: int) -> int:
    await nbflow.sleep_async(0.01)
    return i * 10


@nbflow.workflow(name="tests.composition.async_parent")
async def async_parent() -> list[int]:
    one = await async_child(1)
    more = await asyncio.gather(async_child(2), async_child(3))
    return [one, *more]


def test_await_a_child_inside_an_async_workflow(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(async_parent)
    assert handle.result(timeout=30) == [10, 20, 30]
    children = [w for w in nbflow.list_workflows(name="tests.composition.async_child")]
    assert len(children) == 3 and {w.parent_id for w in children} == {handle.workflow_id}


@nbflow.workflow(name="tests.composition.sleeper")
async def sleeper(i: int) -> None:
    await nbflow.sleep_async(600)


def test_async_workflows_that_sleep_run_at_the_same_time(rt: nbflow.Runtime) -> None:
    handles = [nbflow.start(sleeper, i) for i in range(20)]
    # all twenty are asleep at once: a sleep that blocked nbflow's loop would hold the others
    # back for 600 s before their first step
    wait_until(lambda: all(nbflow.list_steps(h.workflow_id) for h in handles), timeout=30)
    for h in handles:
        h.cancel()  # a cancel wakes an async sleep
    for h in handles:
        with pytest.raises(nbflow.WorkflowCancelledError):
            h.result(timeout=10)


@nbflow.workflow(name="tests.composition.async_receiver")
async def async_receiver() -> list[Any]:
    await asyncio.sleep(0)
    got = [await nbflow.recv_async(timeout=30), await nbflow.recv_async(timeout=0.05)]
    return got


def test_recv_async_and_get_event_async(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(async_receiver)
    nbflow.send(handle.workflow_id, {"hello": 1})
    assert handle.result(timeout=30) == [{"hello": 1}, None]
    source = nbflow.start(publisher).workflow_id
    assert asyncio.run(nbflow.get_event_async(source, "stage", timeout=30)) == "ready"


# -- children started or enqueued from a workflow (defect 3) --------------------------------------


@nbflow.workflow(name="tests.composition.child")
def child(i: int) -> int:
    ran.append(("child", i))
    release.wait(30)
    return i + 100


@nbflow.workflow(name="tests.composition.starter")
def starter() -> list[int]:
    first = nbflow.start(child, 1)
    second = nbflow.start(child, 2)
    return [first.result(), second.result()]


def test_children_started_in_a_workflow_are_checkpointed(rt: nbflow.Runtime, database: str) -> None:
    release.clear()
    handle = nbflow.start(starter)
    wait_until(lambda: len([r for r in ran if r[0] == "child"]) == 2)
    crash(rt)
    with nbflow.configure(database) as again:
        for h in again.recover():
            h.result(timeout=30)
        assert again.get_workflow(handle.workflow_id).result(timeout=30) == [101, 102]
        children = again.list_workflows(name="tests.composition.child")
        assert len(children) == 2  # recovery started no third child
        assert {w.parent_id for w in children} == {handle.workflow_id}
        names = [s.name for s in again.list_steps(handle.workflow_id)]
        assert names == ["nbflow.start('tests.composition.child')"] * 2


def test_a_fork_of_the_parent_finds_the_same_child(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(starter)
    assert handle.result(timeout=30) == [101, 102]
    forked = nbflow.fork(handle.workflow_id, from_step=2)  # reuses the first start
    assert forked.result(timeout=30) == [101, 102]
    children = nbflow.list_workflows(name="tests.composition.child")
    assert len(children) == 3  # the fork started its own second child only
    assert {w.parent_id for w in children} == {handle.workflow_id, forked.workflow_id}


inbox = nbflow.Queue("tests.composition.inbox", concurrency=2)


@nbflow.workflow(name="tests.composition.enqueuer")
def enqueuer() -> list[int]:
    handles = [inbox.enqueue(child, i) for i in range(3)]
    return [h.result() for h in handles]


def test_children_enqueued_in_a_workflow_are_checkpointed(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(enqueuer)
    assert handle.result(timeout=30) == [100, 101, 102]
    children = nbflow.list_workflows(name="tests.composition.child")
    assert len(children) == 3 and {w.parent_id for w in children} == {handle.workflow_id}
    assert {w.queue for w in children} == {"tests.composition.inbox"}
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names == ["nbflow.enqueue('tests.composition.inbox')"] * 3


def test_cancelling_a_parent_cancels_its_running_children(rt: nbflow.Runtime) -> None:
    release.clear()
    handle = nbflow.start(starter)
    wait_until(lambda: len(ran) == 2)
    handle.cancel()
    for w in nbflow.list_workflows(name="tests.composition.child"):
        assert nbflow.get_workflow(w.workflow_id).status() == Status.CANCELLED
    # The children block in plain Python (release.wait), which no cancel can cut short: they
    # stop at their next checkpoint. Let them get there now, not in the teardown's wait.
    release.set()
    for w in nbflow.list_workflows(name="tests.composition.child"):
        with pytest.raises(nbflow.WorkflowCancelledError):
            nbflow.get_workflow(w.workflow_id).result(timeout=30)


def test_a_deadline_reaches_started_and_enqueued_children(rt: nbflow.Runtime) -> None:
    release.clear()
    with nbflow.workflow_timeout(60):
        handle = nbflow.start(starter)
    wait_until(lambda: len(ran) == 2)
    rt.flush()
    deadlines = sql(rt, "SELECT deadline FROM workflows WHERE parent_id = ?", handle.workflow_id)
    parent = sql(rt, "SELECT deadline FROM workflows WHERE workflow_id = ?", handle.workflow_id)
    assert [d for (d,) in deadlines] == [parent[0][0]] * 2
    release.set()
    handle.result(timeout=30)


# -- streams read from a workflow (defect 4) ------------------------------------------------------


@nbflow.workflow(name="tests.composition.producer")
def producer(values: list[str]) -> None:
    for v in values:
        nbflow.write_stream("letters", v)
    nbflow.recv(timeout=30)  # keeps the stream open until told


@nbflow.workflow(name="tests.composition.consumer")
def consumer(source: str, n: int) -> list[str]:
    got: list[str] = []
    ran.append("reading")
    for value in nbflow.read_stream(source, "letters", timeout=30):
        got.append(value)
        ran.append(value)
        if len(got) == n:
            release.wait(30)
            break
    return got


def test_a_stream_read_in_a_workflow_replays_what_it_read(
    rt: nbflow.Runtime, database: str
) -> None:
    source = nbflow.start(producer, ["a", "b"])
    release.clear()
    handle = nbflow.start(consumer, source.workflow_id, 2)
    wait_until(lambda: len(ran) == 3)  # "reading", "a", "b"
    crash(rt)
    with nbflow.configure(database) as again:
        again.resume(source.workflow_id)
        wait_until(lambda: again.status(source.workflow_id) == Status.PENDING)
        nbflow.send(source.workflow_id, "go")  # the producer ends; nothing new is written
        resumed = again.resume(handle.workflow_id)
        assert resumed.result(timeout=30) == ["a", "b"]
        assert [s.name for s in again.list_steps(handle.workflow_id)] == [
            "nbflow.read_stream('letters')"
        ] * 2


def test_a_cancel_wakes_a_workflow_waiting_in_read_stream(rt: nbflow.Runtime) -> None:
    source = nbflow.start(producer, [])
    handle = nbflow.start(consumer, source.workflow_id, 5)
    wait_until(lambda: "reading" in ran)  # it reads, or is about to: the cancel must wake it
    handle.cancel()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)
    nbflow.send(source.workflow_id, "stop")


# -- handles, forks and timeouts (defects 5, 6, 7) ------------------------------------------------


@nbflow.workflow(name="tests.composition.waiter")
def waiter() -> str:
    release.wait(30)
    nbflow.sleep(0)
    return "done"


def test_a_handle_that_saw_a_cancel_sees_the_resumed_run(rt: nbflow.Runtime) -> None:
    release.clear()
    handle = nbflow.start(waiter)
    handle.cancel()
    release.set()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)
    nbflow.resume(handle.workflow_id).result(timeout=10)
    assert handle.result(timeout=10) == "done"  # the same handle, after the resume


@nbflow.workflow(name="tests.composition.publisher")
def publisher() -> str:
    nbflow.set_event("stage", "ready")
    return "published"


@nbflow.workflow(name="tests.composition.self_reader")
def self_reader() -> Any:
    nbflow.set_event("stage", "mine")
    got = nbflow.get_event(nbflow.current_workflow_id() or "", "stage", timeout=5)
    return [got, nbflow.run_step(len, "later")]


def test_a_fork_of_a_workflow_that_reads_its_own_events(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(self_reader)
    assert handle.result(timeout=10) == ["mine", 5]
    forked = nbflow.fork(handle.workflow_id, from_step=3)  # replays the get_event of step 2
    assert forked.result(timeout=10) == ["mine", 5]  # no NondeterminismError


def test_a_fork_inside_workflow_timeout_gets_the_deadline(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(publisher)
    handle.result(timeout=10)
    with nbflow.workflow_timeout(120):
        forked = nbflow.fork(handle.workflow_id, from_step=1)
    forked.result(timeout=10)
    [(deadline,)] = sql(
        rt, "SELECT deadline FROM workflows WHERE workflow_id = ?", forked.workflow_id
    )
    assert deadline is not None and deadline > time.time() + 60


@nbflow.workflow(name="tests.composition.timed_parent")
def timed_parent() -> int:
    with nbflow.workflow_timeout(90):
        return child(1)  # type: ignore[no-any-return]


def test_workflow_timeout_around_a_child_call_inside_a_workflow(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(timed_parent)
    assert handle.result(timeout=30) == 101
    [(deadline,)] = sql(
        rt, "SELECT deadline FROM workflows WHERE parent_id = ?", handle.workflow_id
    )
    assert deadline is not None and time.time() < deadline < time.time() + 91


@nbflow.workflow(name="tests.composition.sync_parent_of_async")
def sync_parent_of_async() -> int:
    return async_child(4)  # type: ignore[no-any-return]


def test_a_sync_workflow_calls_an_async_child(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(sync_parent_of_async)
    assert handle.result(timeout=30) == 40
    [child_row] = nbflow.list_workflows(name="tests.composition.async_child")
    assert child_row.parent_id == handle.workflow_id


@nbflow.workflow(name="tests.composition.explicit_child")
def explicit_child(x: int) -> int:
    return 2 * x


@nbflow.workflow(name="tests.composition.explicit_parent")
def explicit_parent() -> tuple[str, int, list[str]]:
    handle = nbflow.start(explicit_child, 3)
    names = [w.name for w in nbflow.list_workflows(name="tests.composition.explicit_child")]
    return handle.workflow_id, handle.result(), names


@pytest.mark.contract
def test_module_functions_in_a_body_use_the_runtime_it_runs_in(database: str) -> None:
    """In a workflow of an explicit ``nbflow.Runtime``, ``nbflow.start`` and the history
    functions use that runtime (they used the default one: the child went to another database,
    unrecorded as a child)."""
    with nbflow.Runtime(database) as rt:
        handle = rt.start(explicit_parent)
        child_id, result, names = handle.result(timeout=60)
        assert result == 6 and names == ["tests.composition.explicit_child"]
        [child] = rt.list_workflows(parent_id=handle.workflow_id)
        assert child.workflow_id == child_id, child
        steps = rt.list_steps(handle.workflow_id)
        assert any(s.child_workflow_id == child_id for s in steps), steps
