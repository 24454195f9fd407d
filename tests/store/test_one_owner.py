"""One owner per DuckDB file in a process (issue 14, item 1).

DuckDB lets a second connection of the same process open a file that a first one holds. Two
nbflow runtimes on one file would each believe the other's running workflows interrupted: the
second one's ``recover()`` took the first one's workflow and its steps ran twice (``[0, 0, 1,
1]``). A second runtime on a file this process has open is refused, clearly, before it touches
the file; closing the first frees the file.

Ownership is keyed by the file's identity (device and inode), not by its path (issue 18, defect
4): a hard link, a bind-mounted folder, or another case on a case-insensitive file system name the
same file by a path ``realpath`` does not reduce to the first. DuckDB opens such a spelling a
second time (its lock never conflicts within a process) with a write-ahead log of its own, and the
last of the two to close wrote its view over the other's: a committed workflow disappeared.
Mounting needs root (CI runs as root); elsewhere those tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow import DatabaseLockedError
from tests.support.helpers import Gate, wait_until


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
        hard = tmp_path / "hard.duckdb"
        os.link(path, hard)
        folder = tmp_path / "folder-link"
        folder.symlink_to(tmp_path, target_is_directory=True)
        spellings = (
            str(path),
            str(link),
            f"duckdb:///{path}",
            os.path.relpath(path),
            str(hard),
            str(folder / path.name),
        )
        for spelling in spellings:
            with pytest.raises(DatabaseLockedError, match="already open in this process") as info:
                nbflow.Runtime(spelling)
            assert "runtime.close()" in str(info.value), info.value
        g.release.set()
        assert handle.result(timeout=10) == [0, 1]
    assert ran == [0, 1]  # the second runtime never recovered the first one's workflow
    hard.unlink()  # (a file with two names is refused: see below)

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


@nbflow.workflow(name="tests.owner.answer")
def answer(x: int) -> int:
    return x


def test_two_runtimes_through_a_hard_link_cannot_both_write(tmp_path: Path) -> None:
    path, link = tmp_path / "one.duckdb", tmp_path / "link.duckdb"
    first = nbflow.Runtime(str(path))
    try:
        with nbflow.set_workflow_id("committed"):
            assert first.start(answer, 1).result(timeout=10) == 1  # durable in the file
        os.link(path, link)
        try:
            second = nbflow.Runtime(str(link))
        except DatabaseLockedError as exc:
            refused: DatabaseLockedError | None = exc
        else:  # the defect: DuckDB opens the file again, with a log of its own
            refused = None
            with nbflow.set_workflow_id("other"):
                assert second.start(answer, 2).result(timeout=10) == 2
            first.close()
            second.close()  # the last to close writes its view of the file over the first's
    finally:
        first.close()
    link.unlink()  # (a file with two names is refused: see below)
    with nbflow.Runtime(str(path)) as again:
        ids = sorted(w.workflow_id for w in again.list_workflows())
    assert ids == ["committed"], "a committed workflow disappeared: two owners wrote one file"
    assert refused is not None and "already open in this process" in str(refused)
    assert not (tmp_path / "link.duckdb.wal").exists()  # refused before DuckDB touched it


#: Runs argv[2] as a workflow id on the database argv[1]; argv[3] "crash" dies without closing.
_SESSION = r"""
import json, os, sys
import nbflow

@nbflow.workflow(name="tests.owner.answer")
def answer(x):
    return x

try:
    rt = nbflow.Runtime(sys.argv[1])
except nbflow.DatabaseError as exc:
    print(json.dumps({"refused": str(exc)}))
    sys.exit(0)
with nbflow.set_workflow_id(sys.argv[2]):
    print(json.dumps({"committed": rt.start(answer, 1).result(timeout=30) == 1}), flush=True)
rt.flush()
if sys.argv[3] == "crash":
    os._exit(0)
