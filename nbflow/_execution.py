"""One run of a workflow: its position, its replay record, its streams, and the checkpoint idiom.

The idiom (as in DBOS): before an operation runs, look up its recorded outcome at this position; if
there is one, return it (or raise it) without running; otherwise run it and append its record to
the write log. Every operation of the workflow body takes the next *function id*.
"""

from __future__ import annotations

import asyncio
import contextvars
import pickle
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbflow._errors import (
    NondeterminismError,
    NotInWorkflowError,
    RecordedError,
    StreamClosedError,
    WorkflowCancelledError,
    WorkflowInterruptedError,
)
from nbflow._serialization import check_text, decode, encode
from nbflow.store._base import ReplayRecord
from nbflow.store._ops import Op, StepRow, StreamRow

if TYPE_CHECKING:
    from nbflow._runtime import Runtime

__all__ = ["Execution", "current_execution", "require_execution"]

_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "nbflow_execution", default=None
)


def current_execution() -> Execution | None:
    """The workflow execution this code runs in, or None."""
    return _current.get()


def require_execution(operation: str) -> Execution:
    """The current execution; raises :class:`NotInWorkflowError` outside a workflow."""
    ex = _current.get()
    if ex is None:
        raise NotInWorkflowError(operation)
    return ex


def encode_error(exc: BaseException) -> tuple[str, bytes | None]:
    """``("Type: message", pickle)`` for an exception; the pickle is None if it cannot round-trip."""
    text = f"{type(exc).__qualname__}: {exc}"
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = None
    return text, blob


def decode_error(text: str | None, blob: bytes | None, allow_pickle: bool) -> BaseException:
    """Rebuild a recorded exception (or a :class:`RecordedError` standing in for it)."""
    if blob is not None and allow_pickle:
        try:
            exc = pickle.loads(blob)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    type_name, _, message = (text or "Error: ").partition(": ")
    return RecordedError(type_name, message)


def _describe(kind: str, name: str) -> str:
    """An operation as a replay error names it: ``step 'm.f'``, ``nbflow.sleep``, ``write_stream('k')``."""
    if kind == "step":
        return name if name.startswith("nbflow.") else f"step {name!r}"
    return f"{kind}_stream({name!r})"


