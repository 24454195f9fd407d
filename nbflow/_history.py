"""What a runtime tells about its workflows: their history, and records kept outside workflows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nbflow._errors import WorkflowCancelledError, WorkflowNotFoundError
from nbflow._execution import Execution, decode_error
from nbflow._records import Records, Status, StepInfo, StreamInfo, WorkflowInfo, utc
from nbflow._serialization import decode, encode
from nbflow._writelog import WriteLog
from nbflow.store import StepRow, Store, WorkflowRow
from nbflow.store._ops import event_key

__all__ = ["History"]


class History:
    """The reading half of :class:`~nbflow.Runtime` (a mixin: the runtime provides the state)."""

    database: str
    allow_pickle: bool
    executor_id: str
    _store: Store
    _log: WriteLog
    _active: dict[str, Execution]
    _active_lock: threading.RLock
    _record_ids: dict[str, int]

    if TYPE_CHECKING:  # provided by the runtime

        def _check_open(self) -> None: ...

        def flush(self, timeout: float | None = None) -> bool: ...

        def exists(self, workflow_id: str) -> bool: ...

    def _row(self, workflow_id: str) -> WorkflowRow:
        row = self._store.get_workflow(workflow_id)
        if row is None:
            raise WorkflowNotFoundError(workflow_id, self.database)
        return row

    # -- records kept outside workflows ------------------------------------------------------

    def record_step(
        self,
        workflow_id: str,
        name: str,
        output: Any,
        *,
        started: float,
        ended: float,
        workflow_name: str = "nbflow.record",
    ) -> int:
        """Append a finished step to a record-keeping workflow, from outside any workflow.

        The workflow (``workflow_id``) is created as SUCCESS the first time, so ``recover()``
        never picks it up; its steps show in ``list_steps`` like any others. Durable notebook
        cells use this: one record-keeping workflow per notebook, one step per cell run.

        Returns:
            The step's function id (the next after the last one recorded).
        """
        value_json, value_pickle = encode(output, what=f"the record of {name!r}", allow_pickle=self.allow_pickle)  # fmt: skip
        with self._active_lock:
            self._check_open()
            if workflow_id not in self._record_ids:
                row = self._store.get_workflow(workflow_id)
                if row is None:
                    self._log.append(
                        WorkflowRow(workflow_id, workflow_name, "SUCCESS", None, None, "null", None, created_at=started, updated_at=ended, ended_at=ended, executor_id=self.executor_id)
                    )  # fmt: skip
                steps = self._store.list_steps(workflow_id)
                self._record_ids[workflow_id] = steps[-1].function_id if steps else 0
            function_id = self._record_ids[workflow_id] = self._record_ids[workflow_id] + 1
            seq = self._log.append(
                StepRow(
                    workflow_id=workflow_id,
                    function_id=function_id,
                    name=name,
                    output_json=value_json,
                    output_pickle=value_pickle,
                    error=None,
                    error_pickle=None,
                    started_at=started,
                    ended_at=ended,
                    attempts=1,
                )
            )
        self._log.wait_durable(seq)
        return function_id

    def recorded_steps(
        self, workflow_id: str, name: str | None = None, *, newest_first: bool = False
    ) -> Iterator[tuple[int, str, Any, float, float]]:
        """The steps of a record-keeping workflow: ``(function_id, name, output, started, ended)``.

        Only steps called ``name`` when it is given; each output is decoded only when the
        iterator reaches it, so a caller that stops at the first match unpickles nothing else.
        """
        rows = [r for r in self._store.list_steps(workflow_id) if r.error is None and name in (None, r.name)]  # fmt: skip
        for row in reversed(rows) if newest_first else rows:
            what = f"the record of {row.name!r}"
            output = decode(row.output_json, row.output_pickle, what=what, allow_pickle=self.allow_pickle)  # fmt: skip
            yield row.function_id, row.name, output, row.started_at, row.ended_at

    # -- history -----------------------------------------------------------------------------

    def list_workflows(
        self, *, status: str | Status | None = None, name: str | None = None, limit: int = 100
    ) -> Records[WorkflowInfo]:
        """Workflows, newest first (including those started a moment ago)."""
        self.flush()  # read your own writes
        if status is not None:
            status = Status.parse(status).value
        rows = self._store.list_workflows(status, name, limit)
        return Records(WorkflowInfo._from_row(row) for row in rows)

    def list_steps(self, workflow_id: str) -> Records[StepInfo]:
        """A workflow's recorded steps, in order."""
        self.flush()
        rows = self._store.list_steps(workflow_id)
        if not rows and not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self.database)
        return Records(StepInfo._from_row(row) for row in rows)

    def list_streams(self, workflow_id: str) -> Records[StreamInfo]:
        """A workflow's streams, by key."""
        self.flush()
        rows = self._store.list_streams(workflow_id)
        if not rows and not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self.database)
        return Records(StreamInfo(key, items, closed, utc(first), utc(last)) for key, items, closed, first, last in rows)  # fmt: skip

    def workflow_row(self, workflow_id: str) -> WorkflowRow:
        """The raw recorded row of a workflow (for tools such as the CLI)."""
        return self._row(workflow_id)

    def outcome(self, row: WorkflowRow) -> Any:
        """The recorded result of a finished workflow; raises its recorded error."""
        if row.status == Status.CANCELLED:
            raise WorkflowCancelledError(row.workflow_id)
        if row.status == Status.ERROR:
            raise decode_error(row.error, row.error_pickle, self.allow_pickle)
        return decode(row.output_json, row.output_pickle, what=f"the result of workflow {row.workflow_id!r}", allow_pickle=self.allow_pickle)  # fmt: skip

    def events(self, workflow_id: str) -> dict[str, Any]:
        """The events a workflow set (:func:`nbflow.set_event`): each key's last value."""
        self.flush()
        found: dict[str, Any] = {}
        for name, value_json, value_pickle in self._store.list_events(workflow_id):
            key = event_key(name)
            what = f"event {key!r} of workflow {workflow_id!r}"
            found[key] = decode(value_json, value_pickle, what=what, allow_pickle=self.allow_pickle)  # fmt: skip
        return found
