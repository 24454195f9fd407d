"""Queue options: rate limits, partitions, priorities, deduplication and delays.

Each test restates a scenario of DBOS Transact's own suite (dbos-transact-py
``tests/test_queue.py``, named in its docstring) in nbflow's terms. Limits are checked against the
``started_at`` the database records when a dispatcher takes a workflow (what the limits count),
and against the runs each process logs (:mod:`tests.apps.queueapp`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import threading
import time
from pathlib import Path

import pytest

import nbflow
from nbflow import Status
from nbflow.workflow._workers import parse_rate
from tests.apps import queueapp, queueoptsapp
from tests.support.helpers import wait_until
from tests.support.processes import start_worker
from tests.workflow.test_queues import most_at_once, running_now, runs, stop_workers

#: Workflow bodies of this module append here as they begin (queues of one process).
began: list[str] = []

priority_queue = nbflow.Queue("tests-opts-priority", concurrency=1)
dedup_queue = nbflow.Queue("tests-opts-dedup")
other_queue = nbflow.Queue("tests-opts-other")
delay_queue = nbflow.Queue("tests-opts-delay")
limited = nbflow.Queue("tests-opts-rate", rate=(4, 1.0))
tenant_queue = nbflow.Queue("tests-opts-tenants", partition_concurrency=1)
tenant_rate = nbflow.Queue("tests-opts-tenant-rate", partition_rate="2/s")


@nbflow.workflow(name="tests.opts.mark")
def mark(label: str) -> str:
    began.append(label)
    return label


#: What :func:`held` waits for.
release = threading.Event()


@nbflow.workflow(name="tests.opts.held")
def held(label: str) -> str:
    release.wait(30)
    return label


@nbflow.workflow(name="tests.opts.parent")
def parent() -> tuple[str, str]:
    """Enqueues a child twice with one deduplication id: the second enqueue is refused (the
    first still runs: it waits for :data:`release`)."""
    with nbflow.enqueue_options(deduplication_id="child"):
        first = dedup_queue.enqueue(held, "child")
        try:
            dedup_queue.enqueue(held, "again")
        except nbflow.QueueDeduplicatedError as exc:
            return first.workflow_id, exc.holder
    return first.workflow_id, "not refused"


@nbflow.workflow(name="tests.opts.enqueues_child")
def enqueues_child() -> str:
    """Enqueues a child with no options of its own (a caller's block must not reach it)."""
    return other_queue.enqueue(mark, "inner").workflow_id


def started(rt: nbflow.Runtime, handles: list[nbflow.WorkflowHandle]) -> list[float]:
    """When each workflow was taken off its queue, sorted (the times a rate limit counts)."""
    times = [rt.workflow_row(h.workflow_id).started_at for h in handles]
    assert all(t is not None for t in times)
    return sorted(t for t in times if t is not None)


def assert_rate(times: list[float], limit: int, period: float) -> None:
    """At most ``limit`` starts in any window of ``period`` seconds, and the first window spent."""
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] >= period, (i, times)
    assert sum(1 for t in times if t < times[0] + period) == limit


# -- bad input -------------------------------------------------------------------------------


def test_queue_rates_take_nbflow_map_s_forms() -> None:
    """DBOS test_partition_limit_validation: limits below 1 and unknown forms raise ValueError."""
    assert nbflow.Queue("tests-opts-a", rate="5/10s").rate == (5, 10)
    assert nbflow.Queue("tests-opts-a", rate="600/min").rate == (600, 60)
    assert nbflow.Queue("tests-opts-a", partition_rate=(3, 2.5)).partition_rate == (3, 2.5)
    assert parse_rate("5/10s") == 0.5 and parse_rate((3, 2)) == 1.5  # map's rate: one parser
    bad: list[dict[str, object]] = [
        {"rate": "fast"},
        {"rate": 5},  # a number is starts per second for map; a queue wants its window
        {"rate": "0.5/s"},  # not a whole number of starts
        {"rate": (0, 1)},
        {"rate": (1, 0)},
        {"rate": "3/0s"},
        {"partition_rate": "x/s"},
        {"partition_concurrency": 0},
        {"partition_concurrency": True},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError, match=str(next(iter(kwargs)))):
            nbflow.Queue("tests-opts-bad", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("priority", 0),
        ("priority", -100),
        ("priority", True),
        ("priority", 1.5),
        ("priority", "1"),
        ("delay", -1),
        ("delay", "soon"),
        ("delay", float("nan")),
        ("delay", dt.timedelta(seconds=-1)),
        ("deduplication_id", ""),
        ("partition_key", 7),
    ],
)
def test_enqueue_options_are_checked(option: str, value: object) -> None:
    """DBOS test_priority_queue: an invalid priority raises before anything is enqueued."""
    with pytest.raises(ValueError), nbflow.enqueue_options(**{option: value}):  # type: ignore[arg-type]
        pass


