"""The life of workflows in one runtime: begin, run, end, cancel, resume, recover, fork, queue.

A workflow begins as a row appended to the write log and an :class:`Execution` in the runtime's
table; its body runs in a thread of its own (or as a task of nbflow's loop) through
:mod:`nbflow.engine._workflows`; it ends when its final status is durable and it leaves the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from nbflow._errors import (
    NO_THREAD,
    FunctionNotRegisteredError,
    WaitTimeoutError,
    WorkflowConflictError,
    WorkflowInterruptedError,
    WorkflowNotFoundError,
)
from nbflow._fingerprint import fingerprint
from nbflow._ids import new_id
from nbflow._records import Status
from nbflow._serialization import check_text
from nbflow.engine._code import Reuse
from nbflow.engine._deadlines import Deadlines
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Execution, Executions, State
from nbflow.engine._loop import LoopThread
from nbflow.engine._queues import Taken, enqueue_once, queued_row, take
from nbflow.engine._recovery import claim, recover
from nbflow.engine._threads import WorkflowThreads
from nbflow.engine._tracing import Tracing
from nbflow.engine._workflows import WorkflowRun, run_body, run_body_async
from nbflow.store import WorkflowRow
from nbflow.store._base import Replay
from nbflow.store._ops import Enqueue, Finish, Fork
from nbflow.workflow import _context as context
from nbflow.workflow._cache import refreshing
from nbflow.workflow._calls import DeclaredQueue, DeclaredWorkflow, WorkflowCall
from nbflow.workflow._handle import Tracker, WorkflowHandle
from nbflow.workflow._queues import options_for
from nbflow.workflow._recovery import Recovered
from nbflow.workflow._workflows import as_workflow, lookup_workflow, registered_names

__all__ = ["Begun", "Lifecycle"]


class Begun(NamedTuple):
    """What beginning a workflow found: its id, and the execution to run (``created``) or that
    runs it already; ``execution`` None when it already finished."""

    workflow_id: str
    execution: Execution | None
    created: bool


class Lifecycle:
    """Starts, runs, ends, cancels and resumes the workflows of one runtime.

    Args:
        engine: The runtime's engine.
        executions: Its table of running executions.
        runner: What children start in (the runtime's core).
        tracker: What the handles it makes ask (the runtime's core).
        loop: Returns nbflow's event loop thread, for ``async def`` workflows.
        ending: Called with each execution as it ends, before its waiters wake.
        tracing: Whether (and how) its workflows are traced.
    """

    def __init__(
        self,
        engine: Engine,
        executions: Executions,
        runner: context.Runner,
        tracker: Tracker,
        *,
        loop: Callable[[], LoopThread],
        ending: Callable[[Execution], None],
        tracing: Tracing,
    ) -> None:
        self._engine = engine
        self._store = engine.store
        self._executions = executions
        self._runner = runner
        self._tracker = tracker
        self._loop = loop
        self._ending = ending
        self._tracing = tracing
        self.deadlines = Deadlines(self._deadline_passed)
        self.threads = WorkflowThreads()

    def handle(self, workflow_id: str, ex: Execution | None = None) -> WorkflowHandle:
        return WorkflowHandle(self._tracker, workflow_id, ex)

    # -- starting ------------------------------------------------------------------------------

    def start(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> WorkflowHandle:
        """Start ``fn(*args, **kwargs)`` in the background; its handle."""
        return self.begin_child(WorkflowCall(as_workflow(fn), args, kwargs))

    def call(self, wf: DeclaredWorkflow, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a workflow durably in this thread (what calling a workflow function does)."""
        __tracebackhide__ = True
        parent = context.current()
        if parent is not None:
            return parent.call_child(wf, args, kwargs)
        return self.run_child(WorkflowCall(wf, args, kwargs))

    def run_child(self, call: WorkflowCall) -> Any:
        """Run the workflow ``call`` here to its end, or wait for it where it runs; its result."""
        __tracebackhide__ = True
        begun = self.begin(call)
        if begun.created:
            assert begun.execution is not None
            return self.execute(begun.execution, raise_errors=True)
        return self.handle(begun.workflow_id, begun.execution).result()

    def begin(self, call: WorkflowCall) -> Begun:
        """Find or create the execution for a workflow about to start."""
        wf = call.wf
        given = call.workflow_id or context.take_assigned_id()
        workflow_id = given or new_id()  # (made before the lock: see nbflow._ids)
        with self._executions.lock:
            self._engine.check_open()
            if given is not None:
                found = self._existing(given, wf)
                if found is not None:
                    return found
            row = self.new_row(call, workflow_id)
            ex = Execution(self._engine, workflow_id, wf.name, wf.fn, call.args, call.kwargs)
            ex.code.refresh = refreshing()
            ex.row_seq = self._engine.log.append(row)
            self._register(ex, row)
            if given is not None and not self._store.single_process:
                # Another process may have created the same id a moment ago: one row wins.
                self._engine.log.wait_durable(ex.row_seq)
                stored = self._store.get_workflow(workflow_id)
                if stored is not None and stored.executor_id != self._engine.executor_id:
                    self._executions.remove(ex)
                    return self._begin_recorded(stored, wf)
            return Begun(workflow_id, ex, True)

    def _existing(self, workflow_id: str, wf: DeclaredWorkflow) -> Begun | None:
        """:meth:`begin` for an id that runs here or is recorded; None for a new id."""
        ex = self._executions.get(workflow_id)
        if ex is not None:
            if ex.name != wf.name:
                raise WorkflowConflictError(workflow_id, ex.name, wf.name)
            return Begun(workflow_id, ex, False)
        row = self._store.get_workflow(workflow_id)
        return None if row is None else self._begin_recorded(row, wf)

    def _begin_recorded(self, row: WorkflowRow, wf: DeclaredWorkflow) -> Begun:
        """:meth:`begin` for an id already recorded (caller holds the lock)."""
        if row.name != wf.name:
            raise WorkflowConflictError(row.workflow_id, row.name, wf.name)
        if row.status == Status.PENDING:  # interrupted: a recovery (result() says if it gave up)
            claimed = claim(self._engine, row.workflow_id, wf, recovery=True, quiet=True)
            if claimed is not None:
                return Begun(row.workflow_id, self.activate_row(claimed, wf), True)
        return Begun(row.workflow_id, None, False)

    def new_row(
        self, call: WorkflowCall, workflow_id: str, queue_name: str | None = None
    ) -> WorkflowRow:
        """The row of a new workflow: PENDING and run here, or ENQUEUED on ``queue_name``.

        Its deadline comes from an enclosing :func:`workflow_timeout`; a child shares its parent's.
        """
        wf, parent_id = call.wf, call.parent_id
        inputs = {"args": list(call.args), "kwargs": call.kwargs}
        inputs_json, inputs_pickle = self._engine.encode(
            inputs, f"the inputs of workflow {wf.name!r}"
        )
        now = time.time()
        parent = None if parent_id is None else self._executions.get(parent_id)
        deadline = context.deadline(now, None if parent is None else parent.deadline)
        return WorkflowRow(
            workflow_id=workflow_id,
            name=wf.name,
            status="PENDING" if queue_name is None else "ENQUEUED",
            inputs_json=inputs_json,
            inputs_pickle=inputs_pickle,
            created_at=now,
            updated_at=now,
            executor_id=self._engine.executor_id if queue_name is None else None,
            parent_id=parent_id,
            queue_name=queue_name,
            deadline=deadline,
            code=fingerprint(wf.fn),
        )

    def activate_row(
        self, row: WorkflowRow, wf: DeclaredWorkflow | None = None, replay: Replay | None = None
    ) -> Execution:
        """An execution that replays a recorded PENDING workflow (caller holds the lock);
        ``replay``: its replay, when already read."""
        if wf is None or wf.name != row.name:
            wf = lookup_workflow(row.name)
            if wf is None:
                raise FunctionNotRegisteredError(row.workflow_id, row.name)
        args, kwargs = self.inputs(row)
        if replay is None:
            replay = self._store.load_replay(row.workflow_id)
        ex = Execution(self._engine, row.workflow_id, row.name, wf.fn, args, kwargs, replay=replay)
        self._register(ex, row)
        return ex

    def inputs(self, row: WorkflowRow) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments a recorded workflow was called with."""
        inputs = self._engine.decode(row.inputs_json, row.inputs_pickle, _inputs(row))
        return tuple(inputs["args"]), inputs["kwargs"]

    def _register(self, ex: Execution, row: WorkflowRow) -> None:
        ex.queue_name = row.queue_name
        ex.trace = self._tracing.run(ex, row)  # (traced: a child of the span current here)
        if row.deadline is not None:
            ex.deadline = row.deadline
            self.deadlines.add(row.deadline, ex.workflow_id)
        self._executions.add(ex)

    # -- running -------------------------------------------------------------------------------

    def spawn(self, ex: Execution) -> None:
        """Run ``ex`` in a thread of its own (or as a task of nbflow's loop)."""
        if ex.is_async:
            self._loop().submit(self._execute_async(ex))
            return
        try:
            self.threads.run(
                partial(self.execute, ex, False), f"nbflow-workflow-{ex.workflow_id[:8]}"
            )
        except RuntimeError as exc:  # no thread to be had: it stays PENDING, for recover()
            ex.interrupt()
            ex.error = WorkflowInterruptedError(ex.workflow_id, reason=f"{NO_THREAD} ({exc})")
            self._release(ex)
            self._engine.flush()  # its row, so that recover() finds it
            raise ex.error from exc

    def execute(self, ex: Execution, raise_errors: bool) -> Any:
        """Run an execution to its end in this thread and make its outcome durable."""
        __tracebackhide__ = True
        try:
            self._check_deadline(ex)
            run_body(WorkflowRun(ex, self._runner))
        finally:
            self._release(ex)
        if ex.error is not None and not raise_errors:
            return None
        return ex.outcome()

    async def _execute_async(self, ex: Execution) -> None:
        """:meth:`execute` for an ``async def`` workflow, as a task of nbflow's loop."""
        try:
            self._check_deadline(ex)
            await run_body_async(WorkflowRun(ex, self._runner))
        finally:
            self._release(ex)

    def _release(self, ex: Execution) -> None:
        """The execution ended: it leaves the table, then its waiters wake."""
        self._executions.remove(ex)
        try:
            self._ending(ex)
        finally:
            ex.set_done()

    def _deadline_passed(self, workflow_id: str, deadline: float) -> None:
        ex = self._executions.get(workflow_id)
        if ex is not None and ex.deadline == deadline:  # not ended, nor resumed without it since
            self.cancel(workflow_id)

    def _check_deadline(self, ex: Execution) -> None:
        if ex.deadline is not None and time.time() >= ex.deadline:
            self.cancel(ex.workflow_id)  # it timed out while nobody ran it

    # -- managing ------------------------------------------------------------------------------

    def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow (see :meth:`Runtime.cancel`)."""
        check_text(workflow_id, "A workflow id")
        log = self._engine.log
        with self._executions.lock:
            ex = self._executions.get(workflow_id)
            if ex is not None:
                seq = ex.cancel(time.time())
            else:
                status = self._store.get_status(workflow_id)
                if status is None:
                    raise WorkflowNotFoundError(workflow_id, self._engine.database)
                if Status(status).is_final:
                    return
                seq = log.append(Finish(workflow_id, "CANCELLED", time.time()))
        if seq is not None:
            log.wait_durable(seq)
        for child_id in self._store.running_children(workflow_id):  # as DBOS does
            self.cancel(child_id)

    def resume(self, workflow_id: str, recovery: bool = False) -> tuple[WorkflowHandle, bool]:
        """Resume (or with ``recovery``, recover) a workflow; also whether this call took it over."""
        check_text(workflow_id, "A workflow id")
        running = self._executions.get(workflow_id)
        # cancelled, but still on its way out: give it a moment to reach its next checkpoint
        if running is not None and running.state is State.CANCELLED and not running.done.wait(10.0):
            raise WaitTimeoutError(
                f"Workflow {workflow_id!r} was cancelled but is still inside a step; it "
                "stops at its next checkpoint. Resume it once that step has returned."
            )
        with self._executions.lock:
            self._engine.check_open()
            running = self._executions.get(workflow_id)
            if running is not None:
                return self.handle(workflow_id, running), False
            ex = self._take_over(workflow_id, recovery)
            if ex is None:
                return self.handle(workflow_id), False
        self.spawn(ex)
        return self.handle(workflow_id, ex), True

    def _take_over(self, workflow_id: str, recovery: bool) -> Execution | None:
        """Claim a recorded workflow to run it here (caller holds the lock)."""
        row = self._store.get_workflow(workflow_id)
        if row is None:
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        wf = lookup_workflow(row.name)
        if row.status == Status.SUCCESS:
            return None
        if wf is None:
            raise FunctionNotRegisteredError(workflow_id, row.name)
        self._engine.flush()  # e.g. a cancel queued here goes first
        claimed = claim(self._engine, workflow_id, wf, recovery=recovery, reopen=True)
        if claimed is None:  # it ended meanwhile, or another live process runs it
            return None
        if row.status != Status.PENDING:  # its end markers are gone: readers look again
            self._engine.notifier.changed(workflow_id)
        return self.activate_row(claimed)

    def recover(self) -> Recovered:
        """Resume every interrupted workflow this process can load (see :func:`recover`)."""
        recovered, executions = recover(self._engine, self._executions, self.activate_row)
        for i, ex in enumerate(executions):
            try:
                self.spawn(ex)
            except WorkflowInterruptedError:  # no thread: neither for those after it
                for rest in executions[i + 1 :]:
                    rest.interrupt()
                    rest.error = WorkflowInterruptedError(rest.workflow_id, reason=NO_THREAD)
                    self._release(rest)
                raise
            recovered.append(self.handle(ex.workflow_id, ex))
            recovered.names[ex.workflow_id] = ex.name
        return recovered

    def fork(self, workflow_id: str, from_step: int) -> WorkflowHandle:
        """A new workflow reusing ``workflow_id``'s operations before ``from_step``."""
        check_text(workflow_id, "A workflow id")
        if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 1:
            raise ValueError(f"from_step must be a function id >= 1, not {from_step!r}.")
        engine = self._engine
        engine.flush()
        source = self._store.get_workflow(workflow_id)
        if source is None:
            raise WorkflowNotFoundError(workflow_id, engine.database)
        wf = lookup_workflow(source.name)
        if wf is None:
            raise FunctionNotRegisteredError(workflow_id, source.name)
        fork_id = context.take_assigned_id() or new_id()
        with self._executions.lock:
            engine.check_open()
            if fork_id in self._executions or self._store.get_status(fork_id) is not None:
                raise WorkflowConflictError(
                    fork_id, "an existing workflow", f"a fork of {workflow_id!r}"
                )
            now = time.time()
            op = Fork(
                workflow_id, fork_id, from_step, now, engine.executor_id, context.deadline(now)
            )
            engine.log.wait_durable(engine.log.append(op))
            row = self._store.get_workflow(fork_id)
            assert row is not None
            ex = self.activate_row(row, wf)
        self.spawn(ex)
        return self.handle(fork_id, ex)

    # -- queues --------------------------------------------------------------------------------

    def begin_child(
        self, call: WorkflowCall, queue: DeclaredQueue | None = None, *, reuse: Reuse | None = None
    ) -> WorkflowHandle:
        """Start (or enqueue on ``queue``) the workflow ``call`` in the background (a child,
        when its parent chose its id); its handle. ``reuse``: an earlier run's checkpoints a new
        run takes where they hold."""
        if queue is not None:
            return self.enqueue(queue, call)
        begun = self.begin(call)
        if begun.created:
            assert begun.execution is not None
            begun.execution.code.reuse = reuse
            self.spawn(begun.execution)
        return self.handle(begun.workflow_id, begun.execution)

    def enqueue(self, queue: DeclaredQueue, call: WorkflowCall) -> WorkflowHandle:
        """Record the workflow ``call`` as ENQUEUED (DELAYED, with a delay) on ``queue``, with
        the options of an enclosing ``enqueue_options`` block (checked against the queue)."""
        wf = as_workflow(call.wf)
        given = call.workflow_id or context.take_assigned_id()
        options = options_for(queue)
        with self._executions.lock:
            self._engine.check_open()
            if given is not None:
                existing = self._executions.get(given) or self._store.get_workflow(given)
                if existing is not None:
                    if existing.name != wf.name:
                        raise WorkflowConflictError(given, existing.name, wf.name)
                    return self.handle(given)
            workflow_id = given or new_id()
            row = queued_row(self.new_row(call._replace(wf=wf), workflow_id, queue.name), options)
            once = row.deduplication_id is not None  # in a transaction of its own, not the log's
            seq = None if once else self._engine.log.append(Enqueue(row))
        if seq is None:
            enqueue_once(self._store, row)
        else:
            self._engine.log.wait_durable(seq)
        return self.handle(workflow_id)

    def dequeue(self, queue: DeclaredQueue, limit: int | None) -> Taken:
        """Take the queue's workflows that may run now and start them here (dispatcher thread)."""
        names = registered_names()
        with self._executions.lock:  # claimed and active at once, for wait_elsewhere()
            if self._engine.closed:
                return Taken([])
            taken = take(self._store, self._engine.executor_id, queue, limit, names)
            executions = [self.activate_row(row) for row in taken.rows]
        for ex in executions:
            self.spawn(ex)
        return Taken([ex.workflow_id for ex in executions], taken.wake_at)


def _inputs(row: WorkflowRow) -> str:
    return f"the inputs of workflow {row.workflow_id!r}"
