"""Opening DuckDB files nbflow must refuse (cut short, another application's) or keep working with."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import pytest

import nbflow

# (The test names avoid the words "corrupt" and "lock": pytest puts them in tmp_path.)


@nbflow.workflow()
def padded(i: int) -> str:
    return f"{i}:" + "x" * 2000


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def big_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed nbflow file of several data blocks, written over three sessions."""
    path = tmp_path_factory.mktemp("big") / "big.duckdb"
    for session in range(3):
        with nbflow.Runtime(path) as rt:
            handles = []
            for i in range(300):
                with nbflow.set_workflow_id(f"s{session}-{i}"):
                    handles.append(rt.start(padded, i))
            for handle in handles:
                handle.result(timeout=60)
    assert path.stat().st_size > 1024 * 1024
    return path


def _refused(expected: type[nbflow.DatabaseError], path: Path) -> nbflow.DatabaseError:
    """The error opening ``path`` raises; a runtime that opens all the same is closed, then fails."""
    try:
        rt = nbflow.Runtime(path)
    except expected as exc:
        return exc
    rt.close()
    pytest.fail(f"nbflow.Runtime({str(path)!r}) opened; expected {expected.__name__}")


def _cut(source: Path, folder: Path, size: int) -> Path:
    path = folder / "cut.duckdb"
    shutil.copyfile(source, path)
    os.truncate(path, size)
    return path


@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.4, 0.5])
def test_file_cut_short_is_refused_at_open_and_left_unchanged(
    big_database: Path, tmp_path: Path, fraction: float
) -> None:
    """A file cut short (an interrupted copy) raises DatabaseCorruptError when it is opened, not at
    the first read; its bytes are unchanged and nothing is created beside it."""
    size = big_database.stat().st_size
    path = _cut(big_database, tmp_path, int(size * fraction))
    before = _digest(path)
    err = _refused(nbflow.DatabaseCorruptError, path)
    assert err.path == str(path) and str(path) in str(err)
    assert "Nothing was changed in it" in str(err)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.duckdb"]


@pytest.mark.parametrize("size", ["half", 4096])
def test_small_file_cut_short_is_refused_and_left_unchanged(
    tmp_path: Path, size: str | int
) -> None:
    """The same for a just-created database, cut to half its size or to its first 4096 bytes."""
    source = tmp_path / "source" / "nbflow.duckdb"
    with nbflow.Runtime(source) as rt, nbflow.set_workflow_id("one"):
        rt.start(padded, 1).result(timeout=30)
    full = source.stat().st_size
    folder = tmp_path / "data"
    folder.mkdir()
    path = _cut(source, folder, full // 2 if size == "half" else int(size))
    before = _digest(path)
    assert _refused(nbflow.DatabaseCorruptError, path).path == str(path)
    assert _digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["cut.duckdb"]


@pytest.mark.parametrize("table", ["workflows", "Steps", "messages"])
def test_another_applications_file_is_refused_before_anything_is_created(
    tmp_path: Path, table: str
) -> None:
    """A DuckDB file with a table of nbflow's name but no nbflow_schema belongs to another
    application: it is refused with a DatabaseError naming the file, and nbflow creates nothing
    in it (no nbflow_schema table, its own table and rows as they were)."""
    path = tmp_path / "app.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE {table} (id INTEGER, label VARCHAR)")
    con.execute(f"INSERT INTO {table} VALUES (1, 'theirs'), (2, 'also theirs')")
    con.close()
    before = _digest(path)

    err = _refused(nbflow.DatabaseError, path)
    assert err.path == str(path) and str(path) in str(err)
    assert "another application" in str(err)
    assert table.lower() in str(err).lower()

    assert _tables(path) == {table}
    assert _digest(path) == before
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    finally:
        con.close()
    assert rows == [(1, "theirs"), (2, "also theirs")]
    # Not left held: nbflow can be pointed at it again and refuses it the same way.
    assert "another application" in str(_refused(nbflow.DatabaseError, path))


def test_duckdb_file_with_unrelated_tables_still_gets_nbflow_tables(tmp_path: Path) -> None:
    """A DuckDB file whose tables have none of nbflow's names is used as before."""
    path = tmp_path / "shared.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE notes AS SELECT 1 AS id")
    con.close()
    with nbflow.Runtime(path) as rt, nbflow.set_workflow_id("w"):
        assert rt.start(padded, 3).result(timeout=30).startswith("3:")
    assert {"notes", "nbflow_schema", "workflows"} <= _tables(path)


def test_healthy_file_opens_and_keeps_its_workflows(big_database: Path, tmp_path: Path) -> None:
    """A whole file opens again (every time) and keeps its workflows and their results."""
    path = tmp_path / "copy.duckdb"
    shutil.copyfile(big_database, path)
    for _ in range(2):
        with nbflow.Runtime(path) as rt:
            rows = rt.store.sql(
                "SELECT count(*), count(*) FILTER (WHERE status = 'SUCCESS') FROM workflows"
            ).fetchall()
            assert rows == [(900, 900)]
            with nbflow.set_workflow_id("s2-299"):
                assert rt.start(padded, 299).result(timeout=30) == "299:" + "x" * 2000


def test_fresh_file_opens_twice(tmp_path: Path) -> None:
    """A new file (no data block yet) is created, and opens again."""
    path = tmp_path / "new" / "nbflow.duckdb"
    with nbflow.Runtime(path):
        pass
    with nbflow.Runtime(path) as rt, nbflow.set_workflow_id("a"):
        assert rt.start(padded, 0).result(timeout=30).startswith("0:")
    with nbflow.Runtime(path) as rt:
        assert rt.store.sql("SELECT workflow_id FROM workflows").fetchall() == [("a",)]


def test_empty_file_behaves_as_before(tmp_path: Path) -> None:
    """A 0-byte file is refused by DuckDB as not a database: DatabaseCorruptError, left empty."""
    path = tmp_path / "empty.duckdb"
    path.write_bytes(b"")
    with pytest.raises(nbflow.DatabaseCorruptError) as info:
        nbflow.Runtime(path)
    assert info.value.path == str(path)
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.duckdb"]


def test_duckdb_runs_nbflow_queries_on_the_asking_thread(tmp_path: Path) -> None:
    """DuckDB is opened with one thread (a commit handed to a worker thread took longer); a
    user's large scan may raise it through ``store.sql``, and workflows still run and commit."""
    with nbflow.Runtime(str(tmp_path / "t.duckdb")) as rt:
        store = rt.store
        assert store.sql("SELECT current_setting('threads')").fetchall() == [(1,)]  # type: ignore[attr-defined]
        store.sql("SET threads TO 2")  # type: ignore[attr-defined]
        assert rt.start(padded, 3).result() == "3:" + "x" * 2000
        assert store.sql("SELECT current_setting('threads')").fetchall() == [(2,)]  # type: ignore[attr-defined]
