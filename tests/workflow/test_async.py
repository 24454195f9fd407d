"""``async def`` workflows and steps, run on the runtime's own loop thread, on every store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import interrupt, nbflow_threads, wait_until

pytestmark = pytest.mark.contract

ran: list[str] = []
release = threading.Event()


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    ran.clear()
    release.clear()
    yield
    release.set()


@nbflow.step(name="tests.async.fetch")
async def fetch(i: int) -> int:
    ran.append(f"fetch {i} on {threading.current_thread().name}")
    await asyncio.sleep(0)
    return i * 2


@nbflow.step(name="tests.async.hold")
async def hold() -> str:
    while not release.is_set():
        await asyncio.sleep(0.01)
    return "released"


@nbflow.workflow(name="tests.async.pipeline")
async def pipeline(n: int) -> list[int]:
    out = []
    for i in range(n):
        out.append(await fetch(i))
        nbflow.write_stream("items", i)
    return out


@nbflow.workflow(name="tests.async.held")
async def held() -> list[Any]:
    first = await fetch(1)
    return [first, await hold(), await fetch(2)]


def test_start_returns_the_same_handles(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(pipeline, 3)
    assert isinstance(handle, nbflow.WorkflowHandle)
    assert handle.result(timeout=10) == [0, 2, 4]
    assert handle.status() == Status.SUCCESS
    assert list(nbflow.read_stream(handle.workflow_id, "items")) == [0, 1, 2]
    assert [s.name for s in nbflow.list_steps(handle.workflow_id)] == ["tests.async.fetch"] * 3
    assert all(line.endswith("on nbflow-loop") for line in ran)  # nbflow's own loop thread


def test_await_a_workflow_and_a_handle(rt: nbflow.Runtime) -> None:
    async def main() -> tuple[Any, Any]:
        direct = await pipeline(2)
        handle = nbflow.start(pipeline, 1)
        return direct, await handle.result_async(timeout=10)

    assert asyncio.run(main()) == ([0, 2], [0])


def test_an_interrupted_async_workflow_resumes_from_its_checkpoints(
    rt: nbflow.Runtime, database: str
) -> None:
    handle = nbflow.start(held)
    wait_until(lambda: any("fetch 1" in line for line in ran))
    interrupt(rt)
    wait_until(lambda: not [t for t in nbflow_threads() if t.name == "nbflow-loop"])
    ran.clear()
    release.set()
    with nbflow.configure(database) as again:
        [resumed] = again.recover()
        assert resumed.result(timeout=10) == [2, "released", 4]
        assert [line.split(" on")[0] for line in ran] == ["fetch 2"]  # fetch 1 was replayed
        assert again.status(handle.workflow_id) == Status.SUCCESS


def test_cancel_stops_an_async_workflow(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(held)
    wait_until(lambda: ran)
    handle.cancel()
    release.set()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)


def test_async_steps_outside_a_workflow_are_plain_calls() -> None:
    assert asyncio.run(fetch(4)) == 8