class Execution:
    """The state of one workflow running in this process.

    Attributes:
        workflow_id: The workflow's id.
        name: Its registered name.
        runtime: The runtime it runs in.
        cancelled: Set (under the write log's lock) when the workflow is cancelled.
        interrupted: Set when the runtime closes under it; it stops at its next checkpoint.
        final_status: Set by the committer once its final status is durable.
    """

    def __init__(
        self,
        runtime: Runtime,
        workflow_id: str,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        replay: list[ReplayRecord] | None = None,
        streams: dict[str, tuple[int, bool]] | None = None,
        attempts: dict[int, int] | None = None,
    ) -> None:
        self.runtime = runtime
        self.workflow_id = workflow_id
        self.name = name
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.recorded = {r.function_id: r for r in replay or ()}
        # key -> [next offset, closed]
        self.streams: dict[str, list[Any]] = {k: [n, c] for k, (n, c) in (streams or {}).items()}
        self.prior_attempts = attempts or {}
        self.function_id = 0
        self.in_step: tuple[int, int] | None = None
        self.cancelled = False
        self.interrupted = False
        self.finishing = False
        self.final_status: str | None = None
        self.done = threading.Event()
        self._done_callbacks: list[Callable[[], None]] = []
        self._done_lock = threading.Lock()
        self.wakeup = threading.Event()  # set on cancel/close to cut short a retry backoff
        self.step_error: tuple[int, BaseException] | None = None
        #: The write-log position of the workflow's own row until it is known to be durable.
        self.row_seq = 0
        #: When the workflow is cancelled if it has not ended (epoch seconds), or None.
        self.deadline: float | None = None
        #: The queue it was enqueued on, or None.
        self.queue_name: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.time()

    def set_done(self) -> None:
        """Mark the execution ended: wake ``done`` waiters and call the :meth:`on_done` callbacks."""
        with self._done_lock:
            self.done.set()
            callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) once the execution has ended; at once if it has."""
        with self._done_lock:
            if not self.done.is_set():
                self._done_callbacks.append(callback)
                return
        callback()

    # -- running -----------------------------------------------------------------------------

    def activate(self) -> contextvars.Token[Execution | None]:
        """Make this the current execution of the calling thread."""
        return _current.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[Execution | None]) -> None:
        _current.reset(token)

    def step_failed(self, function_id: int, exc: BaseException) -> BaseException:
        """Note that the step at ``function_id`` raised ``exc`` (and return it, to raise).

        If ``exc`` ends the workflow, its finish records the step, so that resuming the workflow
        runs that step again.
        """
        self.step_error = (function_id, exc)
        return exc

    def ended_by_step(self, exc: BaseException) -> int | None:
        """The function id of the step whose error ``exc`` ends the workflow, if it is one."""
        if self.step_error is not None and self.step_error[1] is exc:
            return self.step_error[0]
        return None

    def wait_row_durable(self) -> None:
        """A step may act on the world: the workflow must be recoverable before it does."""
        if self.row_seq:
            self.runtime._log.wait_durable(self.row_seq)
            self.row_seq = 0

    def next_function_id(self) -> int:
        self.function_id += 1
        return self.function_id

    def check_running(self) -> None:
        """Raise if the workflow was cancelled or the runtime is closing."""
        if self.cancelled:
            raise WorkflowCancelledError(self.workflow_id)
        if self.interrupted:
            raise WorkflowInterruptedError(self.workflow_id)

    def append(self, op: Op) -> None:
        """Append one operation to the write log, unless the workflow was stopped meanwhile."""
        log = self.runtime._log
        with log.lock:
            self.check_running()
            log.append_locked(op)

    def replayed(self, function_id: int, kind: str, name: str) -> ReplayRecord | None:
        """The recorded operation at ``function_id``, checked against what is called now."""
        record = self.recorded.get(function_id)
        if record is None:
            return None
        if record.kind != kind or record.name != name:
            recorded = _describe(record.kind, record.name)
            raise NondeterminismError(
                self.workflow_id, function_id, recorded, _describe(kind, name)
            )
        return record

    # -- steps -------------------------------------------------------------------------------

    def run_step(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        retries: int = 0,
        backoff: float = 2.0,
        interval: float = 1.0,
    ) -> Any:
        """Run ``fn`` as the next step: return its recorded outcome, or run and record it."""
        function_id, record = self._step_begin(name)
        if record is not None:
            return self._step_replay(function_id, name, record)
        started = time.time()
        attempt = self.prior_attempts.get(function_id, 0)
        tries = 0
        while True:
            attempt += 1
            tries += 1
            self.in_step = (function_id, attempt)
            try:
                output = fn(*args, **kwargs)
            except Exception as exc:
                self.in_step = None
                if tries <= retries and not (self.cancelled or self.interrupted):
                    self.wakeup.wait(interval * backoff ** (tries - 1))
                    self.check_running()
                    continue
                self._step_record(function_id, name, started, tries, None, exc)
                raise
            finally:
                self.in_step = None
            return self._step_record(function_id, name, started, tries, output, None)

    async def run_step_async(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        retries: int = 0,
        backoff: float = 2.0,
        interval: float = 1.0,
    ) -> Any:
        """:meth:`run_step` for an ``async def`` step (awaited on the workflow's loop).

        Steps awaited concurrently (``asyncio.gather``) share the workflow's step state: a stream
        write from inside one of them is attributed to whichever started last.
        """
        function_id, record = self._step_begin(name)
        if record is not None:
            return self._step_replay(function_id, name, record)
        started = time.time()
        attempt = self.prior_attempts.get(function_id, 0)
        tries = 0
        while True:
            attempt += 1
            tries += 1
            self.in_step = (function_id, attempt)
            try:
                output = await fn(*args, **kwargs)
            except Exception as exc:
                self.in_step = None
                if tries <= retries and not (self.cancelled or self.interrupted):
                    await asyncio.sleep(interval * backoff ** (tries - 1))
                    self.check_running()
                    continue
                self._step_record(function_id, name, started, tries, None, exc)
                raise
            finally:
                self.in_step = None
            return self._step_record(function_id, name, started, tries, output, None)

    def _step_begin(self, name: str) -> tuple[int, ReplayRecord | None]:
        """Take the next function id; return it with its record, or make ready to run the step."""
        function_id = self.next_function_id()
        record = self.replayed(function_id, "step", name)
        if record is None:
            self.check_running()
            self.wait_row_durable()
        return function_id, record

    def _step_replay(self, function_id: int, name: str, record: ReplayRecord) -> Any:
        """The recorded outcome of a step: its output, or its error raised."""
        allow_pickle = self.runtime.allow_pickle
        if record.error is not None:
            raise self.step_failed(
                function_id, decode_error(record.error, record.error_pickle, allow_pickle)
            )
        return decode(
            record.output_json,
            record.output_pickle,
            what=f"step {name!r}",
            allow_pickle=allow_pickle,
        )

    def _step_record(
        self,
        function_id: int,
        name: str,
        started: float,
        tries: int,
        output: Any,
        error: BaseException | None,
    ) -> Any:
        """Record a step's outcome (the last error, or the output); return the output."""
        if error is not None:
            text, blob = encode_error(error)
            self.append(
                StepRow(
                    workflow_id=self.workflow_id,
                    function_id=function_id,
                    name=name,
                    output_json=None,
                    output_pickle=None,
                    error=text,
                    error_pickle=blob,
                    started_at=started,
                    ended_at=time.time(),
                    attempts=tries,
                )
            )
            self.step_failed(function_id, error)
            return None
        value_json, value_pickle = encode(
            output, what=f"the output of step {name!r}", allow_pickle=self.runtime.allow_pickle
        )
        self.append(
            StepRow(
                workflow_id=self.workflow_id,
                function_id=function_id,
                name=name,
                output_json=value_json,
                output_pickle=value_pickle,
                error=None,
                error_pickle=None,
                started_at=started,
                ended_at=time.time(),
                attempts=tries,
            )
        )
        return output

    def record_child(
        self, function_id: int, name: str, started: float, outcome: Any, error: BaseException | None
    ) -> None:
        """Record a child workflow's outcome as a step of this one."""
        if error is None:
            value_json, value_pickle = encode(
                outcome,
                what=f"the result of workflow {name!r}",
                allow_pickle=self.runtime.allow_pickle,
            )
            text = blob = None
        else:
            value_json = value_pickle = None
            text, blob = encode_error(error)
        self.append(
            StepRow(
                workflow_id=self.workflow_id,
                function_id=function_id,
                name=name,
                output_json=value_json,
                output_pickle=value_pickle,
                error=text,
                error_pickle=blob,
                started_at=started,
                ended_at=time.time(),
                attempts=1,
            )
        )

    # -- streams -----------------------------------------------------------------------------

    def write_stream(self, key: str, value: Any, *, is_end: bool = False) -> None:
        """Append ``value`` to stream ``key`` (or, with ``is_end``, close it)."""
        check_text(key, "A stream key")
        if is_end:
            value_json = value_pickle = None
        else:
            value_json, value_pickle = encode(
                value, what=f"stream {key!r}", allow_pickle=self.runtime.allow_pickle
            )
        in_step = self.in_step
        if in_step is None:
            function_id = self.next_function_id()
            if self.replayed(function_id, "close" if is_end else "write", key) is not None:
                return
            attempt = None
        else:
            function_id, attempt = in_step
        log = self.runtime._log
        with log.lock:  # cancel() reads the streams' state from another thread
            self.check_running()
            state = self.streams.get(key)
            if state is None:
                state = self.streams[key] = [0, False]
            if state[1]:
                if is_end:
                    return
                raise StreamClosedError(self.workflow_id, key)
            log.append_locked(
                StreamRow(self.workflow_id, key, state[0], value_json, value_pickle, is_end, function_id, attempt, time.time())
            )  # fmt: skip
            state[0] += 1
            state[1] = is_end

    def end_markers(self, now: float) -> tuple[StreamRow, ...]:
        """End markers for every stream still open; marks them closed."""
        markers = []
        for key, state in self.streams.items():
            if not state[1]:
                markers.append(
                    StreamRow(self.workflow_id, key, state[0], None, None, True, None, None, now)
                )
                state[0] += 1
                state[1] = True
        return tuple(markers)
