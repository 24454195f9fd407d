"""A database path nbflow cannot use gets a clear DatabaseError, and loses nothing (issue 18,
defect 10).

A path in a read-only folder, under a missing folder of a read-only one, under a file, a path
that is a folder, a pipe, a file this user may not read, a file in a folder it may not write (or
whose DuckDB log it may not write), a relative path whose working folder is gone: each is refused
with a ``DatabaseError`` that names the path and the way out, before anything is created; folders
made for a new file that DuckDB then cannot open are removed again. Before, several raised a raw
``OSError`` (the ``nbflow`` command printed a traceback), one hung, and some opened and failed at
every commit.

Read-only is made real: root ignores permission bits, so a folder is made read-only either by a
tmpfs mounted read-only (root only) or by permissions, checked in a child process run as the
user ``nobody`` when the tests run as root (as this user otherwise). Where neither can be done,
the test is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import nbflow
from nbflow.cli import main as cli_main
from tests.support.helpers import wait_until
from tests.support.processes import ROOT

#: Opens a runtime on argv[1] ('' for the default database), runs one workflow, prints the outcome.
_ATTEMPT = r"""
import json, sys
import nbflow

@nbflow.workflow(name="tests.paths.answer")
def answer(x):
    return x

def outcome(exc, **more):
    return {"type": type(exc).__name__, "database_error": isinstance(exc, nbflow.DatabaseError),
            "message": str(exc), "path": getattr(exc, "path", None), **more}

try:
    rt = nbflow.Runtime(sys.argv[1] or None)
except Exception as exc:
    out = outcome(exc)
else:
    try:
        out = {"opened": True, "result": rt.start(answer, 7).result(timeout=30)}
    except Exception as exc:
        out = outcome(exc, opened=True)
    finally:
        rt.close()
print(json.dumps(out))
"""

#: Opens a runtime on argv[1], writes one workflow and dies without closing: the log stays.
_CRASH = r"""
import os, sys
import nbflow

@nbflow.workflow(name="tests.paths.answer")
def answer(x):
    return x

