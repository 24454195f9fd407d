"""The module-level API: the process's default runtime, and functions that use it.

Inside a workflow, these functions use the runtime the workflow runs in; elsewhere, the default
runtime, opened on first use (see :func:`configure`).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbflow._dberrors import DatabaseLockedError
from nbflow._records import Records, Status, StepInfo, StepStats, StreamInfo, WorkflowInfo
from nbflow.engine._runtime import Runtime, runtime_of
from nbflow.workflow import _context as context
from nbflow.workflow._handle import WorkflowHandle
from nbflow.workflow._recovery import Recovered

if TYPE_CHECKING:
    import pandas

__all__ = [
    "cancel",
    "close_stream",
    "configure",
    "current_workflow_id",
    "delete_workflow",
    "export_workflow",
    "fork",
    "get_event",
    "get_event_async",
    "get_events",
    "get_workflow",
    "import_workflow",
    "list_steps",
    "list_streams",
    "list_workflows",
    "prune",
    "read_stream",
    "read_stream_async",
    "read_stream_frame",
    "recover",
    "resume",
    "runtime",
    "send",
    "start",
    "step_stats",
    "write_stream",
]

_default: Runtime | None = None
_default_args: tuple[str | os.PathLike[str] | None, dict[str, Any]] = (None, {})
_default_lock = threading.Lock()


def configure(database: str | os.PathLike[str] | None = None, **options: Any) -> Runtime:
    """Open ``database`` as the process's default runtime (closing the previous default).

    The new database is opened first: one nbflow cannot use leaves the previous default open,
    its workflows running. (The same DuckDB file again is let go of first, then opened anew.)

    Args:
        database: See :class:`Runtime`. None: ``$NBFLOW_DATABASE``, else the default file.
        **options: Passed to :class:`Runtime` (e.g. ``allow_pickle=False``).
    """
    global _default, _default_args
    with _default_lock:
        previous = _default
        try:
            opened = Runtime(database, **options)
        except DatabaseLockedError as exc:
            if previous is None or previous.closed or not _same_file(previous.database, exc):
                raise
            previous.close()  # it holds the very file: it lets go, then the file opens anew
            _default = previous = None
            opened = Runtime(database, **options)
        if previous is not None:
            previous.close()
        _default, _default_args = opened, (database, options)
        return opened


def _same_file(database: str, locked: DatabaseLockedError) -> bool:
    """Whether ``locked`` is about the file ``database`` (a runtime of this process holds)."""
    if locked.pid != os.getpid() or locked.path is None:
        return False
    try:
        return os.path.samefile(database, locked.path)
    except (OSError, ValueError):
        return False


def runtime() -> Runtime:
    """The process's default runtime, opened on first use.

    After the default runtime was closed, the next use opens the same database again, with the
    options :func:`configure` was given.
    """
    global _default
    current = _default
    if current is not None and not current.closed:
        return current
    with _default_lock:
        if _default is None or _default.closed:
            database, options = _default_args
            _default = Runtime(database, **options)
        return _default


def _close_default() -> None:
    """Close the default runtime and forget its configuration (the next use opens the default)."""
    global _default, _default_args
    with _default_lock:
        if _default is not None:
            _default.close()
            _default = None
        _default_args = (None, {})


def _call_runtime() -> Runtime:
    """The runtime of the workflow this code runs in, else the default runtime."""
    ctx = context.current()
    found = None if ctx is None else runtime_of(ctx.runner)
    return runtime() if found is None else found


context.set_default_runner(lambda: runtime().runner)


def start(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
    """Start the workflow ``fn(*args, **kwargs)`` in a background thread; return its handle at once."""
    return _call_runtime().start(fn, *args, **kwargs)


def current_workflow_id() -> str | None:
    """The id of the workflow this code runs in, or None."""
    ctx = context.current()
    return ctx.workflow_id if ctx is not None else None


def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to the current workflow's stream ``key``, exactly once.

    From the workflow body the write is a checkpoint: after a crash and recovery it is not written
    again. From inside a step it is at-least-once (the step may run again); each item records the
    step and attempt that wrote it.

    Raises:
        NotInWorkflowError: Called outside a workflow.
        StreamClosedError: The stream was closed.
        SerializationError: The value cannot be stored (nothing was written).
    """
    context.require("write_stream").write_stream(key, value)


