"""The DuckDB store: one embedded file, one process, one cursor per thread."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from nbflow._dberrors import (
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    SchemaVersionError,
)
from nbflow._errors import RuntimeClosedError
from nbflow.store._duckcompact import DuckMaintenance, remove_stale
from nbflow.store._duckfile import disown, open_owned
from nbflow.store._duckinsert import insert_statement
from nbflow.store._ops import Finish, Op, WorkflowRow
from nbflow.store._schema import MIGRATIONS, TABLES
from nbflow.store._sql import (
    FINISH_UPDATE,
    Execute,
    SQLStore,
    claim_statements,
    finish_params,
)
from nbflow.text._hints import hint

__all__ = ["DuckDBStore"]

_LOCK_PID = re.compile(r"\(PID (\d+)\)")

_FIRST_LIMIT = 128 << 20  # bytes: DuckDB's first memory limit (see _CONFIG)


def _most_memory() -> int:
    """DuckDB's default memory limit: 80% of the machine's memory (1 TB where unknown)."""
    try:
        return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # (no sysconf on Windows)
        return 1 << 40


_MOST_MEMORY = _most_memory()
T = TypeVar("T")
_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    # No ZSTD for long strings and blobs: DuckDB compresses a column's values together, so reading
    # one large value (a durable cell's pickle) decompressed every large value stored near it
    # (six 46 MB pickles: 1.5 s to read one, against 0.3 s stored plain). Files grow instead.
    "zstd_min_string_length": 1 << 40,
    # DuckDB keeps the blocks it wrote in its buffer pool up to its memory limit (80% of RAM by
    # default): writing 400 MB grew the process by 350 MB. nbflow starts small and raises the
    # limit when a query needs more (a large value: see DuckDBStore._with_room).
    "memory_limit": f"{_FIRST_LIMIT}B",
    # DuckDB runs each query on the thread that asks: nbflow's queries are small (a commit, a
    # page of a stream), and handing their tasks to a worker thread made them slower (a stream
    # item written to read in the same process, p50: 2.1 -> 1.3 ms; a trivial workflow,
    # start to result: 2.05 -> 1.81 ms). A large scan through DuckDBStore.sql() may ask for
    # more with "SET threads TO n" (DuckDB's setting is the whole file's, commits included).
    "threads": 1,
}
_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB file
_LOCKED = ("Could not set lock on file", "Conflicting lock is held")
_CORRUPT = ("not a valid DuckDB database file", "Could not read enough bytes", "corrupt")
#: A DuckDB file is its main header and two database headers (4096 bytes each), then its blocks.
_HEADERS_SIZE = 3 * 4096
#: The tables nbflow's migrations create: one of them without ``nbflow_schema`` is someone else's.
_NBFLOW_TABLES = frozenset(
    re.findall(r"CREATE TABLE (\w+)", " ".join(s for script in MIGRATIONS for s in script))
) | frozenset(TABLES)


def _check_place() -> str:
    return (
        f"Use another file with {hint('db', 'path/to/nbflow.duckdb')} or $NBFLOW_DATABASE, or "
        "check that this user may read and write the file and its folder"
    )


def _corrupt(path: str, detail: str) -> DatabaseCorruptError:
    return DatabaseCorruptError(
        f"The file {path!r} is not a DuckDB database nbflow can open ({detail}). Nothing was "
        "changed in it. Point nbflow at another file, or move this one away if it is yours to "
        "discard.",
        path=path,
    )


def _check_header(path: str) -> None:
    """Refuse an existing non-empty file that is not DuckDB's, before DuckDB touches it."""
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DatabaseError(
            f"Cannot read the nbflow database {path!r} ({exc.strerror or exc}). Nothing was "
            f"changed. {_check_place()}.",
            path=path,
        ) from exc
    if head and head[8:12] != _MAGIC:
        raise _corrupt(path, "its header is not DuckDB's")


