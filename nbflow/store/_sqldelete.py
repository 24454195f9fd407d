"""Removing history, written once in SQL both DuckDB and PostgreSQL run (a part of
:class:`~nbflow.store._sql.SQLStore`).

Every removal of workflows goes through :meth:`DeleteQueries.delete_workflows`: one transaction
per batch of ids, which re-reads each workflow's status in that transaction (locking its row on
PostgreSQL) and removes only finished ones, with their steps (events included), stream items and
the messages addressed to them. The step cache's rows stay: the cache is shared by workflows
(``nbflow.clear_cache`` clears it). Records of a record-keeping workflow (a durable cell's older
runs) are removed by :meth:`DeleteQueries.delete_records`.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from nbflow.store._base import Related

__all__ = ["BATCH", "FINAL", "DeleteQueries"]

#: Ids removed per transaction: a very large prune is several transactions of this many.
BATCH = 2000
#: The statuses of finished workflows, the only ones ever removed.
FINAL = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
#: Runs one statement in the caller's transaction and returns its rows.
Execute = Callable[[str, list[Any]], list[tuple[Any, ...]]]


class DeleteQueries(abc.ABC):
    """Deleting workflows and records, over a SQL store's :meth:`_fetchall`,
    :meth:`_delete_transaction` and :meth:`_queue_transaction`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    @abc.abstractmethod
    def _queue_transaction(self, queue_name: str) -> contextlib.AbstractContextManager[Execute]:
        """A transaction, one per name at a time; yields how to run a statement in it."""

    @abc.abstractmethod
    def _delete_transaction(self) -> contextlib.AbstractContextManager[Execute]:
        """A write transaction (all its statements commit together, or none)."""

    @abc.abstractmethod
    def _in_list(self, column: str, param: str, sql_type: str) -> str:
        """The backend's test that ``column`` is in the list parameter ``param`` of
        ``sql_type`` (``"text"`` or ``"integer"``)."""

    def _measure(self, execute: Execute, in_ids: str, ids: list[str]) -> int:
        """Bytes the rows of ``ids`` hold (a file store counts what a delete frees); 0 here."""
        return 0

    def _freed(self, nbytes: int) -> None:  # noqa: B027 - a store with a file overrides it
        """Note that a committed delete freed about ``nbytes`` bytes."""

    def delete_workflows(self, workflow_ids: Sequence[str]) -> int:
        """Delete these workflows, where finished, with their steps, stream items and the
        messages addressed to them; how many workflows were deleted.

        Each batch of :data:`BATCH` ids is one transaction that reads the workflows' status
        itself (and locks their rows, on PostgreSQL): a workflow that is not finished in that
        transaction (PENDING, ENQUEUED or DELAYED, wherever it runs) is left as it is. The step cache is
        left as it is.
        """
        ids = list(dict.fromkeys(workflow_ids))
        deleted = 0
        for first in range(0, len(ids), BATCH):
            deleted += self._delete_batch(ids[first : first + BATCH])
        return deleted

    def _delete_batch(self, ids: list[str]) -> int:
        final = ", ".join(f"'{s}'" for s in FINAL)
        with self._delete_transaction() as execute:
            found = execute(
                f"SELECT workflow_id FROM workflows WHERE {self._in_list('workflow_id', '$1', 'text')} "
                f"AND status IN ({final}) {self._lock_rows}",
                [ids],
            )
            finished = [row[0] for row in found]
            if not finished:
                return 0
            in_ids = self._in_list("workflow_id", "$1", "text")
            nbytes = self._measure(execute, in_ids, finished)
            for table in ("steps", "streams"):
                execute(f"DELETE FROM {table} WHERE {in_ids}", [finished])
            in_dest = self._in_list("destination_id", "$1", "text")
            execute(f"DELETE FROM messages WHERE {in_dest}", [finished])
            execute(f"DELETE FROM workflows WHERE {in_ids}", [finished])
        self._freed(nbytes)
        return len(finished)

    #: What locks the rows a delete reads (``FOR UPDATE`` on PostgreSQL).
    _lock_rows: str = ""

    def prunable(
        self, before: float, statuses: Sequence[str], leave_names: Sequence[str]
    ) -> list[str]:
        """The finished workflows (of ``statuses``) created before ``before`` (epoch seconds),
        oldest first, except those called one of ``leave_names``."""
        kept = [s for s in statuses if s in FINAL]
        if not kept:
            return []
        status_in = self._in_list("status", "$2", "text")
        rows = self._fetchall(
            f"SELECT workflow_id FROM workflows WHERE created_at < $1 AND {status_in} "
            f"AND NOT ({self._in_list('name', '$3', 'text')}) ORDER BY created_at, workflow_id",
            [before, kept, list(leave_names) or [""]],
        )
        return [row[0] for row in rows]

    def children(self, parent_ids: Sequence[str]) -> list[Related]:
        """The workflows these workflows started (one generation), with their status."""
        if not parent_ids:
            return []
        rows = self._fetchall(
            "SELECT workflow_id, parent_id, status FROM workflows "
            f"WHERE {self._in_list('parent_id', '$1', 'text')} ORDER BY created_at, workflow_id",
            [list(parent_ids)],
        )
        return [Related(*row) for row in rows]

    def delete_records(self, workflow_id: str, function_ids: Sequence[int]) -> int:
        """Delete these steps of a record-keeping workflow, in one transaction (one recorder at a
        time: :meth:`append_record` waits); how many."""
        if not function_ids:
            return 0
        with self._queue_transaction(f"nbflow.record:{workflow_id}") as execute:
            where = f"workflow_id = $1 AND {self._in_list('function_id', '$2', 'integer')}"
            nbytes = self._measure_records(execute, where, [workflow_id, list(function_ids)])
            rows = execute(
                f"DELETE FROM steps WHERE {where} RETURNING function_id",
                [workflow_id, list(function_ids)],
            )
        self._freed(nbytes)
        return len(rows)

    def _measure_records(self, execute: Execute, where: str, params: list[Any]) -> int:
        """Bytes the steps ``where`` selects hold (see :meth:`_measure`); 0 here."""
        return 0
