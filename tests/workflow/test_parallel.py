"""Parallel steps inside workflows: nbflow.map, nbflow.Executor, threads and asyncio tasks.

Each test of a defect found in nbflow 0.1 says which; all run on both stores.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import itertools
import logging
import multiprocessing
import threading
import time
from typing import Any

import pytest

import nbflow
from nbflow.workflow import _context
from nbflow.workflow._workers import Pacer, parse_rate
from tests.apps import parallel_items
from tests.support.helpers import nbflow_threads, wait_until

pytestmark = pytest.mark.contract

calls: list[int] = []
threads_seen: set[str] = set()
lock = threading.Lock()
running = [0, 0]  # now, peak
release = threading.Event()
fail_on: set[int] = set()


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    calls.clear()
    threads_seen.clear()
    running[:] = [0, 0]
    fail_on.clear()
    release.set()
    yield
    release.set()


@nbflow.step(name="tests.parallel.double")
def double(i: int) -> int:
    with lock:
        calls.append(i)
        threads_seen.add(threading.current_thread().name)
        running[0] += 1
        running[1] = max(running)
    try:
        if i == 5:
            release.wait(30)
        if i in fail_on:
            raise ValueError(f"item {i} is bad")
        if nbflow.current_workflow_id() is not None:
            nbflow.write_stream("notes", f"item {i}")  # from inside the step: credited to it
        return i * 2
    finally:
        with lock:
            running[0] -= 1


@nbflow.workflow(name="tests.parallel.mapper")
def mapper(n: int, concurrency: int = 4) -> list[int]:
    return nbflow.map(double, range(n), concurrency=concurrency, key=lambda i: f"#{i}")


def item_steps(workflow_id: str) -> list[nbflow.StepInfo]:
    return [s for s in nbflow.list_steps(workflow_id) if s.name == "tests.parallel.double"]


# -- nbflow.map ------------------------------------------------------------------------------------


def test_map_checkpoints_every_item_in_input_order(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(mapper, 40, 4)
    assert handle.result(timeout=30) == [i * 2 for i in range(40)]
    steps = item_steps(handle.workflow_id)
    assert len(steps) == 40 and all(s.status == "SUCCESS" for s in steps)
    assert running[1] <= 4  # never more than `concurrency` items at once
    assert threads_seen and all(name.startswith("nbflow-map-") for name in threads_seen)
    progress = list(nbflow.read_stream(handle.workflow_id, "progress"))
    assert progress[0]["done"] == 0 and progress[-1] == {
        "done": 40, "total": 40, "message": progress[-1]["message"]
    }  # fmt: skip
    assert sorted(nbflow.read_stream(handle.workflow_id, "notes")) == sorted(
        f"item {i}" for i in range(40)
    )


def test_map_outside_a_workflow_is_plain_parallel_calls() -> None:
    assert nbflow.map(double, range(10), concurrency=3) == [i * 2 for i in range(10)]
    assert running[1] <= 3


def test_a_resumed_map_runs_only_the_items_without_a_checkpoint(
    rt: nbflow.Runtime, database: str
) -> None:
    release.clear()  # item 5 waits
    handle = nbflow.start(mapper, 12, 3)
    wait_until(lambda: len(item_steps(handle.workflow_id)) >= 6)
    done_before = {s.function_id for s in item_steps(handle.workflow_id)}
    rt.close(timeout=0)  # a crash, as far as the workflow can tell: it stays PENDING
    release.set()  # item 5 ends after the close: its checkpoint is refused
    wait_until(lambda: not [t for t in nbflow_threads() if t.name.startswith("nbflow-workflow")])
    calls.clear()
    with nbflow.configure(database) as again:
        [resumed] = again.recover()
        assert resumed.result(timeout=30) == [i * 2 for i in range(12)]
        steps = item_steps(handle.workflow_id)
        assert len(steps) == 12
        assert len(calls) == 12 - len(done_before) and 5 in calls  # only the rest ran again


def test_a_failing_item_stops_the_map_and_a_resume_runs_only_what_failed(
    rt: nbflow.Runtime,
) -> None:
    fail_on.add(7)
    handle = nbflow.start(mapper, 10, 2)
    with pytest.raises(ValueError, match="item 7 is bad") as raised:
        handle.result(timeout=30)
    assert "item 8 (#7)" in raised.value.nbflow_map_item  # type: ignore[attr-defined]
    assert "tests.parallel.double" in raised.value.nbflow_map_item  # type: ignore[attr-defined]
    recorded = {s.function_id for s in item_steps(handle.workflow_id)}
    assert all(s.status == "SUCCESS" for s in item_steps(handle.workflow_id))  # 7 not recorded
    fail_on.clear()
    calls.clear()
    assert nbflow.resume(handle.workflow_id).result(timeout=30) == [i * 2 for i in range(10)]
    assert 7 in calls and len(calls) == 10 - len(recorded)


@pytest.mark.usefixtures("spawnable_main")
def test_map_on_a_process_pool_checkpoints_here(rt: nbflow.Runtime) -> None:
    @nbflow.workflow(name="tests.parallel.on_processes")
    def on_processes(n: int) -> list[Any]:
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
            squares = nbflow.map(parallel_items.square, range(n), executor=pool)
            cubes = nbflow.map(parallel_items.cube, range(n), executor=pool)
        return [s["square"] for s in squares] + cubes

    handle = nbflow.start(on_processes, 6)
    assert handle.result(timeout=120) == [i * i for i in range(6)] + [i**3 for i in range(6)]
    steps = nbflow.list_steps(handle.workflow_id)
    names = [s.name for s in steps]
    assert names.count("tests.parallel.square") == 6
    assert names.count("tests.apps.parallel_items.cube") == 6
    # an item run in another process keeps its argument too, as one run here does
    assert [s.arguments for s in steps] == [str(i) for i in range(6)] * 2


@pytest.mark.usefixtures("spawnable_main")
def test_a_stream_write_from_another_process_is_a_clear_error(rt: nbflow.Runtime) -> None:
    @nbflow.workflow(name="tests.parallel.remote_writer")
    def remote_writer() -> list[int]:
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            return nbflow.map(parallel_items.writes_a_stream, [1], executor=pool)

    with pytest.raises(nbflow.NotInWorkflowError, match="another process"):
        nbflow.start(remote_writer).result(timeout=120)


def test_map_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        nbflow.map(double, [1], concurrency=0)
    with pytest.raises(ValueError, match="rate"):
        nbflow.map(double, [1], rate="fast")
    with pytest.raises(TypeError, match="executor"):
        nbflow.map(double, [1], executor="threads")  # type: ignore[arg-type]


# -- threads the user starts (defect 1) -----------------------------------------------------------


@nbflow.workflow(name="tests.parallel.executor")
def with_executor(n: int) -> list[int]:
    with nbflow.Executor(max_workers=4) as pool:
        futures = [pool.submit(double, i) for i in range(n)]
        return [f.result() for f in futures]


def test_nbflow_executor_checkpoints_each_submit_in_submit_order(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(with_executor, 8)
    assert handle.result(timeout=30) == [i * 2 for i in range(8)]
    steps = nbflow.list_steps(handle.workflow_id)
    assert [s.name for s in steps] == ["tests.parallel.double"] * 8
    assert [s.function_id for s in steps] == list(range(1, 9))


@nbflow.workflow(name="tests.parallel.plain_pool")
def with_plain_pool(n: int) -> list[int]:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(double, range(n)))


def test_a_step_from_a_plain_thread_warns_and_names_the_way(
    rt: nbflow.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    _context._warned.clear()  # once per step and process: this test may run twice
    with caplog.at_level(logging.WARNING, logger="nbflow"):
        assert nbflow.start(with_plain_pool, 6).result(timeout=30) == [i * 2 for i in range(6)]
    warnings = [r.getMessage() for r in caplog.records if "tests.parallel.double" in r.getMessage()]
    assert len(warnings) == 1  # once per step
    assert "NOT checkpointed" in warnings[0] and "nbflow.map" in warnings[0]


@nbflow.workflow(name="tests.parallel.copied_context")
def with_copied_context(n: int) -> list[int]:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(contextvars.copy_context().run, double, i) for i in range(n)]
        return [f.result() for f in futures]


def test_a_step_in_a_thread_with_a_copied_context_fails_loudly(rt: nbflow.Runtime) -> None:
    with pytest.raises(nbflow.ConcurrencyError, match=r"nbflow\.map"):
        nbflow.start(with_copied_context, 4).result(timeout=30)


# -- map_async, rate, and replays of the executor -------------------------------------------------


@nbflow.step(name="tests.parallel.stamp")
def stamp(i: int) -> float:
    return time.monotonic()


@nbflow.workflow(name="tests.parallel.async_mapper")
async def async_mapper(n: int) -> list[Any]:
    doubled = await nbflow.map_async(double, range(n), concurrency=3)
    return [*doubled, await nbflow.sleep_async(0) or "after"]


def test_map_async_inside_an_async_workflow(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(async_mapper, 6)
    assert handle.result(timeout=30) == [0, 2, 4, 6, 8, 10, "after"]
    steps = nbflow.list_steps(handle.workflow_id)
    assert [s.name for s in steps][:6] == ["tests.parallel.double"] * 6
    assert steps[-1].name == "nbflow.sleep"  # reserved after the map's items and progress


@nbflow.workflow(name="tests.parallel.paced")
def paced(n: int) -> list[float]:
    return nbflow.map(stamp, range(n), concurrency=4, rate="20/s")


def test_rate_spaces_the_starts(rt: nbflow.Runtime) -> None:
    assert len(nbflow.start(paced, 6).result(timeout=30)) == 6
    pacer = Pacer(parse_rate("20/s"))  # what each attempt of a map item takes a slot of
    slots = [pacer.take() for _ in range(5)]  # from any thread: each its own slot, in turn
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 0.05 - 1e-9  # the schedule itself, not a measured speed
    window = pacer.window()  # a slot for another process: wall-clock, one interval wide
    assert window is not None and window.ends - window.begins == pytest.approx(0.05)
    assert Pacer(None).window() is None and not Pacer(None).active
    assert parse_rate("600/min") == parse_rate(10) == 10.0 and parse_rate("3600/h") == 1.0


def test_a_resumed_executor_returns_each_submit_its_own_result(
    rt: nbflow.Runtime, database: str
) -> None:
    release.clear()  # item 5 waits
    handle = nbflow.start(with_executor, 8)
    wait_until(lambda: len(nbflow.list_steps(handle.workflow_id)) >= 5)
    rt.close(timeout=0)
    release.set()
    wait_until(lambda: not [t for t in nbflow_threads() if t.name.startswith("nbflow-workflow")])
    calls.clear()
    with nbflow.configure(database) as again:
        [resumed] = again.recover()
        assert resumed.result(timeout=30) == [i * 2 for i in range(8)]
        assert 5 in calls and len(calls) < 8  # only the submits without a checkpoint ran again


def test_map_on_a_forked_process_pool(rt: nbflow.Runtime) -> None:
    """Workers forked from the workflow's thread inherit its context: items must still run as
    plain calls there (nbflow 0.2's first map hung in a forked worker, waiting for a commit)."""

    @nbflow.workflow(name="tests.parallel.on_forks")
    def on_forks(n: int) -> list[int]:
        fork = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=fork) as pool:
            return [s["square"] for s in nbflow.map(parallel_items.square, range(n), executor=pool)]

    handle = nbflow.start(on_forks, 6)
    assert handle.result(timeout=60) == [i * i for i in range(6)]
