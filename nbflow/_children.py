"""Child workflows: called, awaited, started or enqueued from a workflow body, each a checkpoint.

A child's id is its parent's id and the function id of the operation that made it
(``<parent>-<n>``), unless :func:`~nbflow.set_workflow_id` gave one; so a replayed, recovered or
forked parent that reaches the same operation again finds the same child instead of making a
second one. Calling (or awaiting) a child records its result as a step named after it; starting
or enqueueing one records its id as a step ``nbflow.start('name')`` / ``nbflow.enqueue('queue')``.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from nbflow import _context as context
from nbflow import _steps as steps
from nbflow._calls import WorkflowCall
from nbflow._context import Runner
from nbflow._execution import Execution
from nbflow._handle import WorkflowHandle

__all__ = ["call_child", "call_child_async", "start_child"]


def _recorder(ex: Execution, function_id: int, name: str) -> functools.partial[None]:
    return functools.partial(
        steps.record_outcome,
        ex,
        function_id,
        name,
        started=time.time(),
        attempts=1,
        what=f"the result of workflow {name!r}",
    )


def _child_id(ex: Execution, function_id: int) -> str:
    return context.take_assigned_id() or f"{ex.workflow_id}-{function_id}"


def call_child(
    ex: Execution, runner: Runner, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run ``wf`` as a child of ``ex`` in this thread (or wait for it); its result, recorded."""
    function_id = ex.next_function_id()
    recorded = ex.replayed(function_id, "step", wf.name)
    if recorded is not None:
        return steps.replay_outcome(ex, function_id, recorded, wf.name)
    ex.check_running()
    call = WorkflowCall(wf, args, kwargs, _child_id(ex, function_id), ex.workflow_id)
    record = _recorder(ex, function_id, wf.name)
    try:
        output = runner.run_child(call)
    except Exception as exc:
        record(error=exc)
        raise
    record(output=output)
    return output


async def call_child_async(
    ex: Execution,
    runner: Runner,
    wf: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    function_id: int,
) -> Any:
    """``await child(...)`` in an async workflow: start the child, await its end, record it."""
    recorded = ex.replayed(function_id, "step", wf.name)
    if recorded is not None:
        return steps.replay_outcome(ex, function_id, recorded, wf.name)
    ex.check_running()
    call = WorkflowCall(wf, args, kwargs, _child_id(ex, function_id), ex.workflow_id)
    record = _recorder(ex, function_id, wf.name)
    try:
        output = await runner.begin_child(call).result_async()
    except Exception as exc:
        record(error=exc)
        raise
    record(output=output)
    return output


def start_child(ex: Execution, runner: Runner, call: WorkflowCall, queue: Any) -> WorkflowHandle:
    """Start (or enqueue on ``queue``) a child of ``ex``; its id is recorded, so a replay of the
    parent returns the same child's handle."""
    name = f"nbflow.start({call.wf.name!r})" if queue is None else f"nbflow.enqueue({queue.name!r})"
    function_id = ex.next_function_id()
    recorded = ex.replayed(function_id, "step", name)
    if recorded is not None:
        child_id = steps.replay_outcome(ex, function_id, recorded, name)
        return runner.begin_child(
            call._replace(workflow_id=child_id, parent_id=ex.workflow_id), queue
        )
    ex.check_running()
    ex.wait_row_durable()
    started = time.time()
    call = call._replace(workflow_id=_child_id(ex, function_id), parent_id=ex.workflow_id)
    handle = runner.begin_child(call, queue)
    row = steps.step_row(
        ex.workflow_id,
        function_id,
        name,
        (started, time.time()),
        ex.engine.encode(handle.workflow_id, name),
    )
    ex.append(row)
    return handle
