"""The storage interface: a few methods every backend implements.

The runtime never writes directly: it appends operations to one ordered write log, and the log's
committer thread hands them to :meth:`Store.commit` in batches, each batch one transaction. Reads
come from any thread. A backend keeps one connection (or cursor) per thread.

Operations (plain tuples, cheap to build on the hot path):

``("workflow", WorkflowRow)``
    insert a workflow.
``("step", StepRow)``
    insert a step's checkpoint.
``("item", StreamRow)``
    insert a stream item or end marker.
``("finish", workflow_id, status, output_json, output_pickle, error, error_pickle, ended_at, markers, error_step)``
    set a workflow's final status; ``markers`` are the end markers of its open streams, or None to
    let the store close every open stream itself. Both in the same transaction. ``error_step`` is
    the function id of the step whose error ended the workflow, if one did.
``("message", MessageRow)``
    insert a message (a message with an id that exists is skipped: sends are idempotent).
``("consume", message_id, StepRow)``
    delete a message that ``recv`` took and insert the step that records it, in one transaction.
``("fork", source_id, new_id, from_step, now, executor_id)``
    copy a workflow under a new id with its operations before ``from_step`` and their items.

A store shared by several processes (PostgreSQL) also knows which process runs each workflow: every
runtime registers itself as an executor (:meth:`~Store.attach`), :meth:`~Store.claim` takes a workflow over
in a transaction, and :meth:`~Store.pending_workflows` leaves out what a live executor runs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "EVENT_PREFIX",
    "MessageRow",
    "Replay",
    "ReplayRecord",
    "StepRow",
    "Store",
    "StreamRow",
    "WorkflowRow",
    "waking_workflow",
]

Op = tuple[Any, ...]


#: Steps with names starting so are events (``set_event``): setting one wakes its waiters.
EVENT_PREFIX = "nbflow.set_event("


def waking_workflow(op: Op) -> str | None:
    """The workflow whose waiters a committed step or message wakes (an event, a message), or
    ``queue:<name>`` for a workflow enqueued (its queue's dispatchers wake)."""
    if op[0] == "workflow" and op[1].status == "ENQUEUED":
        return f"queue:{op[1].queue_name}"
    if op[0] == "message":
        return str(op[1].destination_id)
    if op[0] == "step" and op[1].name.startswith(EVENT_PREFIX):
        return str(op[1].workflow_id)
    return None


class WorkflowRow(NamedTuple):
    """A row of the ``workflows`` table."""

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


class MessageRow(NamedTuple):
    """A row of the ``messages`` table: a message waiting for ``recv`` in its destination."""

    message_id: str
    destination_id: str
    topic: str | None
    value_json: str | None
    value_pickle: bytes | None
    created_at: float


class StepRow(NamedTuple):
    """A row of the ``steps`` table: one checkpoint."""

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


class StreamRow(NamedTuple):
    """A row of the ``streams`` table: an item, or the end marker of a stream.

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


class Replay(NamedTuple):
    """Everything a replay of a workflow needs, loaded in one round trip.

    Attributes:
        records: The recorded operations of the workflow body, by function id.
        streams: For each stream key, the next offset and whether the body closed it.
        attempts: For each step that wrote stream items, the highest attempt number recorded.
    """

    records: list[ReplayRecord]
    streams: dict[str, tuple[int, bool]]
    attempts: dict[int, int]


class ReplayRecord(NamedTuple):
    """One recorded operation of a workflow, as a replay needs it.

    ``kind`` is ``"step"``, ``"write"`` or ``"close"``; for writes and closes ``name`` is the key.
    """

    function_id: int
    kind: str
    name: str
    output_json: str | None
    output_pickle: bytes | None
    error: str | None
    error_pickle: bytes | None


class Store(abc.ABC):
    """A system database.

    Implementations: :class:`~nbflow.store.DuckDBStore` (default) and
    :class:`~nbflow.store.PostgresStore`.
    """

    #: The URL or path it was opened with, for messages (passwords left out).
    url: str
    #: True when only this process can use the database (DuckDB): a PENDING workflow that is not
    #: running here is known to be interrupted.
    single_process: bool = True
    #: For a store shared by processes: how often (seconds) a waiting reader looks at the database
    #: by itself, in case a notification from another process was lost. None: never needed.
    poll_interval: float | None = None

    def attach(self, executor_id: str, on_change: Callable[[set[str]], None]) -> None:  # noqa: B027
        """Register the runtime that uses this store (once, right after opening it).

        A shared store records the executor, keeps it visibly alive while the runtime is open, and
        calls ``on_change`` (from a background thread) with the ids of workflows that other
        processes changed: new stream items, a final status. A single-process store does nothing.
        """

    def executor_alive(self, executor_id: str | None) -> bool:
        """Whether a runtime of another process that uses this database is still open."""
        return False

    @abc.abstractmethod
    def claim(
        self, workflow_id: str, executor_id: str, now: float, *, reopen: bool = False
    ) -> WorkflowRow | None:
        """Take a workflow over to run it here, in one transaction, and return its row.

        A PENDING workflow is taken when no live executor runs it (``executor_id`` itself counts as
        not running it: the caller knows it does not). With ``reopen``, an ERROR or CANCELLED one
        is reopened: set back to PENDING, with the checkpoint of the step whose error ended it and
        the end markers its end wrote deleted. Returns None when the workflow is not taken: it
        ended (and is not reopened), is gone, or a live executor runs it.
        """

    @abc.abstractmethod
    def commit(self, ops: Sequence[Op]) -> set[str]:
        """Apply a batch of operations, in order, as one transaction.

        Returns:
            The ids of workflows another process cancelled (shared stores): their stream items and
            final status in the batch were not written. Empty for a single-process store.
        """

    @abc.abstractmethod
    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        """The workflow's row, or None."""

    @abc.abstractmethod
    def get_status(self, workflow_id: str) -> str | None:
        """The workflow's status, or None when it does not exist."""

    @abc.abstractmethod
    def load_replay(self, workflow_id: str) -> Replay:
        """Everything a replay needs, in one round trip."""

    @abc.abstractmethod
    def read_stream(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[tuple[int, str | None, bytes | None, bool]]:
        """Up to ``limit`` rows ``(offset, value_json, value_pickle, is_end)`` from ``start``."""

    @abc.abstractmethod
    def dequeue(
        self,
        queue_name: str,
        executor_id: str,
        names: list[str],
        limit: int,
        concurrency: int | None,
        now: float,
    ) -> list[WorkflowRow]:
        """Take up to ``limit`` of the queue's oldest ENQUEUED workflows to run here, in one
        transaction: they become PENDING with this executor. Only workflows called one of
        ``names`` (declared here) are taken, and with ``concurrency`` only as many as keep the
        queue's PENDING workflows (in all processes) at most that many."""

    @abc.abstractmethod
    def next_message(self, destination_id: str, topic: str | None) -> MessageRow | None:
        """The oldest message waiting for ``destination_id`` on ``topic`` (None: no topic)."""

    @abc.abstractmethod
    def list_events(self, workflow_id: str) -> list[tuple[str, str | None, bytes | None]]:
        """The workflow's event steps ``(name, output_json, output_pickle)``, oldest first."""

    @abc.abstractmethod
    def get_event(self, workflow_id: str, name: str) -> tuple[str | None, bytes | None] | None:
        """The value (JSON, pickle) of the last successful step called ``name``, or None."""

    @abc.abstractmethod
    def pending_workflows(self) -> list[WorkflowRow]:
        """Every PENDING workflow, oldest first."""

    @abc.abstractmethod
    def list_workflows(self, status: str | None, name: str | None, limit: int) -> list[WorkflowRow]:
        """Workflows, newest first."""

    @abc.abstractmethod
    def list_steps(self, workflow_id: str) -> list[StepRow]:
        """A workflow's checkpoints, in order."""

    @abc.abstractmethod
    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool, float, float]]:
        """A workflow's streams: ``(key, items, closed, first_at, last_at)`` by key."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection. Safe to call twice."""
