"""Retention: ``nbflow.delete_workflow`` and ``nbflow.prune``, on every store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import nbflow
from nbflow import Status
from nbflow.engine import _reader
from tests.support.helpers import Gate, sql, wait_until

pytestmark = pytest.mark.contract

DAY = 86400.0
gates: dict[str, Gate] = {}


@nbflow.step(name="tests.retention.square", cache=True)
def square(x: int) -> int:
    return x * x


@nbflow.step(name="tests.retention.wait")
def wait_at(name: str) -> None:
    gates[name].wait()


@nbflow.workflow(name="tests.retention.work")
def work(n: int) -> int:
    total = 0
    for i in range(n):
        total += square(i)
        nbflow.write_stream("items", i)
    nbflow.set_event("done", total)
    return total


@nbflow.workflow(name="tests.retention.blocked")
def blocked(gate: str) -> str:
    wait_at(gate)
    return "ok"


@nbflow.workflow(name="tests.retention.failing")
def failing() -> None:
    raise ValueError("no")


@nbflow.workflow(name="tests.retention.parent")
def parent(depth: int, gate: str | None = None) -> int:
    if depth == 0:
        if gate is not None:
            wait_at(gate)
        return 0
    child = nbflow.start(parent, depth - 1, gate)
    if gate is not None and depth == 1:
        return 1  # the grandchild runs on after its parent ended
    return child.result() + 1


@pytest.fixture(autouse=True)
def _fresh() -> None:
    gates.clear()


def _in(ids: Sequence[str]) -> tuple[str, list[Any]]:
    marks = ", ".join("?" for _ in ids)
    return f"({marks})", list(ids)


def count(rt: nbflow.Runtime, table: str, column: str, ids: Sequence[str]) -> int:
    """Rows of ``table`` whose ``column`` is one of ``ids``."""
    marks, params = _in(ids)
    return int(sql(rt, f"SELECT count(*) FROM {table} WHERE {column} IN {marks}", *params)[0][0])


def age(rt: nbflow.Runtime, workflow_ids: Sequence[str], days: float) -> None:
    """Make workflows look created ``days`` days earlier."""
    rt.flush()
    marks, params = _in(workflow_ids)
    counter = iter(range(2, len(params) + 2))
    where = marks.replace("?", "{}").format(*(f"${next(counter)}" for _ in params))
    rt.store.sql(  # type: ignore[attr-defined]
        f"UPDATE workflows SET created_at = created_at - $1 WHERE workflow_id IN {where}",
        [days * DAY, *params],
    )


def rows_of(rt: nbflow.Runtime, ids: Sequence[str]) -> dict[str, int]:
    """How many rows each table holds for these workflows."""
    return {
        "workflows": count(rt, "workflows", "workflow_id", ids),
        "steps": count(rt, "steps", "workflow_id", ids),
        "streams": count(rt, "streams", "workflow_id", ids),
        "messages": count(rt, "messages", "destination_id", ids),
    }


# -- delete_workflow ------------------------------------------------------------------------------


def test_delete_removes_a_finished_workflow_and_all_it_recorded(rt: nbflow.Runtime) -> None:
    gone, kept = nbflow.start(work, 3), nbflow.start(work, 2)
    assert gone.result() == 5 and kept.result() == 1
    nbflow.send(gone.workflow_id, "never received")
    rt.flush()
    before = rows_of(rt, [gone.workflow_id])
    assert before["steps"] >= 4 and before["streams"] >= 4 and before["messages"] == 1
    cache_rows = int(sql(rt, "SELECT count(*) FROM step_cache")[0][0])

    assert nbflow.delete_workflow(gone.workflow_id) == 1

    assert rows_of(rt, [gone.workflow_id]) == dict.fromkeys(before, 0)
    assert not rt.exists(gone.workflow_id)
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.get_workflow(gone.workflow_id)
    assert rows_of(rt, [kept.workflow_id])["steps"] > 0  # another workflow is untouched
    assert nbflow.get_workflow(kept.workflow_id).result() == 1
    # The step cache is shared by workflows: its rows stay, and still answer.
    assert int(sql(rt, "SELECT count(*) FROM step_cache")[0][0]) == cache_rows
    assert nbflow.start(work, 3).result() == 5


def test_delete_an_unknown_workflow_says_so(rt: nbflow.Runtime) -> None:
    with pytest.raises(nbflow.WorkflowNotFoundError, match="no-such-id"):
        nbflow.delete_workflow("no-such-id")
    with pytest.raises(nbflow.InvalidValueError):
        nbflow.delete_workflow("")
    with pytest.raises(nbflow.InvalidValueError, match="delete_children must be True or False"):
        nbflow.delete_workflow("no-such-id", delete_children="yes")  # type: ignore[arg-type]


def test_a_running_workflow_is_not_deleted_until_cancelled(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    gates["g"] = g = gate()
    handle = nbflow.start(blocked, "g")
    g.reached()
    with pytest.raises(nbflow.WorkflowRunningError, match="Cancel it first") as caught:
        nbflow.delete_workflow(handle.workflow_id)
    assert caught.value.workflow_id == handle.workflow_id
    assert caught.value.status == "PENDING"
    assert handle.status() == Status.PENDING
    nbflow.cancel(handle.workflow_id)
    g.release.set()
    wait_until(lambda: rt.execution(handle.workflow_id) is None)
    assert nbflow.delete_workflow(handle.workflow_id) == 1
    assert not rt.exists(handle.workflow_id)


def test_the_store_leaves_a_workflow_that_is_not_finished(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """The status is checked in the deleting transaction itself, whoever asks."""
    gates["g"] = g = gate()
    handle = nbflow.start(blocked, "g")
    g.reached()
    rt.flush()
    assert rt.store.delete_workflows([handle.workflow_id]) == 0
    assert rows_of(rt, [handle.workflow_id])["workflows"] == 1
    g.release.set()
    assert handle.result() == "ok"


def test_children_stay_unless_asked_for(rt: nbflow.Runtime) -> None:
    top = nbflow.start(parent, 2)
    assert top.result() == 2
    rt.flush()
    tree = _tree(rt, top.workflow_id)
    assert len(tree) == 3
    assert nbflow.delete_workflow(top.workflow_id) == 1
    assert [rt.exists(w) for w in tree] == [False, True, True]


def test_delete_children_removes_the_whole_tree(rt: nbflow.Runtime) -> None:
    top = nbflow.start(parent, 2)
    top.result()
    rt.flush()
    tree = _tree(rt, top.workflow_id)
    assert nbflow.delete_workflow(top.workflow_id, delete_children=True) == 3
    assert rows_of(rt, tree) == {"workflows": 0, "steps": 0, "streams": 0, "messages": 0}


def test_a_running_child_stops_the_whole_delete(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    gates["g"] = g = gate()
    top = nbflow.start(parent, 2, "g")
    g.reached()
    assert top.result() == 2  # its child ended, the grandchild runs on
    rt.flush()
    tree = _tree(rt, top.workflow_id)
    with pytest.raises(nbflow.WorkflowRunningError) as caught:
        nbflow.delete_workflow(top.workflow_id, delete_children=True)
    assert caught.value.workflow_id == tree[2] and caught.value.asked == top.workflow_id
    assert tree[2] in str(caught.value) and top.workflow_id in str(caught.value)
    assert all(rt.exists(w) for w in tree)  # nothing was deleted
    g.release.set()
    nbflow.get_workflow(tree[2]).result()
    assert nbflow.delete_workflow(top.workflow_id, delete_children=True) == 3


def _tree(rt: nbflow.Runtime, top: str) -> list[str]:
    """``top``, its child and its grandchild."""
    ids = [top]
    for _ in range(2):
        rows = sql(rt, "SELECT workflow_id FROM workflows WHERE parent_id = ?", ids[-1])
        ids.append(rows[0][0])
    return ids


# -- prune ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -5, "30d", None, True, float("nan"), dt.timedelta(0)])
def test_prune_takes_a_positive_age(rt: nbflow.Runtime, bad: Any) -> None:
    with pytest.raises(nbflow.InvalidValueError, match="older_than"):
        nbflow.prune(older_than=bad)


@pytest.mark.parametrize("bad", ["PENDING", ["SUCCESS", "ENQUEUED"], "DONE", 3])
def test_prune_takes_finished_statuses(rt: nbflow.Runtime, bad: Any) -> None:
    with pytest.raises(nbflow.InvalidValueError, match="status"):
        nbflow.prune(older_than=1, status=bad)


def test_prune_removes_old_finished_workflows_only(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    old_ok = [nbflow.start(work, 2) for _ in range(3)]
    old_failed = nbflow.start(failing)
    young = nbflow.start(work, 1)
    for h in [*old_ok, young]:
        h.result()
    with pytest.raises(ValueError):
        old_failed.result()
    gates["g"] = g = gate()
    running = nbflow.start(blocked, "g")
    g.reached()
    old = [h.workflow_id for h in [*old_ok, old_failed, running]]
    age(rt, old, 40)

    assert nbflow.prune(older_than=dt.timedelta(days=30), dry_run=True) == 4
    assert nbflow.prune(older_than=30 * DAY, status="error") == 1
    assert not rt.exists(old_failed.workflow_id)
    assert nbflow.prune(older_than=dt.timedelta(days=30), status=["SUCCESS", "CANCELLED"]) == 3
    assert [rt.exists(h.workflow_id) for h in old_ok] == [False] * 3
    assert rt.exists(young.workflow_id) and rt.exists(running.workflow_id)
    assert running.status() == Status.PENDING  # never a running workflow
    assert nbflow.prune(older_than=30 * DAY) == 0
    g.release.set()
    assert running.result() == "ok"
    assert nbflow.prune(older_than=30 * DAY) == 1


def test_prune_judges_each_child_by_its_own_age(rt: nbflow.Runtime) -> None:
    """A young child of a pruned parent stays; it is pruned when it is old enough."""
    top = nbflow.start(parent, 2)
    top.result()
    rt.flush()
    tree = _tree(rt, top.workflow_id)
    age(rt, tree[:2], 10)
    assert nbflow.prune(older_than=dt.timedelta(days=7)) == 2
    assert [rt.exists(w) for w in tree] == [False, False, True]
    age(rt, tree[2:], 10)
    assert nbflow.prune(older_than=dt.timedelta(days=7)) == 1


def test_prune_leaves_the_record_keeping_of_durable_cells(rt: nbflow.Runtime) -> None:
    record = {"key": "k"}
    rt.record_step(
        "notebook:t.ipynb", "load", record, started=1.0, ended=2.0, workflow_name="nbflow.notebook"
    )
    done = nbflow.start(work, 1)
    done.result()
    age(rt, ["notebook:t.ipynb", done.workflow_id], 400)
    assert nbflow.prune(older_than=DAY) == 1
    assert rt.exists("notebook:t.ipynb")
    assert [name for _, name, *_ in rt.recorded_steps("notebook:t.ipynb")] == ["load"]


def test_a_deleted_record_keeping_workflow_is_made_again(rt: nbflow.Runtime) -> None:
    rt.record_step("records", "a", 1, started=1.0, ended=2.0)
    assert nbflow.delete_workflow("records") == 1
    rt.record_step("records", "b", 2, started=3.0, ended=4.0)
    assert rt.status("records") == Status.SUCCESS
    assert [name for _, name, *_ in rt.recorded_steps("records")] == ["b"]


# -- readers of a deleted workflow ----------------------------------------------------------------


@nbflow.workflow(name="tests.retention.many")
def many(n: int) -> int:
    for i in range(n):
        nbflow.write_stream("items", i)
    return n


def test_a_reader_of_a_deleted_workflow_ends_with_not_found(
    rt: nbflow.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that has read a page when its workflow is deleted ends with a clear error,
    never a wait (its timeout here only keeps a failing test from hanging)."""
    monkeypatch.setattr(_reader, "PAGE_ROWS", 5000)
    handle = nbflow.start(many, 6000)  # more than one page of the reader (5000 items)
    handle.result()
    reader = nbflow.read_stream(handle.workflow_id, "items", timeout=20)
    assert next(reader) == 0
    assert nbflow.delete_workflow(handle.workflow_id) == 1
    got: list[Any] = []
    with pytest.raises(nbflow.WorkflowNotFoundError, match=handle.workflow_id):
        for value in reader:
            got.append(value)
    assert got == list(range(1, 5000))  # the page it had read stays read
