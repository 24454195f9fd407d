"""The core of a runtime: what it owns, and what declarations and handles ask of it.

:class:`RuntimeCore` is the composition root. It owns an :class:`~nbflow.engine._engine.Engine`
(store, write log, notifier), the table of :class:`~nbflow.engine._execution.Executions`, a
:class:`~nbflow.engine._history.History` for reads, and, on demand, the threads around them: the
deadline thread (``nbflow-deadlines``), the dispatcher of queues (``nbflow-queues``), the
scheduler (``nbflow-schedules``) and nbflow's event loop (``nbflow-loop``). Starting, resuming
and ending workflows is :mod:`nbflow.engine._lifecycle`.

It implements the seam's :class:`~nbflow.workflow._context.Runner` (what ``@workflow``, ``Queue``
and the bodies it runs call) and the handles' :class:`~nbflow.workflow._handle.Tracker`. The
public :class:`~nbflow.Runtime` is a facade over it: user code never sees this object.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from nbflow._records import Status
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Execution, Executions
from nbflow.engine._history import History
from nbflow.engine._inflight import call_cached
from nbflow.engine._lifecycle import Lifecycle
from nbflow.engine._loop import LoopThread
from nbflow.engine._queues import Dispatcher
from nbflow.engine._reader import StreamReader
from nbflow.engine._reports import Reports
from nbflow.engine._retention import Retention
from nbflow.engine._schedules import Scheduler
from nbflow.engine._tracing import Tracing
from nbflow.engine._workflows import WorkflowRun
from nbflow.store import Store, WorkflowRow, open_store
from nbflow.store._history import WorkflowQuery
from nbflow.store._ops import Changes
from nbflow.workflow import _context as context
from nbflow.workflow._alarm import Wake
from nbflow.workflow._calls import DeclaredQueue, DeclaredWorkflow, Step, WorkflowCall
from nbflow.workflow._context import Runner
from nbflow.workflow._handle import Glance, WorkflowHandle
from nbflow.workflow._queues import declared_queues, serve_declared_queues
from nbflow.workflow._schedules import (
    Schedule,
    declared_schedules,
    schedule_id,
    schedule_prefix,
    serve_declared_schedules,
    tick_of,
)
from nbflow.workflow._workflows import as_workflow

__all__ = ["RuntimeCore"]


class RuntimeCore(Runner):
    """The machinery of one open runtime (see the module docstring).

    Args:
        database: As :class:`~nbflow.Runtime` takes it.
        allow_pickle: Whether values that are not JSON-native may be pickled and unpickled.
        queues: The queues whose enqueued workflows it runs (None: every declared queue).
        tracing: As :class:`~nbflow.Runtime` takes it.
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | None,
        *,
        allow_pickle: bool,
        queues: Iterable[str] | None,
        tracing: object = None,
    ) -> None:
        traces = Tracing(tracing)  # (a bad option: nothing was opened)
        store: Store = open_store(database)
        self.executor_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        engine = Engine(
            store,
            executor_id=self.executor_id,
            allow_pickle=allow_pickle,
            on_commit=lambda batch, left_out: self.reports.committed(batch, left_out),
        )
        self.engine = engine
        self.executions = Executions()
        self.reports = Reports(self.executions, engine.notifier, store)
        self.lifecycle = Lifecycle(
            engine,
            self.executions,
            self,
            self,
            loop=self._event_loop,
            ending=self._ending,
            tracing=traces,
        )
        self.history = History(engine, self.executions)
        self.retention = Retention(engine, self.executions, self.history)
        self._queue_names = None if queues is None else list(queues)
        self._loop: LoopThread | None = None
        self._dispatcher: Dispatcher | None = None
        self._scheduler: Scheduler | None = None
        try:
            store.attach(self.executor_id, self._on_remote_change)
        except BaseException:
            self.close()
            raise
        serve_declared_queues(self)
        if self._queue_names or (self._queue_names is None and declared_queues()):
            self.serve_queues()
        serve_declared_schedules(self)
        if declared_schedules():
            self.serve_schedules()

    @property
    def closed(self) -> bool:
        return self.engine.closed

    def body(self) -> WorkflowRun | None:
        """The workflow of this runtime whose body calls, or None (outside workflows, inside a
        step, or in a workflow of another runtime)."""
        ctx = context.body()
        return ctx if isinstance(ctx, WorkflowRun) and ctx.runner is self else None

    # -- notifications (committer and listener threads) ----------------------------------------

    def _on_remote_change(self, changed: Changes) -> None:
        """Other processes changed these workflows or queues (shared stores; listener thread)."""
        if changed.queues and self._dispatcher is not None:
            self._dispatcher.wake()  # another process enqueued
        self.reports.changed_elsewhere(changed.workflows)

    # -- threads started on demand --------------------------------------------------------------

    def _event_loop(self) -> LoopThread:
        """The runtime's own event loop thread, for async workflows (started on first use)."""
        with self.executions.lock:
            self.engine.check_open()
            if self._loop is None:
                self._loop = LoopThread()
            return self._loop

    def _ending(self, ex: Execution) -> None:
        if ex.queue_name is not None and self._dispatcher is not None:
            self._dispatcher.ended(ex.queue_name, ex.workflow_id)

    def serve_queues(self) -> None:
        """Start running enqueued workflows (done by itself when a runtime opens, or when a queue
        is declared, if the runtime serves queues)."""
        with self.executions.lock:
            if self._dispatcher is None and not self.closed and self._queue_names != []:
                self._dispatcher = Dispatcher(self.lifecycle.dequeue, self._queue_names)

    def serve_schedules(self) -> None:
        """Start (or wake) the scheduler: done by itself when a runtime opens with schedules
        declared, or when one is declared or removed (in any runtime: each runs them all)."""
        with self.executions.lock:
            if self.closed:
                return
            if self._scheduler is None:
                self._scheduler = Scheduler(self._fire_schedule, self._last_tick)
            scheduler = self._scheduler
        scheduler.wake()

    def _fire_schedule(self, schedule: Schedule, tick: dt.datetime) -> None:
        """Start ``schedule``'s workflow for ``tick`` (scheduler thread); an id that exists (the
        tick started here or in another process) is left as it is."""
        workflow_id = schedule_id(schedule.name, tick)
        actual = dt.datetime.now(dt.timezone.utc)
        call = WorkflowCall(schedule.workflow, (tick, actual), {}, workflow_id=workflow_id)
        self.lifecycle.begin_child(call)

    def _last_tick(self, name: str) -> dt.datetime | None:
        """The latest tick of schedule ``name`` recorded in the database, or None."""
        self.engine.flush()
        query = WorkflowQuery(name=name, id_prefix=schedule_prefix(name), limit=20)
        ticks = [tick_of(name, row.workflow_id) for row in self.engine.store.list_workflows(query)]
        return max((t for t in ticks if t is not None), default=None)

    def _wake_queues(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.wake()

    # -- Runner: what declarations and bodies ask ----------------------------------------------

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        body = self.body()
        if body is not None:
            return body.start_child(WorkflowCall(as_workflow(fn), args, kwargs))
        return self.lifecycle.start(fn, args, kwargs)

    def call(self, wf: DeclaredWorkflow, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        return self.lifecycle.call(as_workflow(wf), args, kwargs)

    def run_child(self, call: WorkflowCall) -> Any:
        __tracebackhide__ = True
        return self.lifecycle.run_child(call)

    def begin_child(self, call: WorkflowCall, queue: DeclaredQueue | None = None) -> WorkflowHandle:
        handle = self.lifecycle.begin_child(call, queue)
        if queue is not None:
            self._wake_queues()
        return handle

    def open_reader(
        self, workflow_id: str, key: str, start: int, timeout: float | None, wake: Wake | None
    ) -> StreamReader:
        return self.history.reader(workflow_id, key, start, timeout, wake)

    def run_on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self._event_loop().submit(coro).result()

    def enqueue(
        self,
        queue: DeclaredQueue,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> WorkflowHandle:
        call, body = WorkflowCall(as_workflow(fn), args, kwargs), self.body()
        if body is not None:
            handle = body.start_child(call, queue)
        else:
            handle = self.lifecycle.enqueue(queue, call)
        self._wake_queues()
        return handle

    def run_cached(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        return call_cached(self.engine, step, args, kwargs)

    # -- Tracker: what handles ask ---------------------------------------------------------------

    def status(self, workflow_id: str) -> Status:
        return self.history.status(workflow_id)

    def cancel(self, workflow_id: str) -> None:
        self.lifecycle.cancel(workflow_id)

    def execution(self, workflow_id: str) -> Execution | None:
        return self.executions.get(workflow_id)

    def workflow_row(self, workflow_id: str) -> WorkflowRow:
        return self.history.row(workflow_id)

    def wait_elsewhere(self, workflow_id: str, timeout: float | None) -> WorkflowRow | None:
        return self.history.wait_elsewhere(workflow_id, timeout)

    def outcome(self, row: WorkflowRow) -> Any:
        __tracebackhide__ = True
        return self.history.outcome(row)

    def glance(self, workflow_id: str) -> Glance:
        return self.history.glance(workflow_id)

    # -- closing -------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Running workflows stop at their next checkpoint (and stay PENDING), everything written
        is committed, and the database is closed."""
        engine = self.engine
        with self.executions.lock:
            if engine.closed:
                return
            engine.closed = True
        if self._scheduler is not None:  # first: it starts no workflow from now on
            self._scheduler.close()
        running = list(self.executions)
        for ex in running:
            ex.interrupt()
        deadline = time.monotonic() + timeout
        for ex in running:
            ex.done.wait(max(0.0, deadline - time.monotonic()))
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._loop is not None:
            self._loop.close(max(0.1, deadline - time.monotonic()))
        self.lifecycle.deadlines.close()
        self.lifecycle.threads.close()  # (the idle ones; the others end with their workflows)
        engine.log.close()
        engine.notifier.wake_all()
        engine.store.close()
