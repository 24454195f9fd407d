"""One run of a workflow in this process: its state, its position, its replay record, its streams.

The checkpoint idiom (as in DBOS): before an operation runs, look up its recorded outcome at this
position; if there is one, return it (or raise it) without running; otherwise run it and append its
record to the write log. Every operation of the workflow body takes the next *function id*.

An execution's life is an explicit state machine; each transition is a method that takes the write
log's lock itself, so a check and the append it guards are one atomic action::

    RUNNING ──cancel()────────────► CANCELLED ──┐
       │    ──interrupt()─────────► INTERRUPTED ├──► (done)
       └────begin_finish()────────► FINISHING ──┘

``durable_status`` is set by the committer once the final status is in the database.
"""

from __future__ import annotations

import enum
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, NamedTuple

from nbflow._errors import (
    NondeterminismError,
    StreamClosedError,
    WorkflowCancelledError,
    WorkflowInterruptedError,
)
from nbflow._serialization import check_text, plain_json
from nbflow.engine._code import RunCode
from nbflow.engine._engine import Engine
from nbflow.store._base import Replay, ReplayRecord
from nbflow.store._ops import Finish, Op, StreamRow
from nbflow.workflow._alarm import Alarm
from nbflow.workflow._calls import StepAttempt

__all__ = ["Execution", "Executions", "State"]


class State(enum.Enum):
    """Where an execution is in its life (see the module docstring)."""

    RUNNING = "running"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    FINISHING = "finishing"


_RUNNING = State.RUNNING
_new_row = tuple.__new__


class StepFailure(NamedTuple):
    """The step whose error may end the workflow: resuming the workflow runs it again."""

    function_id: int
    error: BaseException


def describe(kind: str, name: str) -> str:
    """An operation as errors name it: ``step 'm.f'``, ``nbflow.sleep``, ``write_stream('k')``."""
    if kind == "step":
        return name if name.startswith("nbflow.") else f"step {name!r}"
    return f"{kind}_stream({name!r})"


class _Stream:
    """A stream of this workflow: its next offset, and whether it is closed."""

    __slots__ = ("closed", "offset")

    def __init__(self, offset: int = 0, closed: bool = False) -> None:
        self.offset = offset
        self.closed = closed


