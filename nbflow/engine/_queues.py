"""The dispatcher: the thread (``nbflow-queues``) that runs a runtime's enqueued workflows.

It wakes when a workflow is enqueued or one of its own ends, when another process enqueues
(PostgreSQL notification), and every second (a slot freed in another process), and asks its
runtime to take each served queue's workflows that the limits allow (see :mod:`nbflow.workflow._queues`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from nbflow.workflow._queues import Queue, declared_queues, lookup_queue

__all__ = ["POLL_INTERVAL", "Dispatcher"]

logger = logging.getLogger("nbflow")

#: How often (seconds) a dispatcher looks for work by itself.
POLL_INTERVAL = 1.0


class Dispatcher:
    """Runs the enqueued workflows of one runtime's queues (thread ``nbflow-queues``).

    Args:
        dequeue: ``dequeue(queue, limit)`` takes up to ``limit`` (None: no local limit) of the
            queue's workflows, starts them and returns their ids.
        names: The queues it serves (None: every queue declared in the process, now or later).
    """

    def __init__(
        self, dequeue: Callable[[Queue, int | None], list[str]], names: Iterable[str] | None
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
            for queue in self._served():
                if self._stopping:
                    return
                try:
                    self._dispatch(queue)
                except Exception:  # the runtime closing, or the database failing: try again later
                    if self._stopping:
                        return
                    logger.warning("nbflow could not dispatch queue %r", queue.name, exc_info=True)
            self._wake.wait(POLL_INTERVAL)

    def _dispatch(self, queue: Queue) -> None:
        running = self._running.setdefault(queue.name, set())
        local = queue.worker_concurrency
        if local is not None:
            local -= len(running)
            if local <= 0:
                return
        for workflow_id in self._dequeue(queue, local):
            running.add(workflow_id)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)
