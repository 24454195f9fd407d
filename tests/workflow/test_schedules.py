"""Schedules: ``@nbflow.scheduled(cron)`` workflows run once per tick, across processes.

Restates DBOS's scheduler tests (dbos-transact-py ``tests/test_scheduler_decorator.py``, the
``@DBOS.scheduled`` decorator, and ``tests/test_scheduler.py``) in nbflow's terms.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow.workflow._schedules import declared_schedules, remove_schedule, schedule_id
from tests.support.helpers import wait_until
from tests.support.processes import ROOT, child_env, start_worker

UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def forget_schedules() -> Iterator[None]:
    """A schedule declared by a test stops with it (else every later runtime would run it)."""
    before = set(declared_schedules())
    yield
    for name in set(declared_schedules()) - before:
        remove_schedule(name)


@pytest.fixture
def sched_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "sched.log"
    monkeypatch.setenv("NBFLOW_SCHED_LOG", str(log))
    return log


def logged(log: Path) -> list[tuple[str, int]]:
    """``(tick, pid)`` per line of the schedule log."""
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [(tick, int(pid)) for tick, pid in (line.split() for line in lines)]


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate()}


# -- one process, both stores -------------------------------------------------------------------


@pytest.mark.contract
def test_a_schedule_runs_once_at_each_tick(database: str) -> None:
    """DBOS test_scheduled_workflow and test_async_scheduled_workflow: a six-field cron (seconds
    first) fires every second, sync and async; each tick is the workflow ``sched-<name>-<tick>``,
    run once, called with the tick and the time it started (UTC-aware)."""
    runs: list[tuple[dt.datetime, dt.datetime, str | None]] = []
    async_ticks: list[dt.datetime] = []

    @nbflow.scheduled("* * * * * *")
    @nbflow.workflow(name="tests.sched.every_second")
    def every_second(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None:
        runs.append((scheduled_time, actual_time, nbflow.current_workflow_id()))

    @nbflow.scheduled("*/1 * * * * *")
    @nbflow.workflow(name="tests.sched.every_second_async")
    async def every_second_async(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None:
        async_ticks.append(scheduled_time)

    with nbflow.configure(database):
        [thread] = [t for t in threading.enumerate() if t.name == "nbflow-schedules"]
        assert thread.daemon
        wait_until(lambda: len(runs) >= 3 and len(async_ticks) >= 2, timeout=60)
        recorded = {w.workflow_id for w in nbflow.list_workflows(name=every_second.name)}
    ticks = [tick for tick, _, _ in runs]
    assert len(set(ticks)) == len(ticks)  # never twice
    for tick, actual, workflow_id in runs:
        assert tick.utcoffset() == dt.timedelta(0) and tick.microsecond == 0
        assert actual.tzinfo is not None and actual >= tick
        assert workflow_id == f"sched-tests.sched.every_second-{tick.isoformat()}"
        assert workflow_id in recorded
    assert len(set(async_ticks)) == len(async_ticks)


@pytest.mark.contract
def test_a_schedule_declared_after_the_runtime_opened_fires(database: str) -> None:
    """DBOS test_dynamic_scheduler_add_after_launch: the scheduler thread starts when the first
    schedule is declared, in a runtime opened before."""
    ticks: list[dt.datetime] = []
    with nbflow.configure(database):
        assert "nbflow-schedules" not in thread_names()  # no schedule yet: no thread

        @nbflow.scheduled("* * * * * *")
        @nbflow.workflow(name="tests.sched.late")
        def late(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None:
            ticks.append(scheduled_time)

        wait_until(lambda: len(ticks) >= 2, timeout=60)
        remove_schedule(late.name)  # the thread stays, and fires no more (nothing declared)
    assert "nbflow-schedules" not in thread_names()  # stopped when the runtime closed


def _hour_ticks(hour: dt.datetime, n: int) -> list[dt.datetime]:
    return [hour - dt.timedelta(hours=k) for k in reversed(range(n))]


@pytest.mark.contract
def test_missed_ticks_run_late_only_when_asked(database: str) -> None:
    """DBOS test_automatic_backfill_on_restart: a schedule whose latest tick ran five hours ago
    (nothing ran since) runs the missed ticks late only with ``catch_up``, at most as many as
    asked (the latest, oldest first); without it, none."""
    hourly = "0 * * * *"
    ran: dict[str, list[dt.datetime]] = {"plain": [], "three": [], "all": []}

    def declare(key: str) -> Any:
        @nbflow.workflow(name=f"tests.sched.hourly_{key}")
        def hourly_run(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None:
            ran[key].append(scheduled_time)

        return hourly_run

    workflows = {key: declare(key) for key in ran}
    before = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with nbflow.configure(database):
        past = before - dt.timedelta(hours=5)
        for wf in workflows.values():  # the tick that ran before everything stopped
            with nbflow.set_workflow_id(schedule_id(wf.name, past)):
                wf(past, past)
        for key in ran:
            ran[key].clear()
        # declared in this order: once "three" catches up, "plain" was taken up before
        nbflow.scheduled(hourly)(workflows["plain"])
        nbflow.scheduled(hourly, catch_up=True)(workflows["all"])
        nbflow.scheduled(hourly, catch_up=3)(workflows["three"])
        wait_until(lambda: len(ran["three"]) >= 3 and len(ran["all"]) >= 5, timeout=60)
        after = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        assert ran["plain"] == []
        assert ran["three"] in (_hour_ticks(before, 3), _hour_ticks(after, 3))
        assert ran["all"] in (_hour_ticks(before, 5), _hour_ticks(after, 5))
        caught_up = nbflow.list_workflows(name=workflows["three"].name, status="SUCCESS")
        assert len(caught_up) == 4  # the one before, and the three caught up


def test_a_runtime_that_refuses_pickle_says_why_it_cannot_start_a_tick(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ticks' datetimes are pickled with the inputs: ``allow_pickle=False`` cannot store
    them, and the scheduler says so (once) instead of failing silently."""
    ran: list[dt.datetime] = []

    @nbflow.scheduled("* * * * * *")
    @nbflow.workflow(name="tests.sched.no_pickle")
    def no_pickle(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None:
        ran.append(scheduled_time)

    def warned() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "tests.sched.no_pickle" in r.getMessage()]

    with (
        caplog.at_level(logging.WARNING, logger="nbflow"),
        nbflow.Runtime(db_path, allow_pickle=False),
    ):
        [record] = wait_until(warned, timeout=60)
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], nbflow.SerializationError)
    assert ran == []