def _check_length(path: str, con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a file that ends before the last block its tables' data is stored in (cut short,
    e.g. by a copy that was interrupted), before anything is read from or written to it.

    DuckDB reads the catalog at open but a table's data blocks only when they are queried:
    without this, such a file opens and its first read fails. (The header's block count is no
    measure: DuckDB trims free blocks off the end of a healthy file.)
    """
    row = con.execute(
        "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()"
    ).fetchone()
    if row is None:
        return
    block_size = int(row[0])
    last = -1
    for (table,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall():
        used = con.execute(
            "SELECT max(block_id) FROM pragma_storage_info(?) WHERE persistent", [table]
        ).fetchone()
        if used and used[0] is not None:
            last = max(last, int(used[0]))
    expected = _HEADERS_SIZE + (last + 1) * block_size
    size = os.stat(path).st_size
    if size < expected:
        raise _corrupt(
            path,
            f"it is cut short: {size} bytes, where its data is stored up to byte {expected}",
        )


def _translate_open_error(path: str, exc: Exception) -> DatabaseError:
    """An nbflow error for what DuckDB said, matched on DuckDB's wording (not on the path)."""
    text = str(exc).replace(path, "<file>")
    if any(phrase in text for phrase in _LOCKED):
        match = _LOCK_PID.search(text)
        return DatabaseLockedError(path, int(match.group(1)) if match else None)
    if any(phrase in text for phrase in _CORRUPT):
        return _corrupt(path, str(exc))
    return DatabaseError(
        f"Cannot open the nbflow database {path!r}: {exc}. {_check_place()}.", path=path
    )


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    if not path.startswith(":memory:"):  # (":memory:NAME": an in-memory database, named)
        _check_header(path)
    try:
        # No extension is ever fetched or loaded behind the user's back (e.g. to read SQLite).
        return duckdb.connect(path, config=_CONFIG)
    except duckdb.Error as exc:
        raise _translate_open_error(path, exc) from exc


def _close_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):
        con.close()


