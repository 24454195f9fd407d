"""Waits over workflows: the first of several to end (``wait_first``), and an event of a
workflow or its end (what a debounce waits for).

Both wait the engine's one way (:meth:`~nbflow.engine._engine.Watch.wait_until`): a watch on
each workflow, all setting one event, so a commit (or, on PostgreSQL, another process's
notification) that ends any of them wakes the wait at once, and nothing polls faster than the
store's poll interval.

From a workflow body ``wait_first`` is one checkpoint (``nbflow.wait_first``) that records
which workflow ended first (or the timeout): a replay returns the same, whatever has ended since.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from nbflow._errors import WaitTimeoutError, WorkflowNotFoundError
from nbflow._records import Status
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Execution
from nbflow.store._ops import event_step_name
from nbflow.workflow._calls import Step
from nbflow.workflow._context import WorkflowContext

__all__ = ["WAIT_FIRST", "Heard", "wait_event_or_end", "wait_first", "wait_first_async"]

#: The name of a wait_first checkpoint.
WAIT_FIRST = "nbflow.wait_first"

#: The body that asks (its execution and context), or None outside a workflow body.
Body = tuple[Execution, WorkflowContext] | None


def _first_ended(engine: Engine, workflow_ids: Sequence[str]) -> str | None:
    """The first of ``workflow_ids`` (in their order) whose status is final, or None."""
    for workflow_id in workflow_ids:
        status = engine.store.get_status(workflow_id)
        if status is None:
            raise WorkflowNotFoundError(workflow_id, engine.database)
        if Status(status).is_final:
            return workflow_id
    return None


def _wait_first(
    engine: Engine, workflow_ids: Sequence[str], timeout: float | None, ex: Execution | None
) -> str:
    """Wait (in this thread) until one of ``workflow_ids`` has ended; its id."""
    engine.flush()  # read your own writes: a workflow started here a moment ago is found
    event = threading.Event() if ex is None else ex.alarm.event
    with contextlib.ExitStack() as stack:
        watches = [stack.enter_context(engine.watch(w, event=event)) for w in set(workflow_ids)]
        check = None if ex is None else ex.check_running
        found = watches[0].wait_until(lambda _: _first_ended(engine, workflow_ids), timeout, check)
    if found is None:
        shown = ", ".join(repr(w) for w in workflow_ids[:5])
        more = f" and {len(workflow_ids) - 5} more" if len(workflow_ids) > 5 else ""
        raise WaitTimeoutError(
            f"None of the workflows {shown}{more} finished within {timeout} s; they go on "
            "running. Call wait_first() again to wait longer."
        )
    return found


def wait_first(
    engine: Engine, body: Body, workflow_ids: Sequence[str], timeout: float | None
) -> str:
    """The id of the first of ``workflow_ids`` to end (one already ended: the first such in
    the list); from a workflow ``body``, recorded, so a replay returns the same."""
    if body is None:
        return _wait_first(engine, workflow_ids, timeout, None)
    ex, ctx = body
    step = Step(WAIT_FIRST, lambda: _wait_first(engine, workflow_ids, timeout, ex))
    return ctx.run_step(step, (), {})  # type: ignore[no-any-return]


async def wait_first_async(
    engine: Engine, body: Body, workflow_ids: Sequence[str], timeout: float | None
) -> str:
    """:func:`wait_first` without blocking the event loop (recorded in an async workflow body)."""
    if body is None:
        return await asyncio.to_thread(_wait_first, engine, workflow_ids, timeout, None)
    ex, ctx = body

    async def wait() -> str:
        return await asyncio.to_thread(_wait_first, engine, workflow_ids, timeout, ex)

    return await ctx.run_step_async(Step(WAIT_FIRST, wait), (), {})  # type: ignore[no-any-return]


class Heard(NamedTuple):
    """What :func:`wait_event_or_end` found.

    Attributes:
        set: Whether the event was set.
        value: Its value (None when it was not set).
    """

    set: bool
    value: Any = None


def wait_event_or_end(
    engine: Engine,
    workflow_id: str,
    key: str,
    timeout: float | None,
    running_here: Callable[[str], bool],
) -> Heard | None:
    """Wait until ``workflow_id`` sets the event ``key`` (its value), or ends without it, or
    is PENDING with nothing to run it (its process died or closed: ``Heard(False)``, the
    caller may take it over); None after ``timeout`` seconds."""
    store = engine.store
    name = event_step_name(key)
    what = f"event {key!r} of workflow {workflow_id!r}"

    def look(_: bool) -> Heard | None:
        row = store.get_workflow(workflow_id)  # before the event: an end sets none later
        found = store.get_event(workflow_id, name)
        if found is not None:
            return Heard(True, engine.decode(found[0], found[1], what))
        if row is None:
            raise WorkflowNotFoundError(workflow_id, engine.database)
        if Status(row.status).is_final:
            return Heard(False)
        if row.status != Status.PENDING or running_here(workflow_id):
            return None
        mine = store.single_process or row.executor_id == engine.executor_id
        return Heard(False) if mine or not store.executor_alive(row.executor_id) else None

    with engine.watch(workflow_id) as watch:
        return watch.wait_until(look, timeout)
