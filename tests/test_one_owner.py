"""One owner per DuckDB file in a process (issue 14, item 1).

DuckDB lets a second connection of the same process open a file that a first one holds. Two
nbflow runtimes on one file would each believe the other's running workflows interrupted: the
second one's ``recover()`` took the first one's workflow and its steps ran twice (``[0, 0, 1,
1]``). A second runtime on a file this process has open is refused, clearly, before it touches
the file; closing the first frees the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nbflow
from nbflow import DatabaseLockedError
from tests.helpers import Gate


def test_a_second_runtime_on_an_open_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.duckdb"
    link = tmp_path / "link.duckdb"
    link.symlink_to(path)
    ran: list[int] = []
    g = Gate()

    @nbflow.step(name="tests.owner.work")
    def work(i: int) -> int:
        ran.append(i)
        if i == 0:
            g.wait()
        return i

    @nbflow.workflow(name="tests.owner.flow")
    def flow() -> list[int]:
        return [work(0), work(1)]

    with nbflow.Runtime(str(path)) as first:
        handle = first.start(flow)
        g.reached()
        for spelling in (str(path), str(link), f"duckdb:///{path}", os.path.relpath(path)):
            with pytest.raises(DatabaseLockedError, match="already open in this process") as info:
                nbflow.Runtime(spelling)
            assert "runtime.close()" in str(info.value), info.value
        g.release.set()
        assert handle.result(timeout=10) == [0, 1]
    assert ran == [0, 1]  # the second runtime never recovered the first one's workflow

    with nbflow.Runtime(str(link)) as again:  # closed: the file is free
        assert again.get_workflow(handle.workflow_id).result(timeout=10) == [0, 1]


def test_a_refused_or_failed_open_leaves_the_file_free(tmp_path: Path) -> None:
    path = tmp_path / "free.duckdb"
    nbflow.Runtime(str(path)).close()
    with nbflow.Runtime(str(path)), pytest.raises(DatabaseLockedError):
        nbflow.Runtime(str(path))
    foreign = tmp_path / "foreign.duckdb"
    foreign.write_bytes(b"not a database at all" * 100)
    with pytest.raises(nbflow.DatabaseError):
        nbflow.Runtime(str(foreign))
    foreign.unlink()
    nbflow.Runtime(str(foreign)).close()  # the failed open did not keep the file


def test_memory_databases_are_each_their_own() -> None:
    with nbflow.Runtime(":memory:"), nbflow.Runtime(":memory:"):
        pass
