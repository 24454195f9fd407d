"""What a runtime tells about its workflows: their status, history and outcome, and records kept
outside workflows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from nbflow._errors import (
    InvalidValueError,
    SerializationError,
    WaitTimeoutError,
    WorkflowCancelledError,
    WorkflowInterruptedError,
    WorkflowNotFoundError,
)
from nbflow._records import (
    LazyValue,
    Records,
    Status,
    StepInfo,
    StepStats,
    StreamInfo,
    WorkflowInfo,
    utc,
)
from nbflow._serialization import check_text
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Executions
from nbflow.engine._messages import read_events
from nbflow.engine._reader import StreamReader, check_read_args
from nbflow.engine._steps import step_row
from nbflow.store import StepRow, WorkflowRow
from nbflow.store._history import StepStatsQuery, WorkflowQuery
from nbflow.workflow._alarm import Wake
from nbflow.workflow._handle import Glance

__all__ = ["History", "child_ids"]

_ALL = 1 << 62  # no limit
_PAGE = 10_000  # stream items read at once


class History:
    """The reading side of a runtime, over its engine and the executions running in it."""

    def __init__(self, engine: Engine, executions: Executions) -> None:
        self._engine = engine
        self._store = engine.store
        self._executions = executions
        self._records: set[str] = set()  # record-keeping workflows known to exist

    def row(self, workflow_id: str) -> WorkflowRow:
        """The workflow's recorded row; raises :class:`WorkflowNotFoundError`."""
        check_text(workflow_id, "A workflow id")
        row = self._store.get_workflow(workflow_id)
        if row is None:
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        return row

    def exists(self, workflow_id: str) -> bool:
        """Whether a workflow with this id exists (running here, or recorded)."""
        check_text(workflow_id, "A workflow id")
        return workflow_id in self._executions or self._store.get_status(workflow_id) is not None

    def status(self, workflow_id: str) -> Status:
        """The workflow's durable status."""
        check_text(workflow_id, "A workflow id")
        if self._executions.ending_soon(workflow_id):
            return Status.PENDING
        status = self._store.get_status(workflow_id)
        if status is None:
            if workflow_id in self._executions:
                return Status.PENDING
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        return Status(status)

    def glance(self, workflow_id: str) -> Glance:
        """A workflow's name, status and last progress as durable now (no flush, no wait: a
        handle's repr); raises on a closed runtime or an unknown id."""
        self._engine.check_open()
        ex = self._executions.get(workflow_id)
        row = self._store.get_workflow(workflow_id)
        if row is None:
            if ex is None:
                raise WorkflowNotFoundError(workflow_id, self._engine.database)
            return Glance(ex.name, Status.PENDING)  # started, not durable yet
        ending = self._executions.ending_soon(workflow_id)
        status = Status.PENDING if ending else Status(row.status)
        running = ex is not None or not self._store.single_process
        return Glance(row.name, status, running, *self._last_progress(workflow_id))

    def _last_progress(self, workflow_id: str) -> tuple[float | None, float | None]:
        """``done`` and ``total`` of the last durable item of the stream ``"progress"``."""
        count = next(
            (n for key, n, *_ in self._store.list_streams(workflow_id) if key == "progress"), 0
        )
        if not count:
            return None, None
        rows = self._store.read_stream(workflow_id, "progress", count - 1, 1)
        try:
            item = self._engine.decode(rows[0][1], rows[0][2], "a progress item")
        except (IndexError, SerializationError):
            return None, None
        if not isinstance(item, dict):
            return None, None
        done, total = item.get("done"), item.get("total")
        number = (int, float)
        return (
            done if isinstance(done, number) else None,
            total if isinstance(total, number) else None,
        )

    def outcome(self, row: WorkflowRow) -> Any:
        """The recorded result of a finished workflow; raises its recorded error."""
        __tracebackhide__ = True
        if row.status == Status.CANCELLED:
            raise WorkflowCancelledError(row.workflow_id)
        if row.status in (Status.ERROR, Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED):
            raise self._engine.decode_error(row.error, row.error_pickle)
        what = f"the result of workflow {row.workflow_id!r}"
        return self._engine.decode(row.output_json, row.output_pickle, what)

    def wait_elsewhere(self, workflow_id: str, timeout: float | None) -> WorkflowRow | None:
        """Wait for a PENDING (or ENQUEUED, DELAYED) workflow that no execution of this runtime runs to end.

        Returns:
            Its final row, or None when it started running in this runtime meanwhile.

        Raises:
            WorkflowInterruptedError: No live process runs it (resume or recover it). On a shared
                store, a workflow of a queue is waited for instead: workers recover it.
            WaitTimeoutError: It did not end within ``timeout`` seconds.
        """
        here = object()

        def look(_: bool) -> WorkflowRow | object | None:
            with self._executions.lock:  # a dispatcher claims and activates under it
                row = self.row(workflow_id)
                if workflow_id in self._executions:
                    return here
            if Status(row.status).is_final:
                return row
            if row.status == Status.PENDING and self._interrupted(row):
                raise WorkflowInterruptedError(workflow_id)
            return None

        with self._engine.watch(workflow_id) as watch:
            found = watch.wait_until(look, timeout)
        if found is None:
            raise WaitTimeoutError(
                f"Workflow {workflow_id!r} did not finish within {timeout} s; it is still "
                "running in another process. Call .result() again to wait longer."
            )
        return found if isinstance(found, WorkflowRow) else None

    def _interrupted(self, row: WorkflowRow) -> bool:
        """Whether a PENDING workflow not running here runs nowhere (a queue's workers recover
        the workflows of a worker that died)."""
        if self._store.single_process or row.executor_id == self._engine.executor_id:
            return True  # (this process's own: it would be running here)
        return row.queue_name is None and not self._store.executor_alive(row.executor_id)

    def reader(
        self,
        workflow_id: str,
        key: str,
        start: int,
        timeout: float | None,
        wake: Wake | None = None,
    ) -> StreamReader:
        """A reader of the stream ``key`` of ``workflow_id`` (see :class:`StreamReader`)."""
        self.check_read(workflow_id, key, start, timeout)
        return StreamReader(self._engine, self._executions, workflow_id, key, start, timeout, wake)

    def check_read(self, workflow_id: str, key: str, start: int, timeout: float | None) -> None:
        """Raise what reading the stream ``key`` of ``workflow_id`` from ``start`` would: a bad
        argument, or a workflow that does not exist."""
        check_read_args(key, start, timeout)
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._engine.database)

    # -- history -------------------------------------------------------------------------------

    def list_workflows(self, query: WorkflowQuery) -> Records[WorkflowInfo]:
        """The workflows ``query`` selects (including those started a moment ago)."""
        self._engine.flush()  # read your own writes
        rows = self._store.list_workflows(query)
        return Records((WorkflowInfo.from_row(row) for row in rows), WorkflowInfo)

    def list_steps(self, workflow_id: str) -> Records[StepInfo]:
        """A workflow's recorded steps, in order; each output is read when it is asked for."""
        check_text(workflow_id, "A workflow id")
        self._engine.flush()
        rows = self._store.list_steps(workflow_id, outputs=False)
        if not rows and not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        children = self._store.list_workflows(
            WorkflowQuery(parent_id=workflow_id, limit=_ALL, newest_first=False)
        )
        found = child_ids(rows, children)
        return Records(
            (
                StepInfo.from_row(row, found.get(row.function_id), self._lazy_output(row))
                for row in rows
            ),
            StepInfo,
        )

    def _lazy_output(self, row: StepRow) -> LazyValue | None:
        if row.error is not None:
            return None
        workflow_id, function_id = row.workflow_id, row.function_id

        def load() -> Any:
            found = self._store.get_step_output(workflow_id, function_id)
            if found is None:
                return None
            what = f"the output of step {function_id} of workflow {workflow_id!r}"
            return self._engine.decode(found[0], found[1], what)

        return LazyValue(load)

    def step_stats(self, query: StepStatsQuery) -> Records[StepStats]:
        """Statistics of the recorded steps ``query`` selects, one record per name."""
        self._engine.flush()
        rows = self._store.step_stats(query)
        return Records((StepStats(*row) for row in rows), StepStats)

    def stream_items(self, workflow_id: str, key: str) -> list[tuple[int, Any]]:
        """Every item ``(offset, value)`` of a stream now, from offset 0, without waiting."""
        self.check_read(workflow_id, key, 0, None)
        self._engine.flush()
        items: list[tuple[int, Any]] = []
        start = 0
        what = f"an item of stream {key!r} of workflow {workflow_id!r}"
        while True:
            rows = self._store.read_stream(workflow_id, key, start, _PAGE)
            for offset, value_json, value_pickle, is_end in rows:
                if not is_end:
                    items.append((offset, self._engine.decode(value_json, value_pickle, what)))
            if len(rows) < _PAGE:
                return items
            start = rows[-1][0] + 1

    def list_streams(self, workflow_id: str) -> Records[StreamInfo]:
        """A workflow's streams, by key."""
        check_text(workflow_id, "A workflow id")
        self._engine.flush()
        rows = self._store.list_streams(workflow_id)
        if not rows and not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        return Records(
            (
                StreamInfo(key, items, closed, utc(first), utc(last))
                for key, items, closed, first, last in rows
            ),
            StreamInfo,
        )

    def events(self, workflow_id: str) -> dict[str, Any]:
        """The events a workflow set (:func:`nbflow.set_event`): each key's last value."""
        check_text(workflow_id, "A workflow id")
        return read_events(self._engine, workflow_id)

    def read_value(self, workflow_id: str, function_id: int | None) -> Any:
        """A stored output: a step's (by function id), else the workflow's result."""
        check_text(workflow_id, "A workflow id")
        self._engine.flush()
        if function_id is None:
            row = self._store.get_workflow(workflow_id)
            if row is None:
                raise WorkflowNotFoundError(workflow_id, self._engine.database)
            return self.outcome(row)
        for head in self._store.list_recorded(workflow_id, None):
            if head.function_id == function_id:
                blob = None
                if head.output_json is None and head.has_pickle:
                    blob = self._store.get_step_pickle(workflow_id, function_id)
                what = f"step {function_id} of workflow {workflow_id!r}"
                return self._engine.decode(head.output_json, blob, what)
        if not self.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._engine.database)
        raise InvalidValueError(
            f"Workflow {workflow_id!r} has no step {function_id} with an output (it is not "
            "recorded, or it ended in an error). nbflow.list_steps(workflow_id) lists its steps.",
            what="A function id",
            value=function_id,
        )

    # -- records kept outside workflows --------------------------------------------------------

    def record_step(
        self,
        workflow_id: str,
        name: str,
        output: Any,
        span: tuple[float, float],
        kind: str,
        pickled: bytes | None = None,
    ) -> int:
        """Append a finished step to a record-keeping workflow (see :meth:`Runtime.record_step`)."""
        engine = self._engine
        what = f"the record of {name!r}"
        value_json, value_pickle = engine.encode(output, what)
        if pickled is not None:
            _check_attachable(value_json, engine.allow_pickle, what)
            value_pickle = engine.keep_blob(pickled)  # beside the JSON, read by recorded_pickle
        with self._executions.lock:
            engine.check_open()
            if workflow_id not in self._records:
                self._open_record(workflow_id, kind, span)
                self._records.add(workflow_id)
        engine.flush()  # the record-keeping workflow's row, and whatever was written before
        row = step_row(workflow_id, 0, name, span, output=(value_json, value_pickle))
        return self._store.append_record(row)  # its id claimed in SQL, whoever else records

    def _open_record(self, workflow_id: str, name: str, span: tuple[float, float]) -> None:
        """Create the record-keeping workflow if it is new."""
        if self._store.get_workflow(workflow_id) is None:
            row = WorkflowRow(
                workflow_id=workflow_id,
                name=name,
                status="SUCCESS",
                inputs_json=None,
                inputs_pickle=None,
                output_json="null",
                created_at=span[0],
                updated_at=span[1],
                ended_at=span[1],
                executor_id=self._engine.executor_id,
            )
            self._engine.log.append(row)

    def forget(self, workflow_ids: Iterable[str]) -> None:
        """These workflows may have been deleted: a record-keeping one is created again when a
        step is next recorded in it."""
        self._records.difference_update(workflow_ids)

    def recorded_steps(
        self, workflow_id: str, name: str | None = None, *, newest_first: bool = False
    ) -> Iterator[tuple[int, str, Any, float, float]]:
        """The steps of a record-keeping workflow (see :meth:`Runtime.recorded_steps`).

        Only the JSON of each step is read; a pickle is read (and unpickled) only for a step whose
        output is pickled, when the iterator reaches it.
        """
        heads = self._store.list_recorded(workflow_id, name)
        for head in reversed(heads) if newest_first else heads:
            text, blob = head.output_json, None
            if text is None and head.has_pickle:
                blob = self._store.get_step_pickle(workflow_id, head.function_id)
            output = self._engine.decode(text, blob, f"the record of {head.name!r}")
            yield head.function_id, head.name, output, head.started_at, head.ended_at

    def recorded_pickle(self, workflow_id: str, function_id: int) -> Any:
        """The pickle kept beside a recorded step's JSON output (see
        :meth:`Runtime.recorded_pickle`): bytes, or a memory-mapped buffer of a large one."""
        if not self._engine.allow_pickle:
            raise SerializationError(
                f"The record {function_id} of {workflow_id!r} holds pickled values, and this "
                "runtime was opened with allow_pickle=False (unpickling runs code from the file). "
                "Open the file with allow_pickle=True if you trust it.",
                what=f"the record {function_id} of {workflow_id!r}",
            )
        blob = self._store.get_step_pickle(workflow_id, function_id)
        return self._engine.read_blob(blob, f"the record {function_id} of {workflow_id!r}")


