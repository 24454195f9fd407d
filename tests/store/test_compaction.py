"""A DuckDB file gives back the space of deleted workflows when its runtime closes.

A ``CHECKPOINT`` leaves a DuckDB file as large as it was after a delete; the store compacts the
file into a fresh copy when closing if its deletes freed a quarter of it (or 256 MB), or when
asked (``Runtime.close(compact=True)``). See ``nbflow/store/_duckcompact.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbflow
from nbflow.store._duckcompact import SUFFIX, file_size
from tests.support.helpers import sql

SIZE = 200_000  # bytes each workflow's step returns
DAY = 86400


@nbflow.step(name="tests.compaction.payload")
def payload(i: int) -> bytes:
    return os.urandom(SIZE)


@nbflow.workflow(name="tests.compaction.work")
def work(i: int) -> int:
    payload(i)
    for j in range(3):
        nbflow.write_stream("items", {"i": i, "j": j})
    nbflow.set_event("i", i)
    return i


def fill(path: Path, count: int, first: int = 0) -> list[str]:
    """``count`` workflows of about :data:`SIZE` bytes each; their ids."""
    with nbflow.Runtime(path) as rt:
        ids = []
        for i in range(first, first + count):
            with nbflow.set_workflow_id(f"w-{i}"):
                ids.append(rt.start(work, i).workflow_id)
        for workflow_id in ids:
            rt.get_workflow(workflow_id).result()
    return ids


def age_all_but(rt: nbflow.Runtime, kept: list[str]) -> None:
    rt.flush()
    rt.store.sql(  # type: ignore[attr-defined]
        "UPDATE workflows SET created_at = created_at - 40 * 86400 "
        "WHERE NOT list_contains($1, workflow_id)",
        [kept],
    )


def check_intact(path: Path, kept: list[str], gone: list[str]) -> None:
    """Every kept workflow is whole (result, steps, streams, events); the others are gone; the
    tables keep their keys (a second row with a key is refused)."""
    with nbflow.Runtime(path) as rt:
        for workflow_id in kept:
            i = int(workflow_id.split("-")[1])
            assert rt.get_workflow(workflow_id).result() == i
            assert list(rt.read_stream(workflow_id, "items")) == [
                {"i": i, "j": j} for j in range(3)
            ]
            assert rt.events(workflow_id) == {"i": i}
        assert not [w for w in gone if rt.exists(w)]
        keys = sql(
            rt, "SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
        )
        assert keys[0][0] == 5
        assert sql(rt, "SELECT max(version) FROM nbflow_schema")[0][0] >= 3


def test_prune_then_close_gives_the_space_back(db_path: Path) -> None:
    """About 40 MB of workflows, most pruned: after the close the file is a fraction of it."""
    ids = fill(db_path, 200)
    kept, gone = ids[:10], ids[10:]
    before = file_size(str(db_path))
    assert before > 40 * SIZE * 5  # (at least 40 MB)
    with nbflow.Runtime(db_path) as rt:
        age_all_but(rt, kept)
        assert rt.prune(older_than=DAY) == 190
    after = file_size(str(db_path))
    print(f"file before {before:,} bytes, after prune and close {after:,} bytes")
    assert after < 0.15 * before
    assert not os.path.exists(str(db_path) + SUFFIX)
    check_intact(db_path, kept, gone)


def test_delete_workflow_then_close_gives_the_space_back(db_path: Path) -> None:
    ids = fill(db_path, 100)
    before = file_size(str(db_path))
    with nbflow.Runtime(db_path) as rt:
        for workflow_id in ids[5:]:
            rt.delete_workflow(workflow_id)
        assert os.path.exists(f"{db_path}.holder")  # the holder named beside the file
    assert file_size(str(db_path)) < 0.2 * before
    assert not os.path.exists(f"{db_path}.holder")  # and removed after the compaction
    check_intact(db_path, ids[:5], ids[5:])


def test_the_file_is_written_on_after_a_compaction(db_path: Path) -> None:
    ids = fill(db_path, 60)
    with nbflow.Runtime(db_path) as rt:
        age_all_but(rt, ids[:5])
        rt.prune(older_than=DAY)
    more = fill(db_path, 5, first=100)  # the compacted file takes new workflows
    check_intact(db_path, ids[:5] + more, ids[5:])


def test_no_delete_no_compaction(db_path: Path) -> None:
    fill(db_path, 20)
    inode = os.stat(db_path).st_ino
    with nbflow.Runtime(db_path) as rt:
        rt.list_workflows()
    assert os.stat(db_path).st_ino == inode  # the same file: not copied


def test_a_small_delete_does_not_copy_the_file(db_path: Path) -> None:
    ids = fill(db_path, 40)
    inode = os.stat(db_path).st_ino
    with nbflow.Runtime(db_path) as rt:
        rt.delete_workflow(ids[0])
    assert os.stat(db_path).st_ino == inode
    check_intact(db_path, ids[1:], ids[:1])


def test_close_compact_true_and_false(db_path: Path) -> None:
    ids = fill(db_path, 60)
    before = file_size(str(db_path))
    inode = os.stat(db_path).st_ino
    with nbflow.Runtime(db_path) as rt:
        age_all_but(rt, ids[:5])
        rt.prune(older_than=DAY)
        rt.close(compact=False)
    assert os.stat(db_path).st_ino == inode
    rt = nbflow.Runtime(db_path)
    rt.close(compact=True)  # nothing deleted by this runtime: compacted all the same
    assert file_size(str(db_path)) < 0.3 * before
    check_intact(db_path, ids[:5], ids[5:])


def test_a_copy_left_by_a_killed_compaction_is_removed_at_open(db_path: Path) -> None:
    ids = fill(db_path, 3)
    stale = Path(str(db_path) + SUFFIX)
    stale.write_bytes(b"half a copy")
    Path(str(stale) + ".wal").write_bytes(b"")
    with nbflow.Runtime(db_path):
        pass
    assert not stale.exists() and not Path(str(stale) + ".wal").exists()
    check_intact(db_path, ids, [])


def test_memory_databases_close_as_before() -> None:
    with nbflow.Runtime(":memory:") as rt:
        handle = rt.start(work, 1)
        handle.result()
        assert rt.delete_workflow(handle.workflow_id) == 1
        rt.close(compact=True)


def test_pruning_everything_leaves_an_empty_working_file(db_path: Path) -> None:
    fill(db_path, 40)
    with nbflow.Runtime(db_path) as rt:
        age_all_but(rt, [])
        assert rt.prune(older_than=DAY) == 40
    assert file_size(str(db_path)) < 2_000_000
    assert fill(db_path, 1, first=7) == ["w-7"]
    check_intact(db_path, ["w-7"], [])