def test_partition_keys_must_match_the_queue(rt: nbflow.Runtime) -> None:
    """DBOS: a partitioned queue refuses an enqueue without a key, a plain one a key."""
    with pytest.raises(ValueError, match=r"tests-opts-tenants.*partition_key"):
        tenant_queue.enqueue(mark, "no key")
    with (
        pytest.raises(ValueError, match="no limits per partition"),
        nbflow.enqueue_options(partition_key="tenant-1"),
    ):
        other_queue.enqueue(mark, "a key")
    assert nbflow.list_workflows() == []


def test_enqueue_options_nest_and_stay_in_their_thread(database: str) -> None:
    """DBOS test_priority_queue ("the priority is not propagated"): blocks nest, each thread has
    its own, and a workflow run inside a block enqueues without the block's options."""
    with nbflow.configure(database, queues=[]) as rt:
        seen: list[int | None] = []
        with nbflow.enqueue_options(priority=3, deduplication_id="outer"):
            with nbflow.enqueue_options(priority=1):
                inner = dedup_queue.enqueue(mark, "inner")

                def enqueue_elsewhere() -> None:  # another thread: the block is not its own
                    handle = other_queue.enqueue(mark, "t")
                    seen.append(rt.workflow_row(handle.workflow_id).priority)

                thread = threading.Thread(target=enqueue_elsewhere)
                thread.start()
                thread.join()
                child_id = enqueues_child()  # runs here, in this thread, inside the block
            with pytest.raises(nbflow.QueueDeduplicatedError):
                dedup_queue.enqueue(mark, "outer again")
        row = rt.workflow_row(inner.workflow_id)
        assert (row.priority, row.deduplication_id) == (1, "outer")
        assert seen == [None]
        child = rt.workflow_row(child_id)
        assert (child.priority, child.deduplication_id) == (None, None)


def test_enqueue_options_belong_to_their_task(database: str) -> None:
    """Two asyncio tasks in blocks of their own, interleaved: each enqueue gets its task's."""

    async def enqueue(priority: int) -> str:
        with nbflow.enqueue_options(priority=priority):
            await asyncio.sleep(0)  # a turn: the other task enters its block meanwhile
            return other_queue.enqueue(mark, str(priority)).workflow_id

    async def both() -> list[str]:
        return list(await asyncio.gather(enqueue(1), enqueue(2)))

    with nbflow.configure(database, queues=[]) as rt:
        ids = asyncio.run(both())
        assert [rt.workflow_row(i).priority for i in ids] == [1, 2]


# -- priorities ------------------------------------------------------------------------------


@pytest.mark.contract
def test_priority_order(database: str) -> None:
    """DBOS test_priority_queue: workflows without a priority first, in order, then priority
    1, 2, …; one at a time (concurrency=1), so the order they begin is the dequeue order."""
    began.clear()
    labels = [("a", None), ("p3", 3), ("p1", 1), ("p2", 2), ("b", None), ("p1'", 1)]
    with nbflow.configure(database, queues=[]):  # serves no queue: all wait
        for label, priority in labels:
            with nbflow.enqueue_options(priority=priority):
                handle = priority_queue.enqueue(mark, label)
            assert handle.status() == Status.ENQUEUED
    with nbflow.configure(database):  # serves them all
        for info in nbflow.list_workflows(queue="tests-opts-priority"):
            assert nbflow.get_workflow(info.workflow_id).result(timeout=60)
    assert began == ["a", "b", "p1", "p1'", "p2", "p3"]


# -- deduplication ---------------------------------------------------------------------------


@pytest.mark.contract
def test_deduplication(database: str) -> None:
    """DBOS test_queue_deduplication: while a workflow with a deduplication id is ENQUEUED (then
    PENDING) on a queue, another enqueue with the id is refused, naming the queue, the id and
    the holder; other ids, no id, and other queues are not; once it ended, the id is free."""
    with nbflow.configure(database, queues=[]) as rt:
        with nbflow.enqueue_options(deduplication_id="report-1"):
            holder = dedup_queue.enqueue(mark, "first")
            with pytest.raises(nbflow.QueueDeduplicatedError) as refused:
                dedup_queue.enqueue(mark, "second")
            elsewhere = other_queue.enqueue(mark, "other queue")  # another queue: its own ids
        error = refused.value
        assert (error.queue, error.deduplication_id, error.holder) == (
            "tests-opts-dedup",
            "report-1",
            holder.workflow_id,
        )
        assert all(s in str(error) for s in ("tests-opts-dedup", "report-1", holder.workflow_id))
        with nbflow.enqueue_options(deduplication_id="report-2"):
            dedup_queue.enqueue(mark, "another id")
        dedup_queue.enqueue(mark, "no id")
        assert rt.workflow_row(elsewhere.workflow_id).deduplication_id == "report-1"
        assert len(nbflow.list_workflows(queue="tests-opts-dedup")) == 3  # the refused one: none
    with nbflow.configure(database):
        assert holder.workflow_id == nbflow.get_workflow(holder.workflow_id).workflow_id
        assert nbflow.get_workflow(holder.workflow_id).result(timeout=60) == "first"
        with nbflow.enqueue_options(deduplication_id="report-1"):
            again = dedup_queue.enqueue(mark, "after")  # the holder ended: the id is free
        assert again.result(timeout=60) == "after"


