"""Child workflows: called, awaited, started or enqueued from a workflow body, each a checkpoint.

A child's id is its parent's id and the function id of the operation that made it
(``<parent>-<n>``), unless :func:`~nbflow.set_workflow_id` gave one; so a replayed, recovered or
forked parent that reaches the same operation again finds the same child instead of making a
second one. Calling (or awaiting) a child records its result as a step named after it; starting
or enqueueing one records its id as a step ``nbflow.start('name')`` / ``nbflow.enqueue('queue')``.
"""

from __future__ import annotations

import time
from typing import Any

from nbflow._errors import QueueDeduplicatedError
from nbflow.engine import _steps as steps
from nbflow.engine._execution import Execution
from nbflow.engine._tracing import operation
from nbflow.workflow import _context as context
from nbflow.workflow._calls import WorkflowCall
from nbflow.workflow._context import Runner
from nbflow.workflow._handle import WorkflowHandle

__all__ = ["call_child", "call_child_async", "start_child"]


def _child_id(ex: Execution, function_id: int) -> str:
    return context.take_assigned_id() or f"{ex.workflow_id}-{function_id}"


class _Child:
    """A child workflow called or awaited by the body of ``ex``: its position, its replay, and
    (as a context manager around the call) the record of its outcome."""

    def __init__(self, ex: Execution, wf: Any, function_id: int) -> None:
        self.ex, self.wf, self.function_id = ex, wf, function_id
        self.record = ex.replayed(function_id, "step", wf.name)
        self.output: Any = None
        self.started = time.time()

    def replay(self) -> Any:
        assert self.record is not None
        if self.ex.trace is not None:
            self.ex.trace.replayed(self.wf.name, self.function_id, self.record)
        return steps.replay_outcome(self.ex, self.function_id, self.record, self.wf.name)

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> WorkflowCall:
        """The child's call, under its id (``<parent>-<n>``, or one given by set_workflow_id)."""
        self.ex.check_running()
        child_id = _child_id(self.ex, self.function_id)
        return WorkflowCall(self.wf, args, kwargs, child_id, self.ex.workflow_id)

    def __enter__(self) -> _Child:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, Exception):
            return
        steps.record_outcome(
            self.ex,
            self.function_id,
            self.wf.name,
            started=self.started,
            attempts=1,
            output=self.output,
            error=exc,
            what=f"the result of workflow {self.wf.name!r}",
        )


def call_child(
    ex: Execution, runner: Runner, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run ``wf`` as a child of ``ex`` in this thread (or wait for it); its result, recorded."""
    __tracebackhide__ = True
    child = _Child(ex, wf, ex.next_function_id())
    if child.record is not None:
        return child.replay()
    with child:
        call = child.call(args, kwargs)
        with operation(ex, wf.name, child.function_id, child_workflow_id=call.workflow_id):
            child.output = runner.run_child(call)  # (its span: a child of this call's)
    return child.output


async def call_child_async(
    ex: Execution,
    runner: Runner,
    wf: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    function_id: int,
) -> Any:
    """``await child(...)`` in an async workflow: start the child, await its end, record it."""
    __tracebackhide__ = True
    child = _Child(ex, wf, function_id)
    if child.record is not None:
        return child.replay()
    with child:
        call = child.call(args, kwargs)
        with operation(ex, wf.name, function_id, child_workflow_id=call.workflow_id):
            child.output = await runner.begin_child(call).result_async()
    return child.output


def start_child(ex: Execution, runner: Runner, call: WorkflowCall, queue: Any) -> WorkflowHandle:
    """Start (or enqueue on ``queue``) a child of ``ex``; its id is recorded, so a replay of the
    parent returns the same child's handle."""
    name = f"nbflow.start({call.wf.name!r})" if queue is None else f"nbflow.enqueue({queue.name!r})"
    function_id = ex.next_function_id()
    recorded = ex.replayed(function_id, "step", name)
    if recorded is not None:
        if ex.trace is not None:
            ex.trace.replayed(name, function_id, recorded)
        child_id = steps.replay_outcome(ex, function_id, recorded, name)
        return runner.begin_child(
            call._replace(workflow_id=child_id, parent_id=ex.workflow_id), queue
        )
    ex.check_running()
    ex.wait_row_durable()
    started = time.time()
    call = call._replace(workflow_id=_child_id(ex, function_id), parent_id=ex.workflow_id)
    try:
        with operation(ex, name, function_id, child_workflow_id=call.workflow_id):
            handle = runner.begin_child(call, queue)
    except QueueDeduplicatedError as exc:  # recorded: a replay raises it again
        steps.record_outcome(
            ex, function_id, name, started=started, attempts=1, error=exc, what=name
        )
        raise
    row = steps.step_row(
        ex.workflow_id,
        function_id,
        name,
        (started, time.time()),
        ex.engine.encode(handle.workflow_id, name),
    )
    ex.append(row)
    return handle
