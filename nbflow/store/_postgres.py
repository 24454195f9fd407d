"""The PostgreSQL store: one server shared by many processes and machines.

Tables live in their own schema (``nbflow`` unless the URL says ``?schema=name``), created by the same
ordered migrations as the DuckDB file. Connections:

- the committer thread has one of its own: each batch of the write log is one transaction, sent in
  pipeline mode, with bulk inserts over ``unnest()`` of arrays and one ``NOTIFY`` per workflow whose
  streams or status it changed (so a fast writer sends one notification per commit, not per item);
- reading threads borrow connections from a small pool and give them back;
- one session connection per runtime holds the executor's advisory lock and LISTENs; its thread
  (``nbflow-listener``) hands the ids of workflows other processes changed to the runtime.

**When a process is judged dead.** Every runtime registers an executor, whose listening session and
committer session each hold a shared session-level advisory lock on the executor's key for as long
as the runtime is open (so a commit still in flight from a killed process keeps it "alive" until
the server has finished it). PostgreSQL releases the locks when the sessions end: when
the runtime closes, when its process exits or is killed (``kill -9``: the kernel closes the socket at
once), or when the server notices a lost client (TCP keepalive, for a machine that vanished from the
network). A PENDING workflow whose executor holds no lock is interrupted, and ``recover()`` takes it
over with ``SELECT … FOR UPDATE SKIP LOCKED``: never one that a live process runs, and each one
once, however many processes recover at the same time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from nbflow._errors import DatabaseError, RuntimeClosedError, SchemaVersionError
from nbflow.store._base import Op, WorkflowRow, waking_workflow
from nbflow.store._schema import MIGRATIONS
from nbflow.store._sql import WORKFLOW_COLUMNS, SQLStore, Statement, reopen_statements

__all__ = ["PostgresStore"]

logger = logging.getLogger("nbflow")

_TYPES = {
    "workflows": (
        "text", "text", "text", "text", "bytea", "text", "bytea", "text", "bytea",
        "float8", "float8", "float8", "text", "text", "int4", "text", "float8",
    ),
    "messages": ("text", "text", "text", "text", "bytea", "float8"),
    "steps": ("text", "int4", "text", "text", "bytea", "text", "bytea", "float8", "float8", "int4"),
    "streams": ("text", "text", "int8", "text", "bytea", "bool", "int4", "int4", "float8"),
}  # fmt: skip
_STREAM_COLUMNS = (
    'workflow_id, key, "offset", value_json, value_pickle, is_end, function_id, attempt, created_at'
)
_CONFLICT = {"workflows": "(workflow_id)", "steps": "", "streams": "", "messages": ""}

#: Statements run at every open, after the migrations (idempotent; PostgreSQL only).
_SHARED_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS executors (
        executor_id VARCHAR PRIMARY KEY,
        lock_id INTEGER NOT NULL,
        host VARCHAR,
        pid INTEGER,
        started_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE SEQUENCE IF NOT EXISTS executor_lock AS INTEGER MAXVALUE 2147483647 CYCLE",
    "CREATE INDEX IF NOT EXISTS workflows_pending ON workflows (created_at) "
    "WHERE status = 'PENDING'",
]


def _translate(statement: str) -> str:
    """A migration written for DuckDB, in PostgreSQL's type names."""
    statement = re.sub(r"\bBLOB\b", "BYTEA", statement)
    return re.sub(r"\bDOUBLE\b", "DOUBLE PRECISION", statement)


def _binary(query: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A ``$n`` query as psycopg's ``%b`` placeholders (binary parameters), in order of use."""
    order: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        order.append(int(match.group(1)) - 1)
        return "%b"

    return _PLACEHOLDER.sub(placeholder, query.replace("%", "%%")), [params[i] for i in order]


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _sentence(exc: BaseException) -> str:
    """What psycopg said, on one line, ending with a full stop."""
    text = " ".join(str(exc).split())
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _unnest(table: str, first: int) -> str:
    """``unnest($first::type[], …)``: rows of ``table`` from one array parameter per column."""
    columns = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(_TYPES[table]))
    return f"unnest({columns})"