rt.close()
"""


def _session(path: Path, workflow_id: str, end: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _SESSION, str(path), workflow_id, end],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def test_a_file_with_two_names_is_refused(tmp_path: Path) -> None:
    """One session after another through two hard links: DuckDB keeps the log beside the name it
    was opened by, so what a session committed through one name and left in its log (it died) was
    missed by the next through the other, and lost. A file with other names is refused."""
    path, link = tmp_path / "one.duckdb", tmp_path / "link.duckdb"
    assert _session(path, "first", "close") == {"committed": True}
    os.link(path, link)
    through_link = _session(link, "through-link", "crash")
    assert _session(path, "through-name", "close").keys() == through_link.keys()
    link.unlink()
    Path(f"{link}.wal").unlink(missing_ok=True)
    with nbflow.Runtime(str(path)) as rt:
        ids = {w.workflow_id for w in rt.list_workflows()}
    if through_link.get("committed"):
        assert "through-link" in ids, "a committed workflow was lost"
    assert "2 names (hard links)" in through_link.get("refused", ""), through_link
    assert ids == {"first"}


def test_a_file_deleted_while_open_keeps_its_owner(tmp_path: Path) -> None:
    """The owner holds the file's identity and the log DuckDB names after its path: a file
    created again at that path while the first is open would share the first one's log."""
    path = tmp_path / "gone.duckdb"
    moved = tmp_path / "moved.duckdb"
    with nbflow.Runtime(str(path)) as first:
        path.rename(moved)
        with pytest.raises(DatabaseLockedError, match="already open in this process"):
            nbflow.Runtime(str(moved))  # the same file, moved
        with pytest.raises(DatabaseLockedError, match="already open in this process"):
            nbflow.Runtime(str(path))  # a new file here would share the first one's log
        assert not path.exists()  # refused before anything was created
        with nbflow.set_workflow_id("kept"):
            assert first.start(answer, 3).result(timeout=10) == 3
    with nbflow.Runtime(str(path)) as fresh:  # freed at close: a new database
        assert fresh.list_workflows() == []
    with nbflow.Runtime(str(moved)) as again:
        assert again.get_workflow("kept").result(timeout=10) == 3


def test_named_memory_databases_have_one_owner() -> None:
    """DuckDB shares ``:memory:NAME`` within a process: it is one database."""
    with nbflow.Runtime(":memory:shared"), pytest.raises(DatabaseLockedError):
        nbflow.Runtime(":memory:shared")
    nbflow.Runtime(":memory:shared").close()  # freed


# -- one new file opened at once through several spellings ---------------------------------------


def _race(spellings: list[str]) -> tuple[list[nbflow.Runtime], list[BaseException]]:
    """Open each spelling in a thread of its own, all at once: the runtimes and the errors."""
    start = threading.Barrier(len(spellings))
    opened: list[nbflow.Runtime] = []
    failed: list[BaseException] = []

    def open_one(spelling: str) -> None:
        start.wait()
        try:
            opened.append(nbflow.Runtime(spelling))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=open_one, args=(s,), daemon=True) for s in spellings]
    for t in threads:
        t.start()
    wait_until(lambda: not any(t.is_alive() for t in threads), timeout=60)
    return opened, failed


def _one_gets_in(spellings: list[str]) -> None:
    opened, failed = _race(spellings)
    try:
        assert len(opened) == 1, f"{len(opened)} runtimes opened one new file: {spellings}"
        assert all(isinstance(e, DatabaseLockedError) for e in failed), failed
    finally:
        for rt in opened:
            rt.close()


def test_a_new_file_opened_at_once_by_several_spellings_gets_one_owner(tmp_path: Path) -> None:
    folder = tmp_path / "folder-link"
    folder.symlink_to(tmp_path, target_is_directory=True)
    for i in range(5):
        new = tmp_path / f"new{i}.duckdb"
        spellings = [str(new), str(folder / new.name), f"duckdb:///{new}", os.path.relpath(new)]
        _one_gets_in(spellings)


# -- a bind-mounted folder -------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no message"


