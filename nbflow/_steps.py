"""Running steps: the checkpoint idiom with one retry policy, for sync and async steps alike.

A step takes the next function id. If the workflow recorded an outcome there, the step returns it
(or raises it) without running. Otherwise each attempt runs with the step marked as this thread's
(or task's) current operation, so that stream writes from inside it are credited to it; a failed
attempt is retried per the step's :class:`~nbflow._context.RetryPolicy` while the workflow runs,
and the last outcome is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from nbflow import _context as context
from nbflow._context import RetryPolicy, StepAttempt, StepCall, WorkflowContext
from nbflow._execution import Execution
from nbflow._serialization import Encoded, encode_error
from nbflow.store import ReplayRecord
from nbflow.store._ops import StepRow

__all__ = [
    "StepRun",
    "record_outcome",
    "replay_outcome",
    "run_step",
    "run_step_async",
    "step_row",
]


_NOTHING: Encoded = (None, None)


def step_row(
    workflow_id: str,
    function_id: int,
    name: str,
    span: tuple[float, float],
    *,
    output: Encoded = _NOTHING,
    error: Encoded = _NOTHING,
    attempts: int = 1,
) -> StepRow:
    """The checkpoint of a finished operation: ``span`` is when it started and ended; ``output``
    and ``error`` are ``(json, pickle)`` and ``(text, pickle)``."""
    return StepRow(
        workflow_id=workflow_id,
        function_id=function_id,
        name=name,
        output_json=output[0],
        output_pickle=output[1],
        error=error[0],
        error_pickle=error[1],
        started_at=span[0],
        ended_at=span[1],
        attempts=attempts,
    )


def replay_outcome(ex: Execution, function_id: int, record: ReplayRecord, what: str) -> Any:
    """The recorded outcome of an operation: its output, or its error raised."""
    if record.error is not None:
        error = ex.engine.decode_error(record.error, record.error_pickle)
        raise ex.step_failed(function_id, error)
    return ex.engine.decode(record.output_json, record.output_pickle, what)


def record_outcome(
    ex: Execution,
    function_id: int,
    name: str,
    *,
    started: float,
    attempts: int,
    output: Any = None,
    error: BaseException | None = None,
    what: str,
) -> None:
    """Record an operation's outcome (its output, or ``error``) as a step of ``ex``."""
    encoded = failure = _NOTHING
    if error is not None:
        failure = encode_error(error)
    else:
        encoded = ex.engine.encode(output, what)
    span = (started, time.time())
    row = step_row(
        ex.workflow_id, function_id, name, span, output=encoded, error=failure, attempts=attempts
    )
    ex.append(row)
    if error is not None:
        ex.step_failed(function_id, error)


class Attempt:
    """One attempt's outcome: ``done`` with ``output`` or ``error``, or retried after ``delay``."""

    __slots__ = ("delay", "done", "error", "output")

    def __init__(self) -> None:
        self.done = False
        self.output: Any = None
        self.error: Exception | None = None
        self.delay = 0.0


class StepRun:
    """One step of a workflow being run (or replayed).

    Attributes:
        function_id: The step's position in the workflow.
        record: Its recorded outcome, when the workflow has one (then it does not run).
    """

    def __init__(self, ex: Execution, ctx: WorkflowContext, name: str, policy: RetryPolicy) -> None:
        self._ex = ex
        self._ctx = ctx
        self.name = name
        self._policy = policy
        self.function_id = ex.next_function_id()
        self.record = ex.replayed(self.function_id, "step", name)
        if self.record is None:
            ex.check_running()
            ex.wait_row_durable()
        self._started = time.time()
        self._attempt = ex.prior_attempts.get(self.function_id, 0)
        self._tries = 0

    def replay(self) -> Any:
        """The recorded outcome."""
        assert self.record is not None
        return replay_outcome(self._ex, self.function_id, self.record, f"step {self.name!r}")

    @contextlib.contextmanager
    def attempt(self) -> Iterator[Attempt]:
        """Run the block as the next attempt; an exception it raises is kept, not raised."""
        self._tries += 1
        self._attempt += 1
        attempt = Attempt()
        token = context.enter_step(self._ctx, StepAttempt(self.function_id, self._attempt))
        try:
            yield attempt
        except Exception as exc:
            delay = self._policy.delay(self._tries) if self._ex.running else None
            if delay is None:
                attempt.done, attempt.error = True, exc
            else:
                attempt.delay = delay
        else:
            attempt.done = True
        finally:
            context.leave(token)

    def finish(self, attempt: Attempt) -> Any:
        """Record the last attempt's outcome; return its output or raise its error."""
        record_outcome(
            self._ex,
            self.function_id,
            self.name,
            started=self._started,
            attempts=self._tries,
            output=attempt.output,
            error=attempt.error,
            what=f"the output of step {self.name!r}",
        )
        if attempt.error is not None:
            raise attempt.error
        return attempt.output


def run_step(ex: Execution, ctx: WorkflowContext, call: StepCall) -> Any:
    """Run ``call`` as the next step of ``ex``: return its recorded outcome, or run and record it."""
    run = StepRun(ex, ctx, call.name, call.policy)
    if run.record is not None:
        return run.replay()
    while True:
        with run.attempt() as attempt:
            attempt.output = call.fn(*call.args, **call.kwargs)
        if attempt.done:
            return run.finish(attempt)
        ex.wakeup.wait(attempt.delay)  # a cancel or a closing runtime cuts the backoff short
        ex.check_running()


async def run_step_async(ex: Execution, ctx: WorkflowContext, call: StepCall) -> Any:
    """:func:`run_step` for an ``async def`` step, awaited on the workflow's loop."""
    run = StepRun(ex, ctx, call.name, call.policy)
    if run.record is not None:
        return run.replay()
    while True:
        with run.attempt() as attempt:
            attempt.output = await call.fn(*call.args, **call.kwargs)
        if attempt.done:
            return run.finish(attempt)
        await asyncio.sleep(attempt.delay)
        ex.check_running()
