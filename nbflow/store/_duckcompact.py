"""Giving a DuckDB file's space back: deletes in one transaction, and compaction when it closes.

DuckDB marks deleted rows and reuses their blocks for later writes, but never shrinks a file
whose later blocks are in use: a ``CHECKPOINT`` after a large delete leaves its size as it was.
Copying the database into a fresh file (``ATTACH``, ``COPY FROM DATABASE``) writes only what is
alive (measured: 40 MB of workflows, most pruned, became 1 MB).

**When.** A store counts the bytes its deletes removed (:meth:`DuckMaintenance._freed`). When it
closes, it compacts the file if those bytes and the blocks DuckDB reports free together make at
least :data:`SHARE` of the file, or :data:`ENOUGH` bytes; ``compact_on_close = True`` compacts
anyway (``Runtime.close(compact=True)``, ``nbflow compact``), ``False`` never. A file that cannot
be compacted (no room on the disk, a log left beside it) is left as it was, with a warning.

**Crash safety.** The copy is written to ``<file>.compacting`` while DuckDB still holds the file
(its lock keeps other processes out), checkpointed, closed and fsynced. Then the store closes the
file, takes the same kind of lock DuckDB takes (a POSIX record lock on the whole file: another
process opening it meanwhile gets DuckDB's usual "in use" error), replaces the file by the copy
with one ``os.replace`` and fsyncs the folder. A ``kill -9`` at any moment leaves either the old
file or the new, each complete; a copy left behind is removed the next time the file is opened.
If another process took the file in the instant between the close and the lock, the copy is
dropped and the file left as it is. (Windows, which cannot replace an open file: no compaction.)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import duckdb

from nbflow.store import _schema as schema
from nbflow.store._sqldelete import Execute

__all__ = ["ENOUGH", "SHARE", "SUFFIX", "DuckMaintenance", "file_size", "remove_stale"]

logger = logging.getLogger("nbflow")
T = TypeVar("T")

#: Compact at close when what deletes freed is at least this share of the file ...
SHARE = 0.25
#: ... or at least this many bytes.
ENOUGH = 256 << 20
#: The copy is written beside the file, under its name and this suffix.
SUFFIX = ".compacting"
_COPY = "nbflow_compact"  # the name the copy is attached under


class Staged(NamedTuple):
    """A compacted copy written beside the file, to replace it once the file is closed."""

    path: str
    copy: str


def file_size(path: str) -> int:
    """Bytes of a DuckDB file and the log beside it (0 for what does not exist)."""
    total = 0
    for name in (path, path + ".wal"):
        with contextlib.suppress(OSError):
            total += os.stat(name).st_size
    return total


def remove_stale(path: str) -> None:
    """Remove a copy a compaction left behind (killed before it replaced the file). Called by
    the store that holds the file: no compaction of it can be running."""
    for name in (path + SUFFIX, path + SUFFIX + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def _bytes_of(table: str) -> str:
    """SQL: the bytes a table's values hold in the selected rows."""
    parts = [
        f"coalesce({'octet_length' if kind == schema.BLOB else 'strlen'}({name}), 0)"
        for name, kind in schema.TABLES[table]
        if kind in (schema.TEXT, schema.BLOB)
    ]
    return f"coalesce(sum({' + '.join(parts)}), 0)"