def _check_attachable(value_json: str | None, allow_pickle: bool, what: str) -> None:
    """Refuse a pickle attached to a record whose output is not JSON, or under allow_pickle=False."""
    if not allow_pickle:
        raise SerializationError(
            f"Cannot store the pickled values of {what}: this runtime was opened with "
            "allow_pickle=False, which stores JSON-native values only. Nothing was written.",
            what=what,
        )
    if value_json is None:
        raise SerializationError(
            f"Cannot store {what}: with a pickle attached, its output must be JSON-native (dict, "
            "list, str, int, float, bool, None). Put the rest in the pickle. Nothing was written.",
            what=what,
        )


def child_ids(steps: list[StepRow], children: list[WorkflowRow]) -> dict[int, str]:
    """The child workflow each step called, started or enqueued, by function id.

    A child's id is ``<parent>-<function id>`` unless ``set_workflow_id`` gave one; such a child is
    matched to the unmatched step, of its name (``'name'``, ``nbflow.start('name')``) or queue
    (``nbflow.enqueue('queue')``), whose run spans its creation.
    """
    by_id = {row.workflow_id: row for row in children}
    found: dict[int, str] = {}
    for step in steps:
        child = by_id.pop(f"{step.workflow_id}-{step.function_id}", None)
        if child is not None:
            found[step.function_id] = child.workflow_id
    for step in steps:
        if step.function_id in found:
            continue
        for child in by_id.values():
            names = (child.name, f"nbflow.start({child.name!r})")
            queued = child.queue_name is not None and step.name == (
                f"nbflow.enqueue({child.queue_name!r})"
            )
            if (step.name in names or queued) and (
                step.started_at <= child.created_at <= step.ended_at
            ):
                found[step.function_id] = child.workflow_id
                del by_id[child.workflow_id]
                break
    return found