class DuckDBStore(DuckMaintenance, SQLStore):
    """A DuckDB file (or ``:memory:``) holding workflows, steps and streams.

    DuckDB lets one process open a file for writing; inside it, every thread gets its own cursor.
    """

    single_process = True
    json_pages = _range_pages = True  # (measured faster here; see store/_sqlpages.py)

    def __init__(self, path: str) -> None:
        self.url = path
        # One owner per file in a process, keyed by the file's identity: refused before DuckDB
        # touches it, as is a place nbflow cannot use (see _duckfile).
        self._owned, self._con = open_owned(path, lambda: _connect(path), _close_quietly)
        try:
            self._open(path)
        except BaseException:
            _close_quietly(self._con)
            disown(self._owned)
            raise

    def _open(self, path: str) -> None:
        self._limit = _FIRST_LIMIT  # DuckDB's memory limit now (raised by _with_room)
        self._limit_lock = threading.Lock()
        self._local = threading.local()
        # One write transaction at a time: DuckDB fails the second of two that touch one row.
        self._writing = threading.Lock()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._idle = threading.Condition(threading.Lock())  # guards the three below
        self._busy = 0  # queries running now
        self._closed = False
        try:
            if not path.startswith(":memory:"):
                _check_length(path, self._con)
                remove_stale(path)  # a copy a compaction killed midway left (_duckcompact)
            self._migrate()
        except duckdb.Error as exc:
            raise _translate_open_error(path, exc) from exc

    # -- connections ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _using(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor, counted as busy so that :meth:`close` waits for it."""
        with self._idle:
            if self._closed:
                raise RuntimeClosedError(
                    f"The nbflow database {self.url!r} was closed. Open it again with "
                    "nbflow.configure() or nbflow.Runtime()."
                )
            self._busy += 1
            cursor = getattr(self._local, "cursor", None)
            if cursor is None:
                cursor = self._local.cursor = self._con.cursor()
                self._cursors.append(cursor)
        try:
            yield cursor
        finally:
            with self._idle:
                self._busy -= 1
                if not self._busy:
                    self._idle.notify_all()

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            with self._using() as cursor:
                return cursor.execute(sql, params).fetchall()

        return self._with_room(run)

    def _with_room(self, run: Callable[[], T]) -> T:
        """``run()``; when DuckDB runs out of its memory limit (a large value), raise the limit
        (four times, up to 80% of the machine's memory) and run it again (a failed statement or
        transaction left nothing behind)."""
        while True:
            limit = self._limit
            try:
                return run()
            except duckdb.OutOfMemoryException:
                with self._limit_lock:
                    if self._limit == limit:  # (not raised meanwhile by another thread)
                        if limit >= _MOST_MEMORY:
                            raise
                        self._limit = min(4 * limit, _MOST_MEMORY)
                        self._con.execute(f"SET memory_limit = '{self._limit}B'")

    def sql(self, query: str, params: Sequence[Any] | None = None, frames: Any = None) -> Any:
        """SQL on this thread's cursor: a DuckDB relation, evaluated when fetched (before the runtime
        closes). ``frames``: ``{name: a DataFrame or Arrow table}`` to query by that name."""
        with self._using() as cursor:
            for name, frame in (frames or {}).items():
                cursor.register(name, frame)
            return cursor.sql(query, params=params)

    # -- schema --------------------------------------------------------------------------------

    def _refuse_foreign(self) -> None:
        """Refuse, before creating anything, a file whose tables of nbflow's names are not
        nbflow's: it has no ``nbflow_schema`` table, so it belongs to another application."""
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = current_schema()"
        ).fetchall()
        names = {str(name).lower(): str(name) for (name,) in rows}
        if "nbflow_schema" in names:
            return
        theirs = sorted(names[n] for n in names.keys() & _NBFLOW_TABLES)
        if theirs:
            listed = ", ".join(repr(t) for t in theirs)
            tables = "a table" if len(theirs) == 1 else "tables"
            raise DatabaseError(
                f"The DuckDB file {self.url!r} belongs to another application: it has {tables} "
                f"named {listed}, which nbflow would create, and no nbflow_schema table. Nothing "
                "was changed in it. Point nbflow at another file, e.g. with "
                f"{hint('db', 'nbflow.duckdb')} or $NBFLOW_DATABASE.",
                path=self.url,
            )

    def _migrate(self) -> None:
        con = self._con
        self._refuse_foreign()
        con.execute("CREATE TABLE IF NOT EXISTS nbflow_schema (version INTEGER NOT NULL)")
        row = con.execute("SELECT max(version) FROM nbflow_schema").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise SchemaVersionError(self.url, version, len(MIGRATIONS))
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in script:
                    con.execute(statement)
                con.execute("INSERT INTO nbflow_schema VALUES (?)", [number])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # -- writes --------------------------------------------------------------------------------

    def commit(self, ops: Sequence[Op]) -> set[str]:
        statements = self._plan(ops)
        return self._with_room(lambda: self._commit(statements))

    def _commit(self, statements: list[tuple[str, Sequence[Any]]]) -> set[str]:
        with self._writing, self._using() as cur:
            if len(statements) == 1:  # one statement commits by itself: no BEGIN/COMMIT
                cur.execute(*statements[0])
                return set()
            cur.execute("BEGIN TRANSACTION")
            try:
                for sql, params in statements:
                    cur.execute(sql, params)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return set()

    def _insert(self, table: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, Sequence[Any]]:
        sql, params = insert_statement(table, rows)
        if table == "messages":  # a send that is replayed is skipped
            sql = sql.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
        elif table == "step_cache":  # a refreshed or expired entry is replaced
            sql = sql.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)
        return sql, params

    def _finish(self, statements: list[tuple[str, Sequence[Any]]], op: Finish) -> None:
        statements.append((FINISH_UPDATE, finish_params(op)))
        if op.markers is None:
            statements.append(
                (
                    'INSERT INTO streams SELECT workflow_id, key, max("offset") + 1, NULL, NULL, '
                    "TRUE, NULL, NULL, ? FROM streams WHERE workflow_id = ? "
                    "GROUP BY workflow_id, key HAVING NOT bool_or(is_end)",
                    [op.ended_at, op.workflow_id],
                )
            )
        elif op.markers:
            statements.append(self._insert("streams", op.markers))

    # -- ownership ---------------------------------------------------------------------------

    _name_in = "list_contains($4, name)"
    _entry_in = "list_contains($1, entry)"

    @contextlib.contextmanager
    def _queue_transaction(self, queue_name: str) -> Iterator[Execute]:
        with self._writing, self._using() as cur:
            yield lambda sql, params: cur.execute(sql, params).fetchall()

    def claim(
        self,
        workflow_id: str,
        executor_id: str,
        now: float,
        *,
        reopen: bool = False,
        recovery: bool = False,
    ) -> WorkflowRow | None:
        # One process holds the file: a PENDING workflow not running here is interrupted.
        row = self.get_workflow(workflow_id)
        if row is None or row.status == "SUCCESS" or (row.status != "PENDING" and not reopen):
            return None
        self._commit(list(claim_statements(workflow_id, now, row.status, recovery)))
        return self.get_workflow(workflow_id)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new queries, wait (up to ``timeout`` s) for those running, then close."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            self._idle.wait_for(lambda: not self._busy, timeout)
            cursors, self._cursors = self._cursors, []
        for cursor in cursors:
            with contextlib.suppress(duckdb.Error):  # closing is best effort
                cursor.close()
        try:
            self._close_and_compact()
        finally:
            disown(self._owned)


def default_path() -> str:
    """The default database file (see :func:`nbflow.store.resolve_database`)."""
    notebook = os.environ.get("JPY_SESSION_NAME")
    if notebook and notebook.endswith(".ipynb"):
        nb = Path(notebook)
        # jupyter_server gives the notebook's full path, or (a session started without a name)
        # its path under the server's root, which is not the kernel's working folder: that is
        # the notebook's folder itself.
        folder = nb.parent if nb.is_absolute() else Path()
        return str(folder / ".nbflow" / f"{nb.stem}.duckdb")
    return str(Path(".nbflow") / "nbflow.duckdb")