def _fsync(path: str, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DuckMaintenance:
    """What a DuckDB store adds to the shared delete queries: list parameters, the write
    transaction, counting what deletes free, and compaction when it closes."""

    #: Compact when closing: None (default) when deletes freed enough, True always, False never.
    compact_on_close: bool | None = None
    _freed_bytes: int = 0

    # provided by DuckDBStore
    url: str
    _con: duckdb.DuckDBPyConnection
    _writing: Any
    _using: Callable[[], contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]]
    _with_room: Callable[[Callable[[], Any]], Any]

    def _in_list(self, column: str, param: str, sql_type: str) -> str:
        kind = "VARCHAR" if sql_type == "text" else "INTEGER"
        return f"{column} IN (SELECT unnest({param}::{kind}[]))"

    @contextlib.contextmanager
    def _delete_transaction(self) -> Iterator[Execute]:
        with self._writing, self._using() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield lambda sql, params: cur.execute(sql, params).fetchall()
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _measure(self, execute: Execute, in_ids: str, ids: list[str]) -> int:
        total = 0
        for table, where in (
            ("workflows", in_ids),
            ("steps", in_ids),
            ("streams", in_ids),
            ("messages", in_ids.replace("workflow_id", "destination_id", 1)),
        ):
            [(nbytes,)] = execute(f"SELECT {_bytes_of(table)} FROM {table} WHERE {where}", [ids])
            total += int(nbytes)
        return total

    def _measure_records(self, execute: Execute, where: str, params: list[Any]) -> int:
        [(nbytes,)] = execute(f"SELECT {_bytes_of('steps')} FROM steps WHERE {where}", params)
        return int(nbytes)

    def _freed(self, nbytes: int) -> None:
        self._freed_bytes += max(nbytes, 1)  # (a delete of empty rows frees a little too)

    # -- compaction --------------------------------------------------------------------------

    def _close_and_compact(self) -> None:
        """Close the connection, compacting the file first when it is worth it."""
        staged = None
        if self.url.startswith(":memory:") or os.name == "nt":
            pass
        elif self.compact_on_close or (self.compact_on_close is None and self._worth_it()):
            try:
                staged = self._with_room(self._stage)
            except (duckdb.Error, OSError) as exc:
                logger.warning(
                    "nbflow: could not compact %s (%s); it is left as it was", self.url, exc
                )
                remove_stale(self.url)
        self._con.close()
        if staged is not None:
            _replace(staged)

    def _worth_it(self) -> bool:
        """Whether deletes freed enough of the file to copy it (see the module docstring)."""
        if not self._freed_bytes:
            return False
        size = file_size(self.url)
        self._con.execute("CHECKPOINT")
        row = self._con.execute(
            "SELECT block_size, free_blocks FROM pragma_database_size() "
            "WHERE database_name = current_database()"
        ).fetchone()
        free = self._freed_bytes + (int(row[0]) * int(row[1]) if row else 0)
        return free >= SHARE * size or free >= ENOUGH

    def _stage(self) -> Staged:
        """Write the compacted copy beside the file (durably); the file is still held."""
        con, path = self._con, self.url
        copy = path + SUFFIX
        remove_stale(path)
        con.execute("CHECKPOINT")
        [(name,)] = con.execute("SELECT current_database()").fetchall()
        con.execute(f"ATTACH '{_quoted(copy)}' AS {_COPY}")
        try:
            con.execute(f'COPY FROM DATABASE "{name}" TO {_COPY}')
            con.execute(f"CHECKPOINT {_COPY}")
        finally:
            con.execute(f"DETACH {_COPY}")
        if file_size(copy + ".wal"):  # (never seen: the checkpoint empties it)
            raise OSError(f"the copy {copy!r} kept a log")
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy + ".wal")  # (an empty one)
        _fsync(copy)
        _fsync(os.path.dirname(os.path.abspath(copy)))
        return Staged(path, copy)


def _quoted(path: str) -> str:
    return path.replace("'", "''")


def _open_here(path: str) -> bool:
    """Whether this process still has the file open (a DuckDB database kept alive elsewhere,
    e.g. by a relation of ``store.sql()``): it must not be replaced under it. Linux only."""
    real = os.path.realpath(path)
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                return True
    return False


def _replace(staged: Staged) -> None:
    """Replace the closed file by its copy, under a lock that keeps other processes out."""
    import fcntl

    path, copy = staged
    if file_size(path + ".wal") or _open_here(path):  # a log of the old file; or it is open
        logger.warning("nbflow: %s is still in use after closing; it was not compacted", path)
        remove_stale(path)
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:  # the lock DuckDB takes: whoever opens the file now is told it is in use
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process opened it in the instant since the close
            remove_stale(path)
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + ".wal")  # (an empty one)
        os.replace(copy, path)
        _fsync(os.path.dirname(os.path.abspath(path)))
    finally:
        os.close(fd)  # releases the lock (on the old file, now unlinked)
