"""Handles: how callers follow and control a workflow."""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from nbflow._errors import RuntimeClosedError, WaitTimeoutError
from nbflow._records import Status
from nbflow.store import WorkflowRow
from nbflow.text._format import status_word
from nbflow.text._tables import step_label

__all__ = ["Glance", "Run", "Tracker", "WorkflowHandle"]


class Glance(NamedTuple):
    """What a handle shows of its workflow at a glance (its repr), read without waiting.

    Attributes:
        name: The workflow's registered name.
        status: Its durable status.
        running: For PENDING: whether something runs it (False: it is interrupted).
        done: The last progress item's ``done`` on the stream ``"progress"``, or None.
        total: That item's ``total``, or None.
    """

    name: str
    status: Status
    running: bool = True
    done: float | None = None
    total: float | None = None

    @property
    def word(self) -> str:
        """The status as the views say it (``running``, ``interrupted``, ``failed``, …)."""
        return status_word(self.status, running_here=self.running)

    @property
    def progress(self) -> str:
        """``120/200``, ``120`` without a total, or ``''``."""
        if self.done is None:
            return ""
        shown = _number(self.done)
        return shown if self.total is None else f"{shown}/{_number(self.total)}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


class Run(Protocol):
    """A workflow running in this process, as a handle waits for it."""

    @property
    def done(self) -> threading.Event:
        """Set once the run has ended and its outcome is durable."""

    @property
    def durable_status(self) -> str | None:
        """The final status this run made durable (None: it made none)."""

    def outcome(self) -> Any:
        """The run's result, or its exception raised (once :attr:`done` is set)."""

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` from any thread once the run has ended."""


class Tracker(Protocol):
    """What a handle asks of the runtime it came from (:class:`~nbflow.Runtime` is one)."""

    def status(self, workflow_id: str) -> Status: ...

    def cancel(self, workflow_id: str) -> None: ...

    def execution(self, workflow_id: str) -> Run | None: ...

    def workflow_row(self, workflow_id: str) -> WorkflowRow: ...

    def wait_elsewhere(self, workflow_id: str, timeout: float | None) -> WorkflowRow | None: ...

    def outcome(self, row: WorkflowRow) -> Any: ...

    def glance(self, workflow_id: str) -> Glance:
        """Name, status and progress, read without waiting (it may raise: a closed runtime)."""
        ...


def _still_running(workflow_id: str, timeout: float | None, again: str) -> WaitTimeoutError:
    return WaitTimeoutError(
        f"Workflow {workflow_id!r} did not finish within {timeout} s; it is still running. "
        f"{again} to wait longer."
    )


def _unknown(exc: Exception) -> str:
    """Why a handle cannot say its status: its runtime is closed, or the error in brief."""
    if isinstance(exc, RuntimeClosedError):
        return "its runtime is closed"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"


class WorkflowHandle:
    """A workflow, started here or found by id.

    Attributes:
        workflow_id: The workflow's id.
    """

    def __init__(self, tracker: Tracker, workflow_id: str, execution: Run | None = None) -> None:
        self._tracker = tracker
        self.workflow_id = workflow_id
        self._execution = execution  # kept, so result() gives the very object it returned

    def __repr__(self) -> str:
        """``<WorkflowHandle 'ID' NAME: running, 120/200>``: its status as the views say it,
        its name and its progress; what is known when the database cannot be read."""
        words = self._glance_words()
        return f"<WorkflowHandle {self.workflow_id!r}{words}>"

    def _repr_html_(self) -> str:
        words = html.escape(self._glance_words())
        return f"<code>&lt;WorkflowHandle {html.escape(repr(self.workflow_id))}{words}&gt;</code>"

    def _glance_words(self) -> str:
        """`` NAME: running, 120/200``; never raises."""
        try:
            seen = self._tracker.glance(self.workflow_id)
        except Exception as exc:  # a repr never raises: say what is known
            return f": status unknown ({_unknown(exc)})"
        progress = f", {seen.progress}" if seen.progress else ""
        return f" {step_label(seen.name)}: {seen.word}{progress}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkflowHandle) and other.workflow_id == self.workflow_id

    def __hash__(self) -> int:
        return hash(self.workflow_id)

    @property
    def tracker(self) -> Tracker:
        """The runtime this handle came from."""
        return self._tracker

    @property
    def run(self) -> Run | None:
        """The run in this process that the handle follows, when it has one."""
        return self._execution

    def status(self) -> Status:
        """The workflow's durable status."""
        return self._tracker.status(self.workflow_id)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to end and return its result, or raise its exception.

        Args:
            timeout: Seconds to wait at most (None: as long as it takes).

        Raises:
            WaitTimeoutError: It did not end in time (it goes on running).
            WorkflowCancelledError: It was cancelled.
            WorkflowInterruptedError: It is PENDING but not running (its process stopped);
                ``nbflow.resume(id)`` runs it on. A workflow that another live process runs
                (PostgreSQL) is waited for.
            Exception: Whatever the workflow raised.
        """
        __tracebackhide__ = True
        tracker = self._tracker
        ex = self._execution or tracker.execution(self.workflow_id)
        if ex is not None:
            if not ex.done.wait(timeout):
                raise _still_running(self.workflow_id, timeout, "Call .result() again")
            if not self._superseded(ex):
                return ex.outcome()
            self._execution = None  # it was resumed since: follow the workflow, not that run
            return self.result(timeout)
        row = tracker.workflow_row(self.workflow_id)
        if not Status(row.status).is_final:
            final = tracker.wait_elsewhere(self.workflow_id, timeout)
            if final is None:  # it started running here meanwhile
                self._execution = tracker.execution(self.workflow_id)
                return self.result(timeout)
            row = final
        return tracker.outcome(row)

    def _superseded(self, ex: Run) -> bool:
        """Whether the workflow moved on since the run ``ex`` ended (a failed or cancelled one
        may have been resumed; a successful one never runs again)."""
        status = ex.durable_status
        if status is None or status == "SUCCESS":
            return False
        return self._tracker.workflow_row(self.workflow_id).status != status

    async def result_async(self, timeout: float | None = None) -> Any:
        """:meth:`result`, awaited: waits without blocking the caller's event loop."""
        __tracebackhide__ = True
        ex = self._execution or self._tracker.execution(self.workflow_id)
        if ex is None:
            return await asyncio.to_thread(self.result, timeout)
        loop = asyncio.get_running_loop()
        ended = loop.create_future()

        def wake() -> None:
            if not ended.done():
                ended.set_result(None)

        def wake_from_any_thread() -> None:
            loop.call_soon_threadsafe(wake)

        ex.on_done(wake_from_any_thread)
        try:
            await asyncio.wait_for(ended, timeout)
        except asyncio.TimeoutError:
            raise _still_running(self.workflow_id, timeout, "Await .result_async() again") from None
        return self.result(0)

    def cancel(self) -> None:
        """Cancel the workflow (see :func:`nbflow.cancel`)."""
        self._tracker.cancel(self.workflow_id)
