"""Crash tests of the step cache: real child processes killed with SIGKILL, on DuckDB and PostgreSQL.

The children run ``tests/apps/cacheapp.py``: calls of the cached step ``cacheapp.square`` (or
``cacheapp.flaky``, which raises the first time a key is computed) outside a workflow, in a
workflow's body, or as ``nbflow.map`` items on threads. The step's body appends ``computed …`` to a
file, the caller appends ``used <key> <value>`` right after the call returns (for a map: after the
map returns): so the test knows what was computed, and what was used, in which process.

The rule under test: a cached step's result is durable in ``step_cache`` before the caller gets
it (a map's items: before the map returns). So whatever was *used* before a ``kill -9`` is never
computed again, by the next process or by the recovery of the workflow; what was in flight is
computed at most twice (once per process). A step that raises is not kept. Two calls with one key
at once in one process run once; two processes may both compute a key they call at the same time
(there is no dedupe across processes: the second result replaces the first, equal, row).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

import nbflow
from tests.apps import cacheapp as app
from tests.support.helpers import sql, wait_until
from tests.support.processes import ReadyChild, is_postgres

pytestmark = pytest.mark.crash

APP = Path(app.__file__).resolve()
ON_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
STORES = ["duckdb", ON_POSTGRES]
#: The value a result holds -> its key.
KEY_OF = {app.value(k): k for k in range(1000)}

# -- child processes --------------------------------------------------------------------------------


class Child(ReadyChild):
    """A process of the app (see :class:`ReadyChild`): killed only while alive, with SIGKILL."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        super().__init__(APP, args, cwd, "cacheapp")

    def alive(self) -> bool:
        if self.proc.poll() is None:
            return True
        raise AssertionError(f"the child ended ({self.proc.returncode}): {self.proc.communicate()}")

    def kill(self) -> None:
        """SIGKILL its process group, now."""
        assert self.alive()
        super().kill()
        assert self.proc.returncode == -signal.SIGKILL

    def killed(self) -> None:
        """Wait until it is gone, killed with SIGKILL (by the test or by itself)."""
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL, err

    def summary(self, timeout: float = 120) -> dict[str, Any]:
        """Wait for it to end by itself; the JSON summary it printed (its own)."""
        summary = super().summary(timeout)
        assert summary["pid"] == self.pid
        return summary


@dataclass
class Files:
    """Where a test's children keep things: the database and the two logs."""

    database: str
    computed: Path
    used: Path
    cwd: Path

    def computed_by(self, pid: int | None = None, step: str = "square") -> Counter[int]:
        """How many times each key was computed (by ``pid``, or by anyone)."""
        out: Counter[int] = Counter()
        for words, owner in _lines(self.computed):
            if words[1] == step and (pid is None or owner == pid):
                out[int(words[2])] += 1
        return out

    def used_by(self, pid: int) -> list[tuple[int, Any]]:
        """``(key, value)`` of every call ``pid`` used, in order."""
        out = []
        for words, owner in _lines(self.used):
            if owner == pid:
                out.append((int(words[1]), _value(words[2])))
        return out


def _value(text: str) -> Any:
    return text if text == "raised" else int(text)


def _lines(path: Path) -> list[tuple[list[str], int]]:
    """``(words, pid)`` per complete line (a line being written is left out)."""
    if not path.exists():
        return []
    out = []
    for text in path.read_text().splitlines(keepends=True):
        if not text.endswith("\n"):
            break
        *words, pid = text.split()
        assert pid.startswith("pid="), text
        out.append((words, int(pid[4:])))
    return out


