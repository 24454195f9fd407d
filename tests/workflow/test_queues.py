"""Queues: ENQUEUED until a runtime serving the queue has room, within the queue's limits."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

import nbflow
from nbflow import Status
from tests.apps import queueapp
from tests.support.helpers import wait_until
from tests.support.processes import start_worker


def runs(log: Path) -> list[tuple[str, int, int, float]]:
    """``(event, i, pid, time)`` per line of the queue log."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        event, i, pid, t = line.split()
        out.append((event, int(i), int(pid), float(t)))
    return out


def running_now(log: Path, after: int) -> tuple[int, int] | None:
    """A run ``(i, pid)`` started and not ended, once the log holds ``after`` events; or None."""
    events = runs(log)
    ended = {(i, pid) for event, i, pid, _ in events if event == "end"}
    started = [(i, pid) for event, i, pid, _ in events if event == "start"]
    open_runs = [run for run in started if run not in ended]
    return open_runs[0] if len(events) >= after and open_runs else None


def most_at_once(events: list[tuple[str, int, int, float]]) -> int:
    """The largest number of runs between their start and end at any moment."""
    now = peak = 0
    for event, *_ in sorted(events, key=lambda e: (e[3], e[0] == "start")):
        now += 1 if event == "start" else -1
        peak = max(peak, now)
    return peak


@pytest.fixture
def queue_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "queue.log"
    monkeypatch.setenv("NBFLOW_QUEUE_LOG", str(log))
    return log


@pytest.mark.contract
def test_a_queue_keeps_its_concurrency(database: str, queue_log: Path) -> None:
    with nbflow.configure(database):
        handles = [queueapp.shared.enqueue(queueapp.job, i, 0.05) for i in range(8)]
        assert [h.result(timeout=60) for h in handles] == [i * 10 for i in range(8)]
    events = runs(queue_log)
    assert sorted(i for e, i, *_ in events if e == "start") == list(range(8))
    assert most_at_once(events) == 2


@pytest.mark.contract
def test_worker_concurrency_limits_one_process(database: str, queue_log: Path) -> None:
    with nbflow.configure(database):
        handles = [queueapp.per_worker.enqueue(queueapp.job, i, 0.02) for i in range(4)]
        assert [h.result(timeout=60) for h in handles] == [0, 10, 20, 30]
    assert most_at_once(runs(queue_log)) == 1


@pytest.mark.contract
def test_enqueued_until_a_runtime_serves_the_queue(database: str, queue_log: Path) -> None:
    with nbflow.configure(database, queues=[]):  # serves no queue
        handle = queueapp.shared.enqueue(queueapp.job, 7)
        assert handle.status() == Status.ENQUEUED
        [info] = nbflow.list_workflows(status="enqueued")
        assert info.workflow_id == handle.workflow_id
        with nbflow.set_workflow_id(handle.workflow_id):  # the same id is never enqueued twice
            assert queueapp.shared.enqueue(queueapp.job, 7) == handle
        with pytest.raises(nbflow.WaitTimeoutError):
            handle.result(timeout=0.05)
        cancelled = queueapp.shared.enqueue(queueapp.job, 8)
        cancelled.cancel()
        assert cancelled.status() == Status.CANCELLED
    assert runs(queue_log) == []
    with nbflow.configure(database):  # serves every declared queue
        assert nbflow.get_workflow(handle.workflow_id).result(timeout=60) == 70
        assert nbflow.get_workflow(cancelled.workflow_id).status() == Status.CANCELLED
    assert [i for e, i, *_ in runs(queue_log) if e == "start"] == [7]


def test_queue_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        nbflow.Queue("bad", concurrency=0)
    with pytest.raises(ValueError, match="worker_concurrency"):
        nbflow.Queue("bad", worker_concurrency=1.5)  # type: ignore[arg-type]


def start_workers(pg_url: str, n: int) -> list[subprocess.Popen[str]]:
    """``n`` processes of ``nbflow worker`` serving the queue ``tests-spread``."""
    return [
        start_worker(pg_url, "tests.apps.queueapp", "--queue", "tests-spread") for _ in range(n)
    ]


def stop_workers(workers: list[subprocess.Popen[str]]) -> list[str]:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    return [w.communicate(timeout=30)[0] for w in workers]


@pytest.mark.postgres
def test_three_workers_share_a_queue(pg_url: str, queue_log: Path) -> None:
    """Three `nbflow worker` processes run 24 workflows of a queue limited to 2 at once in all
    (and 1 per process, so that more than one worker must take part)."""
    workers = start_workers(pg_url, 3)
    try:
        with nbflow.configure(pg_url, queues=[]):  # this process only enqueues
            handles = [queueapp.spread.enqueue(queueapp.job, i, 0.1) for i in range(24)]
            assert [h.result(timeout=120) for h in handles] == [i * 10 for i in range(24)]
            assert {w.status for w in nbflow.list_workflows(limit=100)} == {Status.SUCCESS}
    finally:
        outputs = stop_workers(workers)
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    events = runs(queue_log)
    starts = sorted(i for e, i, *_ in events if e == "start")
    assert starts == list(range(24))  # every workflow ran, once
    assert most_at_once(events) <= 2  # the limit held across processes
    assert len({pid for e, _, pid, _ in events if e == "start"}) >= 2  # the work was shared


@pytest.mark.postgres
def test_a_killed_worker_s_workflows_are_taken_over(pg_url: str, queue_log: Path) -> None:
    """kill -9 one of three workers in the middle of a workflow: another worker resumes it, every
    workflow ends SUCCESS once, and the queue's limit holds throughout."""
    workers = start_workers(pg_url, 3)
    try:
        with nbflow.configure(pg_url, queues=[]):
            handles = [queueapp.spread.enqueue(queueapp.job, i, 0.3) for i in range(12)]

            victim_item, victim_pid = wait_until(lambda: running_now(queue_log, 4), timeout=60)
            [victim] = [w for w in workers if w.pid == victim_pid]
            victim.kill()  # SIGKILL, inside the step of workflow victim_item
            victim.wait(30)
            killed_at = time.time()
            assert [h.result(timeout=120) for h in handles] == [i * 10 for i in range(12)]
    finally:
        outputs = stop_workers(workers)
    assert [w.returncode for w in workers if w is not victim] == [0, 0], outputs
    events = runs(queue_log)
    ends = sorted(i for e, i, *_ in events if e == "end")
    assert ends == list(range(12))  # each workflow's step finished once
    reruns = [i for e, i, pid, _ in events if e == "start" and pid != victim_pid and i == victim_item]  # fmt: skip
    assert reruns == [victim_item]  # the interrupted step ran again, in another worker
    # The killed run counts as running until the kill.
    closed = [*events, ("end", victim_item, victim_pid, killed_at)]
    assert most_at_once(closed) <= 2
