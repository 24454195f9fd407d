"""Files nbflow cannot use: held by another process, corrupt, or written by a newer nbflow.

Each failure is a clear error from the :class:`nbflow.DatabaseError` family that names the file (and
the holder's PID, or both schema versions), and leaves the user's file exactly as it was.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import nbflow
from nbflow.store._schema import MIGRATIONS
from tests.support.processes import child_env

#: Run in a child: try to open the file given as argv[1] with nbflow, print what happened as JSON.
OPEN_IN_CHILD = textwrap.dedent(
    """
    import json, sys
    import nbflow
    try:
        rt = nbflow.Runtime(sys.argv[1])
    except Exception as exc:
        print(json.dumps({
            "type": type(exc).__name__,
            "locked": isinstance(exc, nbflow.DatabaseLockedError),
            "database_error": isinstance(exc, nbflow.DatabaseError),
            "message": str(exc),
            "pid": getattr(exc, "pid", None),
            "path": getattr(exc, "path", None),
        }))
    else:
        print(json.dumps({"type": None, "workflows": len(rt.list_workflows())}))
        rt.close()
    """
)

#: Run in a child: hold the file open with nbflow until stdin closes.
HOLD_IN_CHILD = textwrap.dedent(
    """
    import sys
    import nbflow
    rt = nbflow.Runtime(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    rt.close()
    """
)

#: Run in a child: open the file with plain DuckDB (is it still locked?), print its schema versions.
DUCKDB_IN_CHILD = textwrap.dedent(
    """
    import json, sys
    import duckdb
    con = duckdb.connect(sys.argv[1])
    print(json.dumps(sorted(r[0] for r in con.execute("SELECT version FROM nbflow_schema").fetchall())))
    con.close()
    """
)


def _child(code: str, *args: str, cwd: Path) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@nbflow.workflow(name="test_locking.noop")
def noop(x: int) -> int:
    """A workflow to show a runtime still works."""
    nbflow.write_stream("out", x)
    return x + 1


# -- locked ---------------------------------------------------------------------------------


def test_second_process_gets_locked_error_naming_file_and_holder(
    rt: nbflow.Runtime, db_path: Path
) -> None:
    """A second process opening a file this process holds gets DatabaseLockedError, naming the file
    and this process's PID (message and attributes) and the ways out."""
    got = _child(OPEN_IN_CHILD, str(db_path), cwd=db_path.parent)
    assert got["type"] == "DatabaseLockedError"
    assert got["locked"] and got["database_error"]
    assert got["pid"] == os.getpid()
    assert got["path"] == str(db_path)
    message = got["message"]
    assert str(db_path) in message
    assert str(os.getpid()) in message
    assert "postgresql" in message.lower()  # a way out: share between processes
    assert "another file" in message.lower() or "other" in message.lower()


def test_holder_is_unaffected_by_a_refused_second_process(
    rt: nbflow.Runtime, db_path: Path
) -> None:
    """The refused process changes nothing: the holder goes on working, its data intact."""
    first = nbflow.start(noop, 1)
    assert first.result(timeout=30) == 2
    got = _child(OPEN_IN_CHILD, str(db_path), cwd=db_path.parent)
    assert got["type"] == "DatabaseLockedError"
    second = nbflow.start(noop, 2)
    assert second.result(timeout=30) == 3
    assert list(nbflow.read_stream(first.workflow_id, "out")) == [1]
    assert list(nbflow.read_stream(second.workflow_id, "out")) == [2]
    assert {w.workflow_id for w in nbflow.list_workflows()} == {
        first.workflow_id,
        second.workflow_id,
    }


def test_closing_releases_the_lock(db_path: Path) -> None:
    """After the holder closes its runtime, another process opens the file and sees its data."""
    with nbflow.Runtime(db_path) as rt:
        with nbflow.set_workflow_id("kept"):
            rt.start(noop, 5).result(timeout=30)
        assert _child(OPEN_IN_CHILD, str(db_path), cwd=db_path.parent)["locked"]
    got = _child(OPEN_IN_CHILD, str(db_path), cwd=db_path.parent)
    assert got == {"type": None, "workflows": 1}


@pytest.fixture
def holder(db_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds ``db_path`` open with nbflow until the test ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_CHILD, str(db_path)],
        cwd=db_path.parent,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the child holds the file (or dies)
        assert line == "ready\n", proc.communicate(timeout=60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.communicate("", timeout=60)


def test_this_process_gets_locked_error_naming_the_child(
    holder: subprocess.Popen[str], db_path: Path
) -> None:
    """Opening a file another process holds raises DatabaseLockedError with that process's PID;
    nothing is left half-open (no thread, no default runtime), and it opens once released."""
    with pytest.raises(nbflow.DatabaseLockedError) as info:
        nbflow.Runtime(db_path)
    err = info.value
    assert isinstance(err, nbflow.DatabaseError)
    assert isinstance(err, nbflow.NbflowError)
    assert err.pid == holder.pid
    assert err.path == str(db_path)
    assert str(db_path) in str(err) and str(holder.pid) in str(err)
    # one traceback: DuckDB's own lock message is not chained below the error that says it all
    assert err.__cause__ is None and err.__suppress_context__, repr(err.__cause__)
    with pytest.raises(nbflow.DatabaseLockedError) as info:
        nbflow.configure(f"duckdb://{db_path}")
    assert info.value.__cause__ is None

    holder.communicate("", timeout=60)  # the child closes its runtime and exits
    assert holder.returncode == 0
    with nbflow.Runtime(db_path) as rt:
        assert rt.list_workflows() == []


# -- corrupt --------------------------------------------------------------------------------


def _open_expecting(error: type[nbflow.DatabaseError], path: Path) -> nbflow.DatabaseError:
    """Open ``path``, expecting ``error``; a runtime that opens anyway is closed, then fails."""
    try:
        rt = nbflow.Runtime(path)
    except error as exc:
        return exc
    rt.close()
    pytest.fail(
        f"nbflow.Runtime({str(path)!r}) opened the file instead of raising {error.__name__}"
    )


def _valid_duckdb_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "valid.duckdb"
    with nbflow.Runtime(path) as rt, nbflow.set_workflow_id("w"):
        rt.start(noop, 1).result(timeout=30)
    return path.read_bytes()


def _corrupt_content(kind: str, tmp_path: Path) -> bytes:
    if kind == "random":
        return random.Random(1234).randbytes(64 * 1024)
    if kind == "text":
        return b"id,name\n1,alice\n2,bob\n"
    if kind == "sqlite":  # a SQLite file given by mistake: not a DuckDB database
        return b"SQLite format 3\x00" + random.Random(5).randbytes(4096 - 16)
    if kind == "truncated":  # a DuckDB file cut short after its headers (an interrupted copy)
        data = _valid_duckdb_bytes(tmp_path)
        assert len(data) > 16 * 1024
        return data[: 16 * 1024]
    raise AssertionError(kind)


def _check_unreadable(tmp_path: Path, kind: str, folder_name: str) -> None:
    folder = tmp_path / folder_name
    folder.mkdir()
    path = folder / "user.duckdb"
    content = _corrupt_content(kind, tmp_path)
    path.write_bytes(content)
    err = _open_expecting(nbflow.DatabaseCorruptError, path)
    assert isinstance(err, nbflow.DatabaseError)
    assert err.path == str(path)
    assert str(path) in str(err)
    assert path.read_bytes() == content
    assert sorted(p.name for p in folder.iterdir()) == ["user.duckdb"]
    # The same through the default runtime: the error, and no default left behind.
    with pytest.raises(nbflow.DatabaseCorruptError):
        nbflow.configure(path)
    assert path.read_bytes() == content


# (The test names avoid the words "corrupt" and "lock": pytest puts them in tmp_path.)


@pytest.mark.parametrize("kind", ["random", "text", "sqlite", "truncated"])
def test_unreadable_file_raises_and_is_left_unchanged(tmp_path: Path, kind: str) -> None:
    """A file that is not a readable DuckDB database raises DatabaseCorruptError naming the file;
    its bytes are unchanged and nothing is created beside it."""
    _check_unreadable(tmp_path, kind, "data")


@pytest.mark.parametrize("kind", ["random", "truncated"])
def test_unreadable_file_error_does_not_depend_on_its_folder_name(
    tmp_path: Path, kind: str
) -> None:
    """The error is told from DuckDB's error, not from the path inside its message: an unreadable
    file in a folder named "blocks" is corrupt, not locked."""
    _check_unreadable(tmp_path, kind, "blocks")


# -- newer schema ---------------------------------------------------------------------------


def test_newer_schema_version_raises_naming_both_versions(db_path: Path) -> None:
    """A file whose schema version is newer than this nbflow knows raises SchemaVersionError naming
    the file and both versions; the file keeps its bytes, its data and its version, and is not
    left locked."""
    with nbflow.Runtime(db_path) as rt, nbflow.set_workflow_id("old"):
        rt.start(noop, 1).result(timeout=30)
    newer = len(MIGRATIONS) + 41
    con = duckdb.connect(str(db_path))
    con.execute("INSERT INTO nbflow_schema VALUES (?)", [newer])
    con.close()
    before = db_path.read_bytes()

    with pytest.raises(nbflow.SchemaVersionError) as info:
        nbflow.Runtime(db_path)
    err = info.value
    assert isinstance(err, nbflow.DatabaseError)
    assert err.found == newer
    assert err.supported == len(MIGRATIONS)
    assert err.path == str(db_path)
    message = str(err)
    assert str(db_path) in message
    assert str(newer) in message and str(len(MIGRATIONS)) in message

    assert db_path.read_bytes() == before
    # Released: another process can open it, and finds the versions as they were.
    versions = _child(DUCKDB_IN_CHILD, str(db_path), cwd=db_path.parent)
    assert versions == [*range(1, len(MIGRATIONS) + 1), newer]
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        rows = con.execute("SELECT workflow_id, status FROM workflows").fetchall()
    finally:
        con.close()
    assert rows == [("old", "SUCCESS")]
