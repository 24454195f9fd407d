"""Queues in SQL both DuckDB and PostgreSQL run (a part of :class:`~nbflow.store._sql.SQLStore`):
taking a queue's workflows within its limits, and enqueueing with a deduplication id.

A dequeue is one transaction per queue and pass, in which one dispatcher at a time decides (an
advisory lock on PostgreSQL; DuckDB has one process). It reads what the limits count, in one
query over the queue's rows: its PENDING workflows (``concurrency``), those whose ``started_at``
falls in the window of the rate, its DELAYED workflows whose delay has passed (they become
ENQUEUED) and the next delay to end. Then one UPDATE takes the head of the queue (no priority
first, then priority 1, 2, …; oldest first within each), at most the budget the limits leave;
with partition limits, each partition key's head up to what that key's limits leave (a window
function ranks each key's workflows). Taken workflows become PENDING with ``started_at`` now.

Deduplication is enforced in the enqueue's own transaction, under a lock per queue (advisory on
PostgreSQL, the writer's lock on DuckDB): look for a holder, insert only if there is none.
A partial unique index would do it in PostgreSQL, but DuckDB (2.0) cannot create one ("Creating
partial indexes is not supported currently"), and a plain unique index would make one refused
enqueue fail the whole group commit it is part of.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from nbflow.store._ops import WorkflowRow
from nbflow.store._schema import column_list

__all__ = ["Dequeued", "Execute", "QueueLimits", "QueueQueries"]

#: Runs one statement in the caller's transaction and returns its rows.
Execute = Callable[[str, list[Any]], list[tuple[Any, ...]]]

_COLUMNS = column_list("workflows")
#: No limit: larger than any count.
_NO_LIMIT = 1 << 40
#: The dequeue order: workflows without a priority first, then lower priorities; oldest first
#: (priorities are >= 1, so NULLS FIRST is coalesce(priority, 0), and three times faster).
_ORDER = "priority NULLS FIRST, created_at, workflow_id"
_ACTIVE = "('ENQUEUED', 'DELAYED', 'PENDING')"

#: What the limits count, in one pass over the queue's rows ($1 queue, $2 now; with a rate, $3
#: and $4 the start of the rate's and the partition rate's window).
_COUNTS = (
    "SELECT count(*) FILTER (WHERE status = 'PENDING'), "
    "count(*) FILTER (WHERE status = 'DELAYED' AND available_at <= $2), "
    "min(available_at) FILTER (WHERE status = 'DELAYED' AND available_at > $2){rated} "
    "FROM workflows WHERE queue_name = $1 AND (status IN ('PENDING', 'DELAYED'){started})"
)
_RATED_COUNTS = _COUNTS.format(
    rated=", count(*) FILTER (WHERE started_at > $3), min(started_at) FILTER (WHERE "
    "started_at > $3), min(started_at) FILTER (WHERE started_at > $4)",
    started=" OR started_at > least($3, $4)",
)
_COUNTS = _COUNTS.format(rated="", started="")
_PROMOTE = (
    "UPDATE workflows SET status = 'ENQUEUED', updated_at = $2 "
    "WHERE queue_name = $1 AND status = 'DELAYED' AND available_at <= $2 RETURNING workflow_id"
)
_TAKE = (
    "UPDATE workflows SET status = 'PENDING', executor_id = $2, updated_at = $3, started_at = $3 "
    "WHERE workflow_id IN ({head})"
)
#: The head of the queue, of the workflows this process can run ($4: their names), $5 at most.
_HEAD = (
    "SELECT workflow_id FROM workflows WHERE queue_name = $1 AND status = 'ENQUEUED' "
    f"AND {{name_in}} ORDER BY {_ORDER} LIMIT $5 {{lock}}"
)
#: The same, each partition key's head up to what its limits leave ($6: start of the partition
#: rate's window; $7, $8: the partition concurrency and rate limits).
_PARTITION_HEAD = (
    "SELECT workflow_id FROM workflows WHERE workflow_id IN (SELECT c.workflow_id FROM ("
    "SELECT workflow_id, partition_key, priority, created_at, "
    f"row_number() OVER (PARTITION BY partition_key ORDER BY {_ORDER}) AS n "
    "FROM workflows WHERE queue_name = $1 AND status = 'ENQUEUED' AND {name_in}) c "
    "LEFT JOIN (SELECT partition_key, count(*) FILTER (WHERE status = 'PENDING') AS running, "
    "count(*) FILTER (WHERE started_at > $6) AS started FROM workflows WHERE queue_name = $1 "
    "AND (status = 'PENDING' OR started_at > $6) GROUP BY partition_key) u "
    "ON u.partition_key = c.partition_key "
    "WHERE c.n <= $7 - coalesce(u.running, 0) AND c.n <= $8 - coalesce(u.started, 0) "
    "ORDER BY c.priority NULLS FIRST, c.created_at, c.workflow_id LIMIT $5) {lock}"
)
_HOLDER = (
    "SELECT workflow_id FROM workflows WHERE queue_name = $1 AND deduplication_id = $2 "
    f"AND status IN {_ACTIVE} ORDER BY created_at LIMIT 1"
)


class QueueLimits(NamedTuple):
    """A queue's limits as the store counts them (None: no limit).

    Attributes:
        concurrency: PENDING workflows of the queue, in all processes.
        rate: ``(limit, period)``: workflows started in any ``period`` seconds.
        partition_concurrency: PENDING workflows per partition key.
        partition_rate: ``(limit, period)`` per partition key.
    """

    concurrency: int | None = None
    rate: tuple[float, float] | None = None
    partition_concurrency: int | None = None
    partition_rate: tuple[float, float] | None = None

    @property
    def partitioned(self) -> bool:
        return self.partition_concurrency is not None or self.partition_rate is not None


class Dequeued(NamedTuple):
    """What a dequeue took, and when the queue should be looked at again by itself.

    Attributes:
        rows: The workflows taken (now PENDING here), in queue order.
        wake_at: When a delay ends or a window of a rate moves on (epoch seconds; None: only
            an enqueue or an end frees anything).
    """

    rows: list[WorkflowRow]
    wake_at: float | None = None


class QueueQueries(abc.ABC):
    """Dequeue and deduplicated enqueue, for :class:`~nbflow.store._sql.SQLStore`."""

    #: The backend's test that ``name`` is in the list ``$4``, and what locks the rows a dequeue
    #: takes (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
    _name_in: str
    _lock_taken: str = ""
    #: A statement that tells the other processes' dispatchers of queue ``$1`` (PostgreSQL).
    _queue_notice: str = ""

    @abc.abstractmethod
    def _queue_transaction(self, queue_name: str) -> contextlib.AbstractContextManager[Execute]:
        """A transaction in which one dispatcher of ``queue_name`` at a time takes workflows;
        yields how to run a statement in it."""

    @abc.abstractmethod
    def _insert(self, table: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, Sequence[Any]]:
        """The statement that inserts ``rows`` into ``table`` (skipping existing ids)."""

    def dequeue(
        self,
        queue_name: str,
        executor_id: str,
        names: list[str],
        limit: int,
        limits: QueueLimits,
        now: float,
    ) -> Dequeued:
        with self._queue_transaction(queue_name) as execute:
            budget, wake_at = _budget(execute, queue_name, limit, limits, now)
            if budget <= 0 or not names:
                return Dequeued([], wake_at)
            params: list[Any] = [queue_name, executor_id, now, names, budget]
            head = _HEAD
            if limits.partitioned:
                head = _PARTITION_HEAD
                concurrency, rate = limits.partition_concurrency, limits.partition_rate
                params += [
                    _window_start(rate, now),
                    _NO_LIMIT if concurrency is None else concurrency,
                    _NO_LIMIT if rate is None else int(rate[0]),
                ]
            head = head.format(name_in=self._name_in, lock=self._lock_taken)
            rows = execute(f"{_TAKE.format(head=head)} RETURNING {_COLUMNS}", params)
        taken = sorted(
            (WorkflowRow(*r) for r in rows),
            key=lambda r: (r.priority or 0, r.created_at, r.workflow_id),
        )
        return Dequeued(taken, wake_at)

    def enqueue_once(self, row: WorkflowRow) -> str | None:
        assert row.queue_name is not None and row.deduplication_id is not None
        # One enqueue of a deduplication id at a time per queue: the look and the insert hold.
        with self._queue_transaction(f"nbflow.dedup:{row.queue_name}") as execute:
            held = execute(_HOLDER, [row.queue_name, row.deduplication_id])
            if held:
                return str(held[0][0])
            if not execute("SELECT 1 FROM workflows WHERE workflow_id = $1", [row.workflow_id]):
                sql, params = self._insert("workflows", [row])
                execute(f"{sql} RETURNING workflow_id", list(params))
                if self._queue_notice:
                    execute(self._queue_notice, [row.queue_name])
        return None


def _window_start(rate: tuple[float, float] | None, now: float) -> float:
    """Where the window of ``rate`` that ends now starts (no rate: after every start)."""
    return now + _NO_LIMIT if rate is None else now - rate[1]


def _budget(
    execute: Execute, queue_name: str, limit: int, limits: QueueLimits, now: float
) -> tuple[int, float | None]:
    """How many of the queue's workflows the queue-wide limits let start now (at most
    ``limit``), and when to look again by itself; DELAYED workflows whose time came become
    ENQUEUED."""
    rate, part_rate = limits.rate, limits.partition_rate
    if rate is None and part_rate is None:
        [(running, due, next_due)] = execute(_COUNTS, [queue_name, now])
        started, first_start, first_part_start = 0, None, None
    else:
        params = [queue_name, now, _window_start(rate, now), _window_start(part_rate, now)]
        [(running, due, next_due, started, first_start, first_part_start)] = execute(
            _RATED_COUNTS, params
        )
    if due:
        execute(_PROMOTE, [queue_name, now])
    wake = [next_due]
    if limits.concurrency is not None:
        limit = min(limit, limits.concurrency - int(running))
    if rate is not None:
        limit = min(limit, int(rate[0]) - int(started))
        if int(started) >= rate[0] and first_start is not None:  # full until its first leaves
            wake.append(first_start + rate[1])
    if part_rate is not None and first_part_start is not None:
        wake.append(first_part_start + part_rate[1])
    return limit, min((w for w in wake if w is not None), default=None)
