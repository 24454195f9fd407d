"""The runtime: an open system database and the workflows running in it.

:class:`Runtime` is the composition root. It owns an :class:`~nbflow._engine.Engine` (store, write
log, notifier), the table of :class:`~nbflow._execution.Executions`, a
:class:`~nbflow._history.History` for reads, and, on demand, the threads around them: the
deadline thread (``nbflow-deadlines``), the dispatcher of queues (``nbflow-queues``) and nbflow's
event loop (``nbflow-loop``). Starting, resuming and ending workflows is :mod:`nbflow._lifecycle`.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import Any

from nbflow import _context as context
from nbflow import _waits as waits
from nbflow._alarm import Wake
from nbflow._calls import WorkflowCall, check_seconds
from nbflow._context import Runner
from nbflow._dispatcher import Dispatcher
from nbflow._engine import Engine
from nbflow._errors import WorkflowNotFoundError
from nbflow._execution import Execution, Executions
from nbflow._handle import WorkflowHandle
from nbflow._history import History
from nbflow._lifecycle import Lifecycle
from nbflow._loop import LoopThread
from nbflow._operations import WorkflowRun
from nbflow._queues import Queue, declared_queues, serve_declared_queues
from nbflow._reader import StreamReader
from nbflow._records import Records, Status, StepInfo, StreamInfo, WorkflowInfo
from nbflow._recovery import Recovered, announce, note_interrupted
from nbflow._reports import Reports
from nbflow._serialization import check_text
from nbflow._workflow import as_workflow
from nbflow.store import Store, WorkflowRow, open_store
from nbflow.store._ops import Changes

__all__ = ["Runtime"]

logger = logging.getLogger("nbflow")


class Runtime(Runner):
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
        store: Store = open_store(database)
        self.executor_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        engine = Engine(
            store,
            executor_id=self.executor_id,
            allow_pickle=allow_pickle,
            on_commit=lambda batch, left_out: self._reports.committed(batch, left_out),
        )
        self._engine = engine
        self._executions = Executions()
        self._reports = Reports(self._executions, engine.notifier, store)
        self._lifecycle = Lifecycle(
            engine, self._executions, self, loop=self._event_loop, ending=self._ending
        )
        self.database: str = store.url
        self.allow_pickle = allow_pickle
        self._history = History(engine, self._executions)
        self._queue_names = None if queues is None else list(queues)
        self._loop: LoopThread | None = None
        self._dispatcher: Dispatcher | None = None
        _open_runtimes.add(self)
        try:
            store.attach(self.executor_id, self._on_remote_change)
        except BaseException:
            self.close()
            raise
        serve_declared_queues(self)
        if self._queue_names or (self._queue_names is None and declared_queues()):
            self.serve_queues()
        #: Ids of the workflows that were PENDING when the database was opened (interrupted).
        self.interrupted: list[str] = [row.workflow_id for row in store.pending_workflows()]
        note_interrupted(self.interrupted, self.database)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._executions)} running"
        return f"<nbflow.Runtime {self.database!r} ({state})>"

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The storage backend (for SQL over the history: ``runtime.store.sql(...)``)."""
        return self._engine.store

    @property
    def closed(self) -> bool:
        return self._engine.closed

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written so far is durable. Returns False on timeout."""
        return self._engine.flush(timeout)

    # -- notifications (committer and listener threads) ----------------------------------------

    def _on_remote_change(self, changed: Changes) -> None:
        """Other processes changed these workflows or queues (shared stores; listener thread)."""
        if changed.queues and self._dispatcher is not None:
            self._dispatcher.wake()  # another process enqueued
        self._reports.changed_elsewhere(changed.workflows)

    # -- threads started on demand --------------------------------------------------------------

    def _event_loop(self) -> LoopThread:
        """The runtime's own event loop thread, for async workflows (started on first use)."""
        with self._executions.lock:
            self._engine.check_open()
            if self._loop is None:
                self._loop = LoopThread()
            return self._loop

    def _ending(self, ex: Execution) -> None:
        if ex.queue_name is not None and self._dispatcher is not None:
            self._dispatcher.ended(ex.queue_name, ex.workflow_id)

    def serve_queues(self) -> None:
        """Start running enqueued workflows (done by itself when a runtime opens, or when a queue
        is declared, if the runtime serves queues)."""
        with self._executions.lock:
            if self._dispatcher is None and not self.closed and self._queue_names != []:
                self._dispatcher = Dispatcher(self._lifecycle.dequeue, self._queue_names)

    def enqueue(
        self, queue: Queue, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> WorkflowHandle:
        """Record ``fn(*args, **kwargs)`` as ENQUEUED on ``queue`` (see :meth:`Queue.enqueue`)."""
        call, body = WorkflowCall(as_workflow(fn), args, kwargs), self._body()
        if body is not None:
            handle = body.start_child(call, queue)
        else:
            handle = self._lifecycle.enqueue(queue, call)
        if self._dispatcher is not None:
            self._dispatcher.wake()
        return handle

    # -- starting and managing workflows -------------------------------------------------------

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Start the workflow ``fn(*args, **kwargs)`` in a background thread; return its handle.

        From a workflow body, the start is a checkpoint: the child is that workflow's (its
        ``parent_id``), and a replay of the parent returns the same child.
        """
        body = self._body()
        if body is not None:
            return body.start_child(WorkflowCall(as_workflow(fn), args, kwargs))
        return self._lifecycle.start(fn, args, kwargs)

    def begin_child(self, call: WorkflowCall, queue: Any = None) -> WorkflowHandle:
        """Start (or enqueue) the child workflow ``call``, whose id its parent chose."""
        handle = self._lifecycle.begin_child(call, queue)
        if queue is not None and self._dispatcher is not None:
            self._dispatcher.wake()
        return handle

    def run_on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on nbflow's event loop thread and wait for its result."""
        return self._event_loop().submit(coro).result()

    def call(self, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a workflow durably in this thread (what calling a workflow function does)."""
        __tracebackhide__ = True
        return self._lifecycle.call(wf, args, kwargs)

    def run_child(self, call: WorkflowCall) -> Any:
        """Run the child ``call.workflow_id`` here, or wait for it; its result."""
        __tracebackhide__ = True
        return self._lifecycle.run_child(call)

    def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow: its status becomes CANCELLED and its open streams close, durably.

        A running workflow stops at its next step or stream write. Finished workflows are left
        as they are.
        """
        self._lifecycle.cancel(workflow_id)

    def resume(self, workflow_id: str) -> WorkflowHandle:
        """Run an interrupted, cancelled or failed workflow on from its last checkpoint.

        Recorded steps are not run again; for a failed workflow, the step whose error ended it
        runs again. A running or successful workflow is left as it is, also when another process
        runs it (its handle then waits for that process).
        """
        return self._lifecycle.resume(workflow_id)[0]

    def recover(self) -> Recovered:
        """Resume every interrupted (PENDING, not running) workflow this process can load.

        The others (function not declared here, inputs or replay that cannot be decoded) are
        named in one warning and left PENDING. On PostgreSQL a workflow is interrupted when its
        process closed its runtime or died; each is taken over in a transaction, so processes
        recovering at once resume each workflow once.

        Returns:
            The handles of the workflows this call resumed (a list); its ``skipped`` names those
            left, with the reason, and ``running`` those already running in this process.
        """
        recovered = self._lifecycle.recover()
        announce(recovered)  # (a warning names those left, with the reason)
        return recovered

    def fork(self, workflow_id: str, from_step: int) -> WorkflowHandle:
        """A new workflow that reuses ``workflow_id``'s operations before ``from_step`` and runs on.

        ``from_step`` is a function id, as ``list_steps`` shows it: the steps before it (and the
        stream items, events and messages they recorded) are copied, not run; the rest runs again.
        The new workflow's id is a new uuid, or the one given by :func:`set_workflow_id`.
        """
        return self._lifecycle.fork(workflow_id, from_step)

    # -- reading -------------------------------------------------------------------------------

    def execution(self, workflow_id: str) -> Execution | None:
        """The execution of a workflow running in this runtime, or None (for handles and tools)."""
        return self._executions.get(workflow_id)

    def exists(self, workflow_id: str) -> bool:
        """Whether a workflow with this id exists (running here, or recorded)."""
        return self._history.exists(workflow_id)

    def get_workflow(self, workflow_id: str) -> WorkflowHandle:
        """The handle of an existing workflow; raises :class:`WorkflowNotFoundError`."""
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self.database)
        return WorkflowHandle(self, workflow_id)

    def status(self, workflow_id: str) -> Status:
        """The workflow's durable status."""
        return self._history.status(workflow_id)

    def workflow_row(self, workflow_id: str) -> WorkflowRow:
        """The raw recorded row of a workflow (for tools such as the CLI)."""
        return self._history.row(workflow_id)

    def outcome(self, row: WorkflowRow) -> Any:
        """The recorded result of a finished workflow; raises its recorded error."""
        __tracebackhide__ = True
        return self._history.outcome(row)

    def wait_elsewhere(self, workflow_id: str, timeout: float | None) -> WorkflowRow | None:
        """Wait for a workflow that no execution of this runtime runs (see :class:`History`)."""
        return self._history.wait_elsewhere(workflow_id, timeout)

    def list_workflows(
        self, *, status: str | Status | None = None, name: str | None = None, limit: int = 100
    ) -> Records[WorkflowInfo]:
        """Workflows, newest first (including those started a moment ago)."""
        return self._history.list_workflows(status=status, name=name, limit=limit)

    def list_steps(self, workflow_id: str) -> Records[StepInfo]:
        """A workflow's recorded steps, in order."""
        return self._history.list_steps(workflow_id)

    def list_streams(self, workflow_id: str) -> Records[StreamInfo]:
        """A workflow's streams, by key."""
        return self._history.list_streams(workflow_id)

    def events(self, workflow_id: str) -> dict[str, Any]:
        """The events a workflow set (:func:`nbflow.set_event`): each key's last value."""
        return self._history.events(workflow_id)

    def record_step(
        self,
        workflow_id: str,
        name: str,
        output: Any,
        *,
        started: float,
        ended: float,
        workflow_name: str = "nbflow.record",
        pickled: bytes | None = None,
    ) -> int:
        """Append a finished step to a record-keeping workflow, from outside any workflow.

        The workflow (``workflow_id``) is created as SUCCESS the first time, so ``recover()``
        never picks it up; its steps show in ``list_steps`` like any others. Durable notebook
        cells use this: one record-keeping workflow per notebook, one step per cell run.

        ``pickled``, when given, is kept in the same step beside ``output`` (which must then be
        JSON-native): ``recorded_steps`` never reads it, :meth:`recorded_pickle` returns it. So a
        large pickle is read only for the one record a caller picked by its output.

        Returns:
            The step's function id (the next after the last one recorded).
        """
        span = (started, ended)
        return self._history.record_step(workflow_id, name, output, span, workflow_name, pickled)

    def recorded_steps(
        self, workflow_id: str, name: str | None = None, *, newest_first: bool = False
    ) -> Iterator[tuple[int, str, Any, float, float]]:
        """The steps of a record-keeping workflow: ``(function_id, name, output, started, ended)``.

        Only steps called ``name`` when it is given; each output is decoded only when the
        iterator reaches it, so a caller that stops at the first match unpickles nothing else.
        """
        return self._history.recorded_steps(workflow_id, name, newest_first=newest_first)

    def recorded_pickle(self, workflow_id: str, function_id: int) -> bytes | None:
        """The ``pickled`` bytes given to :meth:`record_step` for that step (None if none).

        Raises:
            SerializationError: This runtime was opened with ``allow_pickle=False``.
        """
        return self._history.recorded_pickle(workflow_id, function_id)

    def read_stream(
        self, workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
    ) -> Iterator[Any]:
        """Iterate over a stream's values from offset ``start``, until it is closed.

        From a workflow body, each value read is a checkpoint: a replay reads the same values.
        """
        reader = self._reader(workflow_id, key, start, timeout)
        body = self._body()
        if body is not None:
            return body.read_stream(workflow_id, key, start, timeout)
        return reader.values()

    def read_stream_async(
        self, workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """The same as :meth:`read_stream`, as an async iterator."""
        reader = self._reader(workflow_id, key, start, timeout)
        body = self._body()
        if body is not None:
            return body.read_stream_async(workflow_id, key, start, timeout)
        return reader.avalues()

    def _reader(
        self, workflow_id: str, key: str, start: int, timeout: float | None
    ) -> StreamReader:
        return self._history.reader(workflow_id, key, start, timeout)

    def open_reader(
        self, workflow_id: str, key: str, start: int, timeout: float | None, wake: Wake | None
    ) -> StreamReader:
        """A reader for a workflow body (``wake`` lets a cancel end its waits)."""
        return self._history.reader(workflow_id, key, start, timeout, wake)

    # -- messages and events -------------------------------------------------------------------

    def send(self, workflow_id: str, message: Any, topic: str | None = None) -> None:
        """Send ``message`` to a workflow (see :func:`nbflow.send`)."""
        check_text(workflow_id, "A workflow id")
        if topic is not None:
            check_text(topic, "A topic")
        body = self._body()
        ex = None if body is None else body.ex
        waits.send(self._engine, ex, self.exists, workflow_id, message, topic)

    def get_event(self, workflow_id: str, key: str, timeout: float | None = 60.0) -> Any:
        """The last value a workflow set for ``key`` (see :func:`nbflow.get_event`)."""
        check_text(workflow_id, "A workflow id")
        check_text(key, "An event key")
        check_seconds(timeout, "timeout")
        return waits.get_event(self._engine, self._event_body(), workflow_id, key, timeout)

    async def get_event_async(
        self, workflow_id: str, key: str, timeout: float | None = 60.0
    ) -> Any:
        """:meth:`get_event` without blocking the caller's event loop."""
        check_text(workflow_id, "A workflow id")
        check_text(key, "An event key")
        check_seconds(timeout, "timeout")
        body = self._event_body()
        return await waits.get_event_async(self._engine, body, workflow_id, key, timeout)

    def _event_body(self) -> tuple[Execution, WorkflowRun] | None:
        body = self._body()
        return None if body is None else (body.ex, body)

    def _body(self) -> WorkflowRun | None:
        """The workflow of this runtime whose body calls, or None (outside workflows, inside a
        step, or in a workflow of another runtime)."""
        ctx = context.body()
        return ctx if isinstance(ctx, WorkflowRun) and ctx.runner is self else None

    # -- closing -------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop this runtime: running workflows stop at their next checkpoint (and stay PENDING,
        to be recovered later), everything written is committed, and the database is closed.
        """
        engine = self._engine
        with self._executions.lock:
            if engine.closed:
                return
            engine.closed = True
        running = list(self._executions)
        for ex in running:
            ex.interrupt()
        deadline = time.monotonic() + timeout
        for ex in running:
            ex.done.wait(max(0.0, deadline - time.monotonic()))
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._loop is not None:
            self._loop.close(max(0.1, deadline - time.monotonic()))
        self._lifecycle.deadlines.close()
        engine.log.close()
        engine.notifier.wake_all()
        engine.store.close()


_open_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()


@atexit.register
def _close_open_runtimes() -> None:
    """At exit, commit what every open runtime has queued (a crash would lose only that)."""
    for runtime in list(_open_runtimes):
        runtime.close(timeout=2.0)
