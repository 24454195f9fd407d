"""recover() of many interrupted workflows at once: one claim transaction and one replay query for
all of them, each workflow run on exactly once, each recovery counted and held to its limit, a
parent and its children recovered together, and (PostgreSQL) a workflow another transaction holds
or a live process runs left out of the batch."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import psycopg
import pytest

import nbflow
from nbflow import Status
from nbflow.store import Store
from tests.support.helpers import interrupt, sql, wait_until

pytestmark = pytest.mark.contract

#: (workflow id, what ran) for every step and body start of this module, in this process.
_ran: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()


def _note(what: str) -> None:
    workflow_id = nbflow.current_workflow_id()
    assert workflow_id is not None
    with _lock:
        _ran[(workflow_id, what)] += 1


@nbflow.step(name="tests.recover_many.record")
def record(i: int) -> int:
    _note(f"step {i}")
    return i


def _blocks() -> str:
    """Wait for a message: a runtime closed under it leaves the workflow PENDING."""
    return str(nbflow.recv("go", timeout=600))


@nbflow.workflow(name="tests.recover_many.steps")
def steps(n: int) -> int:
    """``n`` steps, then wait for ``go`` the first time only (a recovery finds it sent)."""
    _note("body")
    total = sum(record(i) for i in range(n))
    _blocks()
    return total


@nbflow.workflow(name="tests.recover_many.never_again", max_recovery_attempts=0)
def never_again(n: int) -> int:
    _note("body")
    _blocks()
    return n


@nbflow.workflow(name="tests.recover_many.child")
def child(i: int) -> int:
    _note("body")
    record(i)
    _blocks()
    return i * 10


@nbflow.workflow(name="tests.recover_many.parent")
def parent(n: int) -> int:
    _note("body")
    handles = [nbflow.start(child, i) for i in range(n)]
    return sum(h.result() for h in handles)


def _started(workflow_ids: list[str], what: str = "body") -> None:
    wait_until(lambda: all(_ran[(w, what)] >= 1 for w in workflow_ids), timeout=30)


def _counting(store: Store, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the store's claims and replay reads."""
    calls: Counter[str] = Counter()
    for name in ("claim", "claim_many", "load_replay", "load_replays"):
        method = getattr(store, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    return calls


def _release(runtime: nbflow.Runtime, workflow_ids: list[str]) -> None:
    for workflow_id in workflow_ids:
        runtime.send(workflow_id, "go", topic="go")


def test_many_are_claimed_together_and_each_runs_once(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 workflows interrupted after their steps: one recover() claims them in one transaction
    and reads their replays in one query; each body starts once more, no recorded step runs
    again, each recovery is counted once, and every one ends with its result."""
    first = nbflow.configure(database)
    handles = [first.start(steps, 3) for _ in range(40)]
    ids = [h.workflow_id for h in handles]
    _started(ids, "step 2")
    first.flush()
    interrupt(first)
    runtime = nbflow.configure(database)
    assert sorted(runtime.interrupted) == sorted(ids)
    calls = _counting(runtime.store, monkeypatch)
    _release(runtime, ids)  # (a message waiting: the recovered bodies go on)
    recovered = runtime.recover()
    assert calls == Counter({"claim_many": 1, "load_replays": 1})
    assert [h.workflow_id for h in recovered] == sorted(ids, key=ids.index)
    assert [h.result(timeout=30) for h in recovered] == [3] * 40
    for workflow_id in ids:
        assert _ran[(workflow_id, "body")] == 2, workflow_id
        assert [_ran[(workflow_id, f"step {i}")] for i in range(3)] == [1, 1, 1], workflow_id
    assert {w.workflow_id: w.recovery_attempts for w in runtime.list_workflows(limit=100)} == (
        dict.fromkeys(ids, 1)
    )
    assert runtime.recover() == []  # none left


def test_a_batch_holds_each_workflow_to_its_limit(database: str) -> None:
    """In one batch, the workflows past their max_recovery_attempts give up (durably, named)
    and the others run."""
    first = nbflow.configure(database)
    limited = [first.start(never_again, i).workflow_id for i in range(5)]
    free = [first.start(steps, 1).workflow_id for _ in range(5)]
    _started(limited + free)
    interrupt(first)
    runtime = nbflow.configure(database)
    _release(runtime, free)
    recovered = runtime.recover()
    assert sorted(h.workflow_id for h in recovered) == sorted(free)
    assert [h.result(timeout=30) for h in recovered] == [0] * 5
    assert sorted(s.workflow_id for s in recovered.skipped) == sorted(limited)
    assert all("gave up at recovery 1" in s.reason for s in recovered.skipped)
    for workflow_id in limited:
        assert runtime.get_workflow(workflow_id).status() == Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED
        assert _ran[(workflow_id, "body")] == 1


def test_a_parent_and_its_children_recovered_together(database: str) -> None:
    """A parent waiting for its children, all interrupted: one recover() takes them all; each
    child runs once (the parent's replayed start finds it running here), the parent gets their
    results."""
    first = nbflow.configure(database)
    handle = first.start(parent, 6)
    wait_until(lambda: len(first.list_workflows(name="tests.recover_many.child")) == 6)
    children = [w.workflow_id for w in first.list_workflows(name="tests.recover_many.child")]
    _started(children, "body")
    first.flush()
    interrupt(first)
    runtime = nbflow.configure(database)
    _release(runtime, children)
    recovered = runtime.recover()
    assert sorted(h.workflow_id for h in recovered) == sorted([handle.workflow_id, *children])
    assert runtime.get_workflow(handle.workflow_id).result(timeout=30) == sum(
        i * 10 for i in range(6)
    )
    for workflow_id in children:
        assert _ran[(workflow_id, "body")] == 2, workflow_id


@pytest.mark.postgres
def test_a_batch_leaves_out_what_another_holds_or_runs(pg_url: str) -> None:
    """PostgreSQL: a recovering process takes, in its batch, the workflows of a process that is
    gone, but not one whose row another transaction holds at that moment (a claim of another
    process: it is skipped, and taken by a later recover once free) nor one a live process runs."""
    dead = nbflow.Runtime(pg_url)
    ids = [dead.start(steps, 1).workflow_id for _ in range(8)]
    _started(ids)
    interrupt(dead)
    live = nbflow.Runtime(pg_url)
    running = live.start(steps, 1)
    _started([running.workflow_id])
    recovering = nbflow.Runtime(pg_url)
    held, rest = ids[0], ids[1:]
    try:
        _release(recovering, ids)
        schema = pg_url.rsplit("schema=", 1)[1]
        with psycopg.connect(pg_url.split("?", 1)[0], autocommit=False) as other:
            other.execute(
                f"SELECT 1 FROM {schema}.workflows WHERE workflow_id = %s FOR UPDATE", [held]
            )
            recovered = recovering.recover()
            assert sorted(h.workflow_id for h in recovered) == sorted(rest)
            other.rollback()
        assert [h.result(timeout=30) for h in recovered] == [0] * 7
        assert running.status() == Status.PENDING  # still the live process's
        [again] = recovering.recover()
        assert again.workflow_id == held and again.result(timeout=30) == 0
        counts = {w.workflow_id: w.recovery_attempts for w in recovering.list_workflows()}
        assert {w: counts[w] for w in ids} == dict.fromkeys(ids, 1)
        assert not counts[running.workflow_id]  # never recovered
        assert sql(recovering, "select executor_id from workflows where workflow_id = ?", held) == [
            (recovering.executor_id,)
        ]
    finally:
        live.send(running.workflow_id, "go", topic="go")
        assert running.result(timeout=30) == 0
        live.close()
        recovering.close()
