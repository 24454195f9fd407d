"""Queues: workflows enqueued now, run later by whichever process has room, within limits.

A :class:`Queue` is declared once per process, like a workflow. ``queue.enqueue(fn, …)`` records
the workflow as ENQUEUED and returns its handle at once. Every runtime runs the enqueued workflows
of the queues declared in its process (or of those it was told to serve, see ``nbflow worker``):
its dispatcher thread (``nbflow-queues``) takes them over in a transaction, as long as the
queue's limits allow, counted in the database so that they hold across processes:

- ``concurrency``: how many of the queue's workflows may run at once in all processes together
  (PENDING workflows of the queue);
- ``worker_concurrency``: how many may run at once in this process;
- ``rate``: how many may start in any window of time (workflows whose ``started_at``, set when
  a dispatcher takes them, falls in the window);
- ``partition_concurrency`` and ``partition_rate``: the same per partition key (a tenant, an API
  key), given to each enqueue with :func:`enqueue_options`.

The order is that of :func:`enqueue_options`' ``priority``: workflows enqueued without one first,
then priority 1, 2, …; oldest first within each. A workflow enqueued with a ``delay`` is DELAYED
until the delay has passed. The dispatcher wakes when a workflow is enqueued or one of its own
ends, when another process enqueues (PostgreSQL notification), when the next delay ends or a
window of a rate moves on, and every second (a slot freed in another process).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import math
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from nbflow._serialization import check_text
from nbflow.workflow import _context as context
from nbflow.workflow._calls import DeclaredQueue
from nbflow.workflow._workers import Rate, parse_limit

if TYPE_CHECKING:
    from nbflow.workflow._handle import WorkflowHandle

__all__ = [
    "EnqueueOptions",
    "Queue",
    "QueueServer",
    "declared_queues",
    "enqueue_options",
    "lookup_queue",
    "options_for",
    "serve_declared_queues",
]

_queues: dict[str, Queue] = {}


class QueueServer(Protocol):
    """Something that runs enqueued workflows (a runtime), told when a queue is declared."""

    def serve_queues(self) -> None: ...


_servers: weakref.WeakSet[Any] = weakref.WeakSet()


def serve_declared_queues(server: QueueServer) -> None:
    """Call ``server.serve_queues()`` whenever a queue is declared (while ``server`` lives)."""
    _servers.add(server)


class Queue:
    """A named queue of workflows with concurrency and rate limits, overall or per partition.

    Args:
        name: The queue's name, the same in every process that uses it.
        concurrency: At most this many of its workflows run at once, in all processes together
            (None: no limit).
        worker_concurrency: At most this many run at once in one process (None: no limit).
        rate: At most this many of its workflows start in any window of time, in all processes
            together: ``"10/s"``, ``"600/min"``, ``"5/10s"`` or a ``(limit, period_seconds)``
            tuple, as ``nbflow.map``'s ``rate`` (None: no limit).
        partition_concurrency: At most this many run at once per partition key, in all
            processes together. With a partition limit, every enqueue names its partition with
            ``nbflow.enqueue_options(partition_key=...)``.
        partition_rate: At most this many start in any window of time per partition key.

    Raises:
        ValueError: A limit is not an int >= 1, or a rate is not one of the forms above.

    Example:
        >>> scoring = nbflow.Queue("scoring", concurrency=4, rate="10/s")
        >>> handles = [scoring.enqueue(score_batch, b) for b in batches]
        >>> per_tenant = nbflow.Queue("reports", partition_concurrency=1)
        >>> with nbflow.enqueue_options(partition_key=tenant):
        ...     per_tenant.enqueue(build_report, tenant)
    """

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate: str | tuple[float, float] | None = None,
        partition_concurrency: int | None = None,
        partition_rate: str | tuple[float, float] | None = None,
    ) -> None:
        self.name = check_text(name, "A queue name")
        self.concurrency = _limit("concurrency", concurrency)
        self.worker_concurrency = _limit("worker_concurrency", worker_concurrency)
        self.rate = _rate("rate", rate)
        self.partition_concurrency = _limit("partition_concurrency", partition_concurrency)
        self.partition_rate = _rate("partition_rate", partition_rate)
        _queues[name] = self  # declaring again (a re-run notebook cell) replaces it
        for server in list(_servers):
            server.serve_queues()

    @property
    def partitioned(self) -> bool:
        """Whether it has limits per partition key (then every enqueue names one)."""
        return self.partition_concurrency is not None or self.partition_rate is not None

    def __repr__(self) -> str:
        shown = [f"{self.name!r}"]
        for label in _LIMITS:
            value = getattr(self, label)
            if value is not None:
                shown.append(f"{label}={tuple(value) if isinstance(value, Rate) else value!r}")
        return f"Queue({', '.join(shown)})"

    def enqueue(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Record ``fn(*args, **kwargs)`` as ENQUEUED on this queue and return its handle at once.

        A process whose runtime serves the queue runs it when the limits allow. An id given with
        :func:`set_workflow_id` that exists returns that workflow (never enqueued twice). The
        options of an enclosing :func:`enqueue_options` block apply.

        Raises:
            ValueError: The queue has partition limits and no partition key was given (or a key
                was given to a queue without them).
            QueueDeduplicatedError: A workflow with the block's deduplication id is ENQUEUED,
                DELAYED or PENDING on this queue.
        """
        return context.runner().enqueue(self, fn, args, kwargs)


