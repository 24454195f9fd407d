"""``nbflow.map`` one step off the paved road: every executor, retries, rates, labels, prints.

Each test is one defect of issue 18 (its number in the test's docstring); each failed on the code
before its fix. All run on both stores.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import parallel_items

pytestmark = pytest.mark.contract

failed_once: set[int] = set()
ran: list[int] = []
lock = threading.Lock()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    failed_once.clear()
    ran.clear()
    yield


@nbflow.step(name="tests.map.square")
def square(i: int) -> int:
    """Squares ``i``; item 3 fails its first call in a test."""
    with lock:
        ran.append(i)
        if i == 3 and 3 not in failed_once:
            failed_once.add(3)
            raise ValueError("item 3 fails once")
    return i * i


@nbflow.step(name="tests.map.after")
def after(values: list[int]) -> int:
    return sum(values)


class Delegating(concurrent.futures.Executor):
    """A user's executor that hands its work to an ``nbflow.Executor`` (which is nbflow-aware:
    in a workflow body, its ``submit`` records a step)."""

    def __init__(self) -> None:
        self.inner = nbflow.Executor(2)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


EXECUTORS: dict[str, Callable[[], concurrent.futures.Executor]] = {
    "nbflow.Executor": lambda: nbflow.Executor(2),
    "ThreadPoolExecutor": lambda: concurrent.futures.ThreadPoolExecutor(2),
    "a user's executor over nbflow.Executor": Delegating,
}


@pytest.mark.parametrize("kind", sorted(EXECUTORS))
def test_a_resumed_map_gives_each_item_its_own_result_on_any_executor(
    rt: nbflow.Runtime, kind: str
) -> None:
    """Defect 1: on ``nbflow.Executor`` a resume gave item 3 item 0's result
    (``[0, 1, 4, 0, 16, 25]``), and with a step after the map it raised NondeterminismError."""

    @nbflow.workflow(name=f"tests.map.on_executor.{kind}")
    def on_executor(n: int) -> dict[str, Any]:
        with EXECUTORS[kind]() as pool:
            squares = nbflow.map(square, range(n), executor=pool)
        return {"squares": squares, "sum": after(squares)}

    handle = nbflow.start(on_executor, 6)
    with pytest.raises(ValueError, match="item 3 fails once"):
        handle.result(timeout=30)
    ran.clear()
    resumed = nbflow.resume(handle.workflow_id).result(timeout=30)
    assert resumed == {"squares": [0, 1, 4, 9, 16, 25], "sum": 55}
    assert ran == [3]  # only the item that failed ran again
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names == ["tests.map.square"] * 6 + ["tests.map.after"]  # no step of the executor's


def _busiest_second(stamps: list[float]) -> int:
    """The most attempts that started within any one second."""
    return max(sum(1 for t in stamps[i:] if t - start < 1.0) for i, start in enumerate(stamps))


@pytest.mark.parametrize("where", ["threads", "process-pool"])
@pytest.mark.usefixtures("spawnable_main")
def test_every_attempt_takes_a_slot_of_the_rate(
    rt: nbflow.Runtime, where: str, tmp_path: Path
) -> None:
    """Defect 5: ``rate=`` paced only first attempts; retries started at once (9 attempts in half
    a second under ``"5/s"`` here). Each item fails twice, as an API saying "429, slow down"."""

    @nbflow.workflow(name=f"tests.map.paced.{where}")
    def paced(n: int, directory: str) -> list[int]:
        items = [{"i": i, "dir": directory, "fails": 2} for i in range(n)]
        if where == "threads":
            return nbflow.map(parallel_items.flaky, items, concurrency=3, rate="5/s")
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(3, mp_context=spawn) as pool:
            return nbflow.map(parallel_items.flaky, items, rate="5/s", executor=pool)

    assert nbflow.start(paced, 3, str(tmp_path)).result(timeout=120) == [0, 1, 4]
    stamps = parallel_items.attempt_times(str(tmp_path))
    assert len(stamps) == 9
    # at most 5 starts a second (one more where a second's window holds both of its ends)
    assert _busiest_second(stamps) <= 6, stamps


@pytest.mark.parametrize("where", ["threads", "process-pool"])
@pytest.mark.usefixtures("spawnable_main")
def test_attempts_are_recorded_on_every_executor(
    rt: nbflow.Runtime, where: str, tmp_path: Path
) -> None:
    """Defect 7: ``list_steps`` said ``attempts=1`` for a process-pool item that ran 3 times."""

    @nbflow.workflow(name=f"tests.map.attempts.{where}")
    def tries(directory: str) -> list[int]:
        items = [{"i": i, "dir": directory, "fails": i} for i in range(3)]
        if where == "threads":
            return nbflow.map(parallel_items.flaky, items)
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
            return nbflow.map(parallel_items.flaky, items, executor=pool)

    handle = nbflow.start(tries, str(tmp_path))
    assert handle.result(timeout=120) == [0, 1, 4]
    steps = nbflow.list_steps(handle.workflow_id)
    assert [(s.name, s.attempts) for s in steps] == [("tests.parallel.flaky", n) for n in (1, 2, 3)]


def test_a_key_that_raises_names_the_item_and_runs_nothing(rt: nbflow.Runtime) -> None:
    """Defect 6: a ``key=`` that raised surfaced as a bare KeyError naming no item, after every
    item had run, and the workflow ended in ERROR."""
    labels = {0: "zero", 1: "one"}

    @nbflow.workflow(name="tests.map.bad_key")
    def bad_key() -> list[int]:
        return nbflow.map(square, range(4), key=lambda i: labels[i])

    handle = nbflow.start(bad_key)
    with pytest.raises(nbflow.InvalidValueError, match=r"key= raised KeyError.*item 3 ") as raised:
        handle.result(timeout=30)
    assert isinstance(raised.value, nbflow.NbflowError)
    assert "leave it out" in str(raised.value)
    assert ran == []  # no item ran: nothing to lose, nothing to redo
    assert nbflow.list_steps(handle.workflow_id) == []


@pytest.mark.usefixtures("spawnable_main")
def test_what_a_process_pool_item_prints_comes_back(
    rt: nbflow.Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 8: prints of map items on a process pool went to the worker's terminal. They come
    back with the item and are printed in the workflow's process (as the item's step output),
    from a failing attempt as well; outside a workflow too."""

    @nbflow.workflow(name="tests.map.chatty")
    def chatty(items: list[int]) -> list[int]:
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
            return nbflow.map(parallel_items.chatty, items, executor=pool)

    assert nbflow.start(chatty, [1, 2]).result(timeout=120) == [1, 2]
    with pytest.raises(ValueError, match="item -1 is negative"):
        nbflow.start(chatty, [-1]).result(timeout=120)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        assert nbflow.map(parallel_items.chatty, [7], executor=pool) == [7]
    printed = capsys.readouterr()
    for i in (1, 2, -1, 7):
        assert f"item {i} says hi\n" in printed.out, printed
        assert f"item {i} warns\n" in printed.err, printed
