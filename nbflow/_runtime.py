"""The runtime: an open system database, the write log, and the workflows running in it."""

from __future__ import annotations

import atexit
import inspect
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from nbflow._control import Control, _as_workflow
from nbflow._deadlines import Deadlines
from nbflow._errors import (
    FunctionNotRegisteredError,
    RuntimeClosedError,
    WaitTimeoutError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowInterruptedError,
    WorkflowNotFoundError,
)
from nbflow._execution import Execution, current_execution, decode_error, encode_error
from nbflow._handle import WorkflowHandle
from nbflow._history import History
from nbflow._loop import LoopThread
from nbflow._notify import Notifier
from nbflow._queues import Dispatcher, declared_queues
from nbflow._reader import StreamReader
from nbflow._records import Status
from nbflow._serialization import decode, encode
from nbflow._workflow import (
    WorkflowFunction,
    current_timeout,
    lookup_workflow,
    take_assigned_id,
)
from nbflow._writelog import WriteLog
from nbflow.store import Store, WorkflowRow, open_store
from nbflow.store._ops import Changes, Finish, Op

__all__ = ["Runtime"]

logger = logging.getLogger("nbflow")

_INTERRUPTS = (KeyboardInterrupt, SystemExit, GeneratorExit)


class Runtime(History, Control):
    """An open nbflow system database, with the workflows that run in it.

    Args:
        database: A file path, ``duckdb:///path``, ``:memory:`` or ``postgresql://…`` (shared by
            processes and machines; needs the ``postgres`` extra).
            None: ``$NBFLOW_DATABASE``, else ``.nbflow/<notebook>.duckdb`` beside the notebook,
            else ``.nbflow/nbflow.duckdb`` in the working directory.
        allow_pickle: Whether values that are not JSON-native may be pickled and unpickled. Turn it
            off for files of unknown origin: unpickling runs code.
        queues: The names of the queues whose enqueued workflows this runtime runs (None: every
            :class:`~nbflow.Queue` declared in this process; ``[]``: none).

    Opening a runtime never runs user code: interrupted workflows are noted in
    :attr:`interrupted` and resumed by :meth:`recover`. Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | None = None,
        *,
        allow_pickle: bool = True,
        queues: Iterable[str] | None = None,
    ) -> None:
        self._store: Store = open_store(database)
        self.database: str = self._store.url
        self.allow_pickle = allow_pickle
        self.executor_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._active: dict[str, Execution] = {}
        self._active_lock = threading.RLock()
        self._notifier = Notifier()
        self._record_ids: dict[str, int] = {}  # record-keeping workflow -> last function id
        self._closed = False
        self._log = WriteLog(self._store, self._on_commit)
        self._deadlines = Deadlines(self._deadline_passed)
        self._queue_names = None if queues is None else list(queues)
        self._loop: LoopThread | None = None
        self._dispatcher: Dispatcher | None = None
        _open_runtimes.add(self)
        try:
            self._store.attach(self.executor_id, self._on_remote_change)
        except BaseException:
            self.close()
            raise
        if self._queue_names or (self._queue_names is None and declared_queues()):
            self.serve_queues()
        #: Ids of the workflows that were PENDING when the database was opened (interrupted).
        self.interrupted: list[str] = [row.workflow_id for row in self._store.pending_workflows()]
        if self.interrupted:
            logger.info(
                "%d interrupted workflow(s) in %s; nbflow.recover() resumes them.",
                len(self.interrupted),
                self.database,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._active)} running"
        return f"<nbflow.Runtime {self.database!r} ({state})>"

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The storage backend (for SQL over the history: ``runtime.store.sql(...)``)."""
        return self._store

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError(
                f"The nbflow runtime for {self.database!r} is closed. Open it again with "
                "nbflow.configure() or nbflow.Runtime()."
            )

    # -- notifications -----------------------------------------------------------------------

    def _on_commit(self, batch: list[Op], cancelled: set[str]) -> None:
        active = self._active
        for op in batch:
            if type(op) is Finish:
                ex = active.get(op.workflow_id)
                if ex is not None:
                    ex.final_status = op.status
        self._notifier.published(batch)
        for workflow_id in cancelled:  # by another process, before these writes
            ex = active.get(workflow_id)
            if ex is not None:
                ex.cancelled = True
                ex.final_status = Status.CANCELLED.value
                ex.wakeup.set()
            self._notifier.changed(workflow_id)

    def _on_remote_change(self, changes: Changes) -> None:
        """Other processes changed these workflows and queues (shared stores; listener thread)."""
        if self._dispatcher is not None and changes.queues:
            self._dispatcher.wake()  # another process enqueued
        for workflow_id in changes.workflows:
            self._notifier.changed(workflow_id)
            ex = self._active.get(workflow_id)
            if ex is None or ex.finishing or ex.cancelled:
                continue
            if self._store.get_status(workflow_id) == Status.CANCELLED:  # cancelled elsewhere
                with self._log.lock:
                    ex.cancelled = True
                ex.wakeup.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written so far is durable. Returns False on timeout."""
        return self._log.wait_durable(None, timeout)

    # -- starting and running workflows ------------------------------------------------------

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Start the workflow ``fn(*args, **kwargs)`` in a background thread; return its handle."""
        wf = _as_workflow(fn)
        workflow_id, ex, created = self._begin(wf, args, kwargs)
        if created:
            assert ex is not None
            self._spawn(ex)
        return WorkflowHandle(self, workflow_id, ex)

    def _spawn(self, ex: Execution) -> None:
        if inspect.iscoroutinefunction(ex.fn):
            self._event_loop().submit(self._execute_async(ex))
            return
        threading.Thread(
            target=self._execute,
            args=(ex, False),
            name=f"nbflow-workflow-{ex.workflow_id[:8]}",
            daemon=True,
        ).start()

    def call(self, wf: WorkflowFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a workflow durably in this thread (what calling a workflow function does)."""
        parent = current_execution()
        if parent is not None and parent.in_step is not None:
            return wf.fn(*args, **kwargs)  # inside a step: a plain call
        if parent is not None:
            return self._call_child(parent, wf, args, kwargs)
        workflow_id, ex, created = self._begin(wf, args, kwargs)
        if created:
            assert ex is not None
            return self._execute(ex, True)
        return WorkflowHandle(self, workflow_id, ex).result()

    def _call_child(
        self, parent: Execution, wf: WorkflowFunction, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        function_id = parent.next_function_id()
        record = parent.replayed(function_id, "step", wf.name)
        if record is not None:
            if record.error is not None:
                raise parent.step_failed(
                    function_id, decode_error(record.error, record.error_pickle, self.allow_pickle)
                )
            return decode(
                record.output_json,
                record.output_pickle,
                what=wf.name,
                allow_pickle=self.allow_pickle,
            )
        parent.check_running()
        started = time.time()
        child_id = take_assigned_id() or f"{parent.workflow_id}-{function_id}"
        _, ex, created = self._begin(
            wf, args, kwargs, workflow_id=child_id, parent_id=parent.workflow_id
        )
        try:
            if created:
                assert ex is not None
                output = self._execute(ex, True)
            else:
                output = WorkflowHandle(self, child_id).result()
        except Exception as exc:
            parent.record_child(function_id, wf.name, started, None, exc)
            parent.step_failed(function_id, exc)
            raise
        parent.record_child(function_id, wf.name, started, output, None)
        return output

    def _begin(
        self,
        wf: WorkflowFunction,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        workflow_id: str | None = None,
        parent_id: str | None = None,
    ) -> tuple[str, Execution | None, bool]:
        """Find or create the execution for a workflow about to start.

        Returns:
            ``(id, execution, True)`` when the caller must run it; ``(id, execution, False)``
            when it already runs; ``(id, None, False)`` when it already finished.
        """
        given = workflow_id or take_assigned_id()
        with self._active_lock:
            self._check_open()
            if given is None:
                workflow_id = str(uuid.uuid4())
            else:
                workflow_id = given
                ex = self._active.get(workflow_id)
                if ex is not None:
                    if ex.name != wf.name:
                        raise WorkflowConflictError(workflow_id, ex.name, wf.name)
                    return workflow_id, ex, False
                row = self._store.get_workflow(workflow_id)
                if row is not None:
                    return self._begin_recorded(row, wf)
            row = self._new_row(wf, workflow_id, args, kwargs, parent_id=parent_id)
            seq = self._log.append(row)
            ex = Execution(self, workflow_id, wf.name, wf.fn, args, kwargs)
            ex.row_seq = seq
            self._watch_deadline(ex, row.deadline)
            self._active[workflow_id] = ex
            if given is not None and not self._store.single_process:
                # Another process may have created the same id a moment ago: one row wins.
                self._log.wait_durable(seq)
                row = self._store.get_workflow(workflow_id)
                if row is not None and row.executor_id != self.executor_id:
                    del self._active[workflow_id]
                    return self._begin_recorded(row, wf)
            return workflow_id, ex, True

    def _new_row(
        self,
        wf: WorkflowFunction,
        workflow_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        parent_id: str | None = None,
        queue_name: str | None = None,
    ) -> WorkflowRow:
        """The row of a new workflow: PENDING and run here, or ENQUEUED on ``queue_name``.

        Its deadline comes from an enclosing :func:`workflow_timeout`; a child shares its parent's.
        """
        inputs_json, inputs_pickle = encode(
            {"args": list(args), "kwargs": kwargs},
            what=f"the inputs of workflow {wf.name!r}",
            allow_pickle=self.allow_pickle,
        )
        now = time.time()
        parent = current_execution()
        if parent_id is not None and parent is not None:
            deadline = parent.deadline
        else:
            timeout = current_timeout()
            deadline = None if timeout is None else now + timeout
        if queue_name is not None:
            return WorkflowRow(workflow_id, wf.name, "ENQUEUED", inputs_json, inputs_pickle, created_at=now, updated_at=now, queue_name=queue_name, deadline=deadline)  # fmt: skip
        return WorkflowRow(workflow_id, wf.name, "PENDING", inputs_json, inputs_pickle, created_at=now, updated_at=now, executor_id=self.executor_id, parent_id=parent_id, deadline=deadline)  # fmt: skip

    def _begin_recorded(
        self, row: WorkflowRow, wf: WorkflowFunction
    ) -> tuple[str, Execution | None, bool]:
        """:meth:`_begin` for an id already recorded (caller holds the lock)."""
        if row.name != wf.name:
            raise WorkflowConflictError(row.workflow_id, row.name, wf.name)
        if row.status == Status.PENDING:
            claimed = self._store.claim(row.workflow_id, self.executor_id, time.time())
            if claimed is not None:
                return row.workflow_id, self._activate_row(claimed, wf), True
        return row.workflow_id, None, False

    def _activate_row(self, row: WorkflowRow, wf: WorkflowFunction | None = None) -> Execution:
        """An execution that replays a recorded PENDING workflow (caller holds the lock)."""
        if wf is None or wf.name != row.name:
            wf = lookup_workflow(row.name)
            if wf is None:
                raise FunctionNotRegisteredError(row.workflow_id, row.name)
        inputs = decode(row.inputs_json, row.inputs_pickle, what=f"the inputs of workflow {row.workflow_id!r}", allow_pickle=self.allow_pickle)  # fmt: skip
        replay = self._store.load_replay(row.workflow_id)
        ex = Execution(
            self, row.workflow_id, row.name, wf.fn, tuple(inputs["args"]), inputs["kwargs"],
            replay=replay.records, streams=replay.streams, attempts=replay.attempts,
        )  # fmt: skip
        self._active[row.workflow_id] = ex
        ex.queue_name = row.queue_name
        self._watch_deadline(ex, row.deadline)
        return ex

    def _watch_deadline(self, ex: Execution, deadline: float | None) -> None:
        if deadline is not None:
            ex.deadline = deadline
            self._deadlines.add(deadline, ex.workflow_id)

    def _execute(self, ex: Execution, raise_errors: bool) -> Any:
        """Run an execution to its end in this thread and make its outcome durable."""
        token = ex.activate()
        try:
            self._check_deadline(ex)
            try:
                output = ex.fn(*ex.args, **ex.kwargs)
            except BaseException as exc:
                self._conclude(ex, None, exc)
            else:
                self._conclude(ex, output, None)
        finally:
            ex.deactivate(token)
        if ex.error is not None:
            if raise_errors:
                raise ex.error
            return None
        return ex.result

    async def _execute_async(self, ex: Execution) -> None:
        """:meth:`_execute` for an ``async def`` workflow, as a task of the runtime's loop."""
        token = ex.activate()  # in this task's own context
        try:
            self._check_deadline(ex)
            try:
                output = await ex.fn(*ex.args, **ex.kwargs)
            except BaseException as exc:
                self._conclude(ex, None, exc)
            else:
                self._conclude(ex, output, None)
        finally:
            ex.deactivate(token)

    def _deadline_passed(self, workflow_id: str, deadline: float) -> None:
        ex = self._active.get(workflow_id)
        if ex is not None and ex.deadline == deadline:  # not ended, nor resumed without it since
            self.cancel(workflow_id)

    def _check_deadline(self, ex: Execution) -> None:
        if ex.deadline is not None and time.time() >= ex.deadline:
            self.cancel(ex.workflow_id)  # it timed out while nobody ran it

    def _conclude(self, ex: Execution, output: Any, error: BaseException | None) -> None:
        """Make a finished body's outcome durable and let go of the execution."""
        log = self._log
        seq = 0
        try:
            status = error_text = error_pickle = output_json = output_pickle = error_step = None
            if error is None:
                try:
                    output_json, output_pickle = encode(output, what=f"the result of workflow {ex.name!r}", allow_pickle=self.allow_pickle)  # fmt: skip
                    ex.result = output
                    status = Status.SUCCESS.value
                except BaseException as exc:
                    error = exc
            if error is not None:
                if ex.cancelled:
                    ex.error = WorkflowCancelledError(ex.workflow_id)
                elif ex.interrupted or isinstance(error, _INTERRUPTS):
                    ex.error = (
                        error
                        if isinstance(error, _INTERRUPTS)
                        else WorkflowInterruptedError(ex.workflow_id)
                    )
                else:
                    ex.error = error
                    status = Status.ERROR.value
                    error_text, error_pickle = encode_error(error)
                    error_step = ex.ended_by_step(error)
            if status is None and ex.cancelled:
                log.wait_durable()  # its CANCELLED status (appended with the flag) first
            if status is not None:
                now = time.time()
                with log.lock:
                    if ex.cancelled:
                        ex.error = WorkflowCancelledError(ex.workflow_id)
                    elif not ex.interrupted:
                        ex.finishing = True
                        markers = ex.end_markers(now)
                        seq = log.append_locked(
                            Finish(
                                workflow_id=ex.workflow_id,
                                status=status,
                                ended_at=now,
                                output_json=output_json,
                                output_pickle=output_pickle,
                                error=error_text,
                                error_pickle=error_pickle,
                                error_step=error_step,
                                markers=markers,
                            )
                        )
                if ex.finishing:
                    log.wait_durable(seq)
                    if ex.cancelled:  # by another process, before its end was written
                        ex.error = WorkflowCancelledError(ex.workflow_id)
        except BaseException as exc:  # the database failed under the workflow
            ex.error = exc
        finally:
            with self._active_lock:
                if self._active.get(ex.workflow_id) is ex:
                    del self._active[ex.workflow_id]
            ex.set_done()
            if ex.queue_name is not None and self._dispatcher is not None:
                self._dispatcher.ended(ex.queue_name, ex.workflow_id)

    # -- managing workflows ------------------------------------------------------------------

    def _execution(self, workflow_id: str) -> Execution | None:
        return self._active.get(workflow_id)

    def exists(self, workflow_id: str) -> bool:
        """Whether a workflow with this id exists (running here, or recorded)."""
        return workflow_id in self._active or self._store.get_status(workflow_id) is not None

    def get_workflow(self, workflow_id: str) -> WorkflowHandle:
        """The handle of an existing workflow; raises :class:`WorkflowNotFoundError`."""
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self.database)
        return WorkflowHandle(self, workflow_id)

    def status(self, workflow_id: str) -> Status:
        """The workflow's durable status."""
        ex = self._active.get(workflow_id)
        if ex is not None and ex.final_status is None:
            return Status.PENDING
        status = self._store.get_status(workflow_id)
        if status is None:
            if ex is not None:
                return Status.PENDING
            raise WorkflowNotFoundError(workflow_id, self.database)
        return Status(status)

    def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow: its status becomes CANCELLED and its open streams close, durably.

        A running workflow stops at its next step or stream write. Finished workflows are left
        as they are.
        """
        log = self._log
        with self._active_lock:
            ex = self._active.get(workflow_id)
            with log.lock:
                if ex is not None:
                    if ex.finishing or ex.cancelled:
                        return
                    ex.cancelled = True
                    now = time.time()
                    seq = log.append_locked(
                        Finish(
                            workflow_id=workflow_id,
                            status="CANCELLED",
                            ended_at=now,
                            markers=ex.end_markers(now),
                        )
                    )
                else:
                    status = self._store.get_status(workflow_id)
                    if status is None:
                        raise WorkflowNotFoundError(workflow_id, self.database)
                    if Status(status).is_final:
                        return
                    seq = log.append_locked(
                        Finish(workflow_id=workflow_id, status="CANCELLED", ended_at=time.time())
                    )
        if ex is not None:
            ex.wakeup.set()
        log.wait_durable(seq)

    def resume(self, workflow_id: str) -> WorkflowHandle:
        """Run an interrupted, cancelled or failed workflow on from its last checkpoint.

        Recorded steps are not run again; for a failed workflow, the step whose error ended it
        runs again. A running or successful workflow is left as it is, also when another process
        runs it (its handle then waits for that process).
        """
        return self._resume(workflow_id)[0]

    def _resume(self, workflow_id: str) -> tuple[WorkflowHandle, bool]:
        """:meth:`resume`, and whether this call took the workflow over (to run it here)."""
        running = self._active.get(workflow_id)
        # cancelled, but still on its way out: give it a moment to reach its next checkpoint
        if running is not None and running.cancelled and not running.done.wait(10.0):
            raise WaitTimeoutError(
                f"Workflow {workflow_id!r} was cancelled but is still inside a step; it "
                "stops at its next checkpoint. Resume it once that step has returned."
            )
        with self._active_lock:
            self._check_open()
            running = self._active.get(workflow_id)
            if running is not None:
                return WorkflowHandle(self, workflow_id, running), False
            row = self._row(workflow_id)
            if row.status == Status.SUCCESS:
                return WorkflowHandle(self, workflow_id), False
            if lookup_workflow(row.name) is None:
                raise FunctionNotRegisteredError(workflow_id, row.name)
            self._log.wait_durable()  # e.g. a cancel queued here goes first
            now = time.time()
            claimed = self._store.claim(workflow_id, self.executor_id, now, reopen=True)
            if claimed is None:  # it ended meanwhile, or another live process runs it
                return WorkflowHandle(self, workflow_id), False
            if row.status != Status.PENDING:  # its end markers are gone: readers look again
                self._notifier.changed(workflow_id)
            ex = self._activate_row(claimed)
        self._spawn(ex)
        return WorkflowHandle(self, workflow_id, ex), True

    def recover(self) -> list[WorkflowHandle]:
        """Resume every interrupted (PENDING, not running) workflow whose function is declared.

        Workflows whose function is not declared in this process are named in a warning and
        left for a process that declares them. On a shared database (PostgreSQL), a workflow is
        interrupted when the process that ran it has closed its runtime or died, and each one is
        taken over in a transaction: several processes recovering at once resume each workflow
        once, and the handles returned are those of the workflows this call took.
        """
        handles, missing = [], []
        for row in self._store.pending_workflows():
            if row.workflow_id in self._active:
                continue
            if lookup_workflow(row.name) is None:
                missing.append(f"{row.workflow_id} ({row.name})")
                continue
            handle, taken = self._resume(row.workflow_id)
            if taken:
                handles.append(handle)
        if missing:
            logger.warning(
                "Not recovered: %d workflow(s) whose function is not declared in this process: "
                "%s. Import or define them, then call nbflow.recover() again.",
                len(missing),
                ", ".join(missing),
            )
        return handles

    def wait_elsewhere(self, workflow_id: str, timeout: float | None) -> WorkflowRow | None:
        """Wait for a PENDING (or ENQUEUED) workflow that no execution of this runtime runs to end.

        Returns:
            Its final row, or None when it started running in this runtime meanwhile.

        Raises:
            WorkflowInterruptedError: No live process runs it (resume or recover it). On a shared
                store, a workflow of a queue is waited for instead: workers recover it.
            WaitTimeoutError: It did not end within ``timeout`` seconds.
        """
        changed = threading.Event()
        sub = self._notifier.subscribe(workflow_id, None, changed.set)
        deadline = None if timeout is None else time.monotonic() + timeout
        poll = self._store.poll_interval
        try:
            while True:
                changed.clear()
                with self._active_lock:  # a dispatcher claims and activates under it
                    row = self._row(workflow_id)
                    if workflow_id in self._active:
                        return None
                if Status(row.status).is_final:
                    return row
                if row.status == Status.PENDING and (
                    self._store.single_process
                    or (row.queue_name is None and not self._store.executor_alive(row.executor_id))
                ):  # (a queue's workers recover the workflows of a worker that died)
                    raise WorkflowInterruptedError(workflow_id)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeoutError(
                        f"Workflow {workflow_id!r} did not finish within {timeout} s; it is "
                        "still running in another process. Call .result() again to wait longer."
                    )
                changed.wait(left if poll is None else min(poll, left or poll))
                self._check_open()
        finally:
            self._notifier.unsubscribe(sub)

    # -- streams -----------------------------------------------------------------------------

    def read_stream(
        self, workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
    ) -> Iterator[Any]:
        """Iterate over a stream's values from offset ``start``, until it is closed."""
        return StreamReader(self, workflow_id, key, start, timeout).values()

    def read_stream_async(
        self, workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """The same as :meth:`read_stream`, as an async iterator."""
        return StreamReader(self, workflow_id, key, start, timeout).avalues()

    # -- closing -----------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop this runtime: running workflows stop at their next checkpoint (and stay PENDING,
        to be recovered later), everything written is committed, and the database is closed.
        """
        with self._active_lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._active.values())
        with self._log.lock:
            for ex in running:
                ex.interrupted = True
                ex.wakeup.set()
        deadline = time.monotonic() + timeout
        for ex in running:
            ex.done.wait(max(0.0, deadline - time.monotonic()))
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._loop is not None:
            self._loop.close(max(0.1, deadline - time.monotonic()))
        self._deadlines.close()
        self._log.close()
        self._notifier.wake_all()
        self._store.close()


_open_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()


@atexit.register
def _close_open_runtimes() -> None:
    """At exit, commit what every open runtime has queued (a crash would lose only that)."""
    for runtime in list(_open_runtimes):
        runtime.close(timeout=2.0)


def serve_queues_everywhere() -> None:
    """A queue was declared: every open runtime that serves queues starts its dispatcher."""
    for runtime in list(_open_runtimes):
        if not runtime.closed:
            runtime.serve_queues()
