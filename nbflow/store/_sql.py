"""What the SQL stores share: the read queries, written once in SQL both DuckDB and PostgreSQL run.

Placeholders are ``$1, $2, …``: DuckDB takes them as they are, and the PostgreSQL store sends them to
the server with psycopg's raw cursor. Writes differ more (bulk insert, conflicts, locking) and stay in
each backend.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from nbflow.store._base import RecordedHead, Store
from nbflow.store._history import HistoryQueries
from nbflow.store._ops import (
    EVENT_PREFIX,
    CacheRow,
    Consume,
    Enqueue,
    Finish,
    Fork,
    MessageRow,
    Op,
    SetEvent,
    StepRow,
    StreamRow,
    WorkflowRow,
)
from nbflow.store._schema import column_list
from nbflow.store._sqlcache import CacheQueries
from nbflow.store._sqldelete import DeleteQueries
from nbflow.store._sqlpages import PageQueries
from nbflow.store._sqlqueues import Execute, QueueQueries
from nbflow.store._sqlrecover import RecoveryQueries
from nbflow.store._sqltimeline import TimelineQueries
from nbflow.store._transfer import TransferQueries

Statement = tuple[str, Sequence[Any]]

__all__ = [
    "MESSAGE_COLUMNS",
    "Execute",
    "STEP_COLUMNS",
    "STREAM_COLUMNS",
    "WORKFLOW_COLUMNS",
    "SQLStore",
    "claim_statements",
    "reopen_statements",
]

WORKFLOW_COLUMNS = column_list("workflows")
STEP_COLUMNS = column_list("steps")
STREAM_COLUMNS = column_list("streams")
#: The steps' columns without the values they hold (``list_steps(outputs=False)``).
_STEP_HEADS = (
    "workflow_id, function_id, name, NULL, NULL, error, NULL, started_at, ended_at, attempts, "
    "code, args_hash, cached_from, args_text"
)
MESSAGE_COLUMNS = column_list("messages")

#: Appends a step to a record-keeping workflow at the next function id, which it returns.
APPEND_RECORD = (
    f"INSERT INTO steps ({STEP_COLUMNS}) SELECT $1, coalesce(max(function_id), 0) + 1, "
    "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM steps WHERE workflow_id = $14 "
    "RETURNING function_id"
)


#: Sets a workflow's final status (parameters: :func:`finish_params`), only while it has none: a
#: late end (a cancel that raced the end) never overwrites the end that took effect.
FINISH_UPDATE = (
    "UPDATE workflows SET status = $1, output_json = $2, output_pickle = $3, error = $4, "
    "error_pickle = $5, ended_at = $6, updated_at = $6, error_step = $7 WHERE workflow_id = $8 "
    "AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')"
)


#: :data:`FINISH_UPDATE` of many workflows at once: its parameters are lists, one per parameter of
#: :func:`finish_params`, in that order (DuckDB's casts).
FINISH_MANY = (
    "UPDATE workflows SET status = f.status, output_json = f.output_json, output_pickle = "
    "f.output_pickle, error = f.error, error_pickle = f.error_pickle, ended_at = f.ended_at, "
    "updated_at = f.ended_at, error_step = f.error_step FROM (SELECT unnest($1::VARCHAR[]) AS "
    "status, unnest($2::VARCHAR[]) AS output_json, unnest($3::BLOB[]) AS output_pickle, "
    "unnest($4::VARCHAR[]) AS error, unnest($5::BLOB[]) AS error_pickle, unnest($6::DOUBLE[]) AS "
    "ended_at, unnest($7::INTEGER[]) AS error_step, unnest($8::VARCHAR[]) AS workflow_id) AS f "
    "WHERE workflows.workflow_id = f.workflow_id "
    "AND workflows.status IN ('PENDING', 'ENQUEUED', 'DELAYED')"
)


def finish_params(op: Finish) -> list[Any]:
    """The parameters of :data:`FINISH_UPDATE` for ``op``."""
    return [
        op.status,
        op.output_json,
        op.output_pickle,
        op.error,
        op.error_pickle,
        op.ended_at,
        op.error_step,
        op.workflow_id,
    ]


def reopen_statements(workflow_id: str, now: float) -> list[tuple[str, list[Any]]]:
    """The statements that set an ended workflow back to PENDING, to run it on (resume).

    The checkpoint of the step whose error ended it is deleted, so that step runs again (e.g. after
    its bug was fixed), and so are the end markers its end wrote. Its timeout no longer applies.
    """
    return [
        (
            "DELETE FROM steps WHERE workflow_id = $1 AND error IS NOT NULL AND function_id = "
            "(SELECT error_step FROM workflows WHERE workflow_id = $1)",
            [workflow_id],
        ),
        (
            "UPDATE workflows SET status = 'PENDING', output_json = NULL, output_pickle = NULL, "
            "error = NULL, error_pickle = NULL, ended_at = NULL, error_step = NULL, "
            "deadline = NULL, updated_at = $2 WHERE workflow_id = $1",
            [workflow_id, now],
        ),
        (
            "DELETE FROM streams WHERE workflow_id = $1 AND is_end AND function_id IS NULL",
            [workflow_id],
        ),
    ]


def claim_statements(
    workflow_id: str, now: float, status: str, recovery: bool
) -> list[tuple[str, list[Any]]]:
    """What a claim of a workflow with ``status`` writes: an ended one is reopened
    (:func:`reopen_statements`); the claim is counted: a ``recovery`` adds one to
    ``recovery_attempts``, a resume starts the count again (at 0)."""
    count = "coalesce(recovery_attempts, 0) + 1" if recovery else "0"
    statements = [] if status == "PENDING" else reopen_statements(workflow_id, now)
    update = f"UPDATE workflows SET recovery_attempts = {count} WHERE workflow_id = $1"
    return [*statements, (update, [workflow_id])]


def fork_statements(fork: Fork) -> list[tuple[str, list[Any]]]:
    """A copy of a workflow under a new id, with its operations before ``from_step`` (a function
    id) and the stream items they wrote, PENDING, to be run on from there."""
    source_id, new_id, from_step = fork.source_id, fork.new_id, fork.from_step
    return [
        (
            "INSERT INTO workflows (workflow_id, name, status, inputs_json, inputs_pickle, "
            "created_at, updated_at, executor_id, deadline, code) SELECT $2, name, 'PENDING', "
            "inputs_json, inputs_pickle, $3, $3, $4, $5, code FROM workflows "
            "WHERE workflow_id = $1",
            [source_id, new_id, fork.now, fork.executor_id, fork.deadline],
        ),
        (
            f"INSERT INTO steps SELECT $2, {STEP_COLUMNS.split(', ', 1)[1]} FROM steps "
            "WHERE workflow_id = $1 AND function_id < $3",
            [source_id, new_id, from_step],
        ),
        (
            f"INSERT INTO streams SELECT $2, {STREAM_COLUMNS.split(', ', 1)[1]} FROM streams "
            "WHERE workflow_id = $1 AND function_id < $3",
            [source_id, new_id, from_step],
        ),
    ]


class _Inserts:
    """The rows :meth:`SQLStore._plan` has yet to insert, by table."""

    __slots__ = ("cache", "ending", "items", "messages", "steps", "unwritten", "workflows")

    def __init__(self) -> None:
        self.workflows: list[WorkflowRow] = []
        self.steps: list[StepRow] = []
        self.items: list[StreamRow] = []
        #: message id -> the first message with it (a keyed send may come twice in a batch)
        self.messages: dict[str, MessageRow] = {}
        #: entry -> the last cache row for it in the batch (one statement may not set a key twice)
        self.cache: dict[str, CacheRow] = {}
        #: workflow id -> index of its row in ``workflows``
        self.unwritten: dict[str, int] = {}
        #: workflow id -> its own end (with its end markers), after the inserts
        self.ending: dict[str, Finish] = {}


class SQLStore(
    HistoryQueries,
    CacheQueries,
    DeleteQueries,
    PageQueries,
    QueueQueries,
    RecoveryQueries,
    TimelineQueries,
    TransferQueries,
    Store,
):
    """A store whose reads are the shared SQL queries above, run by :meth:`_fetchall`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    # -- writes: one plan, backend statements ---------------------------------------------------

    @abc.abstractmethod
    def _insert(self, table: str, rows: Sequence[tuple[Any, ...]]) -> Statement:
        """The statement that inserts ``rows`` (named tuples) into ``table``."""

    @abc.abstractmethod
    def _finish(self, statements: list[Statement], op: Finish) -> None:
        """Append the statements of a :class:`~nbflow.store._ops.Finish`."""

    def _plan(self, ops: Sequence[Op]) -> list[Statement]:
        """The statements that apply ``ops``: consecutive inserts become one bulk insert per table.

        A workflow whose row and final status are in the same batch (a short workflow) is inserted
        finished, with no UPDATE.
        """
        statements: list[Statement] = []
        plan = _Inserts()
        items, steps, workflows, ending = plan.items, plan.steps, plan.workflows, plan.ending
        for op in ops:
            if type(op) is StreamRow:  # the hot path first
                items.append(op)
            elif type(op) is StepRow:
                steps.append(op)
            elif type(op) is WorkflowRow:
                plan.unwritten[op.workflow_id] = len(workflows)
                workflows.append(op)
            elif type(op) is Enqueue:
                plan.unwritten[op.row.workflow_id] = len(workflows)
                workflows.append(op.row)
            elif type(op) is SetEvent:
                steps.append(op.step)
            elif type(op) is MessageRow:
                plan.messages[op.message_id] = plan.messages.get(op.message_id, op)
            elif type(op) is CacheRow:
                plan.cache[op.entry] = op
            elif type(op) is Finish and op.markers is not None and op.workflow_id in plan.unwritten:
                index = plan.unwritten[op.workflow_id]
                workflows[index] = workflows[index]._replace(
                    status=op.status,
                    output_json=op.output_json,
                    output_pickle=op.output_pickle,
                    error=op.error,
                    error_pickle=op.error_pickle,
                    ended_at=op.ended_at,
                    updated_at=op.ended_at,
                    error_step=op.error_step,
                )
                items.extend(op.markers)
            elif type(op) is Finish and op.markers is not None and op.workflow_id not in ending:
                ending[op.workflow_id] = op  # (its own end: one UPDATE for all, see _flush)
            else:  # statements of their own, after the inserts before them
                self._flush(statements, plan)
                if type(op) is Finish:
                    self._finish(statements, op)
                elif type(op) is Consume:  # the message, and the step that received it
                    statements.append(self._consume(op))
                    steps.append(op.step)
                elif type(op) is Fork:
                    statements += fork_statements(op)
                else:  # pragma: no cover - a programming error
                    raise TypeError(f"unknown operation {op!r}")
        self._flush(statements, plan)
        return statements

    def _consume(self, op: Consume) -> Statement:
        """The statement that deletes (or, ``keep``, marks consumed) the message a workflow
        received."""
        if op.keep:
            sql = "UPDATE messages SET consumed_at = $2 WHERE message_id = $1"
            return sql, [op.message_id, op.step.ended_at]
        return "DELETE FROM messages WHERE message_id = $1", [op.message_id]

    def _flush(self, statements: list[Statement], plan: _Inserts) -> None:
        """Append the inserts ``plan`` holds, one per table, and empty it."""
        for table, rows in (
            ("workflows", plan.workflows),
            ("steps", plan.steps),
            ("streams", plan.items),
            ("messages", list(plan.messages.values())),
        ):
            if rows:
                statements.append(self._insert(table, rows))
                rows.clear()
        plan.messages.clear()
        if plan.cache:
            statements.append(self._insert("step_cache", list(plan.cache.values())))
            plan.cache.clear()
        if plan.ending:
            self._finish_many(statements, list(plan.ending.values()))
            plan.ending.clear()
        plan.unwritten.clear()

    def _finish_many(self, statements: list[Statement], finishes: list[Finish]) -> None:
        """Append the statements of workflows' own ends (each with its end markers): one UPDATE
        for all (:data:`FINISH_MANY`), then their markers. A store whose ends take conditions of
        their own appends each one's :meth:`_finish` instead. One end alone is updated by its
        key (:data:`FINISH_UPDATE`): DuckDB runs it in half the time of a join with one row
        (1.0 against 2.0 ms), and it is the end of every long workflow."""
        if len(finishes) == 1:
            statements.append((FINISH_UPDATE, finish_params(finishes[0])))
        else:
            columns = zip(*(finish_params(op) for op in finishes), strict=True)
            statements.append((FINISH_MANY, [list(column) for column in columns]))
        markers = [marker for op in finishes for marker in op.markers or ()]
        if markers:
            statements.append(self._insert("streams", markers))

    # -- queues --------------------------------------------------------------------------------

    def append_record(self, row: StepRow) -> int:
        # One recorder at a time per record (the lock of the queues, under another name): the
        # id is the next after every one committed, whichever process recorded it.
        with self._queue_transaction(f"nbflow.record:{row.workflow_id}") as execute:
            params = [row.workflow_id, *row[2:], row.workflow_id]  # (one type per parameter)
            [(function_id,)] = execute(APPEND_RECORD, params)
        return int(function_id)

    # -- reads ---------------------------------------------------------------------------------

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE workflow_id = $1", [workflow_id]
        )
        return WorkflowRow(*rows[0]) if rows else None

    def get_status(self, workflow_id: str) -> str | None:
        rows = self._fetchall("SELECT status FROM workflows WHERE workflow_id = $1", [workflow_id])
        return rows[0][0] if rows else None

    def pending_workflows(self) -> list[WorkflowRow]:
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE status = 'PENDING' ORDER BY created_at"
        )
        return [WorkflowRow(*row) for row in rows]

    def running_children(self, parent_id: str) -> list[str]:
        rows = self._fetchall(
            "SELECT workflow_id FROM workflows WHERE parent_id = $1 "
            "AND status IN ('PENDING', 'ENQUEUED', 'DELAYED') ORDER BY created_at",
            [parent_id],
        )
        return [row[0] for row in rows]

    def list_steps(self, workflow_id: str, *, outputs: bool = True) -> list[StepRow]:
        columns = STEP_COLUMNS if outputs else _STEP_HEADS
        rows = self._fetchall(
            f"SELECT {columns} FROM steps WHERE workflow_id = $1 ORDER BY function_id",
            [workflow_id],
        )
        return [StepRow(*row) for row in rows]

    def list_recorded(self, workflow_id: str, name: str | None) -> list[RecordedHead]:
        named = "" if name is None else "AND name = $2 "
        rows = self._fetchall(
            "SELECT function_id, name, output_json, output_pickle IS NOT NULL, started_at, "
            f"ended_at FROM steps WHERE workflow_id = $1 AND error IS NULL {named}"
            "ORDER BY function_id",
            [workflow_id] if name is None else [workflow_id, name],
        )
        return [RecordedHead(*row) for row in rows]

    def get_step_pickle(self, workflow_id: str, function_id: int) -> bytes | None:
        rows = self._fetchall(
            "SELECT output_pickle FROM steps WHERE workflow_id = $1 AND function_id = $2",
            [workflow_id, function_id],
        )
        return rows[0][0] if rows else None

    def next_message(self, destination_id: str, topic: str | None) -> MessageRow | None:
        rows = self._fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages "
            "WHERE destination_id = $1 AND topic IS NOT DISTINCT FROM $2 "
            "AND consumed_at IS NULL ORDER BY created_at, message_id LIMIT 1",
            [destination_id, topic],
        )
        return MessageRow(*rows[0]) if rows else None

    def list_events(self, workflow_id: str) -> list[tuple[str, str | None, bytes | None]]:
        return self._fetchall(  # type: ignore[return-value]
            "SELECT name, output_json, output_pickle FROM steps WHERE workflow_id = $1 "
            f"AND left(name, {len(EVENT_PREFIX)}) = $2 AND error IS NULL ORDER BY function_id",
            [workflow_id, EVENT_PREFIX],
        )

    def get_event(self, workflow_id: str, name: str) -> tuple[str | None, bytes | None] | None:
        rows = self._fetchall(
            "SELECT output_json, output_pickle FROM steps WHERE workflow_id = $1 AND name = $2 "
            "AND error IS NULL ORDER BY function_id DESC LIMIT 1",
            [workflow_id, name],
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool, float, float]]:
        return self._fetchall(  # type: ignore[return-value]
            "SELECT key, count(*) FILTER (WHERE NOT is_end), bool_or(is_end), min(created_at), "
            "max(created_at) FROM streams WHERE workflow_id = $1 GROUP BY key ORDER BY key",
            [workflow_id],
        )