def _files(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Files:
    """A fresh database (a DuckDB file, or a schema of the throwaway PostgreSQL server)."""
    if store == "postgres":
        database = str(request.getfixturevalue("pg_url"))
    else:
        database = str(tmp_path / "cache.duckdb")
    return Files(database, tmp_path / "computed.log", tmp_path / "used.log", tmp_path)


@pytest.fixture(params=STORES)
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Files:
    """:func:`_files` on each store in turn."""
    return _files(request.param, tmp_path, request)


@contextlib.contextmanager
def children(files: Files) -> Iterator[Callable[..., Child]]:
    """``spawn(mode, *options)``: a child on ``files``; all of them gone when the block ends."""
    made: list[Child] = []

    def spawn(mode: str, *options: str) -> Child:
        args = [mode, files.database, str(files.computed), str(files.used), *options]
        made.append(Child(args, files.cwd))
        return made[-1]

    try:
        yield spawn
    finally:
        for child in made:
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            child.proc.communicate(timeout=60)


def _wait_gone(files: Files, child: Child) -> None:
    """On PostgreSQL, wait until the server ended the killed child's sessions and its executor
    no longer counts as alive (then nothing it sent can still commit, and its workflows can be
    recovered). On DuckDB the file lock went with the process."""
    if not is_postgres(files.database):
        return
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?"

    def gone(rt: nbflow.Runtime) -> bool:
        if sql(rt, query, child.app_name)[0][0]:
            return False
        rows = sql(rt, "SELECT executor_id FROM executors WHERE pid = ?", child.pid)
        return not any(rt.store.executor_alive(executor_id) for (executor_id,) in rows)

    with nbflow.Runtime(files.database) as rt:
        wait_until(lambda: gone(rt), timeout=60)


def _kept(files: Files, step: str = "square") -> set[int]:
    """The keys whose right result ``step_cache`` holds now (no child runs); any other row as
    its JSON text."""
    with nbflow.Runtime(files.database) as rt:
        rows = sql(rt, "SELECT output_json FROM step_cache WHERE name = ?", f"cacheapp.{step}")
    return {KEY_OF.get(json.loads(output), output) for (output,) in rows}


def _expected(keys: list[int]) -> list[list[int]]:
    return [[k, app.value(k)] for k in keys]


# -- 1. durable before used, across kill -9 ---------------------------------------------------------

STOPS = ("kill", "hold")
KEYS, USED = 12, 8  # the first child uses 8 of 12 calls, then is killed (maps: 2 chunks of 4)
DURABLE_CASES = [
    *(pytest.param(mode, stop, id=f"{mode}-{stop}") for mode in app.MODES[:3] for stop in STOPS),
    pytest.param("plain-map", "kill", id="plain-map-kill"),
]


@pytest.mark.parametrize(("mode", "stop"), DURABLE_CASES)
def test_a_result_used_before_a_kill_is_never_computed_again(
    files: Files, mode: str, stop: str
) -> None:
    """``kill``: the child SIGKILLs itself right after it used its 8th result (the tightest point:
    a result not yet durable would be lost); ``hold``: it waits there and the test kills it."""
    keys = list(range(KEYS))
    common = [mode, "--keys", f"0:{KEYS}", "--chunk", "4"]
    with children(files) as spawn:
        first = spawn(*common, "--stop-after", str(USED), "--stop", stop)
        second = spawn(*common)
        first.go()
        if stop == "hold":
            wait_until(lambda: first.alive() and len(files.used_by(first.pid)) >= USED, 60, 0.001)
            first.kill()
        else:
            first.killed()
        _wait_gone(files, first)
        assert files.used_by(first.pid) == [tuple(p) for p in _expected(keys[:USED])]
        kept = _kept(files)
        assert set(keys[:USED]) <= kept, f"used but not durable at the kill: {keys[:USED]}, {kept}"
        second.go()
        summary = second.summary()
    assert summary["results"] == _expected(keys)
    assert files.computed_by(first.pid) == Counter(keys[:USED])
    assert files.computed_by(second.pid) == Counter(keys[USED:]), "a used result ran again"


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["plain", "workflow", "map", "plain-map"])
def test_nothing_is_used_while_its_result_cannot_be_committed(
    tmp_path: Path, request: pytest.FixtureRequest, pg_server: Any, mode: str
) -> None:
    """The test holds a lock that keeps every insert into ``step_cache`` waiting. The child
    computes its first call (a map: 4 items) and commits its result: until that commit is done
    the call must not return. Once the child's commit waits for the lock, nothing is used; the
    child is killed there, and the next process computes what was not kept."""
    psycopg = pytest.importorskip("psycopg")
    files = _files("postgres", tmp_path, request)
    schema = dict(parse_qsl(urlsplit(files.database).query))["schema"]
    _kept(files)  # the tables exist
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ? "
    waiting += "AND wait_event_type = 'Lock'"
    with children(files) as spawn:
        first = spawn(mode, "--keys", "0:4", "--chunk", "4")
        second = spawn(mode, "--keys", "0:4", "--chunk", "4")
        with psycopg.connect(pg_server.url) as lock:
            lock.execute(f'LOCK TABLE "{schema}".step_cache IN SHARE MODE')
            first.go()
            with nbflow.Runtime(files.database) as rt:
                wait_until(lambda: first.alive() and sql(rt, waiting, first.app_name)[0][0], 60)
            assert files.used_by(first.pid) == [], "used before its result was committed"
            first.kill()
            lock.rollback()
        computed = files.computed_by(first.pid)  # (a map's items may all have run)
        if mode in ("plain", "workflow"):
            assert computed == Counter([0])  # the call that waits: the next one never started
        assert computed and set(computed) <= set(range(4)) and max(computed.values()) == 1
        _wait_gone(files, first)
        kept = _kept(files)  # (a commit the child had sent may have ended after it died)
        assert kept <= set(computed)
        second.go()
        assert second.summary()["results"] == _expected(list(range(4)))
    assert files.computed_by(second.pid) == Counter(set(range(4)) - kept)


