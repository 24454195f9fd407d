"""The retry predicate: ``@nbflow.step(retries=…, should_retry=callable)``.

An exception for which ``should_retry`` returns False ends the step at once: no more attempts,
recorded as the step's error as when its retries run out. Restates DBOS's
``tests/test_failures.py`` tests of ``should_retry`` (named in each test).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import retry_items
from tests.apps.retry_items import Fatal, Flaky

pytestmark = pytest.mark.contract

_calls: dict[str, int] = {}


def _count(name: str) -> int:
    _calls[name] = _calls.get(name, 0) + 1
    return _calls[name]


def _no_fatal(error: Exception) -> bool:
    return not isinstance(error, Fatal)


@nbflow.step(retries=3, interval=0, should_retry=_no_fatal)
def fatal_step(key: str) -> None:
    _count(key)
    raise Fatal("no retry")


@nbflow.step(retries=3, interval=0, should_retry=_no_fatal)
def retryable_step(key: str) -> None:
    _count(key)
    raise Flaky("retry")


@nbflow.step(retries=2, interval=0, should_retry=_no_fatal)
def mixed_step(key: str) -> str:
    if _count(key) < 3:
        raise Flaky("retry me")
    raise Fatal("stop now")


@nbflow.step(retries=2, interval=0, should_retry=_no_fatal)
async def fatal_step_async(key: str) -> None:
    _count(key)
    await asyncio.sleep(0)
    raise Fatal("no retry async")


@nbflow.workflow(name="tests.should_retry.calls")
def calls(step_name: str, key: str) -> Any:
    step = {"fatal": fatal_step, "retryable": retryable_step, "mixed": mixed_step}[step_name]
    return step(key)


def _steps(workflow_id: str) -> list[tuple[int, str | None]]:
    return [(s.attempts, s.error) for s in nbflow.list_steps(workflow_id)]


def test_a_step_the_predicate_refuses_is_not_retried(rt: nbflow.Runtime, tmp_path: Path) -> None:
    """DBOS test_step_should_retry: a non-retryable error ends the step after one attempt (the
    step's own exception, recorded as its error); a retryable one uses every attempt."""
    key = f"fatal-{tmp_path.name}"
    handle = nbflow.start(calls, "fatal", key)
    with pytest.raises(Fatal, match="no retry"):
        handle.result(timeout=30)
    assert _calls[key] == 1
    [(attempts, error)] = _steps(handle.workflow_id)
    assert attempts == 1 and error is not None and error.startswith("Fatal: no retry")
    workflow_error = nbflow.list_workflows(id_prefix=handle.workflow_id)[0].error
    assert workflow_error is not None and "(attempt 1 of 4)" in workflow_error

    key = f"retryable-{tmp_path.name}"
    handle = nbflow.start(calls, "retryable", key)
    with pytest.raises(Flaky, match="retry"):
        handle.result(timeout=30)
    assert _calls[key] == 4
    assert _steps(handle.workflow_id)[0][0] == 4


def test_the_predicate_is_asked_on_the_last_attempt_too(rt: nbflow.Runtime, tmp_path: Path) -> None:
    """DBOS test_step_should_retry_on_last_attempt: retried errors, then a refused one on the
    last attempt: that error is the step's."""
    key = f"mixed-{tmp_path.name}"
    handle = nbflow.start(calls, "mixed", key)
    with pytest.raises(Fatal, match="stop now"):
        handle.result(timeout=30)
    assert _calls[key] == 3
    [(attempts, error)] = _steps(handle.workflow_id)
    assert attempts == 3 and error is not None and error.startswith("Fatal: stop now")


@nbflow.workflow(name="tests.should_retry.run_steps")
def run_steps(key: str) -> list[str]:
    said = []
    for fn in (fatal_step, fatal_step_async):
        try:
            nbflow.run_step(fn, f"{key}-{fn.__name__}")
        except Fatal as exc:
            said.append(str(exc))
    return said


@nbflow.workflow(name="tests.should_retry.run_steps_async")
async def run_steps_async(key: str) -> str:
    try:
        await nbflow.run_step(fatal_step_async, key)
    except Fatal as exc:
        return str(exc)
    return "not raised"


def test_run_step_and_async_steps_ask_it(rt: nbflow.Runtime, tmp_path: Path) -> None:
    """DBOS test_run_step_should_retry and test_run_step_async_should_retry: ``run_step`` of a
    step with a predicate, sync and async, in a sync and in an async workflow."""
    key = tmp_path.name
    assert run_steps(key) == ["no retry", "no retry async"]
    assert _calls[f"{key}-fatal_step"] == _calls[f"{key}-fatal_step_async"] == 1
    assert asyncio.run(run_steps_async(f"{key}-async")) == "no retry async"
    assert _calls[f"{key}-async"] == 1


def _broken(error: Exception) -> bool:
    raise KeyError("the predicate itself is broken")


@nbflow.step(retries=3, interval=0, should_retry=_broken)
def judged_by_a_broken_predicate(key: str) -> None:
    _count(key)
    raise Flaky("the step's own error")


@nbflow.workflow(name="tests.should_retry.broken")
def broken(key: str) -> None:
    judged_by_a_broken_predicate(key)


def test_a_predicate_that_raises_counts_as_no(rt: nbflow.Runtime, tmp_path: Path) -> None:
    """nbflow's choice (DBOS lets the predicate's error escape from the retry loop): the step's
    own exception ends it, at once, with a note naming what the predicate raised."""
    key = f"broken-{tmp_path.name}"
    handle = nbflow.start(broken, key)
    with pytest.raises(Flaky, match="the step's own error") as raised:
        handle.result(timeout=30)
    assert _calls[key] == 1
    note = "not retried: should_retry raised KeyError: 'the predicate itself is broken'"
    assert note in raised.value.__notes__
    assert _steps(handle.workflow_id) == [(1, "Flaky: the step's own error")]
    workflow_error = nbflow.list_workflows(id_prefix=handle.workflow_id)[0].error
    assert workflow_error is not None and note in workflow_error


@nbflow.workflow(name="tests.should_retry.mapped")
def mapped(items: list[dict[str, Any]], in_processes: bool) -> list[int]:
    if not in_processes:
        return nbflow.map(retry_items.picky, items, concurrency=3)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
        return nbflow.map(retry_items.picky, items, executor=pool, concurrency=3)


@pytest.mark.usefixtures("spawnable_main")
@pytest.mark.parametrize("in_processes", [False, True], ids=["threads", "processes"])
def test_map_items_ask_it(rt: nbflow.Runtime, tmp_path: Path, in_processes: bool) -> None:
    """``nbflow.map`` items, on threads here and in other processes (retried from here): a
    refused error ends its item, and the map, after one attempt; others are retried."""
    folder = str(tmp_path)
    items = [{"i": i, "dir": folder, "kind": "flaky"} for i in range(3)]
    assert mapped(items, in_processes) == [0, 1, 2]
    assert [retry_items.attempts(folder, i) for i in range(3)] == [2, 2, 2]
    fatal = [{"i": 9, "dir": folder, "kind": "fatal"}]
    with pytest.raises(Fatal, match="item 9: 400"):
        mapped(fatal, in_processes)
    assert retry_items.attempts(folder, 9) == 1


def test_should_retry_is_checked() -> None:
    """A predicate that is not a plain callable is refused where the step is declared (DBOS
    test_step_should_retry_sync_step_async_validator_rejected refuses an async one when it
    runs; nbflow, which asks the predicate synchronously, refuses it at once)."""
    with pytest.raises(TypeError, match="should_retry must be a function taking the exception"):
        nbflow.step(retries=2, should_retry=True)(lambda: None)  # type: ignore[arg-type]

    async def is_retryable(error: Exception) -> bool:
        return True

    with pytest.raises(TypeError, match="should_retry must return a bool directly"):
        nbflow.step(retries=2, should_retry=is_retryable)(lambda: None)  # type: ignore[arg-type]
    declared = nbflow.step(retries=1, should_retry=_no_fatal)(lambda: None)
    assert declared.should_retry is _no_fatal  # type: ignore[attr-defined]
