"""Crash tests for parallel operations: real child processes killed with SIGKILL, then recovered.

The children run ``tests/apps/parallelapp.py``, one of three scenarios:

- **map**: ``nbflow.map`` of a step over 60 items at concurrency 8 on threads; each item logs a
  side effect and writes a stream item from inside the step; the body writes every result to a
  stream after the map.
- **gather**: an ``async def`` workflow gathers pairs of ``async def`` steps in 20 rounds, each
  followed by a sequential step (where nbflow 0.1 returned other calls' results on a replay).
- **children**: a workflow starts 4 children with ``nbflow.start``, waits for them and combines
  their results.

A case is a seeded plan of kills from outside: once the process logged a seeded fraction of the
steps left to run (and a seeded few milliseconds later), or a seeded delay after it started. The
first kill hits the first run; the next ones hit the processes that recover it. After each kill
the test waits until the killed process is gone (on PostgreSQL: until the server ended its
sessions), opens the database and takes a snapshot of what was durable; then the next process
(started ahead of time, waiting on its stdin) recovers. A last process runs to the end.

Every step logs ``<kind> <value> pid=<pid>`` before it returns, so the test knows what ran in which
process: a step whose checkpoint was durable at a kill never runs again, a step newly durable at a
kill ran in the process just killed, each process runs a step at most once, and the last process
runs exactly the steps that were not durable. Each snapshot is also checked on its own: every
checkpoint holds its own call's result at the function id reserved for it, streams have no gaps,
and what must precede what in the write log does (a child's row before its start's checkpoint,
an item's in-step write before its checkpoint, the body's writes after the map).

Each scenario runs on a DuckDB file (24 kill points, 8 of them in a first run); one case with 3
kill points also runs on PostgreSQL (a schema of its own on the session's throwaway server).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import nbflow
from tests.apps import parallelapp as app
from tests.support.helpers import sql, wait_until
from tests.support.processes import child_env, is_postgres

pytestmark = [pytest.mark.crash, pytest.mark.slow]

APP = Path(app.__file__).resolve()
SCENARIOS = ("map", "gather", "children")
SIZES = app.SIZES
WORKFLOW_IDS = {name: wid for name, (wid, _) in app.WORKFLOWS.items()}
#: About how long a clean run takes on an idle 2-core machine, from its start to its end (seconds).
RUN_TIME = {"map": 0.1, "gather": 0.25, "children": 0.08}


def all_keys(scenario: str, size: int) -> set[str]:
    """Every step of a scenario, as it logs itself: ``<kind> <value>``."""
    if scenario == "map":
        return {f"item {i}" for i in range(size)}
    if scenario == "gather":
        return {f"fetch {i}" for i in range(2 * size)} | {f"combine {r}" for r in range(size)}
    steps = {f"child {c}.{j}" for c in range(size) for j in range(app.CHILD_STEPS)}
    return steps | {f"prepare {size}", f"summarize {size}"}


# -- kill plans -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """How one process is killed from outside.

    ``lines``: once it logged ``at`` (a fraction) of the steps left when it started, at least one,
    then ``delay`` seconds later. ``time``: after about ``at`` (a fraction) of the time the steps
    left take, counted from the moment it logged its start (see :data:`RUN_TIME`).
    """

    how: str
    at: float
    delay: float = 0.0


def plan(scenario: str, seed: int, kills: int) -> tuple[Kill, ...]:
    """``kills`` seeded kills, by lines logged and by time in turn. The first is always by lines:
    it lands while the workflow runs, whatever the machine's speed (a kill by time may come after
    the end, which the test would then not have tested)."""
    rng = random.Random(f"{scenario}-{seed}")
    out = []
    for j in range(kills):
        if j == 0 or (j + seed) % 2:
            out.append(
                Kill("lines", round(rng.uniform(0.05, 0.6), 4), round(rng.uniform(0, 0.004), 4))
            )
        else:
            out.append(Kill("time", round(rng.uniform(0.0, 0.8), 4)))
    return tuple(out)


#: DuckDB cases: (seed, number of kills); 24 kill points per scenario, 8 of them in a first run.
DUCKDB_CASES = [(1, 1), (2, 1), (3, 2), (4, 3), (5, 5), (6, 2), (8, 4), (9, 6)]
#: The PostgreSQL case: 3 kill points per scenario (the first run, then two recoveries).
POSTGRES_CASES = [(7, 3)]


def _cases() -> list[Any]:
    out = []
    for scenario in SCENARIOS:
        for seed, kills in DUCKDB_CASES:
            out.append(
                pytest.param(scenario, seed, kills, "duckdb", id=f"{scenario}-duckdb-{seed}")
            )
        for seed, kills in POSTGRES_CASES:
            out.append(
                pytest.param(
                    scenario,
                    seed,
                    kills,
                    "postgres",
                    id=f"{scenario}-postgres-{seed}",
                    marks=pytest.mark.postgres,
                )
            )
    return out


# -- child processes --------------------------------------------------------------------------------


@dataclass
class Child:
    """A process of ``parallelapp.py``, started ahead of time; it runs when told to go."""

    proc: subprocess.Popen[str]
    app_name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()


class Children:
    """The child processes of a test: each is killed (by its pid) and reaped when the test ends."""

    def __init__(self, cwd: Path, args: list[str]) -> None:
        self.cwd, self.args = cwd, args
        self.made: list[Child] = []

    def spawn(self, *extra: str) -> Child:
        app_name = f"parallelapp-{uuid.uuid4().hex[:12]}"
        proc = subprocess.Popen(
            [sys.executable, str(APP), *self.args, *extra],
            cwd=self.cwd,
            env=child_env(app_name),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.made.append(Child(proc, app_name))
        return self.made[-1]

    def close(self) -> None:
        for child in self.made:
            if child.proc.poll() is None:
                child.proc.kill()
            child.proc.communicate(timeout=60)


@contextmanager
def children(cwd: Path, args: list[str]) -> Iterator[Children]:
    """A :class:`Children` whose processes are all gone when the block ends, however it ends."""
    kids = Children(cwd, args)
    try:
        yield kids
    finally:
        kids.close()


def _wait_gone(database: str, child: Child) -> None:
    """On PostgreSQL, wait until the server has ended every session of the killed child.

    Until then its executor still counts as alive (so its workflows are not interrupted yet), and
    a transaction it sent before it died may still commit: a snapshot taken earlier would not be
    the state the recovery starts from. On DuckDB the kernel released the file lock with the
    process.
    """
    if not is_postgres(database):
        return
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = ?"

    def gone(rt: nbflow.Runtime) -> bool:
        if sql(rt, query, child.app_name)[0][0]:
            return False
        rows = sql(rt, "SELECT executor_id FROM executors WHERE pid = ?", child.pid)
        return not any(rt.store.executor_alive(executor_id) for (executor_id,) in rows)

    with nbflow.Runtime(database) as rt:
        wait_until(lambda: gone(rt), timeout=60)


# -- the side-effect log ----------------------------------------------------------------------------


def _lines(log: Path) -> list[tuple[str, int]]:
    """``(<kind> <value>, pid)`` per complete line of the log (a line being written is left out)."""
    if not log.exists():
        return []
    out = []
    for text in log.read_text().splitlines(keepends=True):
        if not text.endswith("\n"):
            break
        kind, value, pid = text.split()
        assert pid.startswith("pid="), text
        out.append((f"{kind} {value}", int(pid[4:])))
    return out


def _is_step(key: str) -> bool:
    return key.split()[0] not in ("start", "done")


def _kill(child: Child, log: Path, kill: Kill, scenario: str, left: int) -> None:
    """SIGKILL ``child`` at the point ``kill`` says (``left``: steps it has to run at most)."""
    total = len(all_keys(scenario, SIZES[scenario]))
    proc = child.proc

    def alive() -> None:
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before the kill: {proc.communicate()}")

    def mine() -> list[str]:
        alive()
        return [key for key, pid in _lines(log) if pid == child.pid]

    if kill.how == "lines":
        k = max(1, round(kill.at * left))

        def reached() -> bool:
            keys = mine()
            return "done -" in keys or sum(1 for key in keys if _is_step(key)) >= k

        wait_until(reached, timeout=60, interval=0.001)
        time.sleep(kill.delay)  # the seeded point: a few milliseconds after the k-th step
    else:
        wait_until(lambda: "start -" in mine(), timeout=60, interval=0.001)
        # the seeded point: this long after the process started
        time.sleep(kill.at * RUN_TIME[scenario] * left / total)
    alive()
    os.kill(child.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err


def _summary(child: Child, timeout: float = 120) -> dict[str, Any]:
    """Wait for the last child, which ends by itself, and return the JSON summary it printed."""
    out, err = child.proc.communicate(timeout=timeout)
    assert child.proc.returncode == 0, f"the child failed ({child.proc.returncode}): {err}"
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert summary["pid"] == child.pid
    return summary


# -- snapshots of the database ----------------------------------------------------------------------


class Workflow(NamedTuple):
    """A row of the workflows table, JSON values decoded."""

    name: str
    status: str
    parent_id: str | None
    output: Any
    inputs: Any


#: A checkpoint: (function_id, name, output, error).
StepRow = tuple[int, str, Any, "str | None"]
#: A stream item: (offset, value, is_end, function_id, attempt).
StreamRow = tuple[int, Any, bool, "int | None", "int | None"]


@dataclass
class Snapshot:
    """The database's rows at one moment (no process runs in it), JSON values decoded."""

    workflows: dict[str, Workflow]  # by workflow id
    steps: dict[str, list[StepRow]]  # by workflow id, by function id
    streams: dict[tuple[str, str], list[StreamRow]]  # by (workflow id, key), by offset

    def stream(self, workflow_id: str, key: str) -> list[StreamRow]:
        return self.streams.get((workflow_id, key), [])


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _snapshot(database: str) -> Snapshot:
    with nbflow.Runtime(database) as rt:
        workflows = sql(
            rt,
            "SELECT workflow_id, name, status, parent_id, output_json, inputs_json FROM workflows",
        )
        steps = sql(
            rt,
            "SELECT workflow_id, function_id, name, output_json, error FROM steps "
            "ORDER BY workflow_id, function_id",
        )
        streams = sql(
            rt,
            'SELECT workflow_id, key, "offset", value_json, is_end, function_id, attempt '
            'FROM streams ORDER BY workflow_id, key, "offset"',
        )
    snap = Snapshot({}, {}, {})
    for wid, name, status, parent_id, output, inputs in workflows:
        snap.workflows[wid] = Workflow(name, status, parent_id, _decode(output), _decode(inputs))
    for wid, fid, name, output, error in steps:
        snap.steps.setdefault(wid, []).append((int(fid), name, _decode(output), error))
    for wid, key, offset, value, is_end, fid, attempt in streams:
        row = (int(offset), _decode(value), bool(is_end), fid, attempt)
        snap.streams.setdefault((wid, key), []).append(row)
    for (wid, key), rows in snap.streams.items():
        assert [r[0] for r in rows] == list(range(len(rows))), (wid, key, rows)  # no gap
        assert not any(r[2] for r in rows[:-1]), (wid, key, rows)  # an end only at the end
    return snap


