"""``nbflow copy --to URL``: workflows copied between a DuckDB file and PostgreSQL, in real
processes (the command, a child killed mid-run, ``nbflow worker`` resuming on the target)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.apps import copyapp
from tests.support.helpers import wait_until
from tests.support.processes import ROOT, child_env, start_worker

pytestmark = pytest.mark.postgres


def nbflow_cli(db: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbflow", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        cwd=ROOT,
    )


def copied(db: str | Path, *args: str) -> dict[str, list[str]]:
    """What ``nbflow --db DB copy --json ARGS`` reported."""
    done = nbflow_cli(db, "copy", "--json", *args)
    assert done.returncode == 0, done.stderr
    report: dict[str, list[str]] = json.loads(done.stdout)
    return report


@nbflow.step(name="tests.cli_copy.double")
def double(x: int) -> int:
    return 2 * x


@nbflow.workflow(name="tests.cli_copy.work")
def work(n: int) -> int:
    for i in range(n):
        nbflow.write_stream("out", double(i))
    return n


@nbflow.workflow(name="tests.cli_copy.fails")
def fails() -> None:
    raise ValueError("no")


@nbflow.workflow(name="tests.cli_copy.family")
def family() -> int:
    return int(work(2)) + 1


released = threading.Event()


@nbflow.workflow(name="tests.cli_copy.blocked")
def blocked() -> str:
    nbflow.write_stream("out", "before")
    nbflow.run_step(released.wait, 30)
    return "done"


def _fill(database: str | Path) -> list[str]:
    """Four finished workflows (one failed, one a child): their ids, oldest first."""
    with nbflow.Runtime(database) as rt:
        a = rt.start(work, 3)
        a.result(timeout=30)
        b = rt.start(fails)
        with pytest.raises(ValueError):
            b.result(timeout=30)
        c = rt.start(family)
        assert c.result(timeout=30) == 3
        [child] = rt.list_workflows(parent_id=c.workflow_id)
        return [a.workflow_id, b.workflow_id, c.workflow_id, child.workflow_id]


def _exports(database: str | Path, ids: list[str]) -> list[Any]:
    with nbflow.Runtime(database, queues=[]) as rt:
        out = [rt.export_workflow(i)[0] for i in ids]
    for one in out:
        one["workflow"]["executor_id"] = None
    return out


def test_copy_to_postgres_and_back_copies_nothing_twice(tmp_path: Path, pg_url: str) -> None:
    """DuckDB to PostgreSQL, run again (nothing twice), then PostgreSQL to a new DuckDB file by
    status and time: every workflow arrives exactly as it was."""
    source = tmp_path / "source.duckdb"
    ids = _fill(source)
    first = nbflow_cli(source, "copy", "--to", pg_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "copied 4, already there 0"
    again = nbflow_cli(source, "copy", "--to", pg_url)
    assert again.stdout.strip() == "copied 0, already there 4", again.stderr
    assert _exports(pg_url, ids) == _exports(source, ids)
    back = tmp_path / "back.duckdb"
    assert copied(pg_url, "--to", str(back), "--status", "failed")["copied"] == [ids[1]]
    assert copied(pg_url, "--to", str(back), "--since", "1d")["copied"] == [ids[0], *ids[2:]]
    assert copied(pg_url, "--to", str(back), "--since", "2999-01-01")["already"] == []
    assert copied(pg_url, "--to", str(back))["already"] == ids
    assert _exports(back, ids) == _exports(source, ids)
    with nbflow.Runtime(back) as rt:
        assert list(rt.read_stream(ids[0], "out", timeout=5)) == [0, 2, 4]


def test_copy_refuses_its_own_database_and_bad_options(tmp_path: Path) -> None:
    source = tmp_path / "source.duckdb"
    same = nbflow_cli(source, "copy", "--to", str(source))
    assert same.returncode == 1 and "names the database it copies from" in same.stderr
    bad = nbflow_cli(source, "copy", "--to", str(tmp_path / "x.duckdb"), "--status", "sideways")
    assert bad.returncode == 2 and "sideways" in bad.stderr


def test_a_running_workflow_is_skipped_with_a_note(tmp_path: Path, pg_url: str) -> None:
    """A workflow running in a live process (here, this one) is left out; copied once it ended."""
    target = tmp_path / "target.duckdb"
    released.clear()
    with nbflow.Runtime(pg_url) as rt:
        done = rt.start(work, 2)
        done.result(timeout=30)
        running = rt.start(blocked)
        assert next(iter(rt.read_stream(running.workflow_id, "out", timeout=30))) == "before"
        first = nbflow_cli(pg_url, "copy", "--to", str(target))
        assert first.returncode == 0, first.stderr
        assert (
            first.stdout.strip()
            == f"copied 1, already there 0, skipped 1 running: {running.workflow_id}"
        )
        released.set()
        assert running.result(timeout=30) == "done"
    assert copied(pg_url, "--to", str(target)) == {
        "copied": [running.workflow_id],
        "already": [done.workflow_id],
        "running": [],
        "differ": [],
    }


def test_an_interrupted_workflow_is_resumed_on_postgres_by_a_worker(
    tmp_path: Path, pg_url: str
) -> None:
    """A process killed (kill -9) while its workflow writes a stream to a DuckDB file; `nbflow
    copy` moves the interrupted workflow to PostgreSQL, where `nbflow worker` resumes it: the
    stream holds every item once, in order, and the steps done before the kill do not run again."""
    source, log, n = tmp_path / "source.duckdb", tmp_path / "ran.log", 150
    env = {**child_env(), "NBFLOW_COPY_LOG": str(log)}
    app = [sys.executable, str(ROOT / "tests" / "apps" / "copyapp.py"), str(source), str(n)]
    child = subprocess.Popen(app, env=env, cwd=tmp_path, start_new_session=True)
    try:
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 40, timeout=60)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    ran_before = [int(line.split()[1]) for line in log.read_text().splitlines()]
    assert copied(source, "--to", pg_url)["copied"] == [copyapp.WRITER_ID]
    assert copied(source, "--to", pg_url)["already"] == [copyapp.WRITER_ID]
    with nbflow.Runtime(pg_url, queues=[]) as rt:
        assert rt.get_workflow(copyapp.WRITER_ID).status() == Status.PENDING
        durable = len(list(rt.list_steps(copyapp.WRITER_ID)))
    assert 0 < durable < n  # copied mid-run
    worker = start_worker(pg_url, "tests.apps.copyapp", "--queue", "tests-copy", env=env)
    try:
        with nbflow.Runtime(pg_url, queues=[]) as rt:
            ended = lambda: rt.store.get_status(copyapp.WRITER_ID) == "SUCCESS"  # noqa: E731
            wait_until(ended, timeout=120)  # (until the worker recovers it, it is interrupted)
            assert rt.get_workflow(copyapp.WRITER_ID).result(timeout=10) == n
            items = list(rt.read_stream(copyapp.WRITER_ID, "items", timeout=10))
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output
    assert items == [i * i for i in range(n)]  # exact: none twice, none missing
    ran_after = [int(line.split()[1]) for line in log.read_text().splitlines()][len(ran_before) :]
    assert min(ran_after) == durable  # the steps durable before the kill did not run again
    assert sorted(set(ran_before) | set(ran_after)) == list(range(n))
    again = nbflow_cli(source, "copy", "--to", pg_url)  # it ran on there: left as it is
    assert again.stdout.splitlines()[0] == "copied 0, already there 0", again.stderr
    assert "left 1 that differ" in again.stdout and copyapp.WRITER_ID in again.stdout
