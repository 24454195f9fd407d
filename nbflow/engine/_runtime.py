"""The runtime: an open system database and the workflows running in it.

:class:`Runtime` is what a user calls. Its machinery, and what declarations and handles ask of it
(the seam's ``Runner``, the handles' ``Tracker``), is its private
:class:`~nbflow.engine._core.RuntimeCore`.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from nbflow._errors import FunctionNotRegisteredError, WorkflowNotFoundError
from nbflow._records import Status
from nbflow._serialization import check_text
from nbflow.engine import _messages as messages
from nbflow.engine import _rerun
from nbflow.engine import _why as explaining
from nbflow.engine._core import RuntimeCore
from nbflow.engine._execution import Execution
from nbflow.engine._reads import HistoryReads
from nbflow.engine._removals import Removals
from nbflow.engine._transfer import Transfers
from nbflow.store import Store, WorkflowRow
from nbflow.workflow._calls import check_seconds
from nbflow.workflow._context import Runner
from nbflow.workflow._handle import WorkflowHandle
from nbflow.workflow._recovery import Recovered, announce, note_interrupted
from nbflow.workflow._workflows import lookup_workflow

__all__ = ["Runtime", "runtime_of"]

logger = logging.getLogger("nbflow")


class Runtime(HistoryReads, Removals, Transfers):
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
        tracing: None (the default): each workflow is traced through OpenTelemetry once a
            tracer provider is set in this process (``trace.set_tracer_provider``), else not
            (``$NBFLOW_TRACING`` ``1`` or ``0`` forces it on or off); True: traced through the
            global provider; False: never; a ``TracerProvider``: traced through it. Needs the
            ``otel`` extra (nothing imports OpenTelemetry while tracing is off).

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
        tracing: object = None,
    ) -> None:
        self._core = core = RuntimeCore(
            database, allow_pickle=allow_pickle, queues=queues, tracing=tracing
        )
        self.executor_id = core.executor_id
        self.database: str = core.engine.database
        self.allow_pickle = allow_pickle
        _open_runtimes.add(self)
        _by_runner[id(core)] = self  # (the runner a workflow's context names: its core)
        #: Ids of the workflows that were PENDING when the database was opened (interrupted).
        self.interrupted: list[str] = [row.workflow_id for row in self.store.pending_workflows()]
        note_interrupted(self.interrupted, self.database)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._core.executions)} running"
        return f"<nbflow.Runtime {self.database!r} ({state})>"

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The storage backend (for SQL over the history: ``runtime.store.sql(...)``)."""
        return self._core.engine.store

    @property
    def runner(self) -> Runner:
        """What declarations and workflow bodies ask of this runtime (``nbflow``'s own use)."""
        return self._core

    @property
    def closed(self) -> bool:
        return self._core.engine.closed

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written so far is durable. Returns False on timeout."""
        return self._core.engine.flush(timeout)

    # -- starting and managing workflows -------------------------------------------------------

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Start the workflow ``fn(*args, **kwargs)`` in a background thread; return its handle.

        From a workflow body, the start is a checkpoint: the child is that workflow's (its
        ``parent_id``), and a replay of the parent returns the same child.
        """
        return self._core.start(fn, *args, **kwargs)

    def cancel(self, workflow_id: str) -> None:
        """Cancel a workflow: its status becomes CANCELLED and its open streams close, durably.

        A running workflow stops at its next step or stream write. Finished workflows are left
        as they are.
        """
        self._core.lifecycle.cancel(workflow_id)

    def resume(self, workflow_id: str, *, rerun_changed: bool = False) -> WorkflowHandle:
        """Run an interrupted, cancelled or failed workflow (or one that gave up: recovered
        past its ``max_recovery_attempts``) on from its last checkpoint, its count of
        recoveries started again.

        Recorded steps are not run again; for a failed workflow, the step whose error ended it
        runs again. A running or successful workflow is left as it is, also when another process
        runs it (its handle then waits for that process). A replayed step whose code changed
        since it ran is replayed all the same, and one warning names those steps.

        Args:
            workflow_id: The workflow.
            rerun_changed: When its code changed since it ran (a step's or the body's
                fingerprint differs), run it again as a new workflow ``<id>.2`` (``.3``, …) that
                takes the old run's checkpoints wherever name, code and arguments still match,
                and runs every other call (an interrupted old run is cancelled: the new run
                supersedes it). Unchanged code: a resume as above.

        Returns:
            The handle of the run that goes on (the new run's, after a re-run).
        """
        if not rerun_changed:
            return self._core.lifecycle.resume(workflow_id)[0]
        plan = self.rerun_plan(workflow_id)
        if plan is None:
            return self._core.lifecycle.resume(workflow_id)[0]
        return self.rerun(workflow_id, plan.new_id)

    def rerun_plan(self, workflow_id: str) -> _rerun.RerunPlan | None:
        """The re-run of ``workflow_id`` (its new id, and what changed) when its code changed
        since it ran and it may run again here (not running in this process or another); else
        None."""
        check_text(workflow_id, "A workflow id")
        core = self._core
        core.engine.flush()
        row = core.history.row(workflow_id)
        if lookup_workflow(row.name) is None:
            raise FunctionNotRegisteredError(workflow_id, row.name)
        if workflow_id in core.executions:
            return None
        changes = _rerun.code_changes(core.engine.store, row)
        if not changes:
            return None
        elsewhere = row.executor_id != core.engine.executor_id
        if (
            row.status == "PENDING"
            and elsewhere
            and core.engine.store.executor_alive(row.executor_id)
        ):
            return None  # it runs in another process
        return _rerun.RerunPlan(_rerun.next_run_id(core.engine.store, workflow_id), changes)

    def rerun(self, workflow_id: str, new_id: str) -> WorkflowHandle:
        """Run ``workflow_id`` again as ``new_id``, taking its checkpoints where they still
        hold (see :meth:`resume`); from :meth:`rerun_plan`."""
        core = self._core
        return _rerun.rerun(
            core.lifecycle, core.engine.store, core.history.row(workflow_id), new_id
        )

    def code_changes(self, workflow_id: str) -> _rerun.CodeChanges:
        """What changed in the code of ``workflow_id`` since it ran: its body, its steps."""
        return _rerun.code_changes(self._core.engine.store, self._core.history.row(workflow_id))

    def recover(self) -> Recovered:
        """Resume every interrupted (PENDING, not running) workflow this process can load.

        The others (function not declared here, inputs or replay that cannot be decoded) are
        named in one warning and left PENDING; one recovered past its workflow's
        ``max_recovery_attempts`` is named too, marked MAX_RECOVERY_ATTEMPTS_EXCEEDED instead of
        run. On PostgreSQL a workflow is interrupted when its
        process closed its runtime or died; each is taken over in a transaction, so processes
        recovering at once resume each workflow once.

        Returns:
            The handles of the workflows this call resumed (a list); its ``skipped`` names those
            left, with the reason, and ``running`` those already running in this process.
        """
        recovered = self._core.lifecycle.recover()
        announce(recovered)  # (a warning names those left, with the reason)
        return recovered

    def fork(self, workflow_id: str, from_step: int) -> WorkflowHandle:
        """A new workflow that reuses ``workflow_id``'s operations before ``from_step`` and runs on.

        ``from_step`` is a function id, as ``list_steps`` shows it: the steps before it (and the
        stream items, events and messages they recorded) are copied, not run; the rest runs again.
        The new workflow's id is a new uuid, or the one given by :func:`set_workflow_id`.
        """
        return self._core.lifecycle.fork(workflow_id, from_step)

    # -- reading -------------------------------------------------------------------------------

    def execution(self, workflow_id: str) -> Execution | None:
        """The execution of a workflow running in this runtime, or None (for handles and tools)."""
        return self._core.executions.get(workflow_id)

    def exists(self, workflow_id: str) -> bool:
        """Whether a workflow with this id exists (running here, or recorded)."""
        return self._core.history.exists(workflow_id)

    def get_workflow(self, workflow_id: str) -> WorkflowHandle:
        """The handle of an existing workflow; raises :class:`WorkflowNotFoundError`."""
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self.database)
        return WorkflowHandle(self._core, workflow_id)

    def status(self, workflow_id: str) -> Status:
        """The workflow's durable status."""
        return self._core.history.status(workflow_id)

    def workflow_row(self, workflow_id: str) -> WorkflowRow:
        """The raw recorded row of a workflow (for tools such as the CLI)."""
        return self._core.history.row(workflow_id)

    def events(self, workflow_id: str) -> dict[str, Any]:
        """The events a workflow set (:func:`nbflow.set_event`): each key's last value."""
        return self._core.history.events(workflow_id)

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
        return self._core.history.record_step(
            workflow_id, name, output, span, workflow_name, pickled
        )

    def recorded_steps(
        self, workflow_id: str, name: str | None = None, *, newest_first: bool = False
    ) -> Iterator[tuple[int, str, Any, float, float]]:
        """The steps of a record-keeping workflow: ``(function_id, name, output, started, ended)``.

        Only steps called ``name`` when it is given; each output is decoded only when the
        iterator reaches it, so a caller that stops at the first match unpickles nothing else.
        """
        return self._core.history.recorded_steps(workflow_id, name, newest_first=newest_first)

    def recorded_pickle(self, workflow_id: str, function_id: int) -> Any:
        """The ``pickled`` bytes given to :meth:`record_step` for that step (None if none): bytes,
        or a memory-mapped buffer (``pickle.loads`` takes either) when it is kept in a file.

        Raises:
            SerializationError: This runtime was opened with ``allow_pickle=False``.
        """
        return self._core.history.recorded_pickle(workflow_id, function_id)

    def read_value(self, workflow_id: str, function_id: int | None = None) -> Any:
        """A stored output, decoded: step ``function_id``'s (see :meth:`list_steps`), else the
        workflow's result (None while it runs). A DataFrame comes back as it was stored; to
        query it in SQL: ``rt.store.sql("SELECT ... FROM t", frames={"t": rt.read_value(id, 2)})``.

        Raises:
            WorkflowNotFoundError: No workflow has this id.
            InvalidValueError: The workflow has no step with this id and an output.
        """
        return self._core.history.read_value(workflow_id, function_id)

    def read_stream(
        self, workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
    ) -> Iterator[Any]:
        """Iterate over a stream's values from offset ``start``, until it is closed.

        From a workflow body, each value read is a checkpoint: a replay reads the same values.
        """
        history = self._core.history
        body = self._core.body()
        if body is not None:
            history.check_read(workflow_id, key, start, timeout)  # (at the call, not at next())
            return body.read_stream(workflow_id, key, start, timeout)
        return history.reader(workflow_id, key, start, timeout).values()  # (checks too)

    def read_stream_async(
        self, workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
    ) -> AsyncIterator[Any]:
        """The same as :meth:`read_stream`, as an async iterator."""
        history = self._core.history
        history.check_read(workflow_id, key, start, timeout)
        body = self._core.body()
        if body is not None:
            return body.read_stream_async(workflow_id, key, start, timeout)
        return history.reader(workflow_id, key, start, timeout).avalues()

    # -- messages and events -------------------------------------------------------------------

    def send(
        self,
        workflow_id: str,
        message: Any,
        topic: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Send ``message`` to a workflow (see :func:`nbflow.send`)."""
        check_text(workflow_id, "A workflow id")
        for text, what in ((topic, "A topic"), (idempotency_key, "An idempotency key")):
            if text is not None:
                check_text(text, what)
        body = self._core.body()
        ex = None if body is None else body.ex
        engine = self._core.engine
        messages.send(engine, ex, self.exists, workflow_id, message, topic, idempotency_key)

    def get_event(self, workflow_id: str, key: str, timeout: float | None = 60.0) -> Any:
        """The last value a workflow set for ``key`` (see :func:`nbflow.get_event`)."""
        check_text(workflow_id, "A workflow id")
        check_text(key, "An event key")
        check_seconds(timeout, "timeout")
        return messages.get_event(self._core.engine, self._event_body(), workflow_id, key, timeout)

    async def get_event_async(
        self, workflow_id: str, key: str, timeout: float | None = 60.0
    ) -> Any:
        """:meth:`get_event` without blocking the caller's event loop."""
        check_text(workflow_id, "A workflow id")
        check_text(key, "An event key")
        check_seconds(timeout, "timeout")
        body = self._event_body()
        return await messages.get_event_async(self._core.engine, body, workflow_id, key, timeout)

    # -- closing -------------------------------------------------------------------------------

    # -- the step cache ------------------------------------------------------------------------

    def why(self, step: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> str:
        """Why a cached step's call runs rather than taking a kept result, in a sentence.

        With arguments: whether that call would run now, and why (an argument changed and
        which, the code of which function changed (a helper two levels down named as such), it
        expired, a refresh, never run). Without: why the last call of the step ran.

        Args:
            step: A step declared with ``@nbflow.step(cache=...)``, or its name.
            *args: The arguments of the call to explain.
            **kwargs: Its keyword arguments.

        Raises:
            InvalidValueError: ``step`` is not a cached step declared in this process.
        """
        declared = explaining.cached_step(step)
        if not args and not kwargs and not explaining.takes_no_arguments(declared):
            return explaining.explain_last(self._core.engine, declared.name)
        return explaining.explain(self._core.engine, declared, args, kwargs)

    def clear_cache(
        self,
        step: Callable[..., Any] | str | None = None,
        *,
        older_than: float | dt.timedelta | dt.datetime | None = None,
    ) -> int:
        """Delete results kept by cached steps; how many were deleted.

        Args:
            step: Only this step's (a cached step or its name); None: every step's.
            older_than: Only those kept longer ago than this (seconds or a timedelta), or before
                this datetime.
        """
        if step is None or isinstance(step, str):
            name = None if step is None else explaining.resolved_name(step)
        else:
            name = explaining.step_name(step)
        self._core.engine.flush()
        return self._core.engine.store.clear_cache(name, explaining.cutoff(older_than))

    def close(self, timeout: float = 10.0, *, compact: bool | None = None) -> None:
        """Stop this runtime: running workflows stop at their next checkpoint (and stay PENDING,
        to be recovered later), everything written is committed, and the database is closed.

        Args:
            timeout: Seconds to wait at most for running workflows to stop.
            compact: Rewrite a DuckDB file without the space deleted rows held (crash-safe, see
                ``store/_duckcompact.py``): None when this runtime's deletes freed a quarter of
                it (or 256 MB), True always, False never.
        """
        if compact is not None and not self.closed:
            self._core.engine.store.compact_on_close = compact
        self._core.close(timeout)


_open_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()
#: Each runtime by the id of its core, the runner a workflow's context names (an entry lives
#: as long as its runtime, which keeps its core, so an id is never another object's).
_by_runner: weakref.WeakValueDictionary[int, Runtime] = weakref.WeakValueDictionary()


def runtime_of(runner: object) -> Runtime | None:
    """The runtime whose workflows run on ``runner`` (a workflow context's), or None."""
    return runner if isinstance(runner, Runtime) else _by_runner.get(id(runner))


@atexit.register
def _close_open_runtimes() -> None:
    """At exit, commit what every open runtime has queued (a crash would lose only that)."""
    for runtime in list(_open_runtimes):
        runtime.close(timeout=2.0)