@pytest.mark.contract
def test_a_refused_child_enqueue_is_recorded(database: str) -> None:
    """DBOS test_queue_deduplication_recovery: inside a workflow, the refusal is a checkpoint; a
    replay (a fork from after it) raises it again although the holder has ended."""
    release.clear()
    with nbflow.configure(database):
        try:
            handle = nbflow.start(parent)
            child_id, holder = handle.result(timeout=60)
        finally:
            release.set()
        assert holder == child_id
        steps = nbflow.list_steps(handle.workflow_id)
        assert [s.status for s in steps] == ["SUCCESS", "ERROR"]
        assert steps[1].error is not None and "QueueDeduplicatedError" in steps[1].error
        assert nbflow.get_workflow(child_id).result(timeout=60) == "child"
        forked = nbflow.fork(handle.workflow_id, from_step=3)  # replays both enqueues
        assert list(forked.result(timeout=60)) == [child_id, child_id]


# -- delays ----------------------------------------------------------------------------------


@pytest.mark.contract
def test_delayed_enqueue(database: str) -> None:
    """DBOS test_delay and test_delay_cancel_resume_list: DELAYED until the delay has passed,
    then ENQUEUED and run; a delayed workflow can be listed, cancelled, resumed (it runs at
    once), and holds its deduplication id."""
    with nbflow.configure(database) as rt:
        with nbflow.enqueue_options(delay=dt.timedelta(hours=1)):
            parked = delay_queue.enqueue(mark, "parked")
        assert parked.status() == Status.DELAYED
        assert not parked.status().is_final and Status.parse("delayed") is Status.DELAYED
        [info] = nbflow.list_workflows(status="delayed")
        assert info.workflow_id == parked.workflow_id
        with nbflow.enqueue_options(delay=0.5):
            soon = delay_queue.enqueue(mark, "soon")
        assert soon.status() in (Status.DELAYED, Status.PENDING, Status.SUCCESS)
        assert soon.result(timeout=60) == "soon"
        row = rt.workflow_row(soon.workflow_id)
        assert row.available_at == row.created_at + 0.5
        assert row.started_at is not None and row.started_at >= row.available_at
        assert parked.status() == Status.DELAYED
        parked.cancel()
        assert parked.status() == Status.CANCELLED
        with nbflow.enqueue_options(delay=3600, deduplication_id="later"):
            resumed = delay_queue.enqueue(mark, "resumed")
            with pytest.raises(nbflow.QueueDeduplicatedError):  # a DELAYED one holds its id
                delay_queue.enqueue(mark, "again")
        assert nbflow.resume(resumed.workflow_id).result(timeout=60) == "resumed"  # at once


def test_delayed_status_while_waiting(rt: nbflow.Runtime) -> None:
    """handle.status() says DELAYED during the delay, then the workflow runs by itself (the
    dispatcher wakes when the delay ends, not at its next poll)."""
    with nbflow.enqueue_options(delay=0.3):
        handle = delay_queue.enqueue(mark, "later")
    assert handle.status() == Status.DELAYED
    assert handle.result(timeout=60) == "later"


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.contract
def test_rate_limit(database: str) -> None:
    """DBOS test_limiter: three times the limit enqueued at once start in waves, never more than
    ``limit`` in any window of ``period``, and each window's budget is spent."""
    with nbflow.configure(database, queues=[]):  # all are there when the first pass comes
        ids = [limited.enqueue(mark, f"r{i}").workflow_id for i in range(12)]
    with nbflow.configure(database) as rt:
        handles = [nbflow.get_workflow(i) for i in ids]
        assert [h.result(timeout=60) for h in handles] == [f"r{i}" for i in range(12)]
        assert_rate(started(rt, handles), 4, 1.0)


def start_workers(pg_url: str, n: int, queue: str) -> list[subprocess.Popen[str]]:
    """``n`` processes of ``nbflow worker`` serving ``queue`` of :mod:`tests.apps.queueoptsapp`."""
    return [start_worker(pg_url, "tests.apps.queueoptsapp", "--queue", queue) for _ in range(n)]


