"""``nbflow.wait_first`` and ``wait_first_async``, on every store: DBOS's ``test_wait_first``,
``test_wait_first_empty``, ``test_wait_first_async`` (``tests/test_dbos.py``) and
``test_wait_first_queue`` (``tests/test_queue.py``) restated."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import Gate

pytestmark = pytest.mark.contract

gates: dict[str, Gate] = {}
consumed: list[threading.Event] = []


@pytest.fixture(autouse=True)
def _fresh() -> None:
    gates.clear()
    consumed.clear()


@nbflow.step(name="tests.wait_first.hold")
def hold(name: str) -> None:
    gates[name].wait()


@nbflow.workflow(name="tests.wait_first.task")
def task(name: str) -> str:
    if name in gates:
        hold(name)
    return f"result-{name}"


def test_the_first_to_end_is_returned(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    """DBOS ``test_wait_first``: the fast workflow's handle, also from handles found by id."""
    gates["slow"] = slow_gate = gate()
    slow = nbflow.start(task, "slow")
    fast = nbflow.start(task, "fast")
    first = nbflow.wait_first([slow, fast])
    assert first is fast
    assert first.result() == "result-fast"
    found = [nbflow.get_workflow(slow.workflow_id), nbflow.get_workflow(fast.workflow_id)]
    assert nbflow.wait_first(found).workflow_id == fast.workflow_id
    assert slow.status() is Status.PENDING
    slow_gate.release.set()
    assert slow.result(timeout=30) == "result-slow"


def test_a_wait_wakes_when_one_ends(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    """Three running workflows; the second one released ends the wait, the others run on."""
    for name in ("a", "b", "c"):
        gates[name] = gate()
    handles = [nbflow.start(task, name) for name in ("a", "b", "c")]
    gates["b"].reached()
    got: list[nbflow.WorkflowHandle] = []
    waiter = threading.Thread(target=lambda: got.append(nbflow.wait_first(handles, timeout=60)))
    waiter.start()
    gates["b"].release.set()
    waiter.join(60)
    assert got == [handles[1]]
    assert [h.status() for h in (handles[0], handles[2])] == [Status.PENDING, Status.PENDING]
    assert nbflow.wait_first(handles, timeout=0) is handles[1]  # one has ended: at once


def test_a_wait_times_out(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    gates["held"] = gate()
    handle = nbflow.start(task, "held")
    with pytest.raises(nbflow.WaitTimeoutError, match=r"finished within 0\.1 s"):
        nbflow.wait_first([handle], timeout=0.1)
    assert handle.status() is Status.PENDING


def test_bad_input_is_refused(rt: nbflow.Runtime) -> None:
    """DBOS ``test_wait_first_empty``, and what is not a list of handles."""
    with pytest.raises(ValueError, match="must not be empty"):
        nbflow.wait_first([])
    handle = nbflow.start(task, "x")
    with pytest.raises(TypeError, match="WorkflowHandles"):
        nbflow.wait_first([handle.workflow_id])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="a list of WorkflowHandles"):
        nbflow.wait_first(handle)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        nbflow.wait_first([handle], timeout=-1)
    with pytest.raises(ValueError, match="must not be empty"):
        asyncio.run(nbflow.wait_first_async([]))


@nbflow.workflow(name="tests.wait_first.race")
def race() -> list[str]:
    slow = nbflow.start(task, "slow")
    fast = nbflow.start(task, "fast")
    first = nbflow.wait_first([slow, fast])  # slow first in the list: only its end order counts
    return [first.workflow_id, first.result(), fast.workflow_id]


def test_in_a_workflow_the_first_is_recorded(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    """DBOS ``test_wait_first_async`` (its workflow part): the winner is a checkpoint; a replay
    (a fork reusing every step) returns it, although by then the slow one has ended too."""
    gates["slow"] = slow_gate = gate()
    handle = nbflow.start(race)
    first_id, value, fast_id = handle.result(timeout=60)
    assert (first_id, value) == (fast_id, "result-fast")
    steps = nbflow.list_steps(handle.workflow_id)
    assert steps[2].name == "nbflow.wait_first"
    assert steps[2].output == fast_id
    slow_gate.release.set()
    slow_id = nbflow.list_workflows(parent_id=handle.workflow_id, status="PENDING")
    for info in slow_id:
        nbflow.get_workflow(info.workflow_id).result(timeout=30)
    replay = nbflow.fork(handle.workflow_id, from_step=len(steps) + 1)
    assert replay.result(timeout=60) == [fast_id, "result-fast", fast_id]


@nbflow.workflow(name="tests.wait_first.race_async")
async def race_async() -> str:
    slow = nbflow.start(task, "slow")
    fast = nbflow.start(task, "fast")
    first = await nbflow.wait_first_async([slow, fast])
    return first.workflow_id


def test_wait_first_async(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    """DBOS ``test_wait_first_async``: awaited outside a workflow, and in an ``async def``
    workflow, where it is recorded."""
    gates["slow"] = slow_gate = gate()
    slow, fast = nbflow.start(task, "slow"), nbflow.start(task, "fast")
    assert asyncio.run(nbflow.wait_first_async([slow, fast], timeout=60)) is fast
    handle = nbflow.start(race_async)
    winner = handle.result(timeout=60)
    steps = nbflow.list_steps(handle.workflow_id)
    assert [s.name for s in steps][2] == "nbflow.wait_first"
    assert steps[2].output == winner
    assert nbflow.get_workflow(winner).result() == "result-fast"
    slow_gate.release.set()


tasks = nbflow.Queue("tests-wait-first", concurrency=5)
N = 5


@nbflow.workflow(name="tests.wait_first.collect")
def collect() -> list[str]:
    remaining = [tasks.enqueue(task, f"q{i}") for i in range(N)]
    results = []
    for round_index in range(N):
        done = nbflow.wait_first(remaining)
        results.append(done.result())
        remaining = [h for h in remaining if h.workflow_id != done.workflow_id]
        consumed[round_index].set()
    return results


def test_wait_first_over_a_queue(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    """DBOS ``test_wait_first_queue``: five enqueued tasks released in reverse order, each once
    the previous one was taken: the workflow gets them in that order, and records each."""
    for i in range(N):
        gates[f"q{i}"] = gate()
    consumed.extend(threading.Event() for _ in range(N))
    handle = nbflow.start(collect)
    for round_index, i in enumerate(reversed(range(N))):
        gates[f"q{i}"].release.set()
        assert consumed[round_index].wait(30)
    assert handle.result(timeout=60) == [f"result-q{i}" for i in reversed(range(N))]
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names.count("nbflow.wait_first") == N
    assert len(names) == 2 * N  # the enqueues and the waits


def test_handles_of_two_runtimes_are_refused(rt: nbflow.Runtime, tmp_path: Any) -> None:
    here = nbflow.start(task, "here")
    with nbflow.Runtime(tmp_path / "other.duckdb") as other:
        there = other.start(task, "there")
        with pytest.raises(ValueError, match="one open runtime"):
            nbflow.wait_first([here, there])
        there.result(timeout=30)