@dataclass
class Durable:
    """What a snapshot says was durable: the steps (as their log keys), and for the map the copies
    of each item's in-step stream write."""

    keys: set[str]
    copies: Counter[str] = field(default_factory=Counter)
    status: str | None = None  # the scenario's workflow


def _values(rows: list[StreamRow]) -> list[Any]:
    return [value for _, value, is_end, _, _ in rows if not is_end]


def _check_map(snap: Snapshot, n: int) -> Durable:
    """The map's invariants at any moment; what was durable."""
    wid = app.MAP_ID
    items = set()
    for fid, name, output, error in snap.steps.get(wid, []):
        # Item i's checkpoint is at function id i + 1 (reserved at the call, in input order),
        # and holds item i's own result.
        assert name == "parallelapp.work" and 1 <= fid <= n and error is None, (fid, name)
        assert output == app.item_value(fid - 1), (fid, output)
        items.add(fid - 1)
    # Writes from inside an item's step: credited to its step, each copy with its own attempt.
    copies: Counter[str] = Counter()
    attempts: dict[int, list[int]] = {}
    for _, value, is_end, fid, attempt in snap.stream(wid, "notes"):
        if is_end:
            continue
        assert fid == value + 1 and attempt is not None, (value, fid, attempt)
        attempts.setdefault(value, []).append(attempt)
        copies[f"item {value}"] += 1
    for value, seen in attempts.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), (value, seen)
    # An item's write precedes its checkpoint in the write log: a durable item's write is durable.
    assert all(copies[f"item {i}"] >= 1 for i in items), (items, copies)
    # The body's writes after the map: a prefix of the results, after every item's checkpoint.
    results = snap.stream(wid, "results")
    values = _values(results)
    assert values == app.expected("map", n)[: len(values)], values
    assert [r[3] for r in results if not r[2]] == [2 * n + 2 + o for o in range(len(values))]
    assert all(r[4] is None for r in results)
    if results:
        assert items == set(range(n)), "a result was written before every item's checkpoint"
    # Progress: the map writes the item count d at its reserved function id n + 1 + d.
    done = []
    for _, value, is_end, fid, attempt in snap.stream(wid, "progress"):
        if not is_end:
            assert value["total"] == n and fid == n + 1 + value["done"] and attempt is None
            done.append(value["done"])
    assert done == sorted(set(done)), done
    assert not done or done[-1] <= len(items), (done, items)
    status = snap.workflows[wid].status if wid in snap.workflows else None
    return Durable({f"item {i}" for i in items}, copies, status)


