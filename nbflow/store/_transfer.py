"""Moving workflows between databases: their rows read and written as stored, written once in
SQL both DuckDB and PostgreSQL run (a part of :class:`~nbflow.store._sql.SQLStore`).

:meth:`TransferQueries.export_rows` reads workflows with everything that belongs to them, each in
one transaction: the workflow's row, its steps (events are steps: ``nbflow.set_event(…)``), its
stream items and end markers, and the messages waiting for it. On PostgreSQL the workflow's row is
locked first (``FOR UPDATE``), so a runner's commit (which locks it ``FOR SHARE``) is wholly
before or wholly after the read; a DuckDB transaction is a snapshot by itself.

:meth:`TransferQueries.import_rows` writes one workflow in one transaction: its row first, only if
no workflow has its id (``ON CONFLICT DO NOTHING``, so two importers never both write one), then the
rest. Values go as they are (JSON text, pickle bytes): references to large values' files beside
a DuckDB file are the engine's to resolve (see :mod:`nbflow.store._valuefiles`).
The portable form of these rows (JSON, with a format version) is :mod:`nbflow.store._exported`.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from nbflow.store._ops import MessageRow, StepRow, StreamRow, WorkflowRow
from nbflow.store._schema import BIGINT, BLOB, BOOLEAN, DOUBLE, INTEGER, TABLES, TEXT, column_list

__all__ = ["TransferQueries", "TransferRows"]

#: Runs one statement in the caller's transaction and returns its rows.
Execute = Callable[[str, list[Any]], list[tuple[Any, ...]]]

#: Array types both DuckDB and PostgreSQL know by these names (DuckDB takes them as aliases).
_ARRAY_TYPES = {
    TEXT: "text",
    BLOB: "bytea",
    DOUBLE: "float8",
    INTEGER: "int4",
    BIGINT: "int8",
    BOOLEAN: "bool",
}
#: Rows per insert statement, and about how many bytes of values (large values go in fewer).
_ROWS_PER_INSERT = 5000
_BYTES_PER_INSERT = 32 << 20


class TransferRows(NamedTuple):
    """One workflow as stored: its row, steps (events included), stream rows and the messages
    waiting for it, each list in its table's key order."""

    workflow: WorkflowRow
    steps: list[StepRow]
    streams: list[StreamRow]
    messages: list[MessageRow]


def _size(row: tuple[Any, ...]) -> int:
    return sum(len(v) for v in row if isinstance(v, (bytes, bytearray, memoryview, str)))


def _batches(rows: Sequence[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` in batches of at most :data:`_ROWS_PER_INSERT` rows and about
    :data:`_BYTES_PER_INSERT` bytes (at least one row each)."""
    batch: list[tuple[Any, ...]] = []
    held = 0
    for row in rows:
        size = _size(row)
        if batch and (len(batch) >= _ROWS_PER_INSERT or held + size > _BYTES_PER_INSERT):
            yield batch
            batch, held = [], 0
        batch.append(row)
        held += size
    if batch:
        yield batch


def insert_statement(table: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """An insert of ``rows`` as one array per column (the columns NULL in every row left out),
    skipping rows whose key exists: SQL both stores run."""
    columns = TABLES[table]
    kept = [i for i in range(len(columns)) if any(row[i] is not None for row in rows)]
    names = ", ".join(f'"{columns[i][0]}"' for i in kept)
    arrays = ", ".join(
        f"unnest(${n + 1}::{_ARRAY_TYPES[columns[i][1]]}[])" for n, i in enumerate(kept)
    )
    params = [[row[i] for row in rows] for i in kept]
    return f"INSERT INTO {table} ({names}) SELECT {arrays} ON CONFLICT DO NOTHING", params


class TransferQueries(abc.ABC):
    """Reading and writing whole workflows, over a SQL store's :meth:`_delete_transaction` (a
    write transaction) and :meth:`_in_list`."""

    #: What locks the rows a transaction reads to change (``FOR UPDATE`` on PostgreSQL).
    _lock_rows: str = ""

    @abc.abstractmethod
    def _delete_transaction(self) -> contextlib.AbstractContextManager[Execute]:
        """A write transaction (all its statements commit together, or none)."""

    @abc.abstractmethod
    def _in_list(self, column: str, param: str, sql_type: str) -> str:
        """The backend's test that ``column`` is in the list parameter ``param``."""

    def export_rows(self, workflow_ids: Sequence[str]) -> list[TransferRows]:
        """The rows of these workflows as stored (those that exist, in the order given), each
        read in one transaction."""
        found = []
        for workflow_id in dict.fromkeys(workflow_ids):
            with self._delete_transaction() as execute:
                rows = self._read_one(execute, workflow_id)
            if rows is not None:
                found.append(rows)
        return found

    def _read_one(self, execute: Execute, workflow_id: str) -> TransferRows | None:
        head = execute(
            f"SELECT {column_list('workflows')} FROM workflows WHERE workflow_id = $1 "
            f"{self._lock_rows}",
            [workflow_id],
        )
        if not head:
            return None
        steps = execute(
            f"SELECT {column_list('steps')} FROM steps WHERE workflow_id = $1 ORDER BY function_id",
            [workflow_id],
        )
        streams = execute(
            f"SELECT {column_list('streams')} FROM streams WHERE workflow_id = $1 "
            'ORDER BY key, "offset"',
            [workflow_id],
        )
        messages = execute(
            f"SELECT {column_list('messages')} FROM messages WHERE destination_id = $1 "
            "ORDER BY created_at, message_id",
            [workflow_id],
        )
        return TransferRows(
            WorkflowRow(*head[0]),
            [StepRow(*r) for r in steps],
            [StreamRow(*r) for r in streams],
            [MessageRow(*r) for r in messages],
        )

    def import_rows(self, rows: TransferRows) -> bool:
        """Insert one workflow with its steps, stream rows and messages, in one transaction,
        unless a workflow with its id exists (then nothing is written). Returns whether it was
        inserted. A message whose id exists is skipped."""
        row = rows.workflow
        names = column_list("workflows")
        marks = ", ".join(f"${n + 1}" for n in range(len(row)))
        with self._delete_transaction() as execute:
            inserted = execute(
                f"INSERT INTO workflows ({names}) VALUES ({marks}) "
                "ON CONFLICT (workflow_id) DO NOTHING RETURNING workflow_id",
                list(row),
            )
            if not inserted:
                return False
            for table, table_rows in (
                ("steps", rows.steps),
                ("streams", rows.streams),
                ("messages", rows.messages),
            ):
                for batch in _batches(table_rows):
                    execute(*insert_statement(table, batch))
        return True
