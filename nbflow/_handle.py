"""Handles: how callers follow and control a workflow."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from nbflow._errors import WaitTimeoutError
from nbflow._records import Status

if TYPE_CHECKING:
    from nbflow._execution import Execution
    from nbflow._runtime import Runtime

__all__ = ["WorkflowHandle"]


class WorkflowHandle:
    """A workflow, started here or found by id.

    Attributes:
        workflow_id: The workflow's id.
    """

    def __init__(
        self, runtime: Runtime, workflow_id: str, execution: Execution | None = None
    ) -> None:
        self._runtime = runtime
        self.workflow_id = workflow_id
        self._execution = execution  # kept, so result() gives the very object it returned

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.workflow_id!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkflowHandle) and other.workflow_id == self.workflow_id

    def __hash__(self) -> int:
        return hash(self.workflow_id)

    def status(self) -> Status:
        """The workflow's durable status."""
        return self._runtime.status(self.workflow_id)

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
        runtime = self._runtime
        ex = self._execution or runtime._execution(self.workflow_id)
        if ex is not None:
            if not ex.done.wait(timeout):
                raise WaitTimeoutError(
                    f"Workflow {self.workflow_id!r} did not finish within {timeout} s; it is "
                    "still running. Call .result() again to wait longer."
                )
            if ex.error is not None:
                raise ex.error
            return ex.result
        row = runtime.workflow_row(self.workflow_id)
        if not Status(row.status).is_final:
            final = runtime.wait_elsewhere(self.workflow_id, timeout)
            if final is None:  # it started running here meanwhile
                self._execution = runtime._execution(self.workflow_id)
                return self.result(timeout)
            row = final
        return runtime.outcome(row)

    async def result_async(self, timeout: float | None = None) -> Any:
        """:meth:`result`, awaited: waits without blocking the caller's event loop."""
        ex = self._execution or self._runtime._execution(self.workflow_id)
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
            raise WaitTimeoutError(
                f"Workflow {self.workflow_id!r} did not finish within {timeout} s; it is "
                "still running. Await .result_async() again to wait longer."
            ) from None
        return self.result(0)

    def cancel(self) -> None:
        """Cancel the workflow (see :func:`nbflow.cancel`)."""
        self._runtime.cancel(self.workflow_id)
