"""The storage interface: a few methods every backend implements.

The runtime never writes directly: it appends operations to one ordered write log, and the log's
committer thread hands them to :meth:`Store.commit` in batches, each batch one transaction. Reads
come from any thread. A backend keeps one connection (or cursor) per thread.

The operations, and the rows they insert, are in :mod:`nbflow.store._ops`.

A store shared by several processes (PostgreSQL) also knows which process runs each workflow: every
runtime registers itself as an executor (:meth:`~Store.attach`), :meth:`~Store.claim` takes a workflow over
in a transaction, and :meth:`~Store.pending_workflows` leaves out what a live executor runs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import NamedTuple

from nbflow.store._history import StepStatsQuery, StepStatsRow, WorkflowQuery
from nbflow.store._ops import CacheRow, Changes, MessageRow, Op, StepRow, WorkflowRow
from nbflow.store._sqlpages import JsonPage
from nbflow.store._sqlqueues import Dequeued, QueueLimits
from nbflow.store._sqltimeline import TimelineRows
from nbflow.store._transfer import TransferRows

__all__ = ["RecordedHead", "Related", "Replay", "ReplayRecord", "Store"]


class RecordedHead(NamedTuple):
    """A step as :meth:`Store.list_recorded` lists it: all but its pickle (whether it has one)."""

    function_id: int
    name: str
    output_json: str | None
    has_pickle: bool
    started_at: float
    ended_at: float


class Related(NamedTuple):
    """A workflow started by another (its ``parent_id``), with its status."""

    workflow_id: str
    parent_id: str
    status: str


class Replay(NamedTuple):
    """Everything a replay of a workflow needs, loaded in one round trip.

    Attributes:
        records: The recorded operations of the workflow body, by function id.
        streams: For each stream key, the next offset and whether the body closed it.
        attempts: For each step that wrote stream items, the highest attempt number recorded.
        outputs: For each stream key, how many printed lines of the body it holds (items with
            neither function id nor attempt: ``WorkflowContext.write_output``).
    """

    records: list[ReplayRecord]
    streams: dict[str, tuple[int, bool]]
    attempts: dict[int, int]
    outputs: dict[str, int] = {}  # noqa: RUF012 - never changed (a replay copies it)


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
    code: str | None = None  # a step's: the fingerprint of the function that ran


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
    #: Whether a reader of a stream reads its pages with :meth:`read_stream_json` (one JSON array
    #: a page, decoded in one pass: measured faster on DuckDB) rather than as rows.
    json_pages: bool = False

    def attach(self, executor_id: str, on_change: Callable[[Changes], None]) -> None:  # noqa: B027
        """Register the runtime that uses this store (once, right after opening it).

        A shared store records the executor, keeps it visibly alive while the runtime is open, and
        calls ``on_change`` (from a background thread) with what batches of other processes
        changed (see :func:`~nbflow.store._ops.changes`). A single-process store does nothing.
        """

    def executor_alive(self, executor_id: str | None) -> bool:
        """Whether a runtime of another process that uses this database is still open."""
        return False

    @abc.abstractmethod
    def claim(
        self,
        workflow_id: str,
        executor_id: str,
        now: float,
        *,
        reopen: bool = False,
        recovery: bool = False,
    ) -> WorkflowRow | None:
        """Take a workflow over to run it here, in one transaction, and return its row.

        A PENDING workflow is taken when no live executor runs it (``executor_id`` itself counts as
        not running it: the caller knows it does not). With ``reopen``, an ended one (not SUCCESS)
        is reopened: set back to PENDING, with the checkpoint of the step whose error ended it and
        the end markers its end wrote deleted. Returns None when the workflow is not taken: it
        ended (and is not reopened), is gone, or a live executor runs it.

        The same transaction counts the claim in ``recovery_attempts``: a ``recovery`` (its
        process stopped) adds one, any other claim (a resume) sets it to 0.
        """

    def claim_many(
        self, workflow_ids: Sequence[str], executor_id: str, now: float
    ) -> list[WorkflowRow]:
        """Take interrupted workflows over to recover them here, in one transaction: each one
        that is PENDING and that no live executor runs, as :meth:`claim` with ``recovery`` does
        (its ``recovery_attempts`` raised by one, ``executor_id`` this one). Returns the rows of
        those taken, in any order. (This default claims them one by one.)"""
        taken = (self.claim(i, executor_id, now, recovery=True) for i in workflow_ids)
        return [row for row in taken if row is not None and row.status == "PENDING"]

    @abc.abstractmethod
    def commit(self, ops: Sequence[Op]) -> set[str]:
        """Apply a batch of operations, in order, as one transaction.

        Returns:
            The ids of workflows whose writes in the batch were left out (shared stores): another
            process cancelled them (their stream items and final status were not written) or took
            them over (nothing of them was written). Empty for a single-process store.
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

    def load_replays(self, workflow_ids: Sequence[str]) -> dict[str, Replay]:
        """:meth:`load_replay` of each of these workflows, by id (a SQL store: in one query)."""
        return {workflow_id: self.load_replay(workflow_id) for workflow_id in workflow_ids}

    @abc.abstractmethod
    def read_stream(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[tuple[int, str | None, bytes | None, bool]]:
        """Up to ``limit`` rows ``(offset, value_json, value_pickle, is_end)`` from ``start``."""

    @abc.abstractmethod
    def read_stream_json(self, workflow_id: str, key: str, start: int, limit: int) -> JsonPage:
        """The rows :meth:`read_stream` returns, their items' JSON values joined (see
        :class:`~nbflow.store._sqlpages.JsonPage`)."""

    @abc.abstractmethod
    def dequeue(
        self,
        queue_name: str,
        executor_id: str,
        names: list[str],
        limit: int,
        limits: QueueLimits,
        now: float,
    ) -> Dequeued:
        """Take up to ``limit`` workflows from the head of the queue to run here, in one
        transaction: they become PENDING with this executor, ``started_at`` now. Only workflows
        called one of ``names`` (declared here) are taken, and only as many as ``limits`` leave
        (counted over all processes); DELAYED workflows whose delay has passed become ENQUEUED.
        Also says when to look again by itself (a delay ends, a rate's window moves on)."""

    @abc.abstractmethod
    def enqueue_once(self, row: WorkflowRow) -> str | None:
        """Insert ``row``, ENQUEUED or DELAYED with a deduplication id, unless a workflow with
        that id is ENQUEUED, DELAYED or PENDING on its queue: then return that workflow's id
        (nothing is inserted). Race-free across processes. An existing id is left as it is."""

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
    def running_children(self, parent_id: str) -> list[str]:
        """The ids of the PENDING, ENQUEUED or DELAYED workflows that ``parent_id`` started."""

    @abc.abstractmethod
    def pending_workflows(self) -> list[WorkflowRow]:
        """Every PENDING workflow that no other live process runs (this one's included), oldest
        first."""

    @abc.abstractmethod
    def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRow]:
        """The workflows ``query`` selects, in its order (see :class:`WorkflowQuery`)."""

    @abc.abstractmethod
    def step_stats(self, query: StepStatsQuery) -> list[StepStatsRow]:
        """The statistics of the steps ``query`` selects, one row per step name, by name."""

    @abc.abstractmethod
    def append_record(self, row: StepRow) -> int:
        """Insert ``row`` (its ``function_id`` ignored) as the next step of its workflow, in one
        transaction, and return the function id it got. Recorders of one workflow in several
        processes each get their own id."""

    @abc.abstractmethod
    def list_steps(self, workflow_id: str, *, outputs: bool = True) -> list[StepRow]:
        """A workflow's checkpoints, in order.

        With ``outputs=False`` their outputs and error pickles are not read (those fields are
        None): what a listing needs, without reading every large value the steps returned.
        """

    @abc.abstractmethod
    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool, float, float]]:
        """A workflow's streams: ``(key, items, closed, first_at, last_at)`` by key."""

    @abc.abstractmethod
    def find_cached(self, entries: Sequence[str]) -> dict[str, CacheRow]:
        """The step cache's rows of these entries (those that exist), by entry."""

    @abc.abstractmethod
    def cached_rows(self, name: str, code: str, limit: int) -> list[CacheRow] | None:
        """Every step cache row of the step ``name`` with the code ``code``; None when there
        are more than ``limit`` (a run then looks its calls up one by one)."""

    @abc.abstractmethod
    def last_cached(self, name: str, args_hash: str | None = None) -> CacheRow | None:
        """The newest step cache row of the step called ``name`` (one with these arguments
        first, when ``args_hash`` is given), or None."""

    @abc.abstractmethod
    def clear_cache(self, name: str | None, older_than: float | None) -> int:
        """Delete the step cache's rows (of the step ``name``; made before ``older_than``, epoch
        seconds), in one transaction; how many."""

    def list_recorded(self, workflow_id: str, name: str | None) -> list[RecordedHead]:
        """A workflow's successful steps (only those called ``name`` when given), in order,
        without reading their pickles: :meth:`get_step_pickle` reads one. (A SQL store selects
        only these columns; this default reads the whole steps.)"""
        rows = self.list_steps(workflow_id)
        return [
            RecordedHead(*r[1:4], r.output_pickle is not None, r.started_at, r.ended_at)
            for r in rows
            if r.error is None and name in (None, r.name)
        ]

    def get_step_pickle(self, workflow_id: str, function_id: int) -> bytes | None:
        """The ``output_pickle`` of one step (None when it has none, or does not exist)."""
        rows = [r for r in self.list_steps(workflow_id) if r.function_id == function_id]
        return rows[0].output_pickle if rows else None

    def get_step_output(
        self, workflow_id: str, function_id: int
    ) -> tuple[str | None, bytes | None] | None:
        """The output ``(output_json, output_pickle)`` of one step, or None when it does not
        exist."""
        rows = [r for r in self.list_steps(workflow_id) if r.function_id == function_id]
        return (rows[0].output_json, rows[0].output_pickle) if rows else None

    @abc.abstractmethod
    def timeline_rows(
        self, workflow_id: str, *, max_ticks: int = 2000, max_children: int = 100
    ) -> TimelineRows | None:
        """What a timeline draws of one workflow (None when it does not exist): its span, its
        steps' spans, its stream writes thinned to about ``max_ticks`` (each stream's first and
        last kept) and its first ``max_children`` children (see
        :mod:`nbflow.store._sqltimeline`)."""

    # -- removing history (a SQL store: store/_sqldelete.py) ------------------------------------

    #: Whether closing compacts the file: None when deletes freed enough of it, True always,
    #: False never (a store without a file ignores it).
    compact_on_close: bool | None = None

    def delete_workflows(self, workflow_ids: Sequence[str]) -> int:
        """Delete these workflows where finished (checked in the deleting transaction), with
        their steps, stream items and the messages addressed to them; how many were deleted."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete workflows")

    def prunable(
        self, before: float, statuses: Sequence[str], leave_names: Sequence[str]
    ) -> list[str]:
        """The ids of finished workflows (of ``statuses``) created before ``before``, except
        those called one of ``leave_names``, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete workflows")

    def children(self, parent_ids: Sequence[str]) -> list[Related]:
        """The workflows these workflows started (one generation)."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete workflows")

    def delete_records(self, workflow_id: str, function_ids: Sequence[int]) -> int:
        """Delete these steps of a record-keeping workflow; how many."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete records")

    # -- moving workflows between databases (a SQL store: store/_transfer.py) -------------------

    def export_rows(self, workflow_ids: Sequence[str]) -> list[TransferRows]:
        """These workflows' rows as stored, with their steps, stream rows and waiting messages
        (those that exist, in the order given), each read in one transaction."""
        raise NotImplementedError(f"{type(self).__name__} cannot export workflows")

    def import_rows(self, rows: TransferRows) -> bool:
        """Insert one workflow's rows in one transaction unless its id exists; whether it did."""
        raise NotImplementedError(f"{type(self).__name__} cannot import workflows")

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection. Safe to call twice."""
