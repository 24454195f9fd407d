"""What a timeline reads, on both stores: ``Store.timeline_rows`` (a workflow's span, its steps'
spans, its stream writes thinned in SQL, its children) and ``gather_timeline`` (the workflow and
its children, bounded), from real workflows."""

from __future__ import annotations

import pytest

import nbflow
from nbflow.engine import _timeline
from nbflow.engine._timeline import gather_timeline

pytestmark = pytest.mark.contract


@nbflow.step(name="tests.timeline.square")
def square(x: int) -> int:
    nbflow.write_stream("rows", x)
    return x * x


@nbflow.workflow(name="tests.timeline.leaf")
def leaf(n: int) -> int:
    return square(n)


@nbflow.workflow(name="tests.timeline.parent")
def parent(n: int, children: int, writes: int) -> int:
    total = sum(nbflow.map(square, range(n)))
    for i in range(writes):
        nbflow.write_stream("big", i)
    for i in range(children):
        total += leaf(i)
    return total


@nbflow.workflow(name="tests.timeline.nested")
def nested(depth: int) -> int:
    return 0 if depth == 0 else nested(depth - 1) + square(depth)


def test_timeline_rows_read_spans_ticks_and_children(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(parent, 5, 3, 10)
    handle.result()
    rt.flush()
    rows = rt.store.timeline_rows(handle.workflow_id)
    assert rows is not None
    w = rows.workflow
    assert (w.workflow_id, w.name, w.status, w.parent_id) == (
        handle.workflow_id,
        "tests.timeline.parent",
        "SUCCESS",
        None,
    )
    assert w.ended_at is not None and w.created_at <= w.ended_at
    map_items = [s for s in rows.steps if s.name == "tests.timeline.square"]
    assert len(map_items) == 5
    assert [s.function_id for s in rows.steps] == sorted(s.function_id for s in rows.steps)
    for step in rows.steps:
        assert w.created_at <= step.started_at <= step.ended_at <= w.ended_at
        assert step.attempts == 1 and step.error is None
    by_key: dict[str, list[int]] = {}
    for tick in rows.ticks:
        by_key.setdefault(tick.key, []).append(tick.offset)
    assert by_key["big"] == list(range(10))  # few writes: every one, no end marker
    assert by_key["rows"] == list(range(5))
    assert {t.items for t in rows.ticks if t.key == "big"} == {10}
    credited = {t.function_id for t in rows.ticks if t.key == "rows"}
    assert credited == {s.function_id for s in map_items}  # each write names its step
    assert [c.name for c in rows.children] == ["tests.timeline.leaf"] * 3
    assert {c.parent_id for c in rows.children} == {handle.workflow_id}
    assert rows.more_children == 0
    assert rt.store.timeline_rows("no-such-workflow") is None


def test_stream_writes_are_thinned_keeping_each_stream_s_first_and_last(
    rt: nbflow.Runtime,
) -> None:
    handle = nbflow.start(parent, 3, 0, 3000)
    handle.result()
    rt.flush()
    rows = rt.store.timeline_rows(handle.workflow_id, max_ticks=100)
    assert rows is not None
    big = [t.offset for t in rows.ticks if t.key == "big"]
    assert big[0] == 0 and big[-1] == 2999
    assert 30 <= len(big) <= 60  # its share: 100 ticks over 2 streams, and its last
    assert {t.items for t in rows.ticks if t.key == "big"} == {3000}
    assert [t.offset for t in rows.ticks if t.key == "rows"] == [0, 1, 2]  # under its share


def test_children_past_the_limit_are_counted(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(parent, 1, 5, 0)
    handle.result()
    rt.flush()
    rows = rt.store.timeline_rows(handle.workflow_id, max_children=2)
    assert rows is not None
    assert len(rows.children) == 2 and rows.more_children == 3
    assert rows.children[0].created_at <= rows.children[1].created_at


def test_gather_reads_children_recursively_within_bounds(
    rt: nbflow.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = nbflow.start(nested, 5)
    handle.result()
    data = gather_timeline(rt.store, handle.workflow_id)
    depths = [node.depth for node in data.nodes()]
    assert depths == [0, 1, 2, 3]  # MAX_DEPTH levels below the workflow
    deepest = data.nodes()[-1]
    assert deepest.more_children == 1 and deepest.children == []
    assert data.final and data.start == data.root.workflow.created_at
    assert data.end >= max(s.ended_at for n in data.nodes() for s in n.steps)
    monkeypatch.setattr(_timeline, "MAX_WORKFLOWS", 2)
    data = gather_timeline(rt.store, handle.workflow_id)
    assert len(data.nodes()) == 2 and data.nodes()[-1].more_children == 1
    with pytest.raises(nbflow.WorkflowNotFoundError, match="no-such"):
        gather_timeline(rt.store, "no-such", database=rt.database)