MAP_SIZE = 200
#: (seed, how the second child resumes the killed workflow); the kill lands after a seeded number
#: of items computed.
RANDOM_CASES = [
    pytest.param(1, "recover", "duckdb", id="duckdb-1-recover"),
    pytest.param(2, "rerun", "duckdb", id="duckdb-2-rerun"),
    pytest.param(3, "recover", "duckdb", id="duckdb-3-recover"),
    pytest.param(4, "rerun", "duckdb", id="duckdb-4-rerun"),
    pytest.param(5, "recover", "postgres", id="postgres-5-recover", marks=pytest.mark.postgres),
    pytest.param(6, "rerun", "postgres", id="postgres-6-rerun", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("seed", "how", "store"), RANDOM_CASES)
def test_a_map_killed_at_a_random_point(
    seed: int, how: str, store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A workflow maps the cached step over 200 keys, 25 per ``nbflow.map``; it is killed after
    a seeded number of computations; a second process resumes it (``nbflow.recover()``, or the
    same workflow id called again)."""
    files = _files(store, tmp_path, request)
    at = random.Random(f"cache-map-{seed}").randint(5, MAP_SIZE - 10)
    workflow_id = f"cache-map-{seed}"
    common = ["map", "--keys", f"0:{MAP_SIZE}", "--chunk", "25", "--work", "2"]
    common += ["--workflow-id", workflow_id]
    with children(files) as spawn:
        first = spawn(*common, "--hold")
        second = spawn(*common, *(["--recover"] if how == "recover" else []))
        first.go()
        wait_until(
            lambda: first.alive() and sum(files.computed_by(first.pid).values()) >= at, 60, 0.001
        )
        first.kill()
        _wait_gone(files, first)
        used = dict(files.used_by(first.pid))
        kept = _kept(files)
        assert used.items() <= {k: app.value(k) for k in range(MAP_SIZE)}.items()
        assert set(used) <= kept, f"used but not durable at the kill: {sorted(set(used) - kept)}"
        second.go()
        summary = second.summary()
    assert workflow_id in summary["interrupted"]
    if how == "recover":
        assert summary["recovered"] == {workflow_id: MAP_SIZE}
    assert summary["results"] == _expected(list(range(MAP_SIZE)))
    by_first, by_second = files.computed_by(first.pid), files.computed_by(second.pid)
    assert max(by_first.values()) == 1 and max(by_second.values(), default=1) == 1
    again = sorted(k for k in by_second if k in kept)
    assert not again, f"kept (used: {sorted(used)}) at the kill, computed again: {again}"
    assert set(by_first) | set(by_second) == set(range(MAP_SIZE))
    assert max((by_first + by_second).values()) <= 2  # in flight at the kill: at most twice
    assert not set(by_second) & set(used)


# -- 2. two processes on PostgreSQL -----------------------------------------------------------------


@pytest.mark.postgres
def test_a_second_process_computes_only_new_keys(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A computes keys 0..49 (plain calls); B, started after A ended, maps over 0..59 in a
    workflow: it computes exactly the 10 new ones."""
    files = _files("postgres", tmp_path, request)
    with children(files) as spawn:
        a = spawn("plain", "--keys", "0:50")
        b = spawn("map", "--keys", "0:60", "--chunk", "60")
        a.go()
        assert a.summary()["results"] == _expected(list(range(50)))
        b.go()
        assert b.summary()["results"] == _expected(list(range(60)))
    assert files.computed_by(a.pid) == Counter(range(50))
    assert files.computed_by(b.pid) == Counter(range(50, 60))


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["plain", "map"])
def test_two_processes_at_once_over_overlapping_keys(
    tmp_path: Path, request: pytest.FixtureRequest, mode: str
) -> None:
    """A calls keys 0..39 upwards, B keys 59..20 downwards, at the same time, each key twice at
    once in its process (two threads, or two items of one map). In one process the two calls run
    once; across processes nothing dedupes: a key both call at the same moment may be computed
    by both (at most twice), and both results are right. Then a third process computes nothing."""
    files = _files("postgres", tmp_path, request)
    common = ["--twice", "--work", "3", "--chunk", "40"]
    with children(files) as spawn:
        a = spawn(mode, "--keys", "0:40", *common)
        b = spawn(mode, "--keys", "60:20", *common)
        c = spawn("plain", "--keys", "0:60")
        a.go()
        b.go()
        got_a, got_b = a.summary(), b.summary()
        c.go()
        got_c = c.summary()
    assert got_a["results"] == [[k, v] for k, v in _expected(list(range(40))) for _ in range(2)]
    assert got_b["results"] == [
        [k, v] for k, v in _expected(list(range(59, 19, -1))) for _ in range(2)
    ]
    assert got_c["results"] == _expected(list(range(60)))
    by_a, by_b = files.computed_by(a.pid), files.computed_by(b.pid)
    assert set(range(20)) <= set(by_a) <= set(range(40))
    assert set(range(40, 60)) <= set(by_b) <= set(range(20, 60))
    assert set(by_a) | set(by_b) == set(range(60))
    assert max(by_a.values()) == 1 and max(by_b.values()) == 1, "a key ran twice in one process"
    assert max((by_a + by_b).values()) <= 2
    assert not files.computed_by(c.pid)


# -- 3. a step that raises is not kept --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "workflow"])
def test_a_step_that_raises_is_not_kept(files: Files, mode: str) -> None:
    """``cacheapp.flaky`` raises the first time a key is computed. The first process calls keys 0
    and 1: both raise, nothing is kept. The second calls 0..3 twice over: 0 and 1 run again (and
    return), 2 and 3 raise, then run again on their next call (in a workflow: the same run) and
    return: those results are kept in the database."""
    with children(files) as spawn:
        first = spawn(mode, "--step", "flaky", "--keys", "0:2")
        second = spawn(mode, "--step", "flaky", "--keys", "0:4,0:4")
        first.go()
        assert first.summary()["results"] == [[0, "raised"], [1, "raised"]]
        assert _kept(files, "flaky") == set()
        second.go()
        got = second.summary()["results"]
    assert _kept(files, "flaky") == set(range(4))  # in the database, their right values
    assert got == [[0, 1], [1, 2], [2, "raised"], [3, "raised"], *_expected(list(range(4)))]
    assert files.computed_by(first.pid, "flaky") == Counter([0, 1])
    assert files.computed_by(second.pid, "flaky") == Counter([0, 1, 2, 2, 3, 3])