# -- processes ------------------------------------------------------------------------------


def start_schedule_worker(database: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    """``nbflow worker`` importing ``tests.apps.schedapp`` (its every-second schedule)."""
    with out.open("w") as file:
        return start_worker(database, "tests.apps.schedapp", *extra, out=file)


def stop(workers: list[subprocess.Popen[str]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=30)


@pytest.mark.postgres
def test_three_workers_run_each_tick_once(pg_url: str, sched_log: Path, tmp_path: Path) -> None:
    """DBOS test_scheduler_oaoo, across processes: three ``nbflow worker`` processes declare
    the same every-second schedule on one PostgreSQL database; each tick runs once in all."""
    outs = [tmp_path / f"worker{i}.out" for i in range(3)]
    workers = [start_schedule_worker(pg_url, out) for out in outs]
    try:
        wait_until(lambda: all("serving" in out.read_text() for out in outs), timeout=60)
        ready = dt.datetime.now(UTC)
        wait_until(
            lambda: sum(dt.datetime.fromisoformat(t) > ready for t, _ in logged(sched_log)) >= 5,
            timeout=60,
        )
    finally:
        stop(workers)
    assert [w.returncode for w in workers] == [0, 0, 0], [out.read_text() for out in outs]
    with nbflow.configure(pg_url, queues=[]):
        done = nbflow.list_workflows(name="tests.apps.schedapp.every_second", status="SUCCESS")
        done_ids = {w.workflow_id for w in done}
    ticks = [tick for tick, _ in logged(sched_log)]
    done_ticks = [t for t in ticks if f"sched-tests.apps.schedapp.every_second-{t}" in done_ids]
    assert len(done_ticks) >= 5
    assert len(set(done_ticks)) == len(done_ticks) == len(done_ids)  # each tick ran once


@pytest.mark.postgres
@pytest.mark.crash
def test_a_tick_of_a_killed_worker_is_finished_by_another(
    pg_url: str, sched_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 a worker in the middle of a tick (inside its step): another worker recovers that
    workflow and finishes it; the tick is still one workflow, and the ticks go on."""
    monkeypatch.setenv("NBFLOW_SCHED_SLEEP", "3")
    outs = [tmp_path / f"worker{i}.out" for i in range(2)]
    workers = [start_schedule_worker(pg_url, out) for out in outs]
    try:
        wait_until(lambda: all("serving" in out.read_text() for out in outs), timeout=60)
        tick, pid = wait_until(lambda: logged(sched_log)[-1:], timeout=60)[0]
        [victim] = [w for w in workers if w.pid == pid]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        killed_id = f"sched-tests.apps.schedapp.every_second-{tick}"
        with nbflow.configure(pg_url, queues=[]):
            handle = nbflow.get_workflow(killed_id)  # recovered by the other worker's loop
            wait_until(lambda: handle.status() == nbflow.Status.SUCCESS, timeout=60)
            assert handle.result() == tick
            later = dt.datetime.fromisoformat(tick)
            wait_until(
                lambda: any(dt.datetime.fromisoformat(t) > later for t, _ in logged(sched_log)),
                timeout=60,
            )
    finally:
        stop(workers)
    survivor = next(w for w in workers if w is not victim)
    assert survivor.returncode == 0
    lines = [p for t, p in logged(sched_log) if t == tick]
    assert lines[0] == pid and survivor.pid in lines  # the step ran again elsewhere


def test_a_worker_runs_the_schedules_of_its_modules(
    db_path: Path, sched_log: Path, tmp_path: Path
) -> None:
    """``nbflow worker --import MODULE`` with no ``--queue`` runs the module's schedules (here
    on a DuckDB file), and says so; with neither queue nor schedule it refuses to start."""
    out = tmp_path / "worker.out"
    worker = start_schedule_worker(str(db_path), out)
    try:
        wait_until(lambda: len(logged(sched_log)) >= 2, timeout=60)
    finally:
        stop([worker])
    assert worker.returncode == 0, out.read_text()
    assert "serving schedule tests.apps.schedapp.every_second" in out.read_text()
    ticks = [tick for tick, _ in logged(sched_log)]
    assert len(set(ticks)) == len(ticks)
    idle = subprocess.run(
        [sys.executable, "-m", "nbflow", "--db", str(db_path), "worker"],
        capture_output=True, text=True, timeout=60, env=child_env(), cwd=ROOT,
    )  # fmt: skip
    assert idle.returncode == 1
    assert "nothing to run" in idle.stderr and "--queue" in idle.stderr


# -- declarations and what shows them -------------------------------------------------------------


def test_bad_schedules_are_refused() -> None:
    """DBOS test_bad_schedule: bad cron text is a ValueError naming it and giving an example;
    the decorator below ``@workflow`` or on a function of the wrong arity is a TypeError."""

    def body(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None: ...

    for cron in ["*/invalid * * * * *", "* * * *", "* * * * * * *", "", "61 * * * *"]:
        with pytest.raises(ValueError, match="Invalid cron schedule") as info:
            nbflow.scheduled(cron)
        assert repr(cron) in str(info.value) and "*/5 * * * *" in str(info.value)
    with pytest.raises(ValueError, match="Invalid cron schedule"):
        nbflow.scheduled(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="catch_up"):
        nbflow.scheduled("* * * * *", catch_up=-1)
    with pytest.raises(TypeError, match=r"above @nbflow\.workflow"):
        nbflow.workflow(name="tests.sched.wrong_order")(nbflow.scheduled("* * * * *")(body))
    one = nbflow.workflow(name="tests.sched.one_argument")(lambda scheduled_time: None)
    with pytest.raises(TypeError, match=r"\(scheduled_time, actual_time\)"):
        nbflow.scheduled("* * * * *")(one)
    assert nbflow.list_schedules() == []


def test_a_workflow_defined_again_without_the_decorator_is_no_longer_scheduled() -> None:
    """A re-run notebook cell that drops ``@scheduled`` ends the schedule."""

    @nbflow.scheduled("0 0 1 1 *")
    @nbflow.workflow(name="tests.sched.yearly")
    def yearly(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None: ...

    [info] = nbflow.list_schedules()
    assert (info.name, info.cron, info.catch_up) == ("tests.sched.yearly", "0 0 1 1 *", 0)
    assert info.next_tick.month == 1 and info.next_tick.day == 1 and info.next_tick.hour == 0
    assert info.next_tick > dt.datetime.now(UTC)

    @nbflow.workflow(name="tests.sched.yearly")
    def yearly_again(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None: ...

    assert nbflow.list_schedules() == []


def test_nbflow_list_shows_the_next_tick(db_path: Path) -> None:
    """``nbflow list --import MODULE`` shows each schedule the module declares with its next
    tick, and runs none of them."""
    listed = subprocess.run(
        [sys.executable, "-m", "nbflow", "--db", str(db_path), "list", "--import", "tests.apps.schedapp"],
        capture_output=True, text=True, timeout=60, env=child_env(), cwd=ROOT,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    head, _, table = listed.stdout.partition("schedules (next tick in local time):")
    assert "(no workflows)" in head
    lines = table.strip().splitlines()
    assert lines[0].split() == ["schedule", "cron", "next", "tick"]
    name, *cron, day, time = lines[2].split()
    assert name == "tests.apps.schedapp.every_second" and cron == ["*"] * 6
    dt.datetime.fromisoformat(f"{day} {time}")  # a local time
    with nbflow.configure(db_path):
        assert nbflow.list_workflows(id_prefix="sched-") == []


def test_magic_list_shows_the_next_tick(
    rt: nbflow.Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``%nbflow list`` shows a table of the kernel's schedules under the workflows."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    @nbflow.scheduled("0 0 1 1 *")
    @nbflow.workflow(name="tests.sched.new_year")
    def new_year(scheduled_time: dt.datetime, actual_time: dt.datetime) -> None: ...

    [info] = nbflow.list_schedules()
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbflow")
    try:
        with capture_output() as captured:
            assert ip.run_cell("%nbflow list").success
    finally:
        ip.run_line_magic("unload_ext", "nbflow")
        ip.reset(new_session=False)
    texts = [o.data.get("text/plain", "") for o in captured.outputs]
    htmls = [o.data.get("text/html", "") for o in captured.outputs]
    [text] = [t for t in texts if t.startswith("schedules")]
    assert "tests.sched.new_year" in text and "0 0 1 1 *" in text and "next tick" in text
    assert info.next_tick.astimezone().strftime("%Y-%m-%d %H:%M:%S") in text
    assert any("next tick" in h and "<table>" in h and "new_year" in h for h in htmls)
