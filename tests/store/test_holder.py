"""The holder of a DuckDB file, named: real processes, one holding the file, one refused.

A process that opens the file writes ``<file>.holder`` beside it (its pid, host, start time, and
the notebook and kernel when it is a Jupyter kernel), removed at close; a second process refused
by DuckDB's lock is told that notebook, kernel and pid, and what to do. A note left by a process
killed with SIGKILL is stale: ignored, and replaced by the next process that opens the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import nbflow
from tests.store.test_locking import HOLD_IN_CHILD
from tests.support.processes import child_env

#: Run in a child: hold the file open with nbflow until stdin closes (argv: the file, then what
#: a kernel's command line has: ``-f <connection file>``).
HOLD = HOLD_IN_CHILD

#: Run in a child: try to open the file with nbflow, print what happened as JSON.
OPEN = textwrap.dedent(
    """
    import json, sys
    import nbflow
    try:
        rt = nbflow.Runtime(sys.argv[1])
    except nbflow.DatabaseLockedError as exc:
        print(json.dumps({"message": str(exc), "pid": exc.pid, "notebook": exc.notebook,
                          "kernel": exc.kernel}))
    else:
        rt.close()
        print(json.dumps({"message": None}))
    """
)

#: Run in a child: hold the file with DuckDB alone (no note) until stdin closes.
HOLD_DUCKDB = textwrap.dedent(
    """
    import sys
    import duckdb
    con = duckdb.connect(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    con.close()
    """
)

#: Run in a child: open the file read-only with DuckDB, print "opened" or DuckDB's error.
READ_ONLY = textwrap.dedent(
    """
    import sys
    import duckdb
    try:
        duckdb.connect(sys.argv[1], read_only=True).close()
        print("opened")
    except duckdb.Error as exc:
        print(f"refused: {exc}")
    """
)

NOTEBOOK = "/home/ana/projects/first analysis.ipynb"
KERNEL_ID = "8f6c1d2e-4b1a-4c9e-9a53-0d3f2b7e1c55"


class Holding:
    """A child process holding the file, started and ready."""

    def __init__(self, code: str, db: Path, notebook: str | None = None) -> None:
        env = child_env()
        env.pop("JPY_SESSION_NAME", None)
        if notebook is not None:
            env["JPY_SESSION_NAME"] = notebook
        args = [str(db), "-f", f"/run/user/1000/jupyter/runtime/kernel-{KERNEL_ID}.json"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=db.parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line + (self.proc.stderr.read() if self.proc.stderr else "")

    def stop(self) -> None:
        """Let it close the file and exit."""
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0

    def kill(self) -> None:
        """SIGKILL it, as a crash would: nothing is closed, the note stays."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=60)


@contextlib.contextmanager
def holding(code: str, db: Path, notebook: str | None = None) -> Iterator[Holding]:
    child = Holding(code, db, notebook)
    try:
        yield child
    finally:
        if child.proc.poll() is None:
            child.kill()


def second(db: Path, code: str = OPEN) -> Any:
    """What a second process is told when it opens ``db``."""
    env = child_env()
    env.pop("JPY_SESSION_NAME", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)],
        cwd=db.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    return json.loads(last) if code == OPEN else last


def note(db: Path) -> dict[str, Any] | None:
    path = Path(f"{db}.holder")
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shared.duckdb"
    with nbflow.Runtime(path):  # an nbflow file, closed
        pass
    return path


def test_second_process_is_told_the_notebook_kernel_and_pid_that_hold_the_file(db: Path) -> None:
    with holding(HOLD, db, NOTEBOOK) as holder:
        got = second(db)
        assert got["pid"] == holder.proc.pid
        assert got["notebook"] == NOTEBOOK
        assert got["kernel"] == KERNEL_ID
        message = got["message"]
        assert f"in use by the notebook {NOTEBOOK!r}" in message
        assert f"kernel {KERNEL_ID}" in message and f"process {holder.proc.pid}" in message
        # What to do, and the truth about reading: DuckDB keeps a reader out too.
        assert "Use that notebook" in message and "%nbflow list" in message
        assert "shut down its kernel" in message
        assert "cannot list its history either" in message
        assert "postgresql://" in message
        holder.stop()
    assert note(db) is None  # removed at close
    assert second(db)["message"] is None  # and the file is free


def test_the_note_names_the_holder_while_it_holds_the_file(db: Path) -> None:
    with holding(HOLD, db, NOTEBOOK) as holder:
        written = note(db)
        assert written is not None
        assert written["pid"] == holder.proc.pid
        assert written["notebook"] == NOTEBOOK and written["kernel"] == KERNEL_ID
        assert written["host"] and written["started"].endswith("Z")
        holder.stop()


def test_a_process_outside_a_notebook_is_named_by_its_pid(db: Path) -> None:
    with holding(HOLD, db) as holder:
        got = second(db)
        assert got["notebook"] is None and got["pid"] == holder.proc.pid
        assert f"in use by process {holder.proc.pid} (since " in got["message"]
        assert "Close the runtime in that process" in got["message"]
        holder.stop()


def test_a_killed_holders_note_is_ignored_and_replaced(db: Path) -> None:
    with holding(HOLD, db, NOTEBOOK) as holder:
        holder.kill()
    stale = note(db)
    assert stale is not None and stale["notebook"] == NOTEBOOK  # left behind by SIGKILL
    with nbflow.Runtime(db):  # the file is free: opened, and the note now names this process
        replaced = note(db)
        assert replaced is not None and replaced["pid"] == os.getpid()
        assert replaced["notebook"] == os.environ.get("JPY_SESSION_NAME")
        got = second(db)
        assert got["pid"] == os.getpid() and got["notebook"] == replaced["notebook"]
        assert NOTEBOOK not in got["message"]
    assert note(db) is None


def test_a_stale_note_is_not_believed_about_another_holder(db: Path) -> None:
    """A note left by a killed process, while a process that wrote none holds the file: the
    error names DuckDB's holder, not the dead notebook."""
    with holding(HOLD, db, NOTEBOOK) as dead:
        dead.kill()
    with holding(HOLD_DUCKDB, db) as holder:
        got = second(db)
        assert got["pid"] == holder.proc.pid
        assert got["notebook"] is None and NOTEBOOK not in got["message"]
        holder.stop()


def test_duckdb_keeps_a_reader_out_while_another_process_holds_the_file(db: Path) -> None:
    """Why nbflow offers no read-only second process: DuckDB refuses even a read-only open
    while another process has the file open for writing (its docs and errors say so; the
    error message above promises it). If a DuckDB version allows it, this fails."""
    with holding(HOLD, db, NOTEBOOK) as holder:
        got = second(db, READ_ONLY)
        assert got.startswith("refused:") and "lock" in got.lower(), got
        holder.stop()
    assert second(db, READ_ONLY) == "opened"
    duckdb.connect(str(db)).close()
