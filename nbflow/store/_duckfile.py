"""The DuckDB file behind a store: whether nbflow can use the place a path names, and one owner
per file in this process.

**One owner.** DuckDB's lock on a file is a POSIX lock, which the process that holds it never
conflicts with: a second connection of the same process opens the file again, through any
spelling DuckDB does not itself recognize as the same (a hard link, a bind-mounted folder,
another case on a case-insensitive file system). Each keeps its own write-ahead log, named after
its path, and the last to close writes its view over the other's: committed workflows vanish. So
an owner is keyed by the file's identity, ``(st_dev, st_ino)``, and by the log DuckDB keeps beside
it (``<real path>.wal``, which would be shared by a file deleted and created again while open).
The lock below is held from the first look at the file until DuckDB has it open: two stores
opening a file that does not exist yet, through two spellings, cannot both find it missing.

**A usable place.** nbflow opens its database for writing, and DuckDB writes its log beside the
file at every commit. A path in a folder that cannot be written, under a file, that is a folder,
that cannot be read, or a file with other names (hard links: each name gets a log of its own) is
refused with a :class:`~nbflow._errors.DatabaseError` naming the path and the way out, before
anything is created; the folders made for a new file are removed again when DuckDB cannot open
it.

**The holder named.** Once DuckDB has the file open, the store names this process beside it
(``<file>.holder``, see :mod:`nbflow.store._duckholder`), removed when the store is disowned
(after its compaction at close); a process refused by DuckDB's lock is told the notebook and
kernel that hold the file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nbflow._dberrors import DatabaseError, DatabaseLockedError
from nbflow.store._duckholder import read_holder, remove_holder, write_holder
from nbflow.text._hints import hint

__all__ = ["Key", "disown", "open_owned"]

T = TypeVar("T")
#: ``(st_dev, st_ino)`` of a file; ``("wal", path)`` of the log DuckDB keeps beside it;
#: ``("memory", name)`` of a named in-memory database (DuckDB shares those within a process).
Key = tuple[int, int] | tuple[str, str]

_owned: set[Key] = set()  # the keys of every file a store of this process has open
_owned_lock = threading.Lock()  # held from a store's first look at its file until DuckDB opened it
_noted: dict[Key, str] = {}  # the path of each owned file whose holder note this process wrote


def _use(example: str) -> str:
    """How to point nbflow at another database, as the reader gives commands."""
    return f"{hint('db', example)} or $NBFLOW_DATABASE"


def _way_out() -> str:
    return f"Use a file in a folder this user can write, with {_use('path/to/nbflow.duckdb')}"


def open_owned(
    path: str, connect: Callable[[], T], close: Callable[[T], None]
) -> tuple[tuple[Key, ...], T]:
    """Check the place ``path`` names, take it for this store and open it with ``connect()``.

    Returns:
        The keys the store owns (none for ``:memory:``: each is a database of its own), to be
        given to :func:`disown` once the store is closed, and what ``connect()`` returned.

    Raises:
        DatabaseLockedError: Another store of this process has the file (or its log) open.
        DatabaseError: nbflow cannot use the place (nothing was created).
    """
    if path == ":memory:":
        return (), connect()
    with _owned_lock:
        if path.startswith(":memory:"):  # a named in-memory database, shared within a process
            keys: tuple[Key, ...] = (("memory", path),)
            _refuse_owned(path, keys)
            con = connect()
        else:
            found = _inspect(path)
            wal: Key = ("wal", os.path.realpath(path) + ".wal")  # as DuckDB names it
            if found is not None:
                keys = (_identity(found, path), wal)
                _refuse_owned(path, keys)
                _check_access(path, found)
                con = _connect_named(path, connect)
            else:
                _refuse_owned(path, (wal,))  # e.g. the file of an open store was deleted
                created = _make_folders(path)
                try:
                    con = _connect_named(path, connect)
                except BaseException:
                    _remove_folders(created)
                    raise
                keys = (_identity_after(path), wal)
                if _owned & set(keys):  # linked meanwhile to an owned file, by someone else
                    close(con)
                    _refuse_owned(path, keys)
            write_holder(path)
            _noted[keys[0]] = path
        _owned.update(keys)
    return keys, con


def disown(keys: tuple[Key, ...]) -> None:
    """Free the file of a store that was closed (or failed to open), and its holder note."""
    with _owned_lock:
        _owned.difference_update(keys)
        for key in keys:
            noted = _noted.pop(key, None)
            if noted is not None:
                remove_holder(noted)


def _connect_named(path: str, connect: Callable[[], T]) -> T:
    """``connect()``; refused by another process's lock, the error names the notebook and kernel
    that hold the file, as the note beside it says (a stale note is not believed)."""
    try:
        return connect()
    except DatabaseLockedError as exc:
        holder = read_holder(path, exc.pid)
        if holder is None:  # (DuckDB's lock message adds nothing: one traceback, not two)
            raise exc from None
        raise DatabaseLockedError(
            path,
            holder.pid,
            notebook=_as_seen_here(holder.notebook),
            kernel=holder.kernel,
            since=holder.started,
        ) from None  # (what DuckDB said is in the error: one traceback, not two)


def _refuse_owned(path: str, keys: tuple[Key, ...]) -> None:
    if _owned.intersection(keys):
        raise DatabaseLockedError(path, os.getpid(), here=True)


def _identity(found: os.stat_result, path: str) -> Key:
    if found.st_ino == 0:  # a file system that gives no inode numbers: the real path it is
        return ("wal", os.path.realpath(path) + ".wal")
    return (found.st_dev, found.st_ino)


def _identity_after(path: str) -> Key:
    """The key of the file DuckDB has just created at ``path``."""
    try:
        return _identity(os.stat(path), path)
    except OSError:
        return ("wal", os.path.realpath(path) + ".wal")


def _as_seen_here(notebook: str | None) -> str | None:
    """A notebook's path, relative to the working folder when it is inside it (a notebook's
    kernel works in the notebook's folder: the other notebook is named as the file browser
    shows it beside this one)."""
    if notebook is None or not os.path.isabs(notebook):
        return notebook
    with contextlib.suppress(OSError, ValueError):
        relative = os.path.relpath(notebook)
        if not relative.startswith(os.pardir):
            return relative
    return notebook


# -- the place -----------------------------------------------------------------------------------


def _refuse(path: str, problem: str, fix: str | None = None) -> DatabaseError:
    return DatabaseError(
        f"Cannot use {path!r} as the nbflow database: {problem}. Nothing was created or "
        f"changed. {fix or _way_out()}.",
        path=path,
    )


def _inspect(path: str) -> os.stat_result | None:
    """The file at ``path`` (None when there is none, in a place where it can be created).

    Raises:
        DatabaseError: A place nbflow cannot use: under a file, a folder that cannot be entered,
            a folder where the file should be, or none that can be written where it is missing.
    """
    if not os.path.isabs(path):
        try:
            os.getcwd()
        except FileNotFoundError:
            raise _refuse(
                path,
                "it is relative to the working folder, which no longer exists (it was deleted or "
                "moved)",
                "Change to an existing folder (os.chdir), or give an absolute path with "
                f"{_use('/path/to/nbflow.duckdb')}",
            ) from None
    try:
        found = os.stat(path)
    except FileNotFoundError:
        _check_creatable(path)
        return None
    except NotADirectoryError:
        raise _refuse(path, f"{_file_on_the_way(path)!r} is a file, not a folder") from None
    except PermissionError:
        closed = _closed_on_the_way(path)
        raise _refuse(
            path,
            f"{_who()} may not enter the folder {closed!r}",
            f"{_way_out()}, or give this user access to {closed!r}",
        ) from None
    except OSError as exc:
        raise _refuse(path, exc.strerror or str(exc)) from exc
    if stat.S_ISDIR(found.st_mode):
        raise _refuse(
            path,
            "it is a folder, not a file",
            f"Point nbflow at a file with {_use(os.path.join(path, 'nbflow.duckdb'))}",
        )
    if not stat.S_ISREG(found.st_mode):
        raise _refuse(path, "it is not a regular file (a device, pipe or socket)")
    return found


def _check_creatable(path: str) -> None:
    """Refuse a missing file whose folder, or the nearest folder above it, cannot be written."""
    parent = Path(os.path.abspath(path)).parent
    base = parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise _refuse(path, f"{str(base)!r} is a file, not a folder")
    if not _may(base, os.W_OK | os.X_OK):
        where = f"its folder {str(parent)!r} cannot be written"
        if base != parent:
            where = f"its folder {str(parent)!r} does not exist and cannot be made in {str(base)!r}"
        raise _refuse(
            path,
            f"{where}: {_why_unwritable(base)}",
            f"{_way_out()}, or make {str(base)!r} writable",
        )


def _check_access(path: str, found: os.stat_result) -> None:
    """Refuse an existing file with other names, that nbflow cannot open for writing, or whose
    log cannot be.

    DuckDB writes its log beside the file (beside a symlink's target, but beside a hard link
    itself) at every commit and removes it at a checkpoint: without this, a file in a folder that
    cannot be written opens, and every commit after fails; and commits made through one hard
    link are missed when the file is next opened through another (then the first link's log no
    longer fits the file: both were lost).
    """
    if found.st_nlink > 1:
        raise _refuse(
            path,
            f"the file has {found.st_nlink} names (hard links), and DuckDB keeps its log beside "
            "the name it is opened by: what is committed through one name is missed, and lost, "
            "when it is opened through another",
            "Keep one name: remove the other links (a hard link is not a copy), or copy the file "
            f"and point nbflow at the copy with {_use('path/to/copy.duckdb')}",
        )
    if not _may(path, os.R_OK | os.W_OK):
        copy = (
            "copy it to a folder you can write and point nbflow at the copy with "
            f"{_use('path/to/copy.duckdb')}"
        )
        if _read_only(path):
            raise _refuse(
                path, "it is on a read-only file system", f"Mount it read-write, or {copy}"
            )
        raise _refuse(
            path,
            f"{_who()} may not read and write it (nbflow writes to its database)",
            f"Give this user read and write permission on it, or {copy}",
        )
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    wal = real + ".wal"
    if not _may(Path(folder), os.W_OK | os.X_OK):
        raise _refuse(
            path,
            f"DuckDB writes a log beside the file ({wal!r}) at every commit, and its folder "
            f"{folder!r} cannot be written: {_why_unwritable(Path(folder))}",
            "Make the folder writable, or copy the file to a folder you can write and point "
            f"nbflow at the copy with {_use('path/to/copy.duckdb')}",
        )
    if os.path.isdir(wal):
        raise _refuse(
            path,
            f"{wal!r}, where DuckDB keeps the file's log, is a folder",
            "Move that folder away (it is not nbflow's)",
        )
    # (An empty log is removed at open, which the writable folder allows.)
    if _size(wal) and not _may(Path(wal), os.R_OK | os.W_OK):
        raise _refuse(
            path,
            f"{_who()} may not read and write {wal!r}, the log DuckDB keeps beside the file "
            "(it may hold the file's last commits)",
            "Give this user read and write permission on the log (do not delete it), or open "
            "the database as the user who owns it",
        )


def _make_folders(path: str) -> list[Path]:
    """Create the missing folders of a new file; the ones created, the deepest last."""
    missing: list[Path] = []
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if folder.is_dir():  # made meanwhile by someone else: theirs
                continue
            _remove_folders(created)
            raise _refuse(path, f"{str(folder)!r} is a file, not a folder") from None
        except OSError as exc:
            _remove_folders(created)
            raise _refuse(
                path, f"its folder {str(folder)!r} cannot be created ({exc.strerror or exc})"
            ) from exc
        created.append(folder)
    return created


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` created (those still empty), deepest first."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return  # something was put in it: keep it and the folders above it


def _file_on_the_way(path: str) -> str:
    """The first existing non-folder among ``path``'s folders (what ``ENOTDIR`` was about)."""
    for folder in reversed(Path(os.path.abspath(path)).parents):
        if folder.exists() and not folder.is_dir():
            return str(folder)
    return str(Path(path).parent)


def _closed_on_the_way(path: str) -> str:
    """The first of ``path``'s folders that this user may not enter."""
    for folder in reversed(Path(os.path.abspath(path)).parents):
        if not _may(folder, os.X_OK):
            return str(folder)
    return str(Path(path).parent)


def _may(path: Path | str, mode: int) -> bool:
    effective = os.access in os.supports_effective_ids
    return os.access(path, mode, effective_ids=effective)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _read_only(path: Path | str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # (no statvfs on Windows)
        return False


def _why_unwritable(folder: Path) -> str:
    if _read_only(folder):
        return "it is on a read-only file system"
    return f"{_who()} may not write in it"


def _who() -> str:
    """This user, by name where known: "this user (nobody)"."""
    try:
        import pwd

        return f"this user ({pwd.getpwuid(os.geteuid()).pw_name})"
    except (ImportError, KeyError, AttributeError):  # (no pwd on Windows)
        return "this user"