@pytest.fixture
def queue_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "queue.log"
    monkeypatch.setenv("NBFLOW_QUEUE_LOG", str(log))
    return log


@pytest.mark.postgres
def test_rate_limit_across_two_workers(pg_url: str, queue_log: Path) -> None:
    """DBOS test_limiter, with two `nbflow worker` processes sharing the rate (4 in any 1.5 s)."""
    workers = start_workers(pg_url, 2, "tests-rated")
    try:
        with nbflow.configure(pg_url, queues=[]) as rt:  # this process only enqueues
            handles = [queueoptsapp.rated.enqueue(queueoptsapp.job, i, 0.2) for i in range(12)]
            assert [h.result(timeout=120) for h in handles] == [i * 10 for i in range(12)]
            times = started(rt, handles)
    finally:
        outputs = stop_workers(workers)
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert_rate(times, 4, 1.5)
    events = runs(queue_log)
    assert sorted(i for e, i, *_ in events if e == "start") == list(range(12))
    assert len({pid for e, _, pid, _ in events if e == "start"}) == 2  # both took part


# -- partitions ------------------------------------------------------------------------------


@pytest.mark.contract
def test_partition_concurrency(database: str, queue_log: Path) -> None:
    """DBOS test_queue_partitions and test_partitioned_queue_does_not_starve_partitions: one
    workflow per partition key at a time, the partitions side by side."""
    keys = {i: f"tenant-{i % 2}" for i in range(6)}
    with nbflow.configure(database, queues=[]):
        handles = []
        for i, key in keys.items():
            with nbflow.enqueue_options(partition_key=key):
                handles.append(tenant_queue.enqueue(queueapp.job, i, 0.2))
        assert nbflow.get_workflow(handles[0].workflow_id).status() == Status.ENQUEUED
    with nbflow.configure(database):
        results = [nbflow.get_workflow(h.workflow_id).result(timeout=60) for h in handles]
        assert results == [i * 10 for i in range(6)]
    events = runs(queue_log)
    for key in set(keys.values()):
        assert most_at_once([e for e in events if keys[e[1]] == key]) == 1
    assert most_at_once(events) == 2  # one per partition, both at once


@pytest.mark.contract
def test_partition_rate(database: str) -> None:
    """DBOS test_partition_limiter_with_queue_wide_limiter: the rate holds per partition key."""
    by_key: dict[str, list[str]] = {"a": [], "b": []}
    with nbflow.configure(database, queues=[]):  # all are there when the first pass comes
        for i in range(6):
            for key, enqueued in by_key.items():
                with nbflow.enqueue_options(partition_key=key):
                    enqueued.append(tenant_rate.enqueue(mark, f"{key}{i}").workflow_id)
    with nbflow.configure(database) as rt:
        for ids in by_key.values():
            handles = [nbflow.get_workflow(i) for i in ids]
            assert [h.result(timeout=60) for h in handles]
            assert_rate(started(rt, handles), 2, 1.0)
        both = started(rt, [nbflow.get_workflow(i) for ids in by_key.values() for i in ids])
        assert sum(1 for t in both if t < both[0] + 1.0) == 4  # the keys do not share a budget


@pytest.mark.postgres
def test_a_killed_worker_s_partitioned_work_keeps_the_limits(pg_url: str, queue_log: Path) -> None:
    """DBOS test_queue_concurrency_under_recovery, partitioned: kill -9 a worker in the middle of
    a partition's workflow; another worker resumes it, and no partition ever runs two at once
    (the killed run counts until the kill)."""
    workers = start_workers(pg_url, 3, "tests-tenants")
    keys = {i: f"tenant-{i % 2}" for i in range(8)}
    try:
        with nbflow.configure(pg_url, queues=[]):
            handles = []
            for i, key in keys.items():
                with nbflow.enqueue_options(partition_key=key):
                    handles.append(queueoptsapp.tenants.enqueue(queueoptsapp.job, i, 0.3))

            victim_item, victim_pid = wait_until(lambda: running_now(queue_log, 2), timeout=60)
            [victim] = [w for w in workers if w.pid == victim_pid]
            victim.kill()  # SIGKILL, inside the step of workflow victim_item
            victim.wait(30)
            killed_at = time.time()
            assert [h.result(timeout=120) for h in handles] == [i * 10 for i in range(8)]
    finally:
        outputs = stop_workers(workers)
    assert [w.returncode for w in workers if w is not victim] == [0, 0], outputs
    events = runs(queue_log)
    assert sorted(i for e, i, *_ in events if e == "end") == list(range(8))  # each step ended once
    events.append(("end", victim_item, victim_pid, killed_at))  # the killed run, until the kill
    for key in set(keys.values()):
        assert most_at_once([e for e in events if keys[e[1]] == key]) == 1
