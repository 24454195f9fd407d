"""Running steps: the checkpoint idiom with one retry policy, for sync and async steps alike.

A step takes the next function id. If the workflow recorded an outcome there, the step returns it
(or raises it) without running. Otherwise each attempt runs with the step marked as this thread's
(or task's) current operation, so that stream writes from inside it are credited to it; a failed
attempt is retried per the step's :class:`~nbflow.workflow._calls.RetryPolicy` while the workflow runs,
and the last outcome is recorded.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from nbflow._serialization import Encoded, encode, encode_error
from nbflow.engine._execution import Execution
from nbflow.store import ReplayRecord
from nbflow.store._ops import StepRow
from nbflow.text._tables import step_label
from nbflow.workflow._calls import Step
from nbflow.workflow._context import SCOPE, Scope, WorkflowContext

__all__ = [
    "StepRun",
    "note_step",
    "record_outcome",
    "replay_outcome",
    "step_row",
]


_NOTHING: Encoded = (None, None)
_new_scope = tuple.__new__


def step_row(
    workflow_id: str,
    function_id: int,
    name: str,
    span: tuple[float, float],
    output: Encoded = _NOTHING,
    attempts: int = 1,
    *,
    error: Encoded = _NOTHING,
) -> StepRow:
    """The checkpoint of a finished operation: ``span`` is when it started and ended; ``output``
    and ``error`` are ``(json, pickle)`` and ``(text, pickle)``."""
    # Built positionally (keywords cost a step ~1 µs; StepRun.outcome does the same on the hot
    # path): workflow_id, function_id, name, output_json, output_pickle, error, error_pickle,
    # started_at, ended_at, attempts. fmt: skip keeps them in two rows rather than ten.
    return StepRow(
        workflow_id, function_id, name, output[0], output[1], error[0], error[1], span[0], span[1],
        attempts,
    )  # fmt: skip


def note_step(error: BaseException, step: Step, attempt: int) -> None:
    """Say in ``error`` which step raised it: a note ``raised in step 'parse' (attempt 3 of 3)``
    in its traceback, and ``error.nbflow_step``, the step's name (once: the innermost step).

    Args:
        error: The exception the step raised; its type and message stay as they are.
        step: The step.
        attempt: Which attempt raised it (1, 2, …).
    """
    if getattr(error, "nbflow_step", None) is not None:
        return
    retries = step.policy.retries
    of = f" (attempt {attempt} of {retries + 1})" if retries else ""
    text = f"raised in step {step_label(step.name)!r}{of}"
    if sys.version_info >= (3, 11):
        error.add_note(text)
    else:  # where tracebacks show no notes, the workflow's record still names the step
        with contextlib.suppress(AttributeError):
            error.__notes__ = [*getattr(error, "__notes__", ()), text]  # type: ignore[attr-defined]
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        error.nbflow_step = step.name  # type: ignore[attr-defined]


def replay_outcome(ex: Execution, function_id: int, record: ReplayRecord, what: str) -> Any:
    """The recorded outcome of an operation: its output, or its error raised."""
    __tracebackhide__ = True
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


class StepRun:
    """One step of a workflow being run; as a context manager, one attempt of it.

    The loop that runs a step (sync or async, in :class:`~nbflow.engine._workflows.WorkflowRun`)::

        run = StepRun(ex, ctx, step)
        while run.pending:             # False at once when the workflow recorded the step
            with run:                  # one attempt, marked as this thread's (or task's) step
                run.output = step.fn(*args, **kwargs)
            if run.pending:            # a retry follows: wait, unless a cancel comes first
                run.backoff()
        return run.outcome()           # the record, or the last attempt's output or error

    An exception the block raises is kept, not raised: the step's retry policy decides whether
    another attempt follows.
    """

    # fmt: skip below: thirteen names read better as two rows than as a column of thirteen
    __slots__ = (
        "attempt", "ctx", "delay", "error", "ex", "function_id", "output",
        "pending", "record", "started", "step", "token", "tries",
    )  # fmt: skip

    def __init__(
        self, ex: Execution, ctx: WorkflowContext, step: Step, function_id: int | None = None
    ) -> None:
        self.ex, self.ctx, self.step = ex, ctx, step
        if function_id is None:
            function_id = ex.next_function_id()
        self.function_id = function_id
        self.record = ex.replayed(function_id, "step", step.name)
        self.pending = self.record is None  # True until it is replayed or over
        if self.record is not None:
            return
        if not ex.running:
            ex.check_running()
        if ex.row_seq:
            ex.wait_row_durable()
        self.started = time.time()
        self.attempt = ex.prior_attempts.get(function_id, 0)
        self.tries = 0
        self.output: Any = None
        self.error: Exception | None = None
        self.delay: float | None = None

    def replay(self) -> Any:
        """The recorded outcome (when :attr:`record` is not None)."""
        __tracebackhide__ = True
        assert self.record is not None
        return replay_outcome(self.ex, self.function_id, self.record, f"step {self.step.name!r}")

    def __enter__(self) -> StepRun:
        self.tries += 1
        self.attempt += 1
        self.delay = None
        # Built as tuple builds it: a NamedTuple's own __new__ is a Python call, paid on every
        # attempt of every step (the hot path).
        where = _new_scope(Scope, (self.ctx, self.function_id, self.attempt, 0))
        self.token = SCOPE.set(where)  # (no thread:
        # only a body's scope is tied to the thread that entered it)
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        SCOPE.reset(self.token)
        if exc is None or not isinstance(exc, Exception):  # KeyboardInterrupt & co. go on up
            self.pending = False
            return False
        self.delay = self.step.policy.delay(self.tries) if self.ex.running else None
        if self.delay is None:
            self.pending, self.error = False, exc
        return True

    def backoff(self) -> None:
        """Before a retry: wait its delay (a cancel or a closing runtime cuts it short)."""
        if self.delay is not None:
            self.ex.alarm.pause(self.delay)
            self.ex.check_running()

    async def backoff_async(self) -> None:
        """:meth:`backoff` for an ``async def`` step (the same alarm cuts it short)."""
        if self.delay is not None:
            await self.ex.alarm.pause_async(self.delay)
            self.ex.check_running()

    def outcome(self) -> Any:
        """The step's outcome once it is not :attr:`pending`: its record replayed, or the last
        attempt's output (recorded now) or error (recorded, then raised)."""
        __tracebackhide__ = True
        if self.record is not None:
            return self.replay()
        ex, name = self.ex, self.step.name
        if self.error is not None:
            if self.step.keep_errors:  # (a map item's error: nbflow.map names the item)
                note_step(self.error, self.step, self.tries)
                record_outcome(
                    ex,
                    self.function_id,
                    name,
                    started=self.started,
                    attempts=self.tries,
                    error=self.error,
                    what=name,
                )
            raise self.error
        what = f"the output of step {name!r}"
        encoded = encode(self.output, what=what, allow_pickle=ex.engine.allow_pickle)
        # fmt: skip below: a StepRow's ten fields in table order, positionally (the hot path)
        row = StepRow(
            ex.workflow_id, self.function_id, name, encoded[0], encoded[1], None, None,
            self.started, time.time(), self.tries,
        )  # fmt: skip
        ex.append(row)
        return self.output
