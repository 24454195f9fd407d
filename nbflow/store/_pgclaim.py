"""Taking a workflow over on PostgreSQL (:meth:`PostgresStore.claim
<nbflow.store._postgres.PostgresStore.claim>`), in the caller's transaction.

The workflow's row is locked first (``FOR UPDATE … SKIP LOCKED``): processes that recover at the
same time never take one workflow twice, and the count of its recoveries, raised in the same
transaction, is exact however many try.
"""

from __future__ import annotations

from typing import Any

from nbflow.store._ops import WorkflowRow
from nbflow.store._sql import WORKFLOW_COLUMNS, claim_statements

__all__ = ["take_over"]


def take_over(
    conn: Any,
    alive: str,
    workflow_id: str,
    executor_id: str,
    now: float,
    *,
    reopen: bool,
    recovery: bool,
) -> WorkflowRow | None:
    """:meth:`~nbflow.store._base.Store.claim` on the psycopg connection ``conn``, inside its
    transaction; ``alive`` is the SQL condition that the row's executor (``w.executor_id``) is
    a live process."""
    row = conn.execute(
        f"SELECT w.status, w.executor_id <> $2 AND {alive} FROM workflows w "
        "WHERE w.workflow_id = $1 FOR UPDATE OF w SKIP LOCKED",
        [workflow_id, executor_id],
    ).fetchone()
    if row is None:  # gone, or being changed by another process right now
        return None
    status, running_elsewhere = row
    if status == "PENDING" and running_elsewhere:
        return None
    if status != "PENDING" and (not reopen or status == "SUCCESS"):
        return None
    for query, params in claim_statements(workflow_id, now, status, recovery):
        conn.execute(query, params)
    taken = conn.execute(
        f"UPDATE workflows SET executor_id = $2, updated_at = $3 WHERE workflow_id = $1 "
        f"RETURNING {WORKFLOW_COLUMNS}",
        [workflow_id, executor_id, now],
    ).fetchone()
    return WorkflowRow(*taken) if taken else None
