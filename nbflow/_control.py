"""How a runtime starts work other than by ``start``: queues, forks, messages and events."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from nbflow import _communication as communication
from nbflow._errors import FunctionNotRegisteredError, WorkflowConflictError
from nbflow._execution import Execution
from nbflow._handle import WorkflowHandle
from nbflow._loop import LoopThread
from nbflow._queues import Dispatcher, Queue
from nbflow._workflow import (
    WorkflowFunction,
    lookup_workflow,
    registered_names,
    take_assigned_id,
)
from nbflow._writelog import WriteLog
from nbflow.store import Store, WorkflowRow
from nbflow.store._ops import Enqueue, Fork

if TYPE_CHECKING:
    from nbflow._runtime import Runtime

__all__ = ["Control"]


class Control:
    """Queues, forks, messages and the event loop of :class:`~nbflow.Runtime` (a mixin: the
    runtime provides the state)."""

    executor_id: str
    allow_pickle: bool
    _store: Store
    _log: WriteLog
    _active: dict[str, Execution]
    _active_lock: threading.RLock
    _closed: bool
    _loop: LoopThread | None
    _dispatcher: Dispatcher | None
    _queue_names: list[str] | None

    @property
    def _me(self) -> Runtime:
        return cast("Runtime", self)

    if TYPE_CHECKING:  # provided by the runtime

        def _check_open(self) -> None: ...

        def flush(self, timeout: float | None = None) -> bool: ...

        def exists(self, workflow_id: str) -> bool: ...

        def _row(self, workflow_id: str) -> WorkflowRow: ...

        def _activate_row(
            self, row: WorkflowRow, wf: WorkflowFunction | None = None
        ) -> Execution: ...

        def _spawn(self, ex: Execution) -> None: ...

        def _new_row(
            self,
            wf: WorkflowFunction,
            workflow_id: str,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            *,
            parent_id: str | None = None,
            queue_name: str | None = None,
        ) -> WorkflowRow: ...

    # -- queues ------------------------------------------------------------------------------

    def _event_loop(self) -> LoopThread:
        """The runtime's own event loop thread, for async workflows (started on first use)."""
        with self._active_lock:
            self._check_open()
            if self._loop is None:
                self._loop = LoopThread()
            return self._loop

    def serve_queues(self) -> None:
        """Start running enqueued workflows (done by itself when a runtime opens, or when a queue
        is declared, if the runtime serves queues)."""
        with self._active_lock:
            if self._dispatcher is None and not self._closed and self._queue_names != []:
                self._dispatcher = Dispatcher(self._me, self._queue_names)

    def enqueue(
        self, queue: Queue, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> WorkflowHandle:
        """Record ``fn(*args, **kwargs)`` as ENQUEUED on ``queue`` (see :meth:`Queue.enqueue`)."""
        wf = _as_workflow(fn)
        given = take_assigned_id()
        with self._active_lock:
            self._check_open()
            if given is not None:
                existing = self._active.get(given) or self._store.get_workflow(given)
                if existing is not None:
                    if existing.name != wf.name:
                        raise WorkflowConflictError(given, existing.name, wf.name)
                    return WorkflowHandle(self._me, given)
            workflow_id = given or str(uuid.uuid4())
            row = self._new_row(wf, workflow_id, args, kwargs, queue_name=queue.name)
            seq = self._log.append(Enqueue(row))
        self._log.wait_durable(seq)
        if self._dispatcher is not None:
            self._dispatcher.wake()
        return WorkflowHandle(self._me, workflow_id)

    def _dequeue(self, queue: Queue, limit: int | None) -> list[str]:
        """Take the queue's workflows that may run now and start them here (dispatcher thread)."""
        names = registered_names()
        with self._active_lock:  # claimed and active at once, for wait_elsewhere()
            if self._closed:
                return []
            rows = self._store.dequeue(queue.name, self.executor_id, names, 100 if limit is None else limit, queue.concurrency, time.time())  # fmt: skip
            executions = [self._activate_row(row) for row in rows]
        for ex in executions:
            self._spawn(ex)
        return [ex.workflow_id for ex in executions]

    # -- forks and messages ------------------------------------------------------------------

    def fork(self, workflow_id: str, from_step: int) -> WorkflowHandle:
        """A new workflow that reuses ``workflow_id``'s operations before ``from_step`` and runs on.

        ``from_step`` is a function id, as ``list_steps`` shows it: the steps before it (and the
        stream items, events and messages they recorded) are copied, not run; the rest runs again.
        The new workflow's id is a new uuid, or the one given by :func:`set_workflow_id`.
        """
        if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 1:
            raise ValueError(f"from_step must be a function id >= 1, not {from_step!r}.")
        self.flush()
        row = self._row(workflow_id)
        wf = lookup_workflow(row.name)
        if wf is None:
            raise FunctionNotRegisteredError(workflow_id, row.name)
        new_id = take_assigned_id() or str(uuid.uuid4())
        with self._active_lock:
            self._check_open()
            if self.exists(new_id):
                raise WorkflowConflictError(new_id, "an existing workflow", f"a fork of {workflow_id!r}")  # fmt: skip
            fork = Fork(workflow_id, new_id, from_step, time.time(), self.executor_id)
            self._log.wait_durable(self._log.append(fork))
            ex = self._activate_row(self._row(new_id), wf)
        self._spawn(ex)
        return WorkflowHandle(self._me, new_id, ex)

    def send(self, workflow_id: str, message: Any, topic: str | None = None) -> None:
        """Send ``message`` to a workflow (see :func:`nbflow.send`)."""
        communication.send(self._me, workflow_id, message, topic)

    def get_event(self, workflow_id: str, key: str, timeout: float | None = 60.0) -> Any:
        """The last value a workflow set for ``key`` (see :func:`nbflow.get_event`)."""
        return communication.get_event(self._me, workflow_id, key, timeout)


def _as_workflow(fn: Callable[..., Any]) -> WorkflowFunction:
    if isinstance(fn, WorkflowFunction):
        return fn
    raise TypeError(
        f"nbflow.start() needs a function decorated with @nbflow.workflow, not {fn!r}. "
        "Decorate it, e.g. @nbflow.workflow above its def."
    )