def close_stream(key: str) -> None:
    """Close the current workflow's stream ``key``: readers end after its last item.

    Closing a closed stream does nothing. Every open stream closes by itself when the workflow
    ends.
    """
    context.require("close_stream").write_stream(key, None, is_end=True)


def read_stream(
    workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
) -> Iterator[Any]:
    """Iterate over a stream's values from offset ``start``; ends when the stream is closed.

    Args:
        workflow_id: The workflow that writes the stream.
        key: The stream's key.
        start: The first offset to read (0: from the beginning).
        timeout: Seconds to wait for each next item while the workflow is PENDING (None: no
            limit); past it :class:`StreamTimeoutError` is raised.

    Raises:
        WorkflowNotFoundError: No workflow has this id (raised at the call).
    """
    return _call_runtime().read_stream(workflow_id, key, start=start, timeout=timeout)


def read_stream_async(
    workflow_id: str, key: str, *, start: int = 0, timeout: float | None = None
) -> AsyncIterator[Any]:
    """The same as :func:`read_stream`, as an async iterator: ``async for v in ...``."""
    return _call_runtime().read_stream_async(workflow_id, key, start=start, timeout=timeout)


def get_workflow(workflow_id: str) -> WorkflowHandle:
    """The handle of an existing workflow (raises :class:`WorkflowNotFoundError`)."""
    return _call_runtime().get_workflow(workflow_id)


def list_workflows(
    *,
    status: str | Status | Sequence[str | Status] | None = None,
    name: str | None = None,
    id_prefix: str | None = None,
    since: dt.datetime | float | None = None,
    until: dt.datetime | float | None = None,
    queue: str | None = None,
    parent_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
    newest_first: bool = True,
    include_internal: bool = False,
) -> Records[WorkflowInfo]:
    """Workflows, newest first, filtered (see :meth:`Runtime.list_workflows`): by ``status`` (one
    or a list), ``name``, ``id_prefix`` (literal), creation time (``since`` inclusive, ``until``
    exclusive: datetimes, naive ones local time, or epoch seconds), ``queue``, ``parent_id``;
    paged by ``offset`` and ``limit``. nbflow's own record keeping is left out unless named (or
    ``include_internal``)."""
    return _call_runtime().list_workflows(
        status=status,
        name=name,
        id_prefix=id_prefix,
        since=since,
        until=until,
        queue=queue,
        parent_id=parent_id,
        offset=offset,
        limit=limit,
        newest_first=newest_first,
        include_internal=include_internal,
    )


def step_stats(
    *,
    name: str | None = None,
    since: dt.datetime | float | None = None,
    until: dt.datetime | float | None = None,
) -> Records[StepStats]:
    """Per step name: count, errors, retries and duration percentiles (see
    :meth:`Runtime.step_stats`)."""
    return _call_runtime().step_stats(name=name, since=since, until=until)


def read_stream_frame(workflow_id: str, key: str) -> pandas.DataFrame:
    """A stream's items now, from offset 0, as a pandas DataFrame (see
    :meth:`Runtime.read_stream_frame`); never waits."""
    return _call_runtime().read_stream_frame(workflow_id, key)


def list_steps(workflow_id: str) -> Records[StepInfo]:
    """A workflow's recorded steps, in order."""
    return _call_runtime().list_steps(workflow_id)


def list_streams(workflow_id: str) -> Records[StreamInfo]:
    """A workflow's streams: key, item count, closed or not."""
    return _call_runtime().list_streams(workflow_id)


def cancel(workflow_id: str) -> None:
    """Cancel a workflow (see :meth:`Runtime.cancel`)."""
    _call_runtime().cancel(workflow_id)


def resume(workflow_id: str, *, rerun_changed: bool = False) -> WorkflowHandle:
    """Resume an interrupted, cancelled or failed workflow, or one that gave up (see
    :meth:`Runtime.resume`); with
    ``rerun_changed``, when its code changed since it ran, run it again as ``<id>.2`` reusing every
    checkpoint whose step, code and arguments still match."""
    return _call_runtime().resume(workflow_id, rerun_changed=rerun_changed)