def _arrays(rows: list[Any]) -> list[list[Any]]:
    """Rows (tuples) as one list per column, the parameters of :func:`_unnest`."""
    return [list(column) for column in zip(*rows, strict=True)]


def _redact(url: str) -> str:
    """The URL without its password, for messages and ``Runtime.database``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _split_schema(url: str) -> tuple[str, str]:
    """``(url for libpq, schema)``: the ``schema`` query parameter is nbflow's, not libpq's."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "nbflow"
    kept = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            kept.append((name, value))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,47}", schema):
        raise DatabaseError(
            f"The schema {schema!r} in {_redact(url)!r} is not a plain SQL name: use letters, "
            "digits and underscores (at most 48), starting with a letter.",
            path=_redact(url),
        )
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


class _Pool:
    """Connections that reading threads borrow and give back (no threads of its own)."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], max_idle: int = 4) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self.closed = False

    @contextlib.contextmanager
    def connection(self, url: str) -> Iterator[psycopg.Connection[Any]]:
        with self._cond:
            if self.closed:
                raise RuntimeClosedError(
                    f"The nbflow database {url!r} was closed. Open it again with "
                    "nbflow.configure() or nbflow.Runtime()."
                )
            self._busy += 1
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            yield conn
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()
                reusable = conn is not None and not (conn.closed or conn.broken or self.closed)
                if reusable and len(self._idle) < self._max_idle:
                    self._idle.append(conn)  # type: ignore[arg-type]
                    conn = None
            if conn is not None:
                conn.close()

    def close(self, timeout: float) -> None:
        with self._cond:
            self.closed = True
            self._cond.wait_for(lambda: not self._busy, timeout)
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresStore(SQLStore):
    """A PostgreSQL database holding workflows, steps and streams, shared by processes.

    Args:
        url: ``postgresql://user:password@host:port/dbname``, optionally with ``?schema=name``
            (default ``nbflow``) to keep several independent nbflow histories in one database.
    """

    single_process = False
    poll_interval = 1.0

    def __init__(self, url: str) -> None:
        self.url = _redact(url)
        self._conninfo, self.schema = _split_schema(url)
        self._channel = f"nbflow_{self.schema}"
        self._lock_space = zlib.crc32(self.schema.encode()) & 0x7FFFFFFF
        self._queue_space = zlib.crc32(f"{self.schema}:queues".encode()) & 0x7FFFFFFF
        self._alive = (
            "EXISTS (SELECT 1 FROM executors e JOIN pg_locks l ON l.locktype = 'advisory' "
            "AND l.granted AND l.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) AND l.classid = "
            f"{self._lock_space} AND l.objid = e.lock_id AND l.objsubid = 2 "
            "WHERE e.executor_id = {executor})"
        )
        self._pool = _Pool(self._connect)
        self._writer: psycopg.Connection[Any] | None = None
        self._guarded: list[str] = []  # workflows the batch being planned writes to (committer)
        self._own_pids: set[int] = set()  # backends whose notifications are this runtime's own
        self._session: psycopg.Connection[Any] | None = None
        self._lock_id: int | None = None  # this executor's advisory lock (with _lock_space)
        self._executor_id: str | None = None  # set by attach()
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()
        try:
            self._migrate()
        except psycopg.Error as exc:
            self._pool.close(0)
            raise DatabaseError(
                f"Cannot set up nbflow's tables in schema {self.schema!r} of {self.url!r}: "
                f"{_sentence(exc)} The user in the URL needs the right to create that schema "
                "and tables in it (or an administrator creates the schema and grants it).",
                path=self.url,
            ) from exc
        except BaseException:
            self._pool.close(0)
            raise

    # -- connections ---------------------------------------------------------------------------

    def _connect(self, *, raw: bool = True) -> psycopg.Connection[Any]:
        """A new connection; ``raw``: its cursors take ``$n`` placeholders (else ``%s``/``%b``)."""
        try:
            conn: psycopg.Connection[Any] = psycopg.connect(
                self._conninfo,
                autocommit=True,
                cursor_factory=psycopg.RawCursor if raw else psycopg.Cursor,
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Cannot connect to the nbflow database {self.url!r}: {_sentence(exc)} Check "
                "that the PostgreSQL server runs and that the URL (host, port, user, password, "
                "database) is right.",
                path=self.url,
            ) from exc
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def _fetchall(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._query(query, params)
        except psycopg.OperationalError:  # e.g. the server restarted: once more, on a new one
            pass
        try:
            return self._query(query, params)
        except psycopg.OperationalError as exc:
            raise DatabaseError(
                f"The nbflow database {self.url!r} failed: {_sentence(exc)}", path=self.url
            ) from exc

    def _query(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection(self.url) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL over the history (tables ``workflows``, ``steps``, ``streams``) and return its rows.

        Placeholders are PostgreSQL's own: ``$1, $2, …``. Values are JSON text: cast them
        (``value_json::jsonb ->> 'name'``) to query inside them.
        """
        return self._fetchall(query, params or ())

    # -- schema --------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._pool.connection(self.url) as conn, conn.transaction():
            # Processes opening the database at the same time migrate one after the other.
            conn.execute("SELECT pg_advisory_xact_lock($1, 0)", [self._lock_space])
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))  # fmt: skip
            conn.execute("CREATE TABLE IF NOT EXISTS nbflow_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM nbflow_schema").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > len(MIGRATIONS):
                raise SchemaVersionError(self.url, version, len(MIGRATIONS))
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script:
                    conn.execute(_translate(statement))
                conn.execute("INSERT INTO nbflow_schema VALUES ($1)", [number])
            for statement in _SHARED_SCHEMA:
                conn.execute(statement)

    # -- writes (on the committer thread) ------------------------------------------------------

    def _insert(self, table: str, rows: list[Any]) -> Statement:
        if table == "streams" and self._guarded:
            # Items of a workflow another process cancelled are left out (see commit()).
            return (
                f"INSERT INTO streams SELECT u.* FROM {_unnest(table, 1)} AS u({_STREAM_COLUMNS}) "
                f"WHERE u.workflow_id <> ALL(${len(_TYPES[table]) + 1}::text[]) OR NOT EXISTS "
                "(SELECT 1 FROM workflows w WHERE w.workflow_id = u.workflow_id "
                "AND w.status = 'CANCELLED') ON CONFLICT DO NOTHING",
                [*_arrays(rows), self._guarded],
            )
        return (
            f"INSERT INTO {table} SELECT * FROM {_unnest(table, 1)} "
            f"ON CONFLICT {_CONFLICT[table]} DO NOTHING",
            _arrays(rows),
        )

    def _finish(self, statements: list[Statement], op: Op) -> None:
        # Only a PENDING workflow ends: a cancel from another process is never overwritten, and
        # end markers are written only by the end that took effect.
        _, workflow_id, status, output_json, output_pickle, error, error_pickle, ended_at, markers, error_step = op  # fmt: skip
        update = (
            "UPDATE workflows SET status = $1, output_json = $2, output_pickle = $3, error = $4, "
            "error_pickle = $5, ended_at = $6, updated_at = $6, error_step = $7 "
            "WHERE workflow_id = $8 AND status IN ('PENDING', 'ENQUEUED')"
        )
        params: list[Any] = [status, output_json, output_pickle, error, error_pickle, ended_at, error_step, workflow_id]  # fmt: skip
        if markers is None:  # a workflow that runs elsewhere, or nowhere: close what it left open
            # The UPDATE waits for the transaction of its runner that holds the row (see commit());
            # the INSERT, a statement of its own, then sees every item that runner wrote.
            statements.append((update, params))
            statements.append(
                (
                    'INSERT INTO streams SELECT workflow_id, key, max("offset") + 1, NULL, NULL, '
                    "TRUE, NULL, NULL, $2 FROM streams WHERE workflow_id = $1 AND EXISTS "
                    "(SELECT 1 FROM workflows WHERE workflow_id = $1 AND status = $3 "
                    "AND ended_at = $2) GROUP BY workflow_id, key HAVING NOT bool_or(is_end) "
                    "ON CONFLICT DO NOTHING",
                    [workflow_id, ended_at, status],
                )
            )
        elif markers:
            statements.append(
                (
                    f"WITH ended AS ({update} RETURNING workflow_id) INSERT INTO streams "
                    f"SELECT m.* FROM ended, {_unnest('streams', 9)} AS m ON CONFLICT DO NOTHING",
                    [*params, *_arrays(list(markers))],
                )
            )
        else:
            statements.append((update, params))

    def commit(self, ops: Sequence[Op]) -> set[str]:
        """Commit a batch; return the workflows that another process cancelled before it.

        The batch first locks (``FOR SHARE``) the rows of the workflows whose streams or status it
        writes. A cancel from another process updates that row, so it waits for this transaction,
        and this one waits for the cancel: the cancel's end markers always come after every item
        written before it, and items of a cancelled workflow are never written after them.
        """
        new = {op[1].workflow_id for op in ops if op[0] == "workflow"}
        touched = {op[1].workflow_id for op in ops if op[0] == "item"} | {
            op[1] for op in ops if op[0] == "finish"
        }
        self._guarded = sorted(touched - new)
        statements = self._plan(ops)
        if self._guarded:
            statements.insert(0, ("SELECT workflow_id, status FROM workflows WHERE workflow_id = ANY($1::text[]) ORDER BY workflow_id FOR SHARE", [self._guarded]))  # fmt: skip
        notify = touched | {w for w in map(waking_workflow, ops) if w is not None}
        if notify:  # delivered when the transaction commits, once per workflow
            statements.append(("SELECT pg_notify($1, w) FROM unnest($2::text[]) AS w", [self._channel, sorted(notify)]))  # fmt: skip
        try:
            rows = self._run(statements, locks=bool(self._guarded))
        except psycopg.OperationalError:
            # The connection dropped. Inserts skip rows that exist and a workflow ends only while
            # PENDING, so running the batch again is safe whether or not it committed.
            self._close_writer()
            rows = self._run(statements, locks=bool(self._guarded))
        return {workflow_id for workflow_id, status in rows if status == "CANCELLED"}

    def _run(self, statements: list[Statement], *, locks: bool) -> list[tuple[Any, ...]]:
        """Run the statements in one transaction; the rows of the first when ``locks``.

        All of it goes to the server in one round trip (pipeline mode), with parameters in binary
        (psycopg dumps big arrays several times faster so).
        """
        conn = self._writer
        if conn is None or conn.closed or conn.broken:
            conn = self._writer = self._connect(raw=False)
            self._own_pids.add(conn.info.backend_pid)
            if self._lock_id is not None:  # the executor is alive while this session is
                conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", [self._lock_space, self._lock_id])  # fmt: skip
        if len(statements) == 1 and not locks:
            conn.execute(*_binary(*statements[0]))
            return []
        try:
            with conn.pipeline():
                first, cursor = conn.cursor(), conn.cursor()
                cursor.execute("BEGIN")
                first.execute(*_binary(*statements[0]))
                for query, params in statements[1:]:
                    cursor.execute(*_binary(query, params))
                cursor.execute("COMMIT")
        except BaseException:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise
        return first.fetchall() if locks else []

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    # -- ownership -----------------------------------------------------------------------------

    def attach(self, executor_id: str, on_change: Callable[[set[str]], None]) -> None:
        self._executor_id = executor_id
        self._on_change = on_change
        self._session = self._open_session()
        with self._pool.connection(self.url) as conn:  # forget executors that are gone
            conn.execute(f"DELETE FROM executors x WHERE NOT {self._alive.format(executor='x.executor_id')}")  # fmt: skip
        self._listener = threading.Thread(
            target=self._listen, name=f"nbflow-listener-{executor_id}", daemon=True
        )
        self._listener.start()

    def _open_session(self) -> psycopg.Connection[Any]:
        """A session that holds this executor's lock and listens on the channel."""
        conn = self._connect()
        try:
            if self._lock_id is None:
                row = conn.execute("SELECT nextval('executor_lock')").fetchone()
                assert row is not None
                self._lock_id = lock_id = int(row[0])
            else:  # a session that came back after a lost connection keeps the executor's lock id
                lock_id = self._lock_id
            conn.execute("SELECT pg_advisory_lock_shared($1, $2)", [self._lock_space, lock_id])
            conn.execute(
                "INSERT INTO executors VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [self._executor_id, lock_id, socket.gethostname(), os.getpid(), time.time()],
            )
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen(self) -> None:
        conn = self._session
        while not self._stopping.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._session = self._open_session()
                for note in conn.notifies(timeout=1.0):
                    if self._stopping.is_set():
                        break
                    if note.pid not in self._own_pids and note.payload:
                        self._on_change({note.payload})
            except (psycopg.Error, DatabaseError) as exc:
                if self._stopping.is_set():
                    break
                logger.warning(
                    "nbflow lost its notification connection to %s (%s) Readers poll every "
                    "%.1f s until it is back.",
                    self.url,
                    _sentence(exc),
                    self.poll_interval,
                )
                if conn is not None:
                    conn.close()
                conn = None
                self._stopping.wait(1.0)
            except RuntimeClosedError:
                break

    def executor_alive(self, executor_id: str | None) -> bool:
        if executor_id is None:
            return False
        if executor_id == self._executor_id:
            return not self._stopping.is_set()
        rows = self._fetchall(f"SELECT {self._alive.format(executor='$1')}", [executor_id])
        return bool(rows[0][0])

    def dequeue(
        self,
        queue_name: str,
        executor_id: str,
        names: list[str],
        limit: int,
        concurrency: int | None,
        now: float,
    ) -> list[WorkflowRow]:
        with self._pool.connection(self.url) as conn, conn.transaction():
            # Dispatchers of one queue decide one after the other (the count must hold).
            conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", [self._queue_space, queue_name])  # fmt: skip
            return self._take_enqueued(
                lambda query, params: conn.execute(query, params).fetchall(),
                queue_name=queue_name, executor_id=executor_id, names=names, limit=limit,
                concurrency=concurrency, now=now, name_in="name = ANY($4::text[])",
                lock="FOR UPDATE SKIP LOCKED",
            )  # fmt: skip

    def claim(
        self, workflow_id: str, executor_id: str, now: float, *, reopen: bool = False
    ) -> WorkflowRow | None:
        alive = self._alive.format(executor="w.executor_id")
        with self._pool.connection(self.url) as conn, conn.transaction():
            row = conn.execute(
                f"SELECT w.status, w.executor_id <> $2 AND {alive} FROM workflows w "
                "WHERE w.workflow_id = $1 FOR UPDATE OF w SKIP LOCKED",
                [workflow_id, executor_id],
            ).fetchone()
            if row is None:  # gone, or being changed by another process right now
                return None
            status, running_elsewhere = row
            if status == "PENDING" and running_elsewhere:
                return None
            if status != "PENDING":
                if not reopen or status == "SUCCESS":
                    return None
                for query, params in reopen_statements(workflow_id, now):
                    conn.execute(query, params)
            taken = conn.execute(
                f"UPDATE workflows SET executor_id = $2, updated_at = $3 WHERE workflow_id = $1 "
                f"RETURNING {WORKFLOW_COLUMNS}",
                [workflow_id, executor_id, now],
            ).fetchone()
        return WorkflowRow(*taken) if taken else None

    def pending_workflows(self) -> list[WorkflowRow]:
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows w WHERE status = 'PENDING' AND NOT "
            f"{self._alive.format(executor='w.executor_id')} ORDER BY created_at"
        )
        return [WorkflowRow(*row) for row in rows]

    # -- closing -------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop listening, release the executor lock and close every connection."""
        if self._pool.closed:
            return
        self._stopping.set()
        listener = self._listener
        if listener is not None:
            with (
                contextlib.suppress(psycopg.Error, DatabaseError),  # wake it up at once
                self._pool.connection(self.url) as conn,
            ):
                conn.execute("SELECT pg_notify($1, '')", [self._channel])
            listener.join(timeout)
        self._pool.close(timeout)
        self._close_writer()
        if self._session is not None:
            self._session.close()  # releases the executor lock