class Execution:
    """The state of one workflow running in this process.

    Attributes:
        workflow_id: The workflow's id.
        name: Its registered name.
        fn, args, kwargs: The body and what it is called with.
        state: Its :class:`State`; changed only by the transition methods.
        durable_status: Its final status once the committer made it durable, else None.
        end_seq: The write-log position of its final status once appended here, else None.
        deadline: When it is cancelled if it has not ended (epoch seconds), or None.
        queue_name: The queue it was enqueued on, or None.
        row_seq: The write-log position of its own row until that is known to be durable.
        alarm: Rung on cancel, close or take-over, to cut short every wait of the body (sleep,
            recv, a retry's backoff, a stream read), sync or async (see :mod:`nbflow.workflow._alarm`).
        done: Set once it has ended; then ``result`` or ``error`` holds its outcome.
    """

    def __init__(
        self,
        engine: Engine,
        workflow_id: str,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        replay: Replay | None = None,
    ) -> None:
        self.engine = engine
        self.workflow_id = workflow_id
        self.name = name
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.args = args
        self.kwargs = kwargs
        self.recorded: dict[int, ReplayRecord] = {}
        if replay is not None:
            self.recorded = {r.function_id: r for r in replay.records}
        self._streams = (
            {} if replay is None else {k: _Stream(*s) for k, s in replay.streams.items()}
        )
        self.prior_attempts = {} if replay is None else replay.attempts
        #: per stream key, how many printed lines of the body a replay drops (already stored)
        self._output_skip = {} if replay is None else dict(replay.outputs)
        self.function_id = 0
        self.state = State.RUNNING
        self.interrupted_because: str | None = None  # why, when not because the runtime closed
        self.durable_status: str | None = None
        self.end_seq: int | None = None
        self.deadline: float | None = None
        self.queue_name: str | None = None
        self.row_seq = 0
        self.alarm = Alarm()
        self.done = threading.Event()
        self._raised: BaseException | None = None  # the error outcome() raised, and its
        self._traceback: TracebackType | None = None  # traceback from the workflow
        self._done_callbacks: list[Callable[[], None]] = []
        self._done_lock = threading.Lock()
        self.step_failure: StepFailure | None = None
        self.code = RunCode()  # fingerprints, steps replayed with changed code, reuse
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.time()
        #: Its :class:`~nbflow.engine._tracing.RunTrace` while tracing is on, else None.
        self.trace: Any = None

    def __repr__(self) -> str:
        return f"<Execution {self.workflow_id!r} {self.state.value}>"

    # -- state ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True until it is cancelled, interrupted or finishing."""
        return self.state is State.RUNNING

    @property
    def cancelled(self) -> bool:
        """True once it is cancelled (here, or by another process)."""
        return self.state is State.CANCELLED

    def check_running(self) -> None:
        """Raise if the workflow was cancelled or the runtime is closing."""
        state = self.state
        if state is State.CANCELLED:
            raise WorkflowCancelledError(self.workflow_id)
        if state is State.INTERRUPTED:
            raise self.interrupted_error()

    def cancel(self, now: float) -> int | None:
        """RUNNING (or INTERRUPTED) → CANCELLED: append its CANCELLED end. Returns the log
        position of its end: the one appended now, or the one already appended when it was
        cancelled or began to finish before (a caller that waits for it then sees a final status,
        never PENDING); None when another process cancelled it (the store has its end)."""
        log = self.engine.log
        with log.lock:
            if self.state in (State.CANCELLED, State.FINISHING):
                return self.end_seq
            self.state = State.CANCELLED
            finish = Finish(self.workflow_id, "CANCELLED", now, markers=self._end_markers(now))
            seq = self.end_seq = log.append_locked(finish)
        self.alarm.ring()
        return seq

    def cancelled_elsewhere(self) -> None:
        """Another process cancelled it (the store has its end): RUNNING → CANCELLED."""
        with self.engine.log.lock:
            if self.state is not State.RUNNING:
                return
            self.state = State.CANCELLED
        self.alarm.ring()

    def interrupt(self, reason: str | None = None) -> None:
        """The runtime closes (or another process took the workflow over: ``reason``):
        RUNNING → INTERRUPTED; it stops at its next checkpoint."""
        with self.engine.log.lock:
            if self.state is State.RUNNING:
                self.state = State.INTERRUPTED
                self.interrupted_because = reason
            elif self.state is State.FINISHING and reason is not None:  # its end was refused
                self.interrupted_because = reason
        self.alarm.ring()

    def interrupted_error(self) -> WorkflowInterruptedError:
        """The error of an interrupted run, saying why when it is not that the runtime closed."""
        reason = self.interrupted_because
        if reason is None:
            return WorkflowInterruptedError(self.workflow_id)
        return WorkflowInterruptedError(self.workflow_id, reason=reason)

    def begin_finish(self, finish: Finish) -> int | None:
        """RUNNING → FINISHING: append ``finish`` with the end markers of its open streams.

        Returns the log position, or None when it was cancelled or interrupted first.
        """
        log = self.engine.log
        with log.lock:
            if self.state is not State.RUNNING:
                return None
            self.state = State.FINISHING
            markers = self._end_markers(finish.ended_at)
            self.end_seq = log.append_locked(finish._replace(markers=markers))
            return self.end_seq

    def ended(self, status: str) -> None:
        """The committer made its final status durable (on the committer thread)."""
        self.durable_status = status

    # -- the end -------------------------------------------------------------------------------

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

    def outcome(self) -> Any:
        """Its result, or its error raised (once :attr:`done` is set).

        The error is the workflow's own object, raised each time with the traceback the workflow
        left on it: a caller's frames do not pile up on it from one call to the next.
        """
        __tracebackhide__ = True
        error = self.error
        if error is None:
            return self.result
        if self._raised is not error:  # its first raise here: keep the workflow's traceback
            self._raised, self._traceback = error, error.__traceback__
        raise error.with_traceback(self._traceback)

    def step_failed(self, function_id: int, exc: BaseException) -> BaseException:
        """Note that the step at ``function_id`` raised ``exc`` (and return it, to raise).

        If ``exc`` ends the workflow, its finish records the step, so that resuming the workflow
        runs that step again.
        """
        self.step_failure = StepFailure(function_id, exc)
        return exc

    def ended_by_step(self, exc: BaseException) -> int | None:
        """The function id of the step whose error ``exc`` ends the workflow, if it is one."""
        failure = self.step_failure
        return failure.function_id if failure is not None and failure.error is exc else None

    # -- positions and records -----------------------------------------------------------------

    def next_function_id(self) -> int:
        self.function_id += 1
        return self.function_id

    def reserve(self, count: int) -> range:
        """The next ``count`` function ids, taken now (in program order) for later use."""
        first = self.function_id + 1
        self.function_id += count
        return range(first, first + count)

    def replayed(self, function_id: int, kind: str, name: str) -> ReplayRecord | None:
        """The recorded operation at ``function_id``, checked against what is called now."""
        record = self.recorded.get(function_id)
        if record is None:
            return None
        if record.kind != kind or record.name != name:
            recorded, called = describe(record.kind, record.name), describe(kind, name)
            raise NondeterminismError(self.workflow_id, function_id, recorded, called)
        return record

    def append(self, op: Op, *more: Op) -> int:
        """Append operations to the write log, unless the workflow was stopped meanwhile."""
        log = self.engine.log
        log.make_room()  # a writer that outruns the disk waits here, holding no lock
        with log.lock:
            if self.state is not State.RUNNING:
                self.check_running()
            seq = log.append_locked(op)
            for other in more:
                seq = log.append_locked(other)
        return seq

    def append_sized(self, op: Op, size: int) -> int:
        """:meth:`append` for one operation whose size (see :func:`~nbflow.engine._writelog.op_size`)
        the caller knows from what it encoded (the hot path: a step's checkpoint, a stream item)."""
        log = self.engine.log
        log.make_room()
        with log.lock:
            if self.state is not _RUNNING:
                self.check_running()
            return log.append_locked(op, size)

    def wait_row_durable(self) -> None:
        """A step may act on the world: the workflow must be recoverable before it does."""
        if self.row_seq:
            self.engine.log.wait_durable(self.row_seq)
            self.row_seq = 0

    # -- streams -------------------------------------------------------------------------------

    def write_stream(
        self,
        key: str,
        value: Any,
        *,
        is_end: bool = False,
        step: StepAttempt | None = None,
        at: int | None = None,
    ) -> None:
        """Append ``value`` to stream ``key`` (with ``is_end``, close it); ``step``: the step
        attempt that writes it, if it is not the workflow body; ``at``: the function id reserved
        for this write of the body."""
        if type(key) is not str or key not in self._streams:  # (a key written to was checked)
            check_text(key, "A stream key")
        value_json = value_pickle = None
        if not is_end:
            value_json = plain_json(value)
            if value_json is None:
                value_json, value_pickle = self.engine.encode(value, f"stream {key!r}")
        if step is None:
            if at is None:
                self.function_id = at = self.function_id + 1  # (next_function_id())
            function_id, attempt = at, None
            if self.recorded and self.replayed(at, "close" if is_end else "write", key):
                return
        else:
            function_id, attempt = step
        self._append_item(key, value_json, value_pickle, is_end, function_id, attempt, strict=True)

    def write_output(self, key: str, text: str, step: StepAttempt | None = None) -> None:
        """Append the printed line ``text`` to stream ``key``, unrecorded (see
        ``WorkflowContext.write_output``): a body line has no function id nor attempt, and a
        replay drops as many of the body's first lines on ``key`` as the stream holds (the body
        prints them again in order); a step's line is credited to ``step``. Never raises."""
        check_text(key, "A stream key")
        if step is None and self._output_skip.get(key):
            self._output_skip[key] -= 1
            return
        function_id, attempt = step if step is not None else (None, None)
        value_json, value_pickle = self.engine.encode(text, f"stream {key!r}")
        self._append_item(key, value_json, value_pickle, False, function_id, attempt, strict=False)

    # fmt: skip below: seven parameters and nine row fields read better in rows than in columns
    def _append_item(self, key: str, value_json: str | None, value_pickle: bytes | None,
                     is_end: bool, function_id: int | None, attempt: int | None, *,
                     strict: bool) -> None:  # fmt: skip
        """Append an item (or end marker) at the stream's next offset; ``strict``: raise when the
        workflow was stopped or the stream is closed (else drop it)."""
        log = self.engine.log
        log.make_room()  # a writer that outruns the disk waits here, holding no lock
        size = len(value_pickle) if value_pickle is not None else len(value_json or "")
        with log.lock:  # cancel() reads the streams' state from another thread
            if self.state is not _RUNNING:
                if not strict:
                    return
                self.check_running()
            stream = self._streams.get(key)
            if stream is None:
                stream = self._streams[key] = _Stream()
            if stream.closed:
                if is_end or not strict:
                    return
                raise StreamClosedError(self.workflow_id, key)
            # Built as tuple builds it: a NamedTuple's own __new__ is a Python call (hot path).
            fields = (self.workflow_id, key, stream.offset, value_json, value_pickle, is_end)
            row = _new_row(StreamRow, (*fields, function_id, attempt, time.time()))
            log.append_locked(row, size)
            stream.offset += 1
            stream.closed = is_end

    def _end_markers(self, now: float) -> tuple[StreamRow, ...]:
        """End markers for every stream still open; marks them closed (log lock held)."""
        markers = []
        for key, stream in self._streams.items():
            if not stream.closed:
                markers.append(
                    StreamRow(
                        self.workflow_id, key, stream.offset, None, None, True, None, None, now
                    )
                )
                stream.offset += 1
                stream.closed = True
        return tuple(markers)


class Executions:
    """The executions running in one runtime, by workflow id.

    Attributes:
        lock: Held while an id is looked up and an execution added, so that one id runs once.
    """

    def __init__(self) -> None:
        self._running: dict[str, Execution] = {}
        self.lock = threading.RLock()

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self._running

    def __len__(self) -> int:
        return len(self._running)

    def __iter__(self) -> Iterator[Execution]:
        return iter(list(self._running.values()))

    def get(self, workflow_id: str) -> Execution | None:
        return self._running.get(workflow_id)

    def add(self, ex: Execution) -> None:
        self._running[ex.workflow_id] = ex

    def remove(self, ex: Execution) -> None:
        """Forget ``ex`` (and only it: another execution may have taken its id since)."""
        with self.lock:
            if self._running.get(ex.workflow_id) is ex:
                del self._running[ex.workflow_id]

    def ending_soon(self, workflow_id: str) -> bool:
        """True when the workflow runs here and its final status is not durable yet."""
        ex = self._running.get(workflow_id)
        return ex is not None and ex.durable_status is None