rt = nbflow.Runtime(sys.argv[1])
rt.start(answer, 1).result(timeout=30)
rt.flush()
os._exit(0)
"""

Outcome = dict[str, Any]


def attempt_here(path: str | None) -> Outcome:
    """What :data:`_ATTEMPT` prints, in this process."""
    try:
        rt = nbflow.Runtime(path)
    except Exception as exc:
        return {
            "type": type(exc).__name__,
            "database_error": isinstance(exc, nbflow.DatabaseError),
            "message": str(exc),
            "path": getattr(exc, "path", None),
        }
    rt.close()
    return {"opened": True}


def assert_refused(outcome: Outcome, path: str, *says: str) -> None:
    """A DatabaseError naming ``path``, saying what to do (by default: another file)."""
    assert outcome.get("database_error") and not outcome.get("opened"), outcome
    assert outcome["type"] == "DatabaseError", outcome
    assert outcome["path"] == path, outcome
    message = outcome["message"]
    assert repr(path) in message, message
    assert "Nothing was created or changed" in message, message
    for words in says or ("nbflow.configure(", "$NBFLOW_DATABASE"):
        assert words in message, message


def tree(folder: Path) -> list[str]:
    """Everything under ``folder``, as relative paths."""
    found = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(top, name), folder))
    return sorted(found)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no message"


# -- a user who may not write here ----------------------------------------------------------------


@dataclass
class OtherUser:
    """Runs :data:`_ATTEMPT` as a user whom permission bits bind (``nobody`` when this is root)."""

    base: Path  # a folder that user can reach
    uid: int
    gid: int

    def give(self, *paths: Path) -> None:
        """Make ``paths`` that user's."""
        for path in paths:
            os.chown(path, self.uid, self.gid)

    def run(
        self, *argv: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python *argv`` as that user, in :attr:`base`."""
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("NBFLOW_", "JPY_"))}
        environment.update(HOME=str(self.base), PYTHONPATH=str(ROOT), **(env or {}))
        return subprocess.run(
            [*prefix, sys.executable, *argv],
            cwd=self.base,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def attempt(self, path: str | None, env: dict[str, str] | None = None) -> Outcome:
        done = self.run("-c", _ATTEMPT, path or "", env=env)
        assert done.returncode == 0, done.stderr
        outcome: Outcome = json.loads(done.stdout.splitlines()[-1])
        return outcome


@pytest.fixture
def other_user() -> Iterator[OtherUser]:
    if os.geteuid() == 0:
        import pwd

        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and no setpriv to run a check as an unprivileged user")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("running as root, and there is no user 'nobody' to run a check as")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    base = Path(tempfile.mkdtemp(prefix="nbflow-paths-"))  # (pytest's tmp_path is root's only)
    base.chmod(0o755)
    try:
        yield OtherUser(base, uid, gid)
    finally:
        for top, dirs, _ in os.walk(base):
            for name in dirs:
                os.chmod(os.path.join(top, name), 0o755)
        shutil.rmtree(base)


def _make_database(path: Path) -> None:
    with nbflow.Runtime(str(path)) as rt:
        rt.start(_answer, 1).result(timeout=30)


@nbflow.workflow(name="tests.paths.answer")
def _answer(x: int) -> int:
    return x


def _deny_writes(folder: Path) -> None:
    folder.chmod(0o555)
    if os.geteuid() != 0 and os.access(folder, os.W_OK):
        pytest.skip("this user may write a folder without write permission (a capability)")


# -- a read-only folder, made real two ways -------------------------------------------------------


@dataclass
class ReadOnly:
    """A folder that the user :attr:`attempt` runs as cannot write, holding ``existing.duckdb``."""

    folder: Path
    attempt: Callable[..., Outcome]
    cli: Callable[[list[str]], tuple[int, str]]  # (exit status, stderr) of the `nbflow` command


@pytest.fixture(params=["read-only mount", "permissions"])
def read_only(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[ReadOnly]:
    if request.param == "read-only mount":
        folder = tmp_path / "ro"
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"this machine cannot mount a tmpfs here: {_first_line(done.stderr)}")
        try:
            _make_database(folder / "existing.duckdb")
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

            def attempt(path: str | None, env: dict[str, str] | None = None) -> Outcome:
                with pytest.MonkeyPatch.context() as patch:
                    patch.delenv("NBFLOW_DATABASE", raising=False)
                    for name, value in (env or {}).items():
                        patch.setenv(name, value)
                    return attempt_here(path)

            def cli(args: list[str]) -> tuple[int, str]:
                capsys.readouterr()
                code = cli_main(args)
                return code, capsys.readouterr().err

            yield ReadOnly(folder, attempt, cli)
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        user: OtherUser = request.getfixturevalue("other_user")
        folder = user.base / "ro"
        folder.mkdir()
        _make_database(folder / "existing.duckdb")
        user.give(folder / "existing.duckdb")  # the file is theirs to write, not the folder
        _deny_writes(folder)

        def cli_as_user(args: list[str]) -> tuple[int, str]:
            done = user.run("-m", "nbflow", *args)
            return done.returncode, done.stderr

        yield ReadOnly(folder, user.attempt, cli_as_user)


def test_a_new_file_in_a_read_only_folder_is_refused(read_only: ReadOnly) -> None:
    before = tree(read_only.folder)
    path = str(read_only.folder / "new.duckdb")
    outcome = read_only.attempt(path)
    assert_refused(outcome, path)
    assert "cannot be written" in outcome["message"], outcome
    assert tree(read_only.folder) == before


def test_a_missing_folder_under_a_read_only_folder_is_refused(read_only: ReadOnly) -> None:
    before = tree(read_only.folder)
    path = str(read_only.folder / "sub" / "deeper" / "x.duckdb")
    outcome = read_only.attempt(path)
    assert_refused(outcome, path)
    assert "does not exist and cannot be made" in outcome["message"], outcome
    assert tree(read_only.folder) == before


def test_an_existing_database_in_a_read_only_folder_is_refused_at_open(
    read_only: ReadOnly,
) -> None:
    """Before, a writable file in a folder that is not opened, and every commit failed: DuckDB
    writes its log beside the file."""
    before = tree(read_only.folder)
    path = str(read_only.folder / "existing.duckdb")
    outcome = read_only.attempt(path)
    assert_refused(outcome, path, "nbflow.configure(", "copy")
    assert tree(read_only.folder) == before


def test_the_default_database_of_a_notebook_in_a_read_only_folder(read_only: ReadOnly) -> None:
    """``.nbflow/<notebook>.duckdb`` beside a notebook in a folder that cannot be written."""
    notebook = read_only.folder / "analysis.ipynb"
    before = tree(read_only.folder)
    outcome = read_only.attempt(None, env={"JPY_SESSION_NAME": str(notebook)})
    assert_refused(outcome, str(read_only.folder / ".nbflow" / "analysis.duckdb"))
    assert tree(read_only.folder) == before


def test_the_command_says_it_in_one_line(read_only: ReadOnly) -> None:
    path = str(read_only.folder / "sub" / "x.duckdb")
    code, err = read_only.cli(["--db", path, "list"])
    assert code == 1, err
    assert err.startswith("nbflow: error: Cannot use") and err.count("\n") == 1, err
    assert "Traceback" not in err, err


# -- permissions ----------------------------------------------------------------------------------


def test_a_file_this_user_may_not_read_is_refused(other_user: OtherUser) -> None:
    path = other_user.base / "secret.duckdb"
    _make_database(path)
    path.chmod(0o000 if os.geteuid() != 0 else 0o600)
    if os.geteuid() != 0 and os.access(path, os.R_OK):
        pytest.skip("this user may read a file without read permission (a capability)")
    before = path.read_bytes() if os.geteuid() == 0 else None
    outcome = other_user.attempt(str(path))
    assert_refused(outcome, str(path), "permission")
    assert "may not read and write it" in outcome["message"], outcome
    if before is not None:
        assert path.read_bytes() == before


def test_a_log_this_user_may_not_write_is_refused(other_user: OtherUser) -> None:
    """The file and its folder are the user's; the log DuckDB left beside the file (holding a
    commit) is not: before, the file opened and every commit failed."""
    folder = other_user.base / "logged"
    folder.mkdir()
    path = folder / "x.duckdb"
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 0, crashed.stderr
    wal = Path(f"{path}.wal")
    assert wal.stat().st_size > 0, "the crashed process left no log"
    other_user.give(folder, path)
    wal.chmod(0o444)
    if os.geteuid() != 0 and os.access(wal, os.W_OK):
        pytest.skip("this user may write a file without write permission (a capability)")
    outcome = other_user.attempt(str(path))
    assert_refused(outcome, str(path), repr(str(wal)), "do not delete it")


# -- places that are no folder or no file ---------------------------------------------------------


def test_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for path in (notes / "x.duckdb", notes / "sub" / "x.duckdb"):
        outcome = attempt_here(str(path))
        assert_refused(outcome, str(path))
        assert f"{str(notes)!r} is a file, not a folder" in outcome["message"], outcome
    assert tree(tmp_path) == ["notes.txt"] and notes.read_text() == "mine"


def test_a_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "db.duckdb"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    outcome = attempt_here(str(folder))
    assert_refused(outcome, str(folder), repr(str(folder / "nbflow.duckdb")))
    assert "it is a folder, not a file" in outcome["message"], outcome
    assert tree(tmp_path) == ["db.duckdb", "db.duckdb/keep.txt"]


def test_a_named_pipe_is_refused_at_once(tmp_path: Path) -> None:
    """Before, reading the header of a pipe waited for a writer forever."""
    pipe = tmp_path / "pipe.duckdb"
    os.mkfifo(pipe)
    outcomes: list[Outcome] = []
    opener = threading.Thread(target=lambda: outcomes.append(attempt_here(str(pipe))), daemon=True)
    opener.start()
    try:
        wait_until(lambda: not opener.is_alive(), timeout=10)
    finally:
        if opener.is_alive():  # let the reader go: a writer comes and leaves
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    assert_refused(outcomes[0], str(pipe))
    assert "not a regular file" in outcomes[0]["message"], outcomes[0]
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_a_relative_path_whose_working_folder_is_gone_is_refused(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()
        outcome = attempt_here("nbflow.duckdb")
    finally:
        os.chdir(here)
    assert_refused(outcome, "nbflow.duckdb", "os.chdir", "absolute path")
    assert "working folder, which no longer exists" in outcome["message"], outcome
    assert tree(tmp_path) == []


def test_folders_made_for_a_file_duckdb_cannot_open_are_removed(tmp_path: Path) -> None:
    """A file name longer than the file system allows: the folders were made, DuckDB failed."""
    path = tmp_path / "new" / "deeper" / ("x" * 300 + ".duckdb")
    outcome = attempt_here(str(path))
    assert tree(tmp_path) == [], "half-made folders were left"
    assert outcome.get("database_error") and not outcome.get("opened"), outcome
    assert outcome["path"] == str(path), outcome
    assert "$NBFLOW_DATABASE" in outcome["message"], outcome


def test_the_default_database_beside_a_notebook_named_under_the_server_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jupyter_server names a session started without a name by the notebook's path under its
    root (``sub/analysis.ipynb``), while the kernel runs in the notebook's folder: before, the
    default database went to ``sub/sub/.nbflow/``, a folder made elsewhere."""
    folder = tmp_path / "sub"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("NBFLOW_DATABASE", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "sub/analysis.ipynb")
    with nbflow.Runtime() as rt:
        assert Path(rt.database).resolve() == folder / ".nbflow" / "analysis.duckdb"
    assert tree(tmp_path) == ["sub", "sub/.nbflow", "sub/.nbflow/analysis.duckdb"]


def test_configure_with_a_place_nbflow_cannot_use_keeps_the_default_running(
    tmp_path: Path,
) -> None:
    """The class of defect 10 in the API: ``nbflow.configure(bad)`` closed the default runtime
    before it found the new place unusable, so a running workflow was interrupted for nothing."""
    release = threading.Event()

    @nbflow.step(name="tests.paths.held")
    def held() -> str:
        release.wait(30)
        return "done"

    @nbflow.workflow(name="tests.paths.holder")
    def holder() -> str:
        return held()

    first = nbflow.configure(tmp_path / "first.duckdb")
    try:
        handle = nbflow.start(holder)
        (tmp_path / "a-file").write_text("")
        with pytest.raises(nbflow.DatabaseError, match="a-file"):
            nbflow.configure(tmp_path / "a-file" / "nbflow.duckdb")
        assert nbflow.runtime() is first and not first.closed
        release.set()
        assert handle.result(timeout=30) == "done"
        again = nbflow.configure(tmp_path / "first.duckdb")  # the same file: let go, then reopened
        assert again is not first and first.closed and nbflow.runtime() is again
        assert again.status(handle.workflow_id) == nbflow.Status.SUCCESS
    finally:
        release.set()
        nbflow._api._close_default()
