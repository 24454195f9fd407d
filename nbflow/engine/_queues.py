"""The dispatcher: the thread (``nbflow-queues``) that runs a runtime's enqueued workflows;
and what an enqueue records (:func:`queued_row`, :func:`enqueue_once`).

It wakes when a workflow is enqueued or one of its own ends, when another process enqueues
(PostgreSQL notification), when a delay ends or a window of a rate moves on (the earliest such
time the store reported), and every second (a slot freed in another process), and asks its
runtime to take each served queue's workflows that the limits allow (see :mod:`nbflow.workflow._queues`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from nbflow._errors import QueueDeduplicatedError
from nbflow.store import Store, WorkflowRow
from nbflow.store._sqlqueues import Dequeued, QueueLimits
from nbflow.workflow._calls import DeclaredQueue
from nbflow.workflow._queues import EnqueueOptions, Queue, declared_queues, lookup_queue

__all__ = [
    "POLL_INTERVAL",
    "Dispatcher",
    "Taken",
    "enqueue_once",
    "limits_of",
    "queued_row",
    "take",
]

logger = logging.getLogger("nbflow")

#: How often (seconds) a dispatcher looks for work by itself.
POLL_INTERVAL = 1.0
#: The shortest wait before a pass the store asked for (a delay that ends now, say).
_MIN_WAIT = 0.005


class Taken(NamedTuple):
    """What one pass over a queue took: the ids it started, and when to look again by itself
    (a delay ends, a window of a rate moves on; None: nothing to wait for)."""

    workflow_ids: list[str]
    wake_at: float | None = None


def limits_of(queue: DeclaredQueue) -> QueueLimits:
    """The limits the store counts for ``queue`` (all but ``worker_concurrency``, this
    dispatcher's own)."""
    return QueueLimits(
        queue.concurrency, queue.rate, queue.partition_concurrency, queue.partition_rate
    )


def take(
    store: Store, executor_id: str, queue: DeclaredQueue, limit: int | None, names: list[str]
) -> Dequeued:
    """Take what ``queue``'s limits allow (at most ``limit`` here; None: 100 a pass) of its
    workflows called one of ``names``, for ``executor_id``: one transaction of the store."""
    local = 100 if limit is None else limit
    return store.dequeue(queue.name, executor_id, names, local, limits_of(queue), time.time())


def queued_row(row: WorkflowRow, options: EnqueueOptions) -> WorkflowRow:
    """``row`` (ENQUEUED) with the options of an ``enqueue_options`` block: a delay makes it
    DELAYED until ``available_at``."""
    delayed = bool(options.delay)
    return row._replace(
        status="DELAYED" if delayed else row.status,
        priority=options.priority,
        deduplication_id=options.deduplication_id,
        partition_key=options.partition_key,
        available_at=row.created_at + options.delay if options.delay else None,
    )


def enqueue_once(store: Store, row: WorkflowRow) -> None:
    """Insert ``row``, enqueued with a deduplication id, in a transaction of its own.

    Raises:
        QueueDeduplicatedError: A workflow with the id is ENQUEUED, DELAYED or PENDING on the
            queue; nothing was enqueued.
    """
    assert row.queue_name is not None and row.deduplication_id is not None
    holder = store.enqueue_once(row)
    if holder is not None:
        raise QueueDeduplicatedError(row.workflow_id, row.queue_name, row.deduplication_id, holder)


class Dispatcher:
    """Runs the enqueued workflows of one runtime's queues (thread ``nbflow-queues``).

    Args:
        dequeue: ``dequeue(queue, limit)`` takes up to ``limit`` (None: no local limit) of the
            queue's workflows, starts them and says what it took (:class:`Taken`).
        names: The queues it serves (None: every queue declared in the process, now or later).
    """

    def __init__(
        self, dequeue: Callable[[Queue, int | None], Taken], names: Iterable[str] | None
    ) -> None:
        self._dequeue = dequeue
        self._names = None if names is None else list(names)
        self._running: dict[str, set[str]] = {}  # queue -> ids of its workflows running here
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nbflow-queues", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def ended(self, queue_name: str, workflow_id: str) -> None:
        """One of the queue's workflows that ran here ended: a slot is free."""
        self._running.get(queue_name, set()).discard(workflow_id)
        self._wake.set()

    def _served(self) -> list[Queue]:
        names = self._names if self._names is not None else declared_queues()
        return [q for q in map(lookup_queue, names) if q is not None]

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            wake_at: float | None = None
            for queue in self._served():
                if self._stopping:
                    return
                try:
                    when = self._dispatch(queue)
                except Exception:  # the runtime closing, or the database failing: try again later
                    if self._stopping:
                        return
                    logger.warning("nbflow could not dispatch queue %r", queue.name, exc_info=True)
                    continue
                if when is not None and (wake_at is None or when < wake_at):
                    wake_at = when
            wait = POLL_INTERVAL
            if wake_at is not None:
                wait = min(wait, max(_MIN_WAIT, wake_at - time.time()))
            self._wake.wait(wait)

    def _dispatch(self, queue: Queue) -> float | None:
        """Take what the queue's limits allow; when to look again by itself (or None)."""
        running = self._running.setdefault(queue.name, set())
        local = queue.worker_concurrency
        if local is not None:
            local -= len(running)
            if local <= 0:
                return None  # one of its own ending wakes it
        taken = self._dequeue(queue, local)
        running.update(taken.workflow_ids)
        return taken.wake_at

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)