def why(step: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> str:
    """Why a cached step's call runs rather than taking its kept result (see
    :meth:`Runtime.why`): ``nbflow.why(summarize, doc)``; ``nbflow.why(summarize)`` for its last
    call."""
    return _call_runtime().why(step, *args, **kwargs)


def clear_cache(
    step: Callable[..., Any] | str | None = None,
    *,
    older_than: float | dt.timedelta | dt.datetime | None = None,
) -> int:
    """Delete results kept by cached steps (of ``step``; kept longer ago than ``older_than``);
    how many (see :meth:`Runtime.clear_cache`)."""
    return _call_runtime().clear_cache(step, older_than=older_than)


def delete_workflow(workflow_id: str, *, delete_children: bool = False) -> int:
    """Delete a finished workflow with its steps, streams, events and the messages addressed to
    it; how many workflows were deleted (see :meth:`Runtime.delete_workflow`)."""
    return _call_runtime().delete_workflow(workflow_id, delete_children=delete_children)


def prune(
    *,
    older_than: float | dt.timedelta,
    status: str | Status | Iterable[str | Status] | None = None,
    dry_run: bool = False,
) -> int:
    """Delete finished workflows created more than ``older_than`` (seconds or a timedelta) ago,
    optionally only those of ``status``; how many (see :meth:`Runtime.prune`)."""
    return _call_runtime().prune(older_than=older_than, status=status, dry_run=dry_run)


def export_workflow(workflow_id: str, *, children: bool = False) -> list[dict[str, Any]]:
    """The workflow as stored, as a list of JSON-ready dicts (with ``children``, the workflows it
    started too), for :func:`import_workflow` in another database (see
    :meth:`Runtime.export_workflow`)."""
    return _call_runtime().export_workflow(workflow_id, children=children)


def import_workflow(exported: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> list[str]:
    """Write exported workflows into this database, each in one transaction; the ids written
    (an identical one already here is skipped; see :meth:`Runtime.import_workflow`)."""
    return _call_runtime().import_workflow(exported)


def recover() -> Recovered:
    """Resume every interrupted workflow whose function is declared (see :meth:`Runtime.recover`)."""
    return _call_runtime().recover()


def fork(workflow_id: str, from_step: int) -> WorkflowHandle:
    """Start a new workflow that reuses ``workflow_id``'s steps before ``from_step`` (a function id,
    as ``list_steps`` shows it) and the stream items they wrote, and runs the rest again."""
    return _call_runtime().fork(workflow_id, from_step)


def send(
    workflow_id: str,
    message: Any,
    topic: str | None = None,
    *,
    idempotency_key: str | None = None,
) -> None:
    """Send ``message`` to a workflow, which gets it with :func:`nbflow.recv` (on ``topic``).

    From a workflow body the send is a checkpoint: a replay never sends twice. Elsewhere it returns
    once the message is durable.

    With ``idempotency_key``, the message is delivered once for its (workflow, topic, key),
    however often and from wherever it is sent (other processes, workflow bodies): the later
    sends do nothing, also after the first message was received.

    Raises:
        WorkflowNotFoundError: No workflow has this id.
    """
    _call_runtime().send(workflow_id, message, topic, idempotency_key=idempotency_key)


def get_event(workflow_id: str, key: str, timeout: float | None = 60.0) -> Any:
    """The last value the workflow set for ``key`` with :func:`nbflow.set_event`.

    Waits up to ``timeout`` seconds (None: no limit) for it to be set; returns None if it is not.
    """
    return _call_runtime().get_event(workflow_id, key, timeout)


def get_events(workflow_id: str) -> dict[str, Any]:
    """Every event the workflow set with :func:`nbflow.set_event`, each key's last value (DBOS's
    ``get_all_events``). Inside a workflow it is one checkpoint: a replay gets the same dict."""
    return _call_runtime().get_events(workflow_id)


async def get_event_async(workflow_id: str, key: str, timeout: float | None = 60.0) -> Any:
    """:func:`get_event` without blocking an event loop: ``await nbflow.get_event_async(id, k)``.

    In an ``async def`` workflow the value it got is recorded, as with :func:`get_event`.
    """
    return await _call_runtime().get_event_async(workflow_id, key, timeout)