def _check_gather(snap: Snapshot, rounds: int) -> Durable:
    """The gather's invariants at any moment; what was durable."""
    wid = app.GATHER_ID
    keys, by_round = set(), Counter[int]()
    for fid, name, output, error in snap.steps.get(wid, []):
        # Round r: fetch(2r) at 4r + 1, fetch(2r + 1) at 4r + 2 (reserved at the gather, in call
        # order), combine(r) at 4r + 3, the stream write at 4r + 4. Each holds its own call's result.
        r, pos = divmod(fid - 1, 4)
        assert r < rounds and pos < 3 and error is None, (fid, name)
        if pos < 2:
            assert (name, output) == ("parallelapp.fetch", app.page(2 * r + pos)), (fid, output)
            keys.add(f"fetch {2 * r + pos}")
        else:
            assert (name, output) == ("parallelapp.combine", app.combined(r)), (fid, output)
            keys.add(f"combine {r}")
        by_round[r] += 1
    # Rounds run one after the other: every round before the last one seen is complete, and a
    # combine is durable only after both its fetches.
    if by_round:
        last = max(by_round)
        assert all(by_round[r] == 3 for r in range(last)), by_round
        if f"combine {last}" in keys:
            assert {f"fetch {2 * last}", f"fetch {2 * last + 1}"} <= keys, keys
    rows = snap.stream(wid, "rounds")
    values = _values(rows)
    assert values == app.expected("gather", rounds)[: len(values)], values
    assert [r[3] for r in rows if not r[2]] == [4 * o + 4 for o in range(len(values))]
    assert all(r[4] is None for r in rows)
    assert all(f"combine {o}" in keys for o in range(len(values)))
    status = snap.workflows[wid].status if wid in snap.workflows else None
    return Durable(keys, status=status)


