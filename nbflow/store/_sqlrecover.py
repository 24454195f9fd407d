"""What a SQL store reads and writes to take workflows over: the replays of workflows, one or many
in one query, and the claim of many interrupted workflows in one transaction (a recovery).

Written once for both stores over a store's :meth:`_fetchall`, :meth:`_delete_transaction` (a
write transaction) and :meth:`_in_list`; PostgreSQL adds its test that another process runs a
workflow (``_others_alive``) and its row locks (``_lock_taken``).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from typing import Any

from nbflow.store._base import Replay, ReplayRecord
from nbflow.store._ops import WorkflowRow
from nbflow.store._schema import column_list
from nbflow.store._sqlqueues import Execute

__all__ = ["RecoveryQueries"]

_WORKFLOW_COLUMNS = column_list("workflows")


def _replay_sql(where: str, by: str) -> str:
    """The replay query of the workflows ``where`` selects (in each table); ``by``:
    ``"workflow_id, "`` to read several (each row then starts with its workflow's id), or ``""``."""
    return (
        f"SELECT {by}function_id, 'step', name, output_json, output_pickle, error, error_pickle, "
        f"code FROM steps WHERE {where} "
        f"UNION ALL SELECT {by}function_id, CASE WHEN is_end THEN 'close' ELSE 'write' END, key, "
        "NULL, NULL, NULL, NULL, NULL FROM streams "
        f"WHERE {where} AND attempt IS NULL AND function_id IS NOT NULL "
        f"UNION ALL SELECT {by}max(\"offset\") + 1, 'stream', key, NULL, NULL, NULL, NULL, NULL "
        f"FROM streams WHERE {where} GROUP BY {by}key "
        f"UNION ALL SELECT {by}1, 'closed', key, NULL, NULL, NULL, NULL, NULL FROM streams "
        f"WHERE {where} AND is_end AND function_id IS NOT NULL "
        f"UNION ALL SELECT {by}function_id, 'attempt', CAST(max(attempt) AS VARCHAR), NULL, NULL, "
        f"NULL, NULL, NULL FROM streams WHERE {where} AND attempt IS NOT NULL "
        f"GROUP BY {by}function_id "
        f"UNION ALL SELECT {by}count(*), 'output', key, NULL, NULL, NULL, NULL, NULL FROM streams "
        f"WHERE {where} AND function_id IS NULL AND attempt IS NULL AND NOT is_end "
        f"GROUP BY {by}key"
    )


_LOAD_REPLAY = _replay_sql("workflow_id = $1", "")


def _replay(rows: Sequence[Sequence[Any]]) -> Replay:
    """The replay in the rows of a replay query (without their workflow ids)."""
    records: list[ReplayRecord] = []
    streams: dict[str, tuple[int, bool]] = {}
    closed: set[str] = set()
    attempts: dict[int, int] = {}
    outputs: dict[str, int] = {}
    for row in rows:
        kind = row[1]
        if kind == "attempt":
            attempts[int(row[0])] = int(row[2])
        elif kind == "output":
            outputs[row[2]] = int(row[0])
        elif kind == "stream":
            streams[row[2]] = (int(row[0]), False)
        elif kind == "closed":
            closed.add(row[2])
        else:
            records.append(ReplayRecord(*row))
    for key in closed:
        streams[key] = (streams[key][0], True)
    records.sort(key=lambda r: r.function_id)
    return Replay(records, streams, attempts, outputs)


class RecoveryQueries(abc.ABC):
    """Replays and the claim of a recovery, over a SQL store's queries."""

    #: What locks the rows a transaction takes, skipping those another one holds (PostgreSQL).
    _lock_taken: str = ""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    @abc.abstractmethod
    def _delete_transaction(self) -> contextlib.AbstractContextManager[Execute]:
        """A write transaction (all its statements commit together, or none)."""

    @abc.abstractmethod
    def _in_list(self, column: str, param: str, sql_type: str) -> str:
        """The backend's test that ``column`` is in the list parameter ``param``."""

    def _others_alive(self, column: str) -> str:
        """SQL: whether the executor named in ``column`` is a live process that uses this
        database (FALSE for a store only one process uses)."""
        return "FALSE"

    def load_replay(self, workflow_id: str) -> Replay:
        return _replay(self._fetchall(_LOAD_REPLAY, [workflow_id]))

    def load_replays(self, workflow_ids: Sequence[str]) -> dict[str, Replay]:
        ids = list(dict.fromkeys(workflow_ids))
        if not ids:
            return {}
        sql = _replay_sql(self._in_list("workflow_id", "$1", "text"), "workflow_id, ")
        rows: dict[str, list[tuple[Any, ...]]] = {workflow_id: [] for workflow_id in ids}
        for row in self._fetchall(sql, [ids]):
            rows[row[0]].append(row[1:])
        return {workflow_id: _replay(found) for workflow_id, found in rows.items()}

    def claim_many(
        self, workflow_ids: Sequence[str], executor_id: str, now: float
    ) -> list[WorkflowRow]:
        ids = list(dict.fromkeys(workflow_ids))
        if not ids:
            return []
        in_ids = self._in_list("w.workflow_id", "$1", "text")
        with self._delete_transaction() as execute:
            free = execute(  # (locked by another process's claim right now: not taken)
                f"SELECT w.workflow_id FROM workflows w WHERE {in_ids} AND w.status = 'PENDING' "
                f"AND NOT (w.executor_id <> $2 AND {self._others_alive('w.executor_id')}) "
                f"{self._lock_taken}",
                [ids, executor_id],
            )
            if not free:
                return []
            rows = execute(
                "UPDATE workflows SET recovery_attempts = coalesce(recovery_attempts, 0) + 1, "
                f"executor_id = $2, updated_at = $3 WHERE {self._in_list('workflow_id', '$1', 'text')} "
                f"RETURNING {_WORKFLOW_COLUMNS}",
                [[row[0] for row in free], executor_id, now],
            )
        return [WorkflowRow(*row) for row in rows]