def _mount_or_skip(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (CI runs as root)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine cannot `mount {' '.join(args)}`: {_first_line(done.stderr)}")


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder and the same folder bind-mounted elsewhere (unmounted at the end)."""
    real, other = tmp_path / "real", tmp_path / "bound"
    real.mkdir()
    other.mkdir()
    _mount_or_skip("--bind", str(real), str(other))
    try:
        yield real, other
    finally:
        subprocess.run(["umount", "-l", str(other)], check=False)


def test_a_bind_mounted_folder_is_the_same_file(bound: tuple[Path, Path]) -> None:
    real, other = bound
    with nbflow.Runtime(str(real / "x.duckdb")) as first:
        with nbflow.set_workflow_id("committed"):
            first.start(answer, 1).result(timeout=10)
        before = sorted(os.listdir(real))
        with pytest.raises(DatabaseLockedError, match="already open in this process"):
            nbflow.Runtime(str(other / "x.duckdb"))
        assert sorted(os.listdir(real)) == before  # refused before DuckDB touched it


def test_a_new_file_through_a_bind_mount_gets_one_owner(bound: tuple[Path, Path]) -> None:
    real, other = bound
    for i in range(5):
        _one_gets_in([str(real / f"new{i}.duckdb"), str(other / f"new{i}.duckdb")])


# -- another case on a case-insensitive file system ------------------------------------------------


def _case_insensitive(folder: Path) -> bool:
    probe = folder / "CaseProbe"
    probe.touch()
    try:
        return (folder / "caseprobe").exists()
    finally:
        probe.unlink()


@pytest.fixture
def insensitive(tmp_path: Path) -> Iterator[Path]:
    """A folder on a case-insensitive file system with inode numbers: this one where it is one
    (macOS, Windows), else a tmpfs with casefold or a vfat image mounted for the test."""
    if _case_insensitive(tmp_path):
        yield tmp_path
        return
    if os.geteuid() != 0:
        pytest.skip("the file system is case-sensitive, and mounting one that is not needs root")
    mount = tmp_path / "mnt"
    mount.mkdir()
    reasons = []
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "casefold,size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if tried.returncode == 0:
        folder = mount / "folded"
        folder.mkdir()
        flagged = subprocess.run(["chattr", "+F", str(folder)], capture_output=True, text=True)
        if flagged.returncode == 0:
            try:
                yield folder
            finally:
                subprocess.run(["umount", "-l", str(mount)], check=False)
            return
        subprocess.run(["umount", "-l", str(mount)], check=False)
        reasons.append(f"chattr +F on a casefold tmpfs failed: {_first_line(flagged.stderr)}")
    else:
        reasons.append(f"no tmpfs with casefold ({_first_line(tried.stderr)})")
    if shutil.which("mkfs.vfat") is None:
        reasons.append("no mkfs.vfat (apt-get install dosfstools)")
    else:
        image = tmp_path / "fat.img"
        with image.open("wb") as f:
            f.truncate(64 << 20)
        subprocess.run(["mkfs.vfat", str(image)], check=True, capture_output=True)
        tried = subprocess.run(
            ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True
        )
        if tried.returncode == 0:
            try:
                yield mount
            finally:
                subprocess.run(["umount", "-l", str(mount)], check=False)
            return
        reasons.append(f"no vfat mount ({_first_line(tried.stderr)})")
    pytest.skip("no case-insensitive file system with inode numbers here: " + "; ".join(reasons))


def test_another_case_is_the_same_file(insensitive: Path) -> None:
    with nbflow.Runtime(str(insensitive / "Case.duckdb")) as first:
        with nbflow.set_workflow_id("committed"):
            first.start(answer, 1).result(timeout=10)
        for spelling in ("case.duckdb", "CASE.DUCKDB"):
            with pytest.raises(DatabaseLockedError, match="already open in this process"):
                nbflow.Runtime(str(insensitive / spelling))


def test_a_new_file_in_two_cases_gets_one_owner(insensitive: Path) -> None:
    for i in range(5):
        _one_gets_in([str(insensitive / f"New{i}.duckdb"), str(insensitive / f"nEW{i}.duckdb")])
