"""What the SQL stores share: the read queries, written once in SQL both DuckDB and PostgreSQL run.

Placeholders are ``$1, $2, …``: DuckDB takes them as they are, and the PostgreSQL store sends them to
the server with psycopg's raw cursor. Writes differ more (bulk insert, conflicts, locking) and stay in
each backend.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

from nbflow.store._base import (
    EVENT_PREFIX,
    MessageRow,
    Op,
    Replay,
    ReplayRecord,
    StepRow,
    Store,
    WorkflowRow,
)

Statement = tuple[str, Sequence[Any]]

__all__ = ["STEP_COLUMNS", "WORKFLOW_COLUMNS", "SQLStore", "reopen_statements"]

WORKFLOW_COLUMNS = (
    "workflow_id, name, status, inputs_json, inputs_pickle, output_json, output_pickle, error, "
    "error_pickle, created_at, updated_at, ended_at, executor_id, parent_id, error_step, "
    "queue_name, deadline"
)
STEP_COLUMNS = (
    "workflow_id, function_id, name, output_json, output_pickle, error, error_pickle, "
    "started_at, ended_at, attempts"
)

_LOAD_REPLAY = (
    "SELECT function_id, 'step', name, output_json, output_pickle, error, error_pickle "
    "FROM steps WHERE workflow_id = $1 "
    "UNION ALL SELECT function_id, CASE WHEN is_end THEN 'close' ELSE 'write' END, key, "
    "NULL, NULL, NULL, NULL FROM streams "
    "WHERE workflow_id = $1 AND attempt IS NULL AND function_id IS NOT NULL "
    "UNION ALL SELECT max(\"offset\") + 1, 'stream', key, NULL, NULL, NULL, NULL "
    "FROM streams WHERE workflow_id = $1 GROUP BY key "
    "UNION ALL SELECT 1, 'closed', key, NULL, NULL, NULL, NULL FROM streams "
    "WHERE workflow_id = $1 AND is_end AND function_id IS NOT NULL "
    "UNION ALL SELECT function_id, 'attempt', CAST(max(attempt) AS VARCHAR), NULL, NULL, "
    "NULL, NULL FROM streams WHERE workflow_id = $1 AND attempt IS NOT NULL "
    "GROUP BY function_id"
)


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


def fork_statements(
    source_id: str, new_id: str, from_step: int, now: float, executor_id: str
) -> list[tuple[str, list[Any]]]:
    """A copy of a workflow under a new id, with its operations before ``from_step`` (a function
    id) and the stream items they wrote, PENDING, to be run on from there."""
    return [
        (
            "INSERT INTO workflows (workflow_id, name, status, inputs_json, inputs_pickle, "
            "created_at, updated_at, executor_id) SELECT $2, name, 'PENDING', inputs_json, "
            "inputs_pickle, $3, $3, $4 FROM workflows WHERE workflow_id = $1",
            [source_id, new_id, now, executor_id],
        ),
        (
            f"INSERT INTO steps SELECT $2, {STEP_COLUMNS.split(', ', 1)[1]} FROM steps "
            "WHERE workflow_id = $1 AND function_id < $3",
            [source_id, new_id, from_step],
        ),
        (
            'INSERT INTO streams SELECT $2, key, "offset", value_json, value_pickle, is_end, '
            "function_id, attempt, created_at FROM streams "
            "WHERE workflow_id = $1 AND function_id < $3",
            [source_id, new_id, from_step],
        ),
    ]


class SQLStore(Store):
    """A store whose reads are the shared SQL queries above, run by :meth:`_fetchall`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    # -- writes: one plan, backend statements ---------------------------------------------------

    @abc.abstractmethod
    def _insert(self, table: str, rows: list[Any]) -> Statement:
        """The statement that inserts ``rows`` (named tuples) into ``table``."""

    @abc.abstractmethod
    def _finish(self, statements: list[Statement], op: Op) -> None:
        """Append the statements of a ``finish`` operation (see :mod:`nbflow.store._base`)."""

    def _plan(self, ops: Sequence[Op]) -> list[Statement]:
        """The statements that apply ``ops``: consecutive inserts become one bulk insert per table.

        A workflow whose row and final status are in the same batch (a short workflow) is inserted
        finished, with no UPDATE.
        """
        statements: list[Statement] = []
        pending: dict[str, list[Any]] = {"workflow": [], "step": [], "item": [], "message": []}
        unwritten: dict[str, int] = {}  # workflow id -> index of its row in pending["workflow"]
        for op in ops:
            kind = op[0]
            if kind == "workflow":
                unwritten[op[1].workflow_id] = len(pending["workflow"])
                pending["workflow"].append(op[1])
            elif kind in pending:
                pending[kind].append(op[1])
            elif kind == "finish" and op[1] in unwritten and op[8] is not None:
                index = unwritten[op[1]]
                _, _, status, output_json, output_pickle, error, error_pickle, ended_at, markers, error_step = op  # fmt: skip
                pending["workflow"][index] = pending["workflow"][index]._replace(
                    status=status, output_json=output_json, output_pickle=output_pickle,
                    error=error, error_pickle=error_pickle, ended_at=ended_at,
                    updated_at=ended_at, error_step=error_step,
                )  # fmt: skip
                pending["item"].extend(markers)
            elif kind in ("finish", "consume", "fork"):
                self._flush(statements, pending)
                unwritten.clear()
                if kind == "finish":
                    self._finish(statements, op)
                elif kind == "consume":  # the message, and the step that received it
                    statements.append(("DELETE FROM messages WHERE message_id = $1", [op[1]]))
                    pending["step"].append(op[2])
                else:
                    statements += fork_statements(*op[1:])
            else:  # pragma: no cover - a programming error
                raise ValueError(f"unknown operation {kind!r}")
        self._flush(statements, pending)
        return statements

    def _flush(self, statements: list[Statement], pending: dict[str, list[Any]]) -> None:
        for kind, table in (
            ("workflow", "workflows"),
            ("step", "steps"),
            ("item", "streams"),
            ("message", "messages"),
        ):
            if pending[kind]:
                statements.append(self._insert(table, pending[kind]))
                pending[kind] = []

    # -- queues --------------------------------------------------------------------------------

    @staticmethod
    def _take_enqueued(
        execute: Callable[[str, list[Any]], list[tuple[Any, ...]]],
        *,
        queue_name: str,
        executor_id: str,
        names: list[str],
        limit: int,
        concurrency: int | None,
        now: float,
        name_in: str,
        lock: str = "",
    ) -> list[WorkflowRow]:
        """The body of :meth:`Store.dequeue`, run by ``execute`` inside the caller's transaction.

        ``name_in`` is the backend's test that ``name`` is in the list ``$4``; ``lock`` what locks
        the rows taken (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
        """
        if concurrency is not None:
            [(running,)] = execute(
                "SELECT count(*) FROM workflows WHERE queue_name = $1 AND status = 'PENDING'",
                [queue_name],
            )
            limit = min(limit, concurrency - int(running))
        if limit <= 0 or not names:
            return []
        rows = execute(
            "UPDATE workflows SET status = 'PENDING', executor_id = $2, updated_at = $3 "
            "WHERE workflow_id IN (SELECT workflow_id FROM workflows WHERE queue_name = $1 "
            f"AND status = 'ENQUEUED' AND {name_in} ORDER BY created_at, workflow_id "
            f"LIMIT $5 {lock}) RETURNING {WORKFLOW_COLUMNS}",
            [queue_name, executor_id, now, names, limit],
        )
        return sorted((WorkflowRow(*r) for r in rows), key=lambda r: (r.created_at, r.workflow_id))

    # -- reads ---------------------------------------------------------------------------------

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE workflow_id = $1", [workflow_id]
        )
        return WorkflowRow(*rows[0]) if rows else None

    def get_status(self, workflow_id: str) -> str | None:
        rows = self._fetchall("SELECT status FROM workflows WHERE workflow_id = $1", [workflow_id])
        return rows[0][0] if rows else None

    def load_replay(self, workflow_id: str) -> Replay:
        records: list[ReplayRecord] = []
        streams: dict[str, tuple[int, bool]] = {}
        closed: set[str] = set()
        attempts: dict[int, int] = {}
        for row in self._fetchall(_LOAD_REPLAY, [workflow_id]):
            kind = row[1]
            if kind == "attempt":
                attempts[int(row[0])] = int(row[2])
            elif kind == "stream":
                streams[row[2]] = (int(row[0]), False)
            elif kind == "closed":
                closed.add(row[2])
            else:
                records.append(ReplayRecord(*row))
        for key in closed:
            streams[key] = (streams[key][0], True)
        records.sort(key=lambda r: r.function_id)
        return Replay(records, streams, attempts)

    def read_stream(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[tuple[int, str | None, bytes | None, bool]]:
        return self._fetchall(  # type: ignore[return-value]
            'SELECT "offset", value_json, value_pickle, is_end FROM streams '
            'WHERE workflow_id = $1 AND key = $2 AND "offset" >= $3 ORDER BY "offset" LIMIT $4',
            [workflow_id, key, start, limit],
        )

    def list_workflows(self, status: str | None, name: str | None, limit: int) -> list[WorkflowRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("name", name)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows {clause} "
            f"ORDER BY created_at DESC, workflow_id DESC LIMIT ${len(params) + 1}",
            [*params, limit],
        )
        return [WorkflowRow(*row) for row in rows]

    def pending_workflows(self) -> list[WorkflowRow]:
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE status = 'PENDING' ORDER BY created_at"
        )
        return [WorkflowRow(*row) for row in rows]

    def list_steps(self, workflow_id: str) -> list[StepRow]:
        rows = self._fetchall(
            f"SELECT {STEP_COLUMNS} FROM steps WHERE workflow_id = $1 ORDER BY function_id",
            [workflow_id],
        )
        return [StepRow(*row) for row in rows]

    def next_message(self, destination_id: str, topic: str | None) -> MessageRow | None:
        rows = self._fetchall(
            "SELECT message_id, destination_id, topic, value_json, value_pickle, created_at "
            "FROM messages WHERE destination_id = $1 AND topic IS NOT DISTINCT FROM $2 "
            "ORDER BY created_at, message_id LIMIT 1",
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