def _check_children(snap: Snapshot, n: int) -> Durable:
    """The parent's and its children's invariants at any moment; what was durable."""
    wid = app.PARENT_ID
    started: dict[int, list[str]] = {}  # child input: the ids of the children started with it
    for other, w in snap.workflows.items():
        if other != wid:  # every other workflow is a child of the parent
            assert (w.name, w.parent_id) == ("parallelapp.child", wid), (other, w)
            started.setdefault(w.inputs["args"][0], []).append(other)
    twice = {c: ids for c, ids in started.items() if len(ids) > 1}
    assert not twice, f"children started more than once: {twice}"
    assert set(started) <= set(range(n)), started
    kids = {c: ids[0] for c, ids in started.items()}
    # A child's id is the parent's id and the function id of its start.
    assert all(child == app.child_id(c) for c, child in kids.items()), kids
    keys = set()
    parent_steps = snap.steps.get(wid, [])
    # The body is sequential: prepare (1), a start per child (2 .. n + 1), summarize (n + 2).
    assert [s[0] for s in parent_steps] == list(range(1, len(parent_steps) + 1)), parent_steps
    for fid, name, output, error in parent_steps:
        assert error is None, (fid, error)
        if fid == 1:
            assert (name, output) == ("parallelapp.prepare", list(range(n)))
            keys.add(f"prepare {n}")
        elif fid <= n + 1:
            assert name == "nbflow.start('parallelapp.child')", (fid, name)
            assert fid - 2 in kids, f"the start of child {fid - 2} is durable, the child is not"
            assert output == kids[fid - 2], (fid, output, kids)
        else:
            assert (fid, name) == (n + 2, "parallelapp.summarize"), (fid, name)
            assert output == app.expected("children", n), output
            keys.add(f"summarize {n}")
            assert sorted(kids) == list(range(n)), kids  # summarized after every child ended
            assert all(snap.workflows[child].status == "SUCCESS" for child in kids.values())
    for c, child in kids.items():
        steps = snap.steps.get(child, [])
        assert [s[0] for s in steps] == list(range(1, len(steps) + 1)), (child, steps)
        for fid, name, output, error in steps:
            assert name == "parallelapp.child_step" and error is None, (child, fid, name)
            assert output == app.child_value(c, fid - 1), (child, fid, output)
            keys.add(f"child {c}.{fid - 1}")
        if snap.workflows[child].status == "SUCCESS":
            assert len(steps) == app.CHILD_STEPS, (child, steps)
            assert snap.workflows[child].output == [
                app.child_value(c, j) for j in range(len(steps))
            ]
    status = snap.workflows[wid].status if wid in snap.workflows else None
    return Durable(keys, status=status)


