"""A workflow's body at work: the :class:`~nbflow.workflow._context.WorkflowContext` the engine provides,
how a body runs (sync, or as a task of nbflow's loop), and how its outcome is made durable."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from nbflow._errors import WorkflowCancelledError
from nbflow._serialization import encode_error, storable_text
from nbflow.engine import _children as children
from nbflow.engine import _messages as waits
from nbflow.engine import _streams as reading
from nbflow.engine._execution import Execution, State
from nbflow.engine._parallel import prepare_map, run_map
from nbflow.engine._steps import run_cached, run_cached_async
from nbflow.engine._tracing import traced
from nbflow.store._ops import Finish
from nbflow.workflow import _context as context
from nbflow.workflow._alarm import Wake
from nbflow.workflow._calls import Args, Kwargs, MapOptions, Step, WorkflowCall
from nbflow.workflow._context import Runner, WorkflowContext
from nbflow.workflow._handle import WorkflowHandle

__all__ = ["WorkflowRun", "conclude", "run_body", "run_body_async"]

_INTERRUPTS = (KeyboardInterrupt, SystemExit, GeneratorExit)


class WorkflowRun(WorkflowContext):
    """The context of one execution: what code inside the workflow calls.

    Args:
        ex: The execution.
        runner: The runtime it runs in (children start there).
    """

    def __init__(self, ex: Execution, runner: Runner) -> None:
        self.ex = ex
        self.workflow_id = ex.workflow_id
        self.runner = runner
        self.step_run = traced(ex)  # StepRun, or TracedStepRun: the step loop checks nothing

    # -- steps ---------------------------------------------------------------------------------

    def run_step(
        self, step: Step, args: Args, kwargs: Kwargs, function_id: int | None = None
    ) -> Any:
        __tracebackhide__ = True
        run = self.step_run(self.ex, self, step, function_id, args, kwargs)
        if step.cache is not None and run.pending:
            return run_cached(run, args, kwargs)
        while run.pending:
            with run:
                run.output = step.fn(*args, **kwargs)
            if run.pending:
                run.backoff()
        return run.outcome()

    async def run_step_async(
        self, step: Step, args: Args, kwargs: Kwargs, function_id: int | None = None
    ) -> Any:
        __tracebackhide__ = True
        run = self.step_run(self.ex, self, step, function_id, args, kwargs)
        if step.cache is not None and run.pending:
            return await run_cached_async(run, args, kwargs)
        while run.pending:
            with run:
                run.output = await step.fn(*args, **kwargs)
            if run.pending:
                await run.backoff_async()
        return run.outcome()

    def reserve(self, count: int) -> range:
        return self.ex.reserve(count)

    def run_coroutine(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        function_id = self.ex.next_function_id()
        return self.runner.run_on_loop(self._on_loop(step, args, kwargs, function_id))

    async def _on_loop(
        self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any], function_id: int
    ) -> Any:
        __tracebackhide__ = True
        token = context.SCOPE.set(context.Scope(self, 0, 0, threading.get_ident()))
        try:
            return await self.run_step_async(step, args, kwargs, function_id)
        finally:
            context.SCOPE.reset(token)

    def map(self, fn: Callable[..., Any], items: list[Any], options: MapOptions) -> list[Any]:
        __tracebackhide__ = True
        return run_map(self.ex, self, fn, items, options)

    def map_async(
        self, fn: Callable[..., Any], items: list[Any], options: MapOptions
    ) -> Awaitable[list[Any]]:
        __tracebackhide__ = True
        return asyncio.to_thread(prepare_map(self.ex, self, fn, items, options))

    # -- streams and children ------------------------------------------------------------------

    def write_stream(self, key: str, value: Any, *, is_end: bool = False) -> None:
        self.ex.write_stream(key, value, is_end=is_end, step=context.current_step())

    def write_output(self, key: str, text: str) -> None:
        self.ex.write_output(key, text, context.current_step())

    def read_stream(
        self, workflow_id: str, key: str, start: int, timeout: float | None
    ) -> Iterator[Any]:
        def open_(offset: int) -> Iterator[Any]:
            wake = Wake(ex.check_running, ex.alarm)
            reader = self.runner.open_reader(workflow_id, key, offset, timeout, wake)
            return reader.values()  # type: ignore[no-any-return]

        ex = self.ex
        return reading.read_stream(ex, workflow_id, key, start, timeout, open_)

    def read_stream_async(
        self, workflow_id: str, key: str, start: int, timeout: float | None
    ) -> AsyncIterator[Any]:
        def open_(offset: int) -> AsyncIterator[Any]:
            wake = Wake(ex.check_running, ex.alarm)
            reader = self.runner.open_reader(workflow_id, key, offset, timeout, wake)
            return reader.avalues()  # type: ignore[no-any-return]

        ex = self.ex
        return reading.read_stream_async(ex, workflow_id, key, start, timeout, open_)

    def call_child(self, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        if context.current_step() is not None:
            return wf.fn(*args, **kwargs)  # inside a step: a plain call
        return children.call_child(self.ex, self.runner, wf, args, kwargs)

    async def call_child_async(
        self, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any], function_id: int
    ) -> Any:
        __tracebackhide__ = True
        return await children.call_child_async(self.ex, self.runner, wf, args, kwargs, function_id)

    def start_child(self, call: WorkflowCall, queue: Any = None) -> WorkflowHandle:
        return children.start_child(self.ex, self.runner, call, queue)

    # -- waits ---------------------------------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        waits.sleep(self.ex, self, seconds)

    async def sleep_async(self, seconds: float) -> None:
        await waits.sleep_async(self.ex, self, seconds)

    def set_event(self, key: str, value: Any) -> None:
        waits.set_event(self.ex, key, value)

    def patched(self, name: str, *, deprecated: bool = False) -> bool:
        return waits.patched(self.ex, name, deprecated=deprecated)

    def recv(self, topic: str | None, timeout: float | None) -> Any:
        return waits.recv(self.ex, topic, timeout)

    async def recv_async(self, topic: str | None, timeout: float | None) -> Any:
        return await waits.recv_async(self.ex, topic, timeout)


@contextlib.contextmanager
def _body(run: WorkflowRun) -> Iterator[dict[str, Any]]:
    """Run the block as the body of ``run``'s workflow, then make its outcome durable."""
    __tracebackhide__ = True
    token = context.enter(run)
    trace = run.ex.trace
    if trace is not None:
        trace.begin()  # the workflow's span, current in the body
    outcome: dict[str, Any] = {}
    try:
        yield outcome
    except BaseException as exc:
        context.exiting(run)
        conclude(run.ex, None, exc)
    else:
        context.exiting(run)
        conclude(run.ex, outcome.get("output"), None)
    finally:
        context.leave(token)
        if trace is not None:
            trace.end()


