"""The history's queries: workflows by filters, a step's output, step statistics, written once in
SQL both DuckDB and PostgreSQL run (a part of :class:`~nbflow.store._sql.SQLStore`).

Each listing is one query with parameters: :class:`WorkflowQuery` carries every filter, and
:meth:`HistoryQueries.step_stats` computes the statistics of every step name in the database
(``percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY …)``, which PostgreSQL runs as is and
DuckDB as its ``quantile_cont``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, NamedTuple

from nbflow.store._ops import WorkflowRow
from nbflow.store._schema import column_list

__all__ = [
    "INTERNAL_STEP_PREFIX",
    "HistoryQueries",
    "StepStatsQuery",
    "StepStatsRow",
    "WorkflowQuery",
    "like_prefix",
]

#: The start of the names of nbflow's own operations recorded as steps (``nbflow.sleep``,
#: ``nbflow.recv('topic')``, ``nbflow.start('name')``, …): step statistics leave them out.
INTERNAL_STEP_PREFIX = "nbflow."

_WORKFLOW_COLUMNS = column_list("workflows")


class WorkflowQuery(NamedTuple):
    """Which workflows :meth:`~nbflow.store._base.Store.list_workflows` returns; every filter that
    is set must hold.

    Attributes:
        statuses: Only workflows with one of these statuses (empty: any).
        name: Only those with this registered name (a notebook's `parse` is `__main__.parse`).
        id_prefix: Only those whose id starts with it (literally: ``_`` and ``%`` are characters).
        since: Only those created at or after it (epoch seconds).
        until: Only those created before it (epoch seconds).
        queue: Only those enqueued on this queue.
        parent_id: Only the children of this workflow.
        exclude_names: Never those with one of these names (nbflow's own record keeping).
        offset: How many of the matching workflows to skip first.
        limit: The most returned.
        newest_first: Newest first (else oldest first), by creation time, then id.
    """

    statuses: tuple[str, ...] = ()
    name: str | None = None
    id_prefix: str | None = None
    since: float | None = None
    until: float | None = None
    queue: str | None = None
    parent_id: str | None = None
    exclude_names: tuple[str, ...] = ()
    offset: int = 0
    limit: int = 100
    newest_first: bool = True


class StepStatsQuery(NamedTuple):
    """Which steps :meth:`HistoryQueries.step_stats` counts.

    Attributes:
        name: Only the steps of this name (nbflow's own operations included when named; a
            notebook's `parse` is `__main__.parse`).
        since: Only steps started at or after it (epoch seconds).
        until: Only steps started before it (epoch seconds).
    """

    name: str | None = None
    since: float | None = None
    until: float | None = None


class StepStatsRow(NamedTuple):
    """The statistics of the steps of one name (durations in seconds, from start to end over all
    attempts): as :class:`nbflow.StepStats`, ``records`` being its ``count``."""

    name: str
    records: int
    errors: int
    retries: int
    p50_s: float
    p95_s: float
    max_s: float
    total_s: float


def like_prefix(prefix: str) -> str:
    """A ``LIKE … ESCAPE '\\'`` pattern that matches the strings starting with ``prefix``, its
    ``\\``, ``_`` and ``%`` taken literally."""
    escaped = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return escaped + "%"


class _Where:
    """The conditions of a query and their parameters, numbered ``$1, $2, …`` as they are added."""

    def __init__(self) -> None:
        self.tests: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, test: str, *values: Any) -> None:
        self.tests.append(test.format(*(self.param(v) for v in values)))

    def clause(self) -> str:
        return f"WHERE {' AND '.join(self.tests)} " if self.tests else ""


def names_of(name: str) -> tuple[str, str]:
    """The recorded names a name a person typed stands for: itself, and the function of that name
    defined in a notebook (``parse`` is ``__main__.parse`` too, as the tables show it)."""
    return name, f"__main__.{name.removeprefix('__main__.')}"


def _workflow_where(query: WorkflowQuery) -> _Where:
    where = _Where()
    if query.statuses:
        where.add(f"status IN ({', '.join('{}' for _ in query.statuses)})", *query.statuses)
    if query.exclude_names:
        names = ", ".join("{}" for _ in query.exclude_names)
        where.add(f"name NOT IN ({names})", *query.exclude_names)
    if query.name is not None:
        where.add("name IN ({}, {})", *names_of(query.name))
    for test, value in (
        ("created_at >= {}", query.since),
        ("created_at < {}", query.until),
        ("queue_name = {}", query.queue),
        ("parent_id = {}", query.parent_id),
    ):
        if value is not None:
            where.add(test, value)
    if query.id_prefix:
        where.add("workflow_id LIKE {} ESCAPE '\\'", like_prefix(query.id_prefix))
    return where


#: The median and the 95th percentile of a step's duration, as one list (PostgreSQL's
#: ``percentile_cont`` of an array; DuckDB reads it as ``quantile_cont`` of a list).
_QUANTILES = "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ended_at - started_at)"


class HistoryQueries(abc.ABC):
    """The history's reads, over a SQL store's :meth:`_fetchall`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRow]:
        where = _workflow_where(query)
        order = "DESC" if query.newest_first else "ASC"
        limit, offset = where.param(query.limit), where.param(query.offset)
        rows = self._fetchall(
            f"SELECT {_WORKFLOW_COLUMNS} FROM workflows {where.clause()}"
            f"ORDER BY created_at {order}, workflow_id {order} LIMIT {limit} OFFSET {offset}",
            where.params,
        )
        return [WorkflowRow(*row) for row in rows]

    def get_step_output(
        self, workflow_id: str, function_id: int
    ) -> tuple[str | None, bytes | None] | None:
        rows = self._fetchall(
            "SELECT output_json, output_pickle FROM steps WHERE workflow_id = $1 "
            "AND function_id = $2",
            [workflow_id, function_id],
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def step_stats(self, query: StepStatsQuery) -> list[StepStatsRow]:
        where = _Where()
        if query.name is None:
            where.add(f"left(name, {len(INTERNAL_STEP_PREFIX)}) <> {{}}", INTERNAL_STEP_PREFIX)
        else:
            where.add("name IN ({}, {})", *names_of(query.name))
        for test, value in (("started_at >= {}", query.since), ("started_at < {}", query.until)):
            if value is not None:
                where.add(test, value)
        rows = self._fetchall(  # (both quantiles from one sort of each name's durations)
            "SELECT name, count(*), count(error), sum(attempts - 1), "
            f"{_QUANTILES}, max(ended_at - started_at), "
            f"sum(ended_at - started_at) FROM steps {where.clause()}GROUP BY name ORDER BY name",
            where.params,
        )
        return [
            StepStatsRow(n, int(c), int(e), int(r), float(q[0]), float(q[1]), float(mx), float(t))
            for n, c, e, r, q, mx, t in rows
        ]