CHECKS = {"map": _check_map, "gather": _check_gather, "children": _check_children}


# -- a case: kills, recoveries, the end -------------------------------------------------------------


@dataclass
class Run:
    """Everything a case saw."""

    pids: list[int] = field(default_factory=list)  # every process, in order; the last one finished
    durable: list[Durable] = field(default_factory=list)  # after each kill
    summary: dict[str, Any] = field(default_factory=dict)  # printed by the last process
    final: Snapshot | None = None
    lines: list[tuple[str, int]] = field(default_factory=list)


def _run_case(tmp_path: Path, database: str, scenario: str, kills: tuple[Kill, ...]) -> Run:
    """Run ``scenario`` through ``kills`` (a snapshot after each), then to its end."""
    size, check = SIZES[scenario], CHECKS[scenario]
    total = len(all_keys(scenario, size))
    log, run = tmp_path / "side-effects.log", Run()
    args = [scenario, database, str(log), "--size", str(size)]
    with children(tmp_path, args) as kids:
        # Every process but the last waits to be killed after its end, so that each kill lands.
        nxt = kids.spawn("--hold") if kills else kids.spawn()
        durable = Durable(set())
        for j, kill in enumerate(kills):
            child = nxt
            child.go()
            # The next process starts meanwhile and waits on its stdin: its interpreter start-up
            # is not part of the run.
            nxt = kids.spawn("--hold") if j + 1 < len(kills) else kids.spawn()
            _kill(child, log, kill, scenario, total - len(durable.keys))
            _wait_gone(database, child)
            durable = check(_snapshot(database), size)
            run.pids.append(child.pid)
            run.durable.append(durable)
        nxt.go()
        run.summary = _summary(nxt)
        run.pids.append(nxt.pid)
    run.final = _snapshot(database)
    run.lines = _lines(log)
    return run


def _check_log(run: Run, keys: set[str]) -> None:
    """What ran where: never again after its checkpoint was durable, once per process at most,
    and in the end everything."""
    assert {pid for _, pid in run.lines} <= set(run.pids), run.lines
    ran: dict[int, list[str]] = {pid: [] for pid in run.pids}
    for key, pid in run.lines:
        if _is_step(key):
            assert key in keys, key
            ran[pid].append(key)
    before: set[str] = set()  # durable before this process
    ran_so_far: set[str] = set()
    for j, pid in enumerate(run.pids):
        mine = set(ran[pid])
        assert len(mine) == len(ran[pid]), f"a step ran twice in process {j}: {ran[pid]}"
        again = mine & before
        assert not again, f"process {j} ran steps whose checkpoints were durable: {sorted(again)}"
        ran_so_far |= mine
        if j < len(run.durable):
            now = run.durable[j].keys
            assert before <= now, sorted(before - now)  # durable stays durable
            assert now - before <= mine, sorted(now - before - mine)  # newly durable: ran here
            before = now
        else:  # the last process ran exactly what was not durable
            assert mine == keys - before, (sorted(mine ^ (keys - before)), j)
    assert ran_so_far == keys


