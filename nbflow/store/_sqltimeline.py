"""The timeline's read: a workflow's span, its steps' spans, its stream writes (thinned) and its
children, written once in SQL both DuckDB and PostgreSQL run (a part of
:class:`~nbflow.store._sql.SQLStore`).

Stream writes are thinned in SQL: of a stream with more items than its share of ``max_ticks``
(``max_ticks`` divided by the number of streams), every n-th item is read, and always its first
and last; each tick row carries how many items its stream holds. So a stream of 100,000 items
reads as about ``max_ticks`` rows.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "TimelineQueries",
    "TimelineRows",
    "TimelineStep",
    "TimelineTick",
    "TimelineWorkflow",
]


class TimelineWorkflow(NamedTuple):
    """A workflow's span: when it was created, last changed and ended (None: not yet)."""

    workflow_id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    ended_at: float | None
    parent_id: str | None
    error: str | None
    error_step: int | None


class TimelineStep(NamedTuple):
    """A step's span (over all its attempts), its error text and where its result came from."""

    function_id: int
    name: str
    started_at: float
    ended_at: float
    attempts: int
    error: str | None
    cached_from: str | None


class TimelineTick(NamedTuple):
    """One stream write: its stream, offset and time, the step attempt that wrote it (None: the
    body), and how many items its stream holds (``items``)."""

    key: str
    offset: int
    created_at: float
    function_id: int | None
    attempt: int | None
    items: int


class TimelineRows(NamedTuple):
    """What a timeline reads of one workflow.

    Attributes:
        workflow: The workflow's span.
        steps: Its steps, by function id.
        ticks: Its stream writes (end markers left out), thinned, by stream and offset.
        children: The workflows it started (``parent_id``), oldest first, at most
            ``max_children``.
        more_children: How many children were left out past ``max_children``.
    """

    workflow: TimelineWorkflow
    steps: list[TimelineStep]
    ticks: list[TimelineTick]
    children: list[TimelineWorkflow]
    more_children: int


_WORKFLOW = (
    "SELECT workflow_id, name, status, created_at, updated_at, ended_at, parent_id, error, "
    "error_step FROM workflows"
)
_STEPS = (
    "SELECT function_id, name, started_at, ended_at, attempts, error, cached_from FROM steps "
    "WHERE workflow_id = $1 ORDER BY function_id"
)
#: Every n-th write of each stream, its first and last always; n makes each stream's share of
#: ``$2`` ticks (``$2`` over the number of streams).
_TICKS = """
WITH s AS (
    SELECT key, "offset", created_at, function_id, attempt,
        row_number() OVER (PARTITION BY key ORDER BY "offset") AS rn,
        count(*) OVER (PARTITION BY key) AS n
    FROM streams WHERE workflow_id = $1 AND NOT is_end
), k AS (SELECT count(DISTINCT key) AS keys FROM s)
SELECT key, "offset", created_at, function_id, attempt, n FROM s, k
WHERE rn = n OR (rn - 1) % GREATEST(1, CAST(CEIL(n * k.keys * 1.0 / $2) AS BIGINT)) = 0
ORDER BY key, "offset"
"""


class TimelineQueries(abc.ABC):
    """The timeline's read, over a SQL store's :meth:`_fetchall`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    def timeline_rows(
        self, workflow_id: str, *, max_ticks: int = 2000, max_children: int = 100
    ) -> TimelineRows | None:
        found = self._fetchall(f"{_WORKFLOW} WHERE workflow_id = $1", [workflow_id])
        if not found:
            return None
        steps = [TimelineStep(*row) for row in self._fetchall(_STEPS, [workflow_id])]
        ticks = [TimelineTick(*row) for row in self._fetchall(_TICKS, [workflow_id, max_ticks])]
        children = self._fetchall(
            f"{_WORKFLOW} WHERE parent_id = $1 ORDER BY created_at, workflow_id LIMIT $2",
            [workflow_id, max_children + 1],
        )
        more = 0
        if len(children) > max_children:
            (count,) = self._fetchall(
                "SELECT count(*) FROM workflows WHERE parent_id = $1", [workflow_id]
            )[0]
            children, more = children[:max_children], int(count) - max_children
        return TimelineRows(
            TimelineWorkflow(*found[0]),
            steps,
            ticks,
            [TimelineWorkflow(*row) for row in children],
            more,
        )
