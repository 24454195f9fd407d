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

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from nbflow._serialization import check_text
from nbflow.workflow import _context as context

if TYPE_CHECKING:
    from nbflow.workflow._handle import WorkflowHandle

__all__ = ["Queue", "QueueServer", "declared_queues", "lookup_queue", "serve_declared_queues"]

_queues: dict[str, Queue] = {}


class QueueServer(Protocol):
    """Something that runs enqueued workflows (a runtime), told when a queue is declared."""

    def serve_queues(self) -> None: ...


_servers: weakref.WeakSet[Any] = weakref.WeakSet()


def serve_declared_queues(server: QueueServer) -> None:
    """Call ``server.serve_queues()`` whenever a queue is declared (while ``server`` lives)."""
    _servers.add(server)


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
        self.concurrency = _limit("concurrency", concurrency)
        self.worker_concurrency = _limit("worker_concurrency", worker_concurrency)
        _queues[name] = self  # declaring again (a re-run notebook cell) replaces it
        for server in list(_servers):
            server.serve_queues()

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
        return context.runner().enqueue(self, fn, args, kwargs)


def lookup_queue(name: str) -> Queue | None:
    """The queue declared under ``name`` in this process, or None."""
    return _queues.get(name)


def declared_queues() -> list[str]:
    """The names of the queues declared in this process."""
    return list(_queues)


def _limit(label: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{label} must be None or an int >= 1, not {value!r}.")
    return value
