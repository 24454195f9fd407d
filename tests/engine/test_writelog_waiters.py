"""Many waiters for durability at once (issue 14, item 11).

Starting 1,000 workflows at once took longer than starting them one by one, most of it in the
kernel: every commit woke every thread waiting for durability (one condition, ``notify_all``),
and each of them looked and slept again. A commit now wakes only the waiters whose operation it
made durable.

The test counts how often waiters are looked at: each waiter's target is an ``int`` that counts
the comparisons made with it, so the count is exact and needs no clock.
"""

from __future__ import annotations

import threading
from pathlib import Path

from nbflow.engine._writelog import WriteLog
from nbflow.store import open_store
from nbflow.store._ops import WorkflowRow
from tests.support.helpers import wait_until

WAITERS = 50
COMMITS = 40


class Target(int):
    """A sequence number that counts the comparisons made with it."""

    looks = 0
    lock = threading.Lock()

    def _count(self) -> None:
        with Target.lock:
            Target.looks += 1

    def __le__(self, other: object) -> bool:
        self._count()
        return int(self) <= other  # type: ignore[operator]

    def __ge__(self, other: object) -> bool:
        self._count()
        return int(self) >= other  # type: ignore[operator]

    def __lt__(self, other: object) -> bool:
        self._count()
        return int(self) < other  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        self._count()
        return int(self) > other  # type: ignore[operator]


def row(n: int) -> WorkflowRow:
    return WorkflowRow(f"w{n}", "tests.waiters", "PENDING", "[]", None, created_at=1.0)


def test_a_commit_wakes_only_the_waiters_it_concerns(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "waiters.duckdb"))
    log = WriteLog(store, lambda batch, cancelled: None)
    try:
        far = COMMITS + 1  # what the waiters wait for: durable only after every commit below
        done: list[bool] = []
        waiters = [
            threading.Thread(target=lambda: done.append(log.wait_durable(Target(far), 60)))
            for _ in range(WAITERS)
        ]
        for t in waiters:
            t.start()
        wait_until(lambda: log._waiting == WAITERS, timeout=30)  # all of them wait
        before = Target.looks
        for n in range(COMMITS):  # one at a time: each commit its own batch
            assert log.wait_durable(log.append(row(n)), 30)
        looks = Target.looks - before
        log.append(row(COMMITS))  # the one they wait for
        for t in waiters:
            t.join(30)
        assert done == [True] * WAITERS
    finally:
        log.close()
        store.close()
    # a commit looks at the first waiter in line, and keeping the line in order costs a few looks
    # (log2 of the waiters); waking every waiter on every commit looks at each (50 x 40 = 2,000)
    assert looks <= COMMITS * (2 + 2 * WAITERS.bit_length()), looks


def test_a_writer_that_outruns_the_disk_waits(tmp_path: Path) -> None:
    """Back-pressure (issue 14, item 4): the queue holds about ``max_bytes`` at most, however
    fast a writer appends; before, it grew with everything not yet committed (40,000 items of
    10 KB grew memory by 1.5 GB)."""
    store = open_store(str(tmp_path / "pressure.duckdb"))
    item, limit = 100_000, 1_000_000
    log = WriteLog(store, lambda batch, cancelled: None, max_bytes=limit, batch_bytes=limit // 4)
    queued: list[int] = []
    try:
        for n in range(300):  # 30 MB, appended as fast as Python can
            log.make_room()
            log.append(row(n)._replace(inputs_json="x" * item))
            queued.append(len(log._queue) * item)
        assert log.wait_durable(timeout=60)
    finally:
        log.close()
        store.close()
    assert max(queued) <= limit + item, max(queued)
    assert len(store_rows(tmp_path / "pressure.duckdb")) == 300  # nothing lost


def store_rows(path: Path) -> list[tuple[object, ...]]:
    store = open_store(str(path))
    try:
        result = store.sql("select workflow_id from workflows", [])  # type: ignore[attr-defined]
        return result if isinstance(result, list) else result.fetchall()  # type: ignore[no-any-return]
    finally:
        store.close()