_LIMITS = ("concurrency", "worker_concurrency", "rate", "partition_concurrency", "partition_rate")


class EnqueueOptions(NamedTuple):
    """The options of :func:`enqueue_options` in force (None: not given).

    Attributes:
        priority: 1 or more; lower first (workflows without one come before any).
        deduplication_id: At most one workflow with it ENQUEUED, DELAYED or PENDING per queue.
        delay: Seconds before it may be dequeued (DELAYED until then).
        partition_key: The partition whose limits it counts against.
        owner: The workflow the block was entered in (None: outside any): the options apply
            only there, never to the enqueues inside workflows it runs.
    """

    priority: int | None = None
    deduplication_id: str | None = None
    delay: float | None = None
    partition_key: str | None = None
    owner: object = None


_NONE = EnqueueOptions()
_options: contextvars.ContextVar[EnqueueOptions | None] = contextvars.ContextVar(
    "nbflow_enqueue_options", default=None
)


def _in_force() -> EnqueueOptions:
    """The options of the innermost block entered in this workflow (or outside any)."""
    options = _options.get()
    return options if options is not None and options.owner is context.current() else _NONE


@contextlib.contextmanager
def enqueue_options(
    priority: int | None = None,
    deduplication_id: str | None = None,
    delay: float | dt.timedelta | None = None,
    partition_key: str | None = None,
) -> Iterator[None]:
    """Options for every ``queue.enqueue(...)`` made inside the block (in this thread or task).

    Blocks nest: an inner block's options replace those of the outer one that it gives. They
    apply to the enqueues the block makes, not to those inside the workflows it runs.

    Args:
        priority: An int from 1 up; lower is dequeued first. Workflows enqueued without one come
            before any with one, oldest first.
        deduplication_id: While a workflow enqueued with this id is ENQUEUED, DELAYED or PENDING
            on the queue, another enqueue with it raises :class:`~nbflow.QueueDeduplicatedError`.
        delay: Seconds (or a ``timedelta``) before the workflow may be dequeued; its status is
            ``Status.DELAYED`` until then.
        partition_key: The partition (a tenant, an API key) whose limits the workflow counts
            against, on a queue with ``partition_concurrency`` or ``partition_rate``.

    Raises:
        ValueError: An option is not of the kind above (e.g. ``priority=0``, ``delay=-1``).

    Example:
        >>> with nbflow.enqueue_options(priority=1, deduplication_id=f"report-{day}"):
        ...     reports.enqueue(build_report, day)
    """
    given = EnqueueOptions(
        _priority(priority),
        None if deduplication_id is None else check_text(deduplication_id, "A deduplication id"),
        _delay(delay),
        None if partition_key is None else check_text(partition_key, "A partition key"),
    )
    outer = _in_force()
    merged = EnqueueOptions(
        outer.priority if given.priority is None else given.priority,
        outer.deduplication_id if given.deduplication_id is None else given.deduplication_id,
        outer.delay if given.delay is None else given.delay,
        outer.partition_key if given.partition_key is None else given.partition_key,
        owner=context.current(),
    )
    token = _options.set(merged)
    try:
        yield
    finally:
        _options.reset(token)


def options_for(queue: DeclaredQueue) -> EnqueueOptions:
    """The options in force for an enqueue on ``queue`` here, checked against the queue.

    Raises:
        ValueError: The queue has partition limits and no key is given, or a key is given to a
            queue without them.
    """
    options = _in_force()
    partitioned = queue.partition_concurrency is not None or queue.partition_rate is not None
    if partitioned and options.partition_key is None:
        raise ValueError(
            f"Queue {queue.name!r} has limits per partition: enqueue inside "
            "`with nbflow.enqueue_options(partition_key=...)`, naming the partition (a tenant, "
            "an API key) whose limits the workflow counts against."
        )
    if not partitioned and options.partition_key is not None:
        raise ValueError(
            f"Queue {queue.name!r} has no limits per partition, so partition_key="
            f"{options.partition_key!r} would change nothing: declare it with "
            "partition_concurrency= or partition_rate=, or leave the key out."
        )
    return options


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


def _rate(label: str, value: str | tuple[float, float] | None) -> Rate | None:
    if value is None:
        return None
    if not isinstance(value, (str, tuple)):
        raise ValueError(
            f"{label} must be like '10/s', '600/min' or '5/10s', or a (limit, period_seconds) "
            f"tuple; not {value!r}."
        )
    rate = parse_limit(value, label)
    if rate.limit != int(rate.limit):
        raise ValueError(
            f"{label} must allow a whole number of starts per period (e.g. '1/2s' rather than "
            f"'0.5/s'), not {value!r}."
        )
    return rate


def _priority(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"priority must be None or an int >= 1 (lower is dequeued first), not {value!r}."
        )
    return value


def _delay(value: float | dt.timedelta | None) -> float | None:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"delay must be seconds (a number or a timedelta), not {value!r}.")
    if value < 0:
        raise ValueError(f"delay must be >= 0 seconds, not {value!r}.")
    return float(value)
