"""The fault-injection run (issue 14): seeded faults during a mixed load, on both stores.

Each case runs ``tests/apps/faultapp.py`` (three workflows, each with steps, body stream writes, a child
workflow, ``nbflow.map`` and a message to itself, plus a reader of its stream with no timeout) in a
child process and injects one fault, chosen and placed by the case's seed:

- ``kill``: SIGKILL while the app waits in its seeded step (``--pause-at``), other threads running;
- ``commit``: the commits after the app's seeded step fail (the store raises ``DatabaseError``);
- ``drop`` (PostgreSQL): the server terminates the app's sessions (``pg_terminate_backend``) while
  the app waits in its seeded step; then it goes on, and must ride the drop out and finish.

Then the app runs again (``recover()`` and the same calls) until every workflow has ended. The
case checks that every workflow finished exactly as a clean run does (results, and each stream
item once, in order), that no step whose checkpoint was durable when a process died ran again in
a later process, and that no reader hung in any run (each ends, or gets the error, within 30 s).
"""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import nbflow
from tests.apps import faultapp
from tests.support.helpers import wait_until
from tests.support.pgserver import PostgresServer
from tests.support.processes import ROOT

pytestmark = [pytest.mark.crash, pytest.mark.slow]

APP = "nbflow-faultapp"
CASES = 18  # per store: 36 faults in all
LINES = faultapp.WORKFLOWS * (faultapp.STEPS + faultapp.CHILD_STEPS + faultapp.MAP_ITEMS)
KINDS = {"duckdb": ("kill", "commit"), "postgres": ("kill", "commit", "drop")}


class Case:
    """One case's database, log and processes."""

    def __init__(self, db: str, folder: Path, admin_url: str | None) -> None:
        self.db, self.log, self.admin_url = db, folder / "side-effects.log", admin_url
        self.runs: list[tuple[int, set[str]]] = []  # (pid, labels durable before it ran)
        self.summaries: list[dict[str, Any]] = []
        self.procs: list[subprocess.Popen[str]] = []

    def stop_all(self) -> None:
        """SIGKILL any app still running (a held one, after a failed check)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)

    def spawn(self, *extra: str) -> subprocess.Popen[str]:
        before = self.durable()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "apps" / "faultapp.py"),
                self.db,
                str(self.log),
                *extra,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.runs.append((proc.pid, before))
        self.procs.append(proc)
        return proc

    def lines(self) -> list[tuple[str, int]]:
        """``(label, pid)`` of every side effect so far."""
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            _, label, pid = line.split()
            found.append((label, int(pid.removeprefix("pid="))))
        return found

    def durable(self) -> set[str]:
        """The labels of the checkpoints in the database (no process holds a DuckDB file now)."""
        if not self.db.startswith("postgresql") and not Path(self.db).exists():
            return set()
        with nbflow.Runtime(self.db) as rt:
            rows = rt.store.sql("SELECT output_json FROM steps WHERE output_json LIKE '%label%'")  # type: ignore[attr-defined]
            rows = rows if isinstance(rows, list) else rows.fetchall()
        return {json.loads(text)["label"] for (text,) in rows}

    def finish(self, proc: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"faultapp exited {proc.returncode}:\n{err[-3000:]}"
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        self.summaries.append(summary)
        return summary

    def summary_of_held(self, proc: subprocess.Popen[str]) -> None:
        """Read the summary a ``--hold`` process printed, then kill it."""
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert line, (
            f"faultapp printed nothing:\n{proc.stderr.read()[-3000:] if proc.stderr else ''}"
        )
        self.summaries.append(json.loads(line))


def inject(case: Case, kind: str, rnd: random.Random) -> None:
    """Run the app once with the fault ``kind`` at a seeded point."""
    point = rnd.randint(1, LINES - 1)
    if kind == "commit":
        case.finish(case.spawn("--commit-error", str(point)))
        return
    # the app waits in its seeded step (its other threads run on) while the fault lands
    proc = case.spawn("--hold", "--pause-at", str(point))
    paused = Path(f"{case.log}.paused")
    wait_until(lambda: paused.exists() or proc.poll() is not None, timeout=120)
    assert proc.poll() is None, "the app ended before its fault"
    if kind == "kill":
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return
    assert case.admin_url is not None  # drop: the server ends its sessions, then it goes on
    with psycopg.connect(case.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = %s", [APP])  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    case.summary_of_held(proc)


def check(case: Case) -> None:
    final = case.summaries[-1]
    want = {str(k): faultapp.expected(k) for k in range(faultapp.WORKFLOWS)}
    assert final["results"] == want, final
    rows = {str(k): [f"{k}:{i}" for i in range(faultapp.STEPS)] for k in range(faultapp.WORKFLOWS)}
    assert final["rows"] == rows, final["rows"]
    assert all(not s["hangs"] for s in case.summaries), case.summaries
    ran = collections.defaultdict(list)
    for label, pid in case.lines():
        ran[pid].append(label)
    for pid, durable_before in case.runs:
        again = sorted(set(ran[pid]) & durable_before)
        assert not again, f"steps durable before process {pid} ran in it again: {again}"
    assert case.durable() == {label for label, _ in case.lines()}


@pytest.fixture(scope="module")
def server(pg_server: PostgresServer) -> PostgresServer:
    return pg_server


def params() -> Iterator[Any]:
    for store, kinds in KINDS.items():
        for seed in range(CASES):
            yield pytest.param(store, seed, id=f"{store}-{kinds[seed % len(kinds)]}-{seed}")


@pytest.mark.parametrize(("store", "seed"), list(params()))
def test_a_seeded_fault_during_a_mixed_load(
    store: str, seed: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rnd = random.Random(f"{store}-{seed}")
    if store == "postgres":
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.create_database()
        db = f"{url}{'&' if '?' in url else '?'}application_name={APP}"
        case = Case(db, tmp_path, server.url)
    else:
        case = Case(str(tmp_path / "faults.duckdb"), tmp_path, None)
    kind = KINDS[store][seed % len(KINDS[store])]
    try:
        inject(case, kind, rnd)
        faulted = len(case.summaries)  # the summaries before it are of the faulted run
        for _ in range(3):  # recover until every workflow has ended
            summary = case.finish(case.spawn())
            if len(summary["results"]) == faultapp.WORKFLOWS:
                break
    finally:
        case.stop_all()
    check(case)
    # the fault landed: a killed run left workflows to recover; a failed commit failed them;
    # a dropped connection was ridden out, and the run finished everything itself
    if kind == "kill":
        assert case.summaries[faulted]["recovered"], case.summaries
    elif kind == "commit":
        assert case.summaries[0]["errors"], case.summaries[0]
    else:
        assert len(case.summaries[0]["results"]) == faultapp.WORKFLOWS, case.summaries[0]


def test_the_app_runs_clean(tmp_path: Path) -> None:
    """Without a fault, one run finishes everything (the baseline the cases compare with)."""
    case = Case(str(tmp_path / "clean.duckdb"), tmp_path, None)
    summary = case.finish(case.spawn())
    assert summary["recovered"] == [] and not summary["errors"], summary
    check(case)
    assert len(case.lines()) == LINES
