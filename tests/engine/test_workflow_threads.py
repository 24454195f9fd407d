"""The threads workflows run in (``engine/_threads.WorkflowThreads``): a thread whose workflow
ended runs the next one started, in a fresh context and under the new workflow's name; workflows
that wait never wait for a thread; closing the runtime ends the idle threads."""

from __future__ import annotations

import contextvars
import threading

import pytest

import nbflow
from nbflow.engine import _threads
from tests.support.helpers import nbflow_threads, wait_until

#: Set by a body, which must never see it set by an earlier body in the same thread.
_mark: contextvars.ContextVar[str] = contextvars.ContextVar("tests_threads_mark")

_seen: dict[str, tuple[int, str, str | None]] = {}
_release = threading.Event()
_arrived = threading.Semaphore(0)


@nbflow.workflow(name="tests.threads.where")
def where() -> str:
    """Note the thread it runs in, its name, and the mark an earlier body may have left."""
    workflow_id = nbflow.current_workflow_id()
    assert workflow_id is not None
    thread = threading.current_thread()
    _seen[workflow_id] = (thread.ident or 0, thread.name, _mark.get(None))
    _mark.set(workflow_id)
    return workflow_id


@nbflow.workflow(name="tests.threads.waits")
def waits() -> int:
    _arrived.release()
    assert _release.wait(30)
    return 1


def _idle() -> list[threading.Thread]:
    return [t for t in nbflow_threads() if t.name == "nbflow-idle"]


def test_the_next_workflow_runs_in_the_thread_an_ended_one_left(rt: nbflow.Runtime) -> None:
    """Workflows started one after the other run in one thread, each named after its
    workflow while it runs and in a context of its own (a context variable one body set is
    not set in the next)."""
    first = rt.start(where).result(timeout=10)
    wait_until(lambda: len(_idle()) == 1)
    second = rt.start(where).result(timeout=10)
    assert _seen[first][0] == _seen[second][0]  # the same thread
    assert _seen[first][1] == f"nbflow-workflow-{first[:8]}"
    assert _seen[second][1] == f"nbflow-workflow-{second[:8]}"
    assert _seen[first][2] is None and _seen[second][2] is None  # a fresh context each


def test_waiting_workflows_never_wait_for_a_thread(rt: nbflow.Runtime) -> None:
    """Every workflow started runs at once, in a thread of its own, however many of the others
    wait (idle threads are reused, and new ones started when none is idle)."""
    rt.start(where).result(timeout=10)  # (leaves one idle thread)
    _release.clear()
    handles = [rt.start(waits) for _ in range(6)]
    try:
        for _ in handles:
            assert _arrived.acquire(timeout=10), "a workflow waited for a thread"
        running = {t.name for t in nbflow_threads() if t.name.startswith("nbflow-workflow-")}
        assert running == {f"nbflow-workflow-{h.workflow_id[:8]}" for h in handles}
    finally:
        _release.set()
    assert [h.result(timeout=10) for h in handles] == [1] * 6


def test_closing_the_runtime_ends_the_idle_threads(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle threads end when their runtime closes (not only when their wait runs out)."""
    monkeypatch.setattr(_threads, "IDLE_SECONDS", 600.0)
    runtime = nbflow.Runtime(database)
    for _ in range(3):
        runtime.start(where)
    wait_until(lambda: len(_idle()) >= 1)
    runtime.close()
    wait_until(lambda: not _idle())
