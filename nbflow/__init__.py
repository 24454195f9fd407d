"""nbflow: durable workflows and exactly-once streams for Jupyter, on one embedded DuckDB file.

Example:
    >>> import nbflow
    >>> @nbflow.workflow
    ... def pipeline(urls):
    ...     for url in nbflow.track(urls):
    ...         nbflow.write_stream("rows", fetch(url))
    >>> handle = nbflow.start(pipeline, urls)
    >>> for row in nbflow.read_stream(handle.workflow_id, "rows"):
    ...     print(row)
"""

from __future__ import annotations

from nbflow._api import (
    cancel,
    clear_cache,
    close_stream,
    configure,
    current_workflow_id,
    delete_workflow,
    export_workflow,
    fork,
    get_event,
    get_event_async,
    get_events,
    get_workflow,
    import_workflow,
    list_steps,
    list_streams,
    list_workflows,
    prune,
    read_stream,
    read_stream_async,
    read_stream_frame,
    recover,
    resume,
    runtime,
    send,
    start,
    step_stats,
    why,
    write_stream,
)
from nbflow._dberrors import (
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    SchemaVersionError,
)
from nbflow._debounce import DebouncedHandle, Debouncer
from nbflow._errors import (
    ConcurrencyError,
    ConfigurationError,
    FunctionNotRegisteredError,
    ImportConflictError,
    InvalidValueError,
    MaxRecoveryAttemptsExceededError,
    NbflowError,
    NondeterminismError,
    NotInWorkflowError,
    QueueDeduplicatedError,
    RecordedError,
    RuntimeClosedError,
    SerializationError,
    StreamClosedError,
    StreamTimeoutError,
    WaitTimeoutError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowInterruptedError,
    WorkflowNotFoundError,
    WorkflowRunningError,
)
from nbflow._fingerprint import fingerprint
from nbflow._records import Records, Status, StepInfo, StepStats, StreamInfo, WorkflowInfo
from nbflow._waitfirst import wait_first, wait_first_async
from nbflow.engine._runtime import Runtime
from nbflow.workflow._cache import Cache, refresh_cache
from nbflow.workflow._handle import WorkflowHandle
from nbflow.workflow._messages import recv, recv_async, set_event, sleep, sleep_async
from nbflow.workflow._parallel import Executor, map, map_async
from nbflow.workflow._patches import deprecate_patch, patched
from nbflow.workflow._progress import progress, track
from nbflow.workflow._queues import Queue, enqueue_options
from nbflow.workflow._schedules import ScheduleInfo, list_schedules, scheduled
from nbflow.workflow._steps import run_step, step
from nbflow.workflow._workflows import set_workflow_id, workflow, workflow_timeout

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext nbflow``: register the ``%nbflow`` magics (imports the Jupyter layer)."""
    from nbflow.notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext nbflow``: remove the ``%nbflow`` magics."""
    from nbflow.notebook import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "Cache",
    "ConcurrencyError",
    "ConfigurationError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseLockedError",
    "DebouncedHandle",
    "Debouncer",
    "Executor",
    "FunctionNotRegisteredError",
    "ImportConflictError",
    "InvalidValueError",
    "MaxRecoveryAttemptsExceededError",
    "NbflowError",
    "NondeterminismError",
    "NotInWorkflowError",
    "Queue",
    "QueueDeduplicatedError",
    "RecordedError",
    "Records",
    "Runtime",
    "RuntimeClosedError",
    "ScheduleInfo",
    "SchemaVersionError",
    "SerializationError",
    "Status",
    "StepInfo",
    "StepStats",
    "StreamClosedError",
    "StreamInfo",
    "StreamTimeoutError",
    "WaitTimeoutError",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowInterruptedError",
    "WorkflowNotFoundError",
    "WorkflowRunningError",
    "cancel",
    "clear_cache",
    "close_stream",
    "configure",
    "current_workflow_id",
    "delete_workflow",
    "deprecate_patch",
    "enqueue_options",
    "export_workflow",
    "fingerprint",
    "fork",
    "get_event",
    "get_event_async",
    "get_events",
    "get_workflow",
    "import_workflow",
    "list_schedules",
    "list_steps",
    "list_streams",
    "list_workflows",
    "load_ipython_extension",
    "map",
    "map_async",
    "patched",
    "progress",
    "prune",
    "read_stream",
    "read_stream_async",
    "read_stream_frame",
    "recover",
    "recv",
    "recv_async",
    "refresh_cache",
    "resume",
    "run_step",
    "runtime",
    "scheduled",
    "send",
    "set_event",
    "set_workflow_id",
    "sleep",
    "sleep_async",
    "start",
    "step",
    "step_stats",
    "track",
    "unload_ipython_extension",
    "wait_first",
    "wait_first_async",
    "why",
    "workflow",
    "workflow_timeout",
    "write_stream",
]
