"""The write log's operations: the rows of the tables, and the few operations that are not rows.

The runtime never writes directly: it appends operations to one ordered write log, and the log's
committer thread hands them to :meth:`Store.commit` in batches, each batch one transaction. Every
operation is a named tuple, cheap to build on the hot path (a stream item is one :class:`StreamRow`
and nothing more); a store tells them apart by their type.

============  =========================================================  =======================
operation     what it does                                               wakes
============  =========================================================  =======================
WorkflowRow   insert a workflow (PENDING; SUCCESS: record-keeping)       —
Enqueue       insert an ENQUEUED workflow                                its queue's dispatchers
StepRow       insert a step's checkpoint                                 —
SetEvent      insert an event, stored as the step that records it       its workflow's
                                                                         ``get_event`` waiters
StreamRow     insert a stream item or end marker                         the stream's readers
MessageRow    insert a message, unless one with its id exists (a send    the destination's
              is idempotent)                                             ``recv``
CacheRow      insert a step cache entry, replacing one with its key      —
Finish        set a workflow's final status and close its open streams,  its readers and waiters
              in one transaction
Consume       delete a message ``recv`` took (or mark it consumed: a     —
              keyed send) and insert the step that records it, in one
              transaction
Fork          copy a workflow under a new id, with its operations        the new workflow's
              before ``from_step`` and the stream items they wrote       waiters
============  =========================================================  =======================

:func:`changes` says what a committed batch wakes; the in-process notifier and the PostgreSQL store
(``NOTIFY``, for other processes) both go by it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import NamedTuple, TypeAlias, cast

__all__ = [
    "EVENT_PREFIX",
    "CacheRow",
    "Changes",
    "Consume",
    "Enqueue",
    "Finish",
    "Fork",
    "MessageRow",
    "Op",
    "SetEvent",
    "StepRow",
    "StreamRow",
    "WorkflowRow",
    "changes",
    "event_key",
    "event_step_name",
]

# -- rows ----------------------------------------------------------------------------------------


class WorkflowRow(NamedTuple):
    """A row of the ``workflows`` table; as an operation, insert it."""

    workflow_id: str
    name: str
    status: str
    inputs_json: str | None
    inputs_pickle: bytes | None
    output_json: str | None = None
    output_pickle: bytes | None = None
    error: str | None = None
    error_pickle: bytes | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    ended_at: float | None = None
    executor_id: str | None = None
    parent_id: str | None = None
    error_step: int | None = None  # the step whose error ended the workflow
    queue_name: str | None = None  # the queue it was enqueued on
    deadline: float | None = None  # when it is cancelled if it has not ended (epoch seconds)
    code: str | None = None  # the fingerprint of its body (nbflow.fingerprint)
    priority: int | None = None  # its queue priority (lower first; None: before any priority)
    deduplication_id: str | None = None  # at most one active workflow per queue with this id
    partition_key: str | None = None  # the queue partition whose limits it counts against
    available_at: float | None = None  # an enqueued workflow is not dequeued before this
    started_at: float | None = None  # when it last began running (queue rate limits count it)
    recovery_attempts: int | None = None  # how many times it was recovered (None: never)


class StepRow(NamedTuple):
    """A row of the ``steps`` table: one checkpoint; as an operation, insert it."""

    workflow_id: str
    function_id: int
    name: str
    output_json: str | None
    output_pickle: bytes | None
    error: str | None
    error_pickle: bytes | None
    started_at: float
    ended_at: float
    attempts: int
    code: str | None = None  # the fingerprint of the step's function (nbflow.fingerprint)
    args_hash: str | None = None  # a digest of its arguments (canonical: as launch compares)
    cached_from: str | None = None  # the workflow whose result it took (step cache, rerun)
    args_text: str | None = None  # its arguments in a few characters (text._calls.short_call)


class StreamRow(NamedTuple):
    """A row of the ``streams`` table: an item, or the end marker of a stream; as an operation,
    insert it.

    ``function_id`` is the operation that wrote it: a write from the workflow body has its own
    function id and ``attempt`` None; a write from inside a step has the step's function id and the
    attempt number (1, 2, …); an end marker written by the workflow's end has neither.
    """

    workflow_id: str
    key: str
    offset: int
    value_json: str | None
    value_pickle: bytes | None
    is_end: bool
    function_id: int | None
    attempt: int | None
    created_at: float


class MessageRow(NamedTuple):
    """A row of the ``messages`` table: a message waiting for ``recv`` in its destination; as an
    operation, insert it unless a message with its id exists.

    ``consumed_at`` is set (and the row kept) when ``recv`` took a message sent with an
    idempotency key: its id stays taken, so the key never delivers again.
    """

    message_id: str
    destination_id: str
    topic: str | None
    value_json: str | None
    value_pickle: bytes | None
    created_at: float
    consumed_at: float | None = None


class CacheRow(NamedTuple):
    """A row of the ``step_cache`` table: a step's result kept for any later call with the same
    name, code and arguments; as an operation, insert it, replacing one with the same ``entry``.

    ``entry`` is a digest of ``name``, ``code`` and ``args_hash``; ``workflow_id`` the workflow
    that computed it (None: a call outside a workflow); ``detail`` JSON that says what the key
    was made of and why the call missed (for ``nbflow.why``).
    """

    entry: str
    name: str
    code: str
    args_hash: str
    output_json: str | None
    output_pickle: bytes | None
    workflow_id: str | None
    created_at: float
    detail: str | None = None


# -- operations that are not one row ---------------------------------------------------------------


class Enqueue(NamedTuple):
    """Insert ``row``, an ENQUEUED workflow, and wake the dispatchers of its queue."""

    row: WorkflowRow


class SetEvent(NamedTuple):
    """Insert ``step``, the step that records the event ``key`` (named :func:`event_step_name`),
    and wake the ``get_event`` waiters of its workflow."""

    step: StepRow
    key: str


class Finish(NamedTuple):
    """Set a workflow's final status.

    ``markers`` are the end markers of its open streams, written in the same transaction; None
    lets the store close every open stream itself (for a workflow that does not run here).
    ``error_step`` is the function id of the step whose error ended the workflow, if one did.
    """

    workflow_id: str
    status: str
    ended_at: float
    output_json: str | None = None
    output_pickle: bytes | None = None
    error: str | None = None
    error_pickle: bytes | None = None
    error_step: int | None = None
    markers: tuple[StreamRow, ...] | None = None


class Consume(NamedTuple):
    """Delete the message that ``recv`` took and insert ``step``, which records it; with ``keep``
    (a message sent with an idempotency key) mark it consumed instead of deleting it."""

    message_id: str
    step: StepRow
    keep: bool = False


class Fork(NamedTuple):
    """Copy ``source_id`` as ``new_id`` (PENDING, run by ``executor_id``, cancelled at
    ``deadline`` if one is given), with its operations before the function id ``from_step`` and
    the stream items they wrote."""

    source_id: str
    new_id: str
    from_step: int
    now: float
    executor_id: str
    deadline: float | None = None


Op: TypeAlias = (
    WorkflowRow
    | Enqueue
    | StepRow
    | SetEvent
    | StreamRow
    | MessageRow
    | CacheRow
    | Finish
    | Consume
    | Fork
)


# -- what a batch wakes --------------------------------------------------------------------------


class Changes(NamedTuple):
    """What a committed batch changed that someone may wait for.

    Attributes:
        workflows: Workflows whose readers or waiters must look again: new stream items, a final
            status, an event set, a message received, a fork created.
        queues: Queues a workflow was enqueued on: their dispatchers must look again.
    """

    workflows: set[str]
    queues: set[str]


def changes(ops: Iterable[Op]) -> Changes:
    """What the committed operations ``ops`` wake (see the table above)."""
    workflows: set[str] = set()
    queues: set[str] = set()
    add = workflows.add
    for op in ops:
        if type(op) is StreamRow or type(op) is Finish:
            add(op.workflow_id)
        elif type(op) is SetEvent:
            add(op.step.workflow_id)
        elif type(op) is MessageRow:
            add(op.destination_id)
        elif type(op) is Enqueue:
            if op.row.queue_name is not None:
                queues.add(op.row.queue_name)
        elif type(op) is Fork:
            add(op.new_id)
    return Changes(workflows, queues)


# -- events --------------------------------------------------------------------------------------

#: The start of every event's step name; the SQL stores find a workflow's events by it.
EVENT_PREFIX = "nbflow.set_event("


def event_step_name(key: str) -> str:
    """The name of the step that records the event ``key``: ``nbflow.set_event('key')``."""
    return f"{EVENT_PREFIX}{key!r})"


def event_key(name: str) -> str:
    """The key of the event recorded by the step called ``name`` (see :func:`event_step_name`)."""
    return cast("str", ast.literal_eval(name[len(EVENT_PREFIX) : -1]))