def run_body(run: WorkflowRun) -> None:
    """Run the workflow's body in this thread to its end and make its outcome durable."""
    __tracebackhide__ = True
    ex = run.ex
    with _body(run) as outcome:
        outcome["output"] = ex.fn(*ex.args, **ex.kwargs)


async def run_body_async(run: WorkflowRun) -> None:
    """:func:`run_body` for an ``async def`` workflow, as a task of nbflow's loop."""
    __tracebackhide__ = True
    ex = run.ex
    with _body(run) as outcome:
        outcome["output"] = await ex.fn(*ex.args, **ex.kwargs)


def conclude(ex: Execution, output: Any, error: BaseException | None) -> None:
    """Make a finished body's outcome durable; its result or error ends up on ``ex``."""
    try:
        finish = _final(ex, output, error)
        if finish is None:
            if ex.state is State.CANCELLED:
                ex.engine.log.wait_durable()  # its CANCELLED end (appended by the cancel) first
            return
        seq = ex.begin_finish(finish)
        if seq is None:  # cancelled or interrupted meanwhile
            if ex.state is State.CANCELLED:
                ex.error = WorkflowCancelledError(ex.workflow_id)
            return
        ex.engine.log.wait_durable(seq)
        if ex.durable_status == "CANCELLED":  # by another process, before its end was written
            ex.error = WorkflowCancelledError(ex.workflow_id)
        elif ex.interrupted_because is not None:  # taken over: its end was not written
            ex.error = ex.interrupted_error()
    except BaseException as exc:  # the database failed under the workflow
        ex.error = exc


def _final(ex: Execution, output: Any, error: BaseException | None) -> Finish | None:
    """The workflow's end to record, or None when it must not be recorded (cancelled, closing);
    sets the execution's result or error."""
    if error is None:
        try:
            encoded = ex.engine.encode(output, f"the result of workflow {ex.name!r}")
        except BaseException as exc:
            error = exc
        else:
            ex.result = output
            return Finish(
                ex.workflow_id,
                "SUCCESS",
                time.time(),
                output_json=encoded[0],
                output_pickle=encoded[1],
            )
    if ex.state is State.CANCELLED:
        ex.error = WorkflowCancelledError(ex.workflow_id)
        return None
    if isinstance(error, _INTERRUPTS):
        ex.error = error
        return None
    if ex.state is State.INTERRUPTED:
        ex.error = ex.interrupted_error()
        return None
    ex.error = error
    text, blob = encode_error(error)
    text = _with_notes(text, error)
    error_step = ex.ended_by_step(error)
    return Finish(
        ex.workflow_id, "ERROR", time.time(), error=text, error_pickle=blob, error_step=error_step
    )


def _with_notes(text: str, error: BaseException) -> str:
    """The recorded text of a workflow's error, ``Type: message``, followed by its notes (which
    step or ``nbflow.map`` item raised it), one a line, as Python prints them."""
    notes = getattr(error, "__notes__", None)
    if not isinstance(notes, list) or not notes:
        return text
    return storable_text("\n".join([text, *map(str, notes)]))
