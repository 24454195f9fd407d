"""A workflow whose thread cannot be created (issue 14, item 5).

The failure is real: ``threading.stack_size`` asks for a stack no system can map, so creating the
workflow's thread raises ``RuntimeError: can't start new thread``, as it does in a process out of
threads or memory. Before, the workflow was left half-started: recorded and registered with no
thread, ``result()`` said it was still running, ``recover()`` skipped it, ``close()`` waited for
it, and ``start()`` raised the bare ``RuntimeError``. Now ``start()`` raises
``WorkflowInterruptedError`` saying why, and the workflow is interrupted like any other: PENDING,
not running, resumed by ``recover()``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

import nbflow
from nbflow import Status, WorkflowInterruptedError

pytestmark = pytest.mark.contract


@contextlib.contextmanager
def no_new_threads() -> Iterator[None]:
    """Every thread created inside fails to start (its stack cannot be mapped)."""
    threading.stack_size(2**44)
    try:
        yield
    finally:
        threading.stack_size(0)


@nbflow.step(name="tests.unstarted.double")
def double(x: int) -> int:
    return 2 * x


@nbflow.workflow(name="tests.unstarted.flow")
def flow(x: int) -> int:
    return double(x) + 1


def test_a_workflow_without_a_thread_is_interrupted_and_recoverable(rt: nbflow.Runtime) -> None:
    with (
        no_new_threads(),
        pytest.raises(WorkflowInterruptedError) as info,
        nbflow.set_workflow_id("no-thread"),
    ):
        rt.start(flow, 20)
    assert "no thread could be started" in str(info.value), info.value
    assert "can't start new thread" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert rt.execution("no-thread") is None  # not registered as running (close() waited)

    handle = rt.get_workflow("no-thread")
    assert handle.status() == Status.PENDING
    with pytest.raises(WorkflowInterruptedError):  # not "still running" (its process lives)
        handle.result(timeout=10)

    [resumed] = rt.recover()
    assert resumed.workflow_id == "no-thread" and resumed.result(timeout=10) == 41
