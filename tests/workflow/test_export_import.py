"""Export and import: ``nbflow.export_workflow`` / ``nbflow.import_workflow`` between databases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import nbflow
from nbflow import Status
from nbflow.store._valuefiles import REF_MAGIC
from tests.support.helpers import Gate, interrupt, sql

gates: dict[str, Gate] = {}


@nbflow.step(name="tests.export.square")
def square(x: int) -> int:
    return x * x


@nbflow.workflow(name="tests.export.grandchild")
def grandchild() -> str:
    return nbflow.current_workflow_id() or ""


@nbflow.workflow(name="tests.export.child")
def child() -> str:
    grandchild()
    return nbflow.current_workflow_id() or ""


@nbflow.workflow(name="tests.export.parent")
def parent() -> tuple[str, str]:
    child_id = child()
    for i in range(10):
        square(i)
    nbflow.set_event("key", "value")
    nbflow.write_stream("key", "value")
    nbflow.write_stream("key", {"pickled": b"bytes"})
    return nbflow.current_workflow_id() or "", child_id


@nbflow.step(name="tests.export.large")
def large(size: int) -> bytes:
    return os.urandom(size)


@nbflow.workflow(name="tests.export.holds_large")
def holds_large(size: int) -> int:
    return len(large(size))


@nbflow.step(name="tests.export.wait")
def wait_at(name: str) -> None:
    gates[name].wait()


@nbflow.workflow(name="tests.export.interrupted")
def interrupted(n: int) -> int:
    for i in range(n):
        nbflow.write_stream("items", square(i))
        if i == 2:
            wait_at("interrupted")
    return n


def _run_family(rt: nbflow.Runtime) -> tuple[str, str, str]:
    workflow_id, child_id = rt.start(parent).result(timeout=30)
    [grandchild_id] = [w.workflow_id for w in rt.list_workflows(parent_id=child_id)]
    rt.send(workflow_id, {"late": 1}, topic="never-read")  # waits for it: exported too
    return workflow_id, child_id, grandchild_id


@pytest.mark.postgres
@pytest.mark.parametrize("direction", ["duckdb-to-postgres", "postgres-to-duckdb"])
def test_round_trip_between_stores(direction: str, tmp_path: Path, pg_url: str) -> None:
    """DBOS tests/test_workflow_export.py::test_workflow_export, restated: a workflow with a child
    and a grandchild, ten steps, an event and a stream, exported with its children and imported
    into a database of the other kind, where every step, event, stream item, status, time and
    parent is as it was, and the imported workflow can be forked."""
    duck = str(tmp_path / "source.duckdb")
    source, target = (duck, pg_url) if direction == "duckdb-to-postgres" else (pg_url, duck)
    with nbflow.Runtime(source) as rt:
        workflow_id, child_id, grandchild_id = _run_family(rt)
        exported = rt.export_workflow(workflow_id, children=True)
        rows = {i: rt.store.get_workflow(i) for i in (workflow_id, child_id, grandchild_id)}
        steps = {i: list(rt.list_steps(i)) for i in rows}
    assert [e["workflow"]["workflow_id"] for e in exported] == [
        workflow_id,
        child_id,
        grandchild_id,
    ]
    text = json.dumps(exported)  # JSON-serialisable as it is
    with nbflow.Runtime(target) as rt:
        assert sorted(rt.import_workflow(json.loads(text))) == sorted(rows)
        assert rt.get_event(workflow_id, "key", timeout=0) == "value"
        assert list(rt.read_stream(workflow_id, "key", timeout=5)) == [
            "value",
            {"pickled": b"bytes"},
        ]
        for wid, row in rows.items():
            assert list(rt.list_steps(wid)) == steps[wid]
            assert rt.store.get_workflow(wid) == row  # every column, times and parent included
        assert [rows[i].parent_id for i in (child_id, grandchild_id)] == [workflow_id, child_id]
        waiting = sql(rt, "SELECT value_json FROM messages WHERE destination_id = ?", workflow_id)
        assert [json.loads(v) for (v,) in waiting] == [{"late": 1}]
        forked = rt.fork(workflow_id, len(steps[workflow_id]) + 1)
        assert forked.result(timeout=30) == (forked.workflow_id, child_id)
        assert rt.get_event(forked.workflow_id, "key", timeout=5) == "value"


@pytest.mark.contract
def test_export_is_json_and_reimport_is_a_no_op(database: str) -> None:
    """An export is plain JSON with a format version; importing it where it came from, or twice,
    writes nothing; an import whose id holds a different workflow is refused, changing nothing."""
    with nbflow.Runtime(database) as rt:
        workflow_id, _, _ = _run_family(rt)
        exported = rt.export_workflow(workflow_id)
        assert len(exported) == 1  # no children unless asked
        [one] = json.loads(json.dumps(exported))
        assert one["format"] == "nbflow.workflow" and one["version"] == 1
        assert one["workflow"]["status"] == "SUCCESS"
        assert isinstance(one["workflow"]["created_at"], float)
        assert [s["function_id"] for s in one["steps"]] == list(range(1, len(one["steps"]) + 1))
        pickled = [s for s in one["streams"] if s["value_pickle"] is not None]
        assert len(pickled) == 1 and isinstance(pickled[0]["value_pickle"], str)  # base64
        assert rt.import_workflow([one]) == []
        assert rt.import_workflow(one) == []  # one dict is taken too
        changed = json.loads(json.dumps(one))
        changed["workflow"]["status"] = "ERROR"
        changed["streams"] = changed["streams"][:1]
        with pytest.raises(nbflow.ImportConflictError) as caught:
            rt.import_workflow([changed])
        assert caught.value.workflow_id == workflow_id
        assert "status: 'SUCCESS' here, 'ERROR' in the export" in str(caught.value)
        assert "stream rows" in str(caught.value)
        assert rt.get_workflow(workflow_id).status() == Status.SUCCESS
        assert len(list(rt.read_stream(workflow_id, "key", timeout=5))) == 2


@pytest.mark.contract
def test_bad_exports_are_refused_whole(database: str) -> None:
    with nbflow.Runtime(database) as rt:
        workflow_id, _, _ = _run_family(rt)
        [good] = json.loads(json.dumps(rt.export_workflow(workflow_id)))
        with pytest.raises(nbflow.WorkflowNotFoundError):
            rt.export_workflow("nobody")
        with pytest.raises(nbflow.InvalidValueError, match="children must be True or False"):
            rt.export_workflow(workflow_id, children=1)  # type: ignore[arg-type]
        newer = {**good, "version": 99}
        fresh = json.loads(json.dumps(good))
        fresh["workflow"]["workflow_id"] = "fresh"
        for s in fresh["steps"] + fresh["streams"]:
            s["workflow_id"] = "fresh"
        fresh["messages"] = []
        with pytest.raises(nbflow.InvalidValueError, match="version 99"):
            rt.import_workflow([fresh, newer])  # refused before anything is written
        assert rt.store.get_workflow("fresh") is None
        with pytest.raises(nbflow.InvalidValueError, match="not an exported nbflow workflow"):
            rt.import_workflow([{"workflow": {}}])
        with pytest.raises(nbflow.InvalidValueError, match="names another workflow"):
            rt.import_workflow([{**fresh, "steps": good["steps"]}])
        with pytest.raises(nbflow.InvalidValueError, match="does not know"):
            rt.import_workflow([{**fresh, "workflow": {**fresh["workflow"], "colour": 1}}])
        with pytest.raises(nbflow.InvalidValueError):
            rt.import_workflow("not a list")  # type: ignore[arg-type]
        assert rt.import_workflow([fresh]) == ["fresh"]
        assert rt.get_workflow("fresh").status() == Status.SUCCESS


def test_a_large_value_file_goes_with_the_export(tmp_path: Path) -> None:
    """A value kept in a file beside a DuckDB file (over 8 MB) is in the export itself; imported
    into another DuckDB file it is a file beside that one again."""
    size = 9 << 20
    with nbflow.Runtime(tmp_path / "a.duckdb") as rt:
        workflow_id = rt.start(holds_large, size).workflow_id
        assert rt.get_workflow(workflow_id).result(timeout=60) == size
        [(blob,)] = sql(rt, "SELECT output_pickle FROM steps WHERE workflow_id = ?", workflow_id)
        assert bytes(blob).startswith(REF_MAGIC)  # kept in a file here
        value = rt.list_steps(workflow_id)[0].output
        text = json.dumps(rt.export_workflow(workflow_id))
    assert len(text) > size  # the value itself, not its reference
    (tmp_path / "a.duckdb.values").rename(tmp_path / "moved-away")  # the export needs no file
    with nbflow.Runtime(tmp_path / "b.duckdb") as rt:
        assert rt.import_workflow(json.loads(text)) == [workflow_id]
        [(blob,)] = sql(rt, "SELECT output_pickle FROM steps WHERE workflow_id = ?", workflow_id)
        assert bytes(blob).startswith(REF_MAGIC)  # a file beside this database
        assert list((tmp_path / "b.duckdb.values").glob("*/*.bin"))
        assert rt.list_steps(workflow_id)[0].output == value
        assert rt.import_workflow(json.loads(text)) == []  # identical, the file included


@pytest.mark.postgres
def test_a_large_value_file_moves_to_postgres(tmp_path: Path, pg_url: str) -> None:
    size = 9 << 20
    with nbflow.Runtime(tmp_path / "a.duckdb") as rt:
        workflow_id = rt.start(holds_large, size).workflow_id
        rt.get_workflow(workflow_id).result(timeout=60)
        value = rt.list_steps(workflow_id)[0].output
        exported = rt.export_workflow(workflow_id)
    with nbflow.Runtime(pg_url) as rt:
        assert rt.import_workflow(exported) == [workflow_id]
        assert rt.list_steps(workflow_id)[0].output == value
        assert rt.get_workflow(workflow_id).result(timeout=5) == size


@pytest.mark.contract
def test_an_interrupted_workflow_is_resumed_where_it_is_imported(
    database: str, tmp_path: Path
) -> None:
    """A PENDING workflow (its process stopped) is imported PENDING with no executor: recover()
    in the new database resumes it, and its stream holds each item once."""
    gates["interrupted"] = gate = Gate()
    source = nbflow.Runtime(tmp_path / "source.duckdb")
    handle = source.start(interrupted, 6)
    gate.reached()
    interrupt(source, gate)
    with nbflow.Runtime(tmp_path / "source.duckdb") as rt:
        assert rt.interrupted == [handle.workflow_id]
        exported = rt.export_workflow(handle.workflow_id)
    assert exported[0]["workflow"]["status"] == "PENDING"
    assert exported[0]["workflow"]["executor_id"] is not None
    gates["interrupted"] = Gate()
    gates["interrupted"].release.set()
    with nbflow.Runtime(database) as rt:
        assert rt.import_workflow(exported) == [handle.workflow_id]
        row = rt.store.get_workflow(handle.workflow_id)
        assert row is not None and row.status == "PENDING" and row.executor_id is None
        assert [h.workflow_id for h in rt.recover()] == [handle.workflow_id]
        assert rt.get_workflow(handle.workflow_id).result(timeout=30) == 6
        items = list(rt.read_stream(handle.workflow_id, "items", timeout=5))
        assert items == [i * i for i in range(6)]
