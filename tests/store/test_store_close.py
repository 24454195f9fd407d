"""Closing a runtime while other threads query it: they finish, then it closes cleanly."""

from __future__ import annotations

import threading

import pytest

import nbflow

pytestmark = pytest.mark.contract


def _poll_until_closed(
    runtime: nbflow.Runtime,
    workflow_id: str,
    errors: list[BaseException],
    stop: threading.Event,
    querying: threading.Event,
) -> None:
    """Query in a loop until the runtime says it is closed (or ``stop``); keep other errors."""
    while not stop.is_set():
        try:
            runtime.list_streams(workflow_id)
            querying.set()
        except nbflow.RuntimeClosedError:
            return
        except BaseException as exc:  # anything else is the bug
            errors.append(exc)
            return


def test_close_waits_for_queries_in_flight(database: str) -> None:
    """Closing while a thread queries in a loop neither raises nor leaves the file locked."""

    @nbflow.workflow(name="tests.store_close.noop")
    def noop() -> int:
        return 1

    errors: list[BaseException] = []
    for _ in range(20):
        rt = nbflow.Runtime(database)
        handle = rt.start(noop)
        handle.result(timeout=10)
        stop, querying = threading.Event(), threading.Event()
        thread = threading.Thread(
            target=_poll_until_closed,
            args=(rt, handle.workflow_id, errors, stop, querying),
            name="poller",
        )
        thread.start()
        assert querying.wait(10)
        try:
            rt.close()
        finally:
            stop.set()
            thread.join(10)
    assert not errors, errors
    with nbflow.Runtime(database) as again:  # the file is not left locked
        assert len(again.list_workflows()) == 20


def test_queries_after_close_raise_runtime_closed(database: str) -> None:
    """A query on a closed runtime says it is closed and how to reopen it."""
    rt = nbflow.Runtime(database)
    rt.close()
    with pytest.raises(nbflow.RuntimeClosedError, match="configure"):
        rt.list_workflows()
