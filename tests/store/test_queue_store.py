"""The stores' side of queue options, on both stores: the dequeue order (priorities), delays,
rate and partition limits counted in the database, and deduplicated enqueues (race-free across
processes on PostgreSQL). The fixtures and rows are those of :mod:`tests.store.test_conformance`.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from nbflow.store import Store
from nbflow.store._ops import Changes, Finish, WorkflowRow
from nbflow.store._sqlqueues import QueueLimits
from tests.store import test_conformance as conformance
from tests.store.test_conformance import HERE, QUEUED, T, ids, queued

# The fixtures of the conformance tests: each store in turn, and another process's.
store_name = conformance.store_name
location = conformance.location
heard = conformance.heard
store = conformance.store
another = conformance.another


def row(workflow_id: str, at: float, **fields: Any) -> WorkflowRow:
    """An ENQUEUED row of queue ``q`` created at ``T + at``, with ``fields``."""
    return queued(workflow_id, at).row._replace(**fields)


def take(store: Store, limits: QueueLimits, now: float, limit: int = 100) -> list[str]:
    """The ids a dequeue of queue ``q`` takes at ``now``, in queue order."""
    return ids(store.dequeue("q", HERE, [QUEUED], limit, limits, now).rows)


def test_priorities_come_after_no_priority(store: Store) -> None:
    """Workflows without a priority first, oldest first; then priority 1, 2, … (oldest first
    within one)."""
    rows = [row("a", 0), row("p3", 1, priority=3), row("p1", 2, priority=1), row("b", 3)]
    store.commit([queued(r.workflow_id, 0)._replace(row=r) for r in rows])
    store.commit([queued("p1'", 0)._replace(row=row("p1'", 4, priority=1))])
    assert take(store, QueueLimits(), T + 10, limit=3) == ["a", "b", "p1"]
    assert take(store, QueueLimits(), T + 10) == ["p1'", "p3"]


def test_a_delayed_workflow_waits_for_its_time(store: Store) -> None:
    """A DELAYED workflow is not taken before ``available_at``, which the dequeue reports as the
    time to look again; then it is taken (``started_at`` then); one whose time has come but that
    finds no room becomes ENQUEUED."""
    later = row("later", 0, status="DELAYED", available_at=T + 5)
    blocked = row("blocked", 1, status="DELAYED", available_at=T + 5)
    store.commit([queued("x", 0)._replace(row=later), queued("x", 0)._replace(row=blocked)])
    first = store.dequeue("q", HERE, [QUEUED], 10, QueueLimits(), T + 1)
    assert (first.rows, first.wake_at) == ([], T + 5)
    assert store.get_status("later") == "DELAYED"
    assert take(store, QueueLimits(concurrency=1), T + 5) == ["later"]
    assert store.get_status("blocked") == "ENQUEUED"  # its time came: it waits for room only
    taken = store.get_workflow("later")
    assert taken is not None and taken.started_at == T + 5


def test_a_rate_counts_the_starts_in_its_window(store: Store) -> None:
    """At most ``limit`` start in any ``period``: a full window takes nothing and says when its
    first start leaves it."""
    store.commit([queued(f"q{i}", i) for i in range(5)])
    rate = QueueLimits(rate=(2, 10.0))
    assert take(store, rate, T + 10) == ["q0", "q1"]
    dequeued = store.dequeue("q", HERE, [QUEUED], 10, rate, T + 15)
    assert (dequeued.rows, dequeued.wake_at) == ([], T + 20)
    store.commit([Finish("q0", "SUCCESS", T + 16, output_json="0", markers=())])
    assert take(store, rate, T + 19.5) == []  # an end frees no start
    assert take(store, rate, T + 20) == ["q2", "q3"]


def test_partition_limits_hold_per_key(store: Store) -> None:
    """Each partition key's head, up to what its limits leave; the queue-wide limits on top."""
    keys = {"a0": "a", "a1": "a", "b0": "b", "b1": "b", "c0": "c"}
    store.commit(
        [
            queued(w, i)._replace(row=row(w, i, partition_key=k))
            for i, (w, k) in enumerate(keys.items())
        ]
    )
    one_each = QueueLimits(concurrency=2, partition_concurrency=1)
    assert take(store, one_each, T + 10) == ["a0", "b0"]  # the queue's own limit: 2
    assert take(store, one_each, T + 10) == []
    store.commit([Finish("a0", "SUCCESS", T + 11, output_json="0", markers=())])
    assert take(store, one_each, T + 12) == ["a1"]  # b1 waits for b0; a1 is older than c0
    assert take(store, QueueLimits(partition_concurrency=1), T + 13) == ["c0"]
    rated = QueueLimits(partition_rate=(1, 100.0))
    store.commit(
        [Finish(w, "SUCCESS", T + 15, output_json="0", markers=()) for w in ("a1", "b0", "c0")]
    )
    assert take(store, rated, T + 16) == []  # b started b0 in the window
    assert take(store, rated, T + 110.5) == ["b1"]  # b0 (at T + 10) has left it


def test_a_deduplication_id_is_held_while_its_workflow_is_active(store: Store) -> None:
    """enqueue_once inserts unless a workflow with the id is ENQUEUED, DELAYED or PENDING on the
    queue, whose id it returns; another queue, or the holder's end, frees the id."""
    held = row("first", 0, deduplication_id="d")
    assert store.enqueue_once(held) is None
    assert store.enqueue_once(row("second", 1, deduplication_id="d")) == "first"
    assert store.get_workflow("second") is None
    other = queued("elsewhere", 2, queue="o").row._replace(deduplication_id="d")
    assert store.enqueue_once(other) is None
    assert store.enqueue_once(held) == "first"  # itself again: held, nothing written twice
    assert take(store, QueueLimits(), T + 3) == ["first"]
    assert store.enqueue_once(row("third", 3, deduplication_id="d")) == "first"  # PENDING holds
    store.commit([Finish("first", "SUCCESS", T + 4, output_json="0", markers=())])
    assert store.enqueue_once(row("third", 3, deduplication_id="d")) is None
    assert store.get_status("third") == "ENQUEUED"


def test_deduplication_is_race_free_across_processes(store: Store, another: Store) -> None:
    """Sixteen enqueues with one deduplication id at once, from two processes' stores: one is
    inserted, each other one names it."""
    barrier = threading.Barrier(16)
    answers: dict[str, str | None] = {}

    def enqueue(i: int) -> None:
        target = store if i % 2 else another
        barrier.wait()
        answers[f"w{i}"] = target.enqueue_once(row(f"w{i}", i, deduplication_id="once"))

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    inserted = [w for w, holder in answers.items() if holder is None]
    assert len(answers) == 16 and len(inserted) == 1
    assert set(answers.values()) == {None, inserted[0]}
    assert [store.get_workflow(f"w{i}") is not None for i in range(16)].count(True) == 1


def test_a_deduplicated_enqueue_wakes_the_other_processes(
    store: Store, another: Store, heard: queue.Queue[Changes]
) -> None:
    """(Shared stores.) An enqueue with a deduplication id, made outside the write log, tells
    the other processes' dispatchers of its queue as a batch's enqueue does."""
    assert another.enqueue_once(row("theirs", 0, queue_name="jobs", deduplication_id="d")) is None
    queues: set[str] = set()
    while "jobs" not in queues:
        queues |= heard.get(timeout=30).queues  # (a wait for the notification, not a timing)