def _check_final(scenario: str, run: Run) -> None:
    size, wid = SIZES[scenario], WORKFLOW_IDS[scenario]
    expected = app.expected(scenario, size)
    assert run.final is not None
    snap = run.final
    final = CHECKS[scenario](snap, size)
    assert final.keys == all_keys(scenario, size)
    assert snap.workflows[wid].status == "SUCCESS"
    assert snap.workflows[wid].output == expected  # the same result as a clean run
    assert run.summary["called"] == expected
    if run.durable and run.durable[-1].status == "PENDING":
        assert wid in run.summary["interrupted"] and wid in run.summary["recovered"]
        assert run.summary["results"][wid] == expected
    if scenario == "map":
        _check_map_streams(snap, run, size)
    elif scenario == "gather":
        rows = snap.stream(wid, "rounds")
        assert _values(rows) == expected and rows[-1][2], rows[-3:]
    else:
        kids = {k: v for k, v in snap.workflows.items() if v.parent_id == wid}
        assert len(kids) == len(snap.workflows) - 1 == size, sorted(snap.workflows)
        assert sorted(kids) == sorted(app.child_id(c) for c in range(size))
        assert all(v.status == "SUCCESS" for v in kids.values()), kids
        names = [s[1] for s in snap.steps[wid]]
        starts = ["nbflow.start('parallelapp.child')"] * size
        assert names == ["parallelapp.prepare", *starts, "parallelapp.summarize"]


def _check_map_streams(snap: Snapshot, run: Run, n: int) -> None:
    wid = app.MAP_ID
    results = snap.stream(wid, "results")
    assert _values(results) == app.expected("map", n) and results[-1][2]  # once each, closed
    progress = snap.stream(wid, "progress")
    assert progress[-1][2] and _values(progress)[-1]["done"] == n
    notes = snap.stream(wid, "notes")
    assert notes[-1][2], "the stream of in-step writes is closed"
    final = CHECKS["map"](snap, n)
    ran = Counter(key for key, _ in run.lines if key.startswith("item "))
    for i in range(n):
        key = f"item {i}"
        assert 1 <= final.copies[key] <= ran[key], (key, final.copies[key], ran[key])
    for durable in run.durable:  # an item durable at a kill never wrote again
        for key in durable.keys:
            assert final.copies[key] == durable.copies[key], (key, durable.copies[key])


@pytest.mark.parametrize(("scenario", "seed", "kills", "database"), _cases(), indirect=["database"])
def test_kills_and_recoveries(
    tmp_path: Path, database: str, scenario: str, seed: int, kills: int
) -> None:
    """SIGKILL at seeded points, in the first run and in the processes that recover it: the end
    result is a clean run's, and no step ran again once its checkpoint was durable."""
    run = _run_case(tmp_path, database, scenario, plan(scenario, seed, kills))
    # The kills land while the workflow runs (a kill after its end would test little).
    assert any(d.status != "SUCCESS" for d in run.durable), [d.status for d in run.durable]
    _check_log(run, all_keys(scenario, SIZES[scenario]))
    _check_final(scenario, run)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_run(tmp_path: Path, database: str, scenario: str) -> None:
    """Without a kill, each scenario gives the result the crash cases compare with."""
    run = _run_case(tmp_path, database, scenario, ())
    _check_log(run, all_keys(scenario, SIZES[scenario]))
    _check_final(scenario, run)
    assert run.summary["interrupted"] == [] and run.summary["recovered"] == []


def test_kill_points() -> None:
    """Each scenario is killed at 10 or more distinct points on DuckDB (of both kinds), 3 on
    PostgreSQL."""
    for scenario in SCENARIOS:
        points = [k for seed, n in DUCKDB_CASES for k in plan(scenario, seed, n)]
        assert len(points) >= 10 and len(set(points)) == len(points), points
        assert {k.how for k in points} == {"lines", "time"}
    assert sum(n for _, n in POSTGRES_CASES) >= 3
