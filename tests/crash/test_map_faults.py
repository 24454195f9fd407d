"""A seeded fault run over ``nbflow.map`` with every executor, retries, a rate and kill -9.

Each case runs tests/apps/mapfaultapp.py: ``nbflow.map`` of a step with ``retries=3`` over 24 items,
at concurrency 4 under ``rate="500/s"``, on one of nbflow's threads, an ``nbflow.Executor``, a
``ThreadPoolExecutor``, a spawned ``ProcessPoolExecutor`` or a Dask ``LocalCluster``; item ``i``
fails its first ``(7 i) % 3`` attempts. A seeded plan kills the app's whole process group (the app
and its worker processes) with SIGKILL once it logged a seeded number of attempts; the next
process (started ahead of time) recovers the workflow; a last process runs to the end.

Each case checks that:

- the result and the stream ``results`` equal a clean run's, each written once;
- every item's checkpoint sits at the function id reserved for it and holds its own result: no
  item ever returns another item's;
- an item whose checkpoint was durable at a kill is never attempted again;
- each checkpoint's ``attempts`` is the number of attempts the run that recorded it made, and an
  item succeeded only after the attempts it is made to fail.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import nbflow
from tests.apps import mapfaultapp as app
from tests.support.helpers import sql, wait_until
from tests.support.processes import ReadyChild

pytestmark = [pytest.mark.crash, pytest.mark.slow]

APP = Path(app.__file__).resolve()
SIZE = app.SIZE
#: (executor, seed, kills) on DuckDB; each executor once more on PostgreSQL.
CASES = [(kind, 1, 2) for kind in app.EXECUTORS]


def _cases() -> list[Any]:
    out = [pytest.param(k, s, n, "duckdb", id=f"{k}-duckdb-{s}") for k, s, n in CASES]
    for kind in app.EXECUTORS:
        out.append(
            pytest.param(
                kind, 3, 1, "postgres", id=f"{kind}-postgres-3", marks=pytest.mark.postgres
            )
        )
    return out


def App(args: list[str], cwd: Path) -> ReadyChild:
    """A process of the app, started ahead of time (see :class:`ReadyChild`)."""
    return ReadyChild(APP, args, cwd, "mapfaultapp")


@contextmanager
def apps(args: list[str], cwd: Path) -> Iterator[list[ReadyChild]]:
    """Started apps; every one and its process group gone when the block ends."""
    made: list[ReadyChild] = []
    try:
        yield made
    finally:
        for one in made:
            one.kill()


def _attempts(log: Path) -> list[tuple[int, int]]:
    """``(item, owner pid)`` of every attempt logged (a line being written is left out)."""
    out = []
    for text in log.read_text().splitlines(keepends=True):
        if text.endswith("\n") and text.startswith("attempt "):
            _, item, pid = text.split()
            out.append((int(item), int(pid.removeprefix("pid="))))
    return out


def _durable_items(database: str) -> dict[int, tuple[Any, int]]:
    """Item -> (its checkpoint's output, attempts), checking each is at its reserved id."""
    with nbflow.Runtime(database) as rt:
        rows = sql(
            rt,
            "SELECT function_id, name, output_json, attempts FROM steps WHERE workflow_id = ?",
            app.WORKFLOW_ID,
        )
    items = {}
    for function_id, name, output, attempts in rows:
        assert name == "mapfault.work" and 1 <= function_id <= SIZE, (function_id, name)
        value = json.loads(output)
        item = function_id - 1  # item i's position was reserved at the call: function id i + 1
        assert value == {"i": item, "square": item * item}, (function_id, value)
        items[item] = (value, int(attempts))
    return items


def _wait_gone(database: str, one: ReadyChild) -> None:
    """On PostgreSQL, wait until the server ended every session of the killed app."""
    if not database.startswith("postgresql://"):
        return
    with nbflow.Runtime(database) as rt:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?"
        wait_until(lambda: sql(rt, query, one.app_name)[0][0] == 0, timeout=60)


@pytest.mark.parametrize(("kind", "seed", "kills", "store"), _cases())
def test_a_map_killed_at_seeded_points_ends_as_a_clean_run(
    kind: str, seed: int, kills: int, store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "dask":
        pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    database = (
        str(request.getfixturevalue("pg_url"))
        if store == "postgres"
        else str(tmp_path / "map.duckdb")
    )
    log = tmp_path / "side-effects.log"
    log.touch()
    rng = random.Random(f"{kind}-{seed}")
    durable_at_kill: list[tuple[int, set[int]]] = []  # (pid killed, items durable then)
    with apps([kind, database, str(log)], tmp_path) as made:
        made.append(App([kind, database, str(log)], tmp_path))
        for _ in range(kills):
            current = made[-1]
            made.append(App([kind, database, str(log)], tmp_path))  # the next, ahead of time
            current.go()
            at = rng.randint(3, 2 * SIZE // 3)  # attempts this process logs before its kill
            wait_until(
                lambda c=current, at=at: (
                    sum(1 for _, p in _attempts(log) if p == c.proc.pid) >= at
                    or c.proc.poll() is not None
                ),
                timeout=120,
                interval=0.001,
            )
            assert current.proc.poll() is None, current.proc.communicate()
            current.kill()
            _wait_gone(database, current)
            durable_at_kill.append((current.proc.pid, set(_durable_items(database))))
        made[-1].go()
        summary = made[-1].summary(timeout=300)

    assert summary["called"] == app.expected(SIZE)
    with nbflow.Runtime(database) as rt:
        assert rt.status(app.WORKFLOW_ID) == nbflow.Status.SUCCESS
        assert list(rt.read_stream(app.WORKFLOW_ID, "results", timeout=10)) == [list(range(SIZE))]
    items = _durable_items(database)
    assert sorted(items) == list(range(SIZE))
    attempts = _attempts(log)
    owners = [pid for pid, _ in durable_at_kill] + [summary["pid"]]
    for killed, durable in durable_at_kill:  # never attempted again once durable
        later = owners[owners.index(killed) + 1 :]
        again = sorted({i for i, pid in attempts if i in durable and pid in later})
        assert not again, f"items durable when {killed} was killed ran again: {again}"
    for i, (_, recorded) in items.items():
        mine = [pid for item, pid in attempts if item == i]
        assert len(mine) >= app.fails(i) + 1, (i, mine)  # it succeeded after its failures
        by_owner = Counter(mine)
        assert recorded == by_owner[mine[-1]], (i, recorded, by_owner)  # the recording run's
