"""Queues: workflows enqueued now, run later by whichever process has room, within limits.

A :class:`Queue` is declared once per process, like a workflow. ``queue.enqueue(fn, …)`` records
the workflow as ENQUEUED and returns its handle at once. Every runtime runs the enqueued workflows
of the queues declared in its process (or of those it was told to serve, see ``nbflow worker``):
its dispatcher thread (``nbflow-queues``) takes them over in a transaction, oldest first, as long
as the queue's limits allow:

- ``concurrency``: how many of the queue's workflows may run at once in all processes together
  (counted in the database: PENDING workflows of the queue);
- ``worker_concurrency``: how many may run at once in this process.

The dispatcher wakes when a workflow is enqueued or one of its own ends, when another process
enqueues (PostgreSQL notification), and every second (a slot freed in another process).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nbflow._serialization import check_text

if TYPE_CHECKING:
    from nbflow._handle import WorkflowHandle
    from nbflow._runtime import Runtime

__all__ = ["Dispatcher", "Queue", "declared_queues", "lookup_queue"]

logger = logging.getLogger("nbflow")

_queues: dict[str, Queue] = {}

#: How often (seconds) a dispatcher looks for work by itself.
POLL_INTERVAL = 1.0


class Queue:
    """A named queue of workflows with concurrency limits.

    Args:
        name: The queue's name, the same in every process that uses it.
        concurrency: At most this many of its workflows run at once, in all processes together
            (None: no limit).
        worker_concurrency: At most this many run at once in one process (None: no limit).

    Example:
        >>> scoring = nbflow.Queue("scoring", concurrency=4)
        >>> handles = [scoring.enqueue(score_batch, b) for b in batches]
    """

    def __init__(
        self, name: str, concurrency: int | None = None, worker_concurrency: int | None = None
    ) -> None:
        self.name = check_text(name, "A queue name")
        for label, value in (("concurrency", concurrency), ("worker_concurrency", worker_concurrency)):  # fmt: skip
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):  # fmt: skip
                raise ValueError(f"{label} must be None or an int >= 1, not {value!r}.")
        self.concurrency = concurrency
        self.worker_concurrency = worker_concurrency
        _queues[name] = self  # declaring again (a re-run notebook cell) replaces it
        from nbflow._runtime import serve_queues_everywhere

        serve_queues_everywhere()

    def __repr__(self) -> str:
        return (
            f"Queue({self.name!r}, concurrency={self.concurrency!r}, "
            f"worker_concurrency={self.worker_concurrency!r})"
        )

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Record ``fn(*args, **kwargs)`` as ENQUEUED on this queue and return its handle at once.

        A process whose runtime serves the queue runs it when the limits allow. An id given with
        :func:`set_workflow_id` that exists returns that workflow (never enqueued twice).
        """
        from nbflow._api import _call_runtime

        return _call_runtime().enqueue(self, fn, args, kwargs)


def lookup_queue(name: str) -> Queue | None:
    """The queue declared under ``name`` in this process, or None."""
    return _queues.get(name)


def declared_queues() -> list[str]:
    """The names of the queues declared in this process."""
    return list(_queues)


class Dispatcher:
    """Runs the enqueued workflows of one runtime's queues (thread ``nbflow-queues``).

    Args:
        runtime: The runtime whose workflows it starts.
        names: The queues it serves (None: every queue declared in the process, now or later).
    """

    def __init__(self, runtime: Runtime, names: Iterable[str] | None) -> None:
        self._runtime = runtime
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
        names = self._names if self._names is not None else list(_queues)
        return [q for q in map(_queues.get, names) if q is not None]

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
                    logger.warning("nbflow could not dispatch queue %r", queue.name, exc_info=True)  # fmt: skip
            self._wake.wait(POLL_INTERVAL)

    def _dispatch(self, queue: Queue) -> None:
        running = self._running.setdefault(queue.name, set())
        local = None if queue.worker_concurrency is None else queue.worker_concurrency - len(running)  # fmt: skip
        if local is not None and local <= 0:
            return
        for workflow_id in self._runtime._dequeue(queue, local):
            running.add(workflow_id)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)
