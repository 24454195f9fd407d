"""The PostgreSQL store's connections: the URL, the schema, and one kind of connection per use.

- :func:`split_schema` and :func:`redact` read the URL (the ``schema`` parameter is nbflow's);
- :func:`connect` opens a connection in the store's schema; :func:`migrate` sets the schema up;
- :class:`Pool` lends connections to reading threads;
- :class:`Writer` is the committer thread's connection: a batch is one transaction, sent in one
  round trip;
- :class:`Listener` is one runtime's session: it holds the executor's advisory lock for as long as
  the runtime is open and LISTENs on the store's channel; its thread (``nbflow-listener``) hands
  the payload of every notification from another process to the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from nbflow._dberrors import DatabaseError, SchemaVersionError
from nbflow._errors import ConfigurationError, RuntimeClosedError
from nbflow.store._schema import MIGRATIONS
from nbflow.store._sql import Statement

__all__ = [
    "Listener",
    "Pool",
    "Writer",
    "connect",
    "migrate",
    "redact",
    "sentence",
    "split_schema",
]

logger = logging.getLogger("nbflow")


def sentence(exc: BaseException) -> str:
    """What psycopg said, on one line, ending with a full stop."""
    text = " ".join(str(exc).split())
    return text if text.endswith((".", "?", "!")) else f"{text}."


_EXAMPLE_URL = "postgresql://user:password@host:5432/dbname"


def _split(url: str) -> SplitResult:
    """The URL's parts, its port checked.

    Raises:
        ConfigurationError: The URL cannot be split, or its port is not a number from 0 to 65535
            (urllib's bare ValueError, said with what to do and without the password).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (urllib checks the port when it is read)
        parts.hostname  # noqa: B018
    except ValueError as exc:
        shown = re.sub(r"(://[^/:@]*):[^/]*@", r"\1:***@", url)  # password hidden
        raise ConfigurationError(
            f"nbflow cannot use the PostgreSQL URL {shown!r}: {exc}. Write it as "
            f"{_EXAMPLE_URL!r} (the port a number; an IPv6 host in [brackets]), "
            "with ?schema=name to choose the schema."
        ) from None
    return parts


def redact(url: str) -> str:
    """The URL without its password, for messages and ``Runtime.database``.

    Raises:
        ConfigurationError: nbflow cannot use the URL (see :func:`_split`).
    """
    parts = _split(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def split_schema(url: str) -> tuple[str, str]:
    """``(url for libpq, schema)``: the ``schema`` query parameter is nbflow's, not libpq's.

    Raises:
        ConfigurationError: nbflow cannot use the URL (see :func:`_split`).
    """
    parts = _split(url)
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
            f"The schema {schema!r} in {redact(url)!r} is not a plain SQL name: use letters, "
            "digits and underscores (at most 48), starting with a letter.",
            path=redact(url),
        )
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


def connect(conninfo: str, schema: str, url: str, *, raw: bool = True) -> psycopg.Connection[Any]:
    """A new connection (autocommit) whose search path is ``schema``; ``raw``: its cursors take
    ``$n`` placeholders (else ``%s``/``%b``). ``url`` (redacted) is for messages."""
    try:
        conn: psycopg.Connection[Any] = psycopg.connect(
            conninfo,
            autocommit=True,
            cursor_factory=psycopg.RawCursor if raw else psycopg.Cursor,
        )
    except psycopg.Error as exc:
        raise DatabaseError(
            f"Cannot connect to the nbflow database {url!r}: {sentence(exc)} Check "
            "that the PostgreSQL server runs and that the URL (host, port, user, password, "
            "database) is right.",
            path=url,
        ) from exc
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


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
    # list_workflows's order (newest first, pages by offset): over 100,000 workflows, 56 ms
    # without it, 0.6 ms with it (benchmarks/history.py). DuckDB's ART indexes serve lookups,
    # not ordered scans, and slow its inserts: it has none.
    "CREATE INDEX IF NOT EXISTS workflows_created ON workflows (created_at, workflow_id)",
]


def _translate(statement: str) -> str:
    """A migration written for DuckDB, in PostgreSQL's type names."""
    statement = re.sub(r"\bBLOB\b", "BYTEA", statement)
    return re.sub(r"\bDOUBLE\b", "DOUBLE PRECISION", statement)


def migrate(conn: psycopg.Connection[Any], schema: str, lock_space: int, url: str) -> None:
    """Create ``schema`` and run the migrations it has not had yet, in one transaction."""
    with conn.transaction():
        # Processes opening the database at the same time migrate one after the other.
        conn.execute("SELECT pg_advisory_xact_lock($1, 0)", [lock_space])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE IF NOT EXISTS nbflow_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM nbflow_schema").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise SchemaVersionError(url, version, len(MIGRATIONS))
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script:
                conn.execute(_translate(statement))
            conn.execute("INSERT INTO nbflow_schema VALUES ($1)", [number])
        for statement in _SHARED_SCHEMA:
            conn.execute(statement)


class Pool:
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


def _binary(query: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A ``$n`` query as psycopg's ``%b`` placeholders (binary parameters), in order of use."""
    order: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        order.append(int(match.group(1)) - 1)
        return "%b"

    return _PLACEHOLDER.sub(placeholder, query.replace("%", "%%")), [params[i] for i in order]


_PLACEHOLDER = re.compile(r"\$(\d+)")


class Writer:
    """The committer thread's connection, opened on first use and again after it was lost.

    Args:
        connect: Opens a connection whose cursors take ``%b`` placeholders.
        own_pids: Gets the backend pid of every connection opened (notifications it sends are
            this runtime's own).

    Attributes:
        lock: The executor's advisory lock ``(space, id)``, once it has one: every connection of
            the writer holds it too, so that a commit in flight keeps the executor alive.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], own_pids: set[int]) -> None:
        self._connect = connect
        self._own_pids = own_pids
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self.lock: tuple[int, int] | None = None

    def run(self, statements: list[Statement], *, locks: bool) -> list[tuple[Any, ...]]:
        """Run the statements in one transaction; the rows of the first when ``locks``.

        All of it goes to the server in one round trip (pipeline mode), with parameters in binary
        (psycopg dumps big arrays several times faster so).

        Raises:
            RuntimeClosedError: The store was closed (a commit after it would reconnect).
        """
        if self._closed:
            raise RuntimeClosedError(
                "The nbflow database was closed: nothing more is committed to it. Open it again "
                "with nbflow.configure() or nbflow.Runtime()."
            )
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            conn = self._conn = self._connect()
            self._own_pids.add(conn.info.backend_pid)
            if self.lock is not None:  # the executor is alive while this session is
                conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", list(self.lock))
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

    def close(self) -> None:
        """Close the session (a commit after it opens a new one: see :meth:`close_for_good`)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close_for_good(self) -> None:
        """Close the session; every later :meth:`run` raises :class:`RuntimeClosedError`."""
        self._closed = True
        self.close()


class Listener:
    """The session of one runtime's executor, and the thread that listens on it.

    The session holds a shared advisory lock on ``(lock_space, lock_id)`` (the executor is alive
    while some session holds it), records the executor and LISTENs on ``channel``. The thread hands
    the payload of each notification to ``on_payload``, except empty ones and those sent by the
    backends in ``own_pids`` (this runtime's own commits). A lost session is opened again, with the
    same lock id; meanwhile readers poll.

    Args:
        connect: Opens a connection (``$n`` placeholders).
        stopping: Set when the store closes: the thread ends.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        *,
        url: str,
        channel: str,
        lock_space: int,
        executor_id: str,
        own_pids: set[int],
        on_payload: Callable[[str], None],
        stopping: threading.Event,
        poll_interval: float,
    ) -> None:
        self._connect = connect
        self._url = url
        self._channel = channel
        self._lock_space = lock_space
        self._executor_id = executor_id
        self._own_pids = own_pids
        self._on_payload = on_payload
        self._stopping = stopping
        self._poll_interval = poll_interval
        #: The executor's advisory lock id (in ``lock_space``), taken by the first session.
        self.lock_id: int | None = None
        self._session: psycopg.Connection[Any] | None = self._open()
        self._thread = threading.Thread(
            target=self._run, name=f"nbflow-listener-{executor_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _open(self) -> psycopg.Connection[Any]:
        """A session that holds this executor's lock and listens on the channel."""
        conn = self._connect()
        try:
            if self.lock_id is None:
                row = conn.execute("SELECT nextval('executor_lock')").fetchone()
                assert row is not None
                self.lock_id = lock_id = int(row[0])
            else:  # a session that came back after a lost connection keeps the executor's lock id
                lock_id = self.lock_id
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

    def _run(self) -> None:
        conn = self._session
        while not self._stopping.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._session = self._open()
                for note in conn.notifies(timeout=1.0):
                    if self._stopping.is_set():
                        break
                    if note.pid not in self._own_pids and note.payload:
                        self._on_payload(note.payload)
            except (psycopg.Error, DatabaseError) as exc:
                if self._stopping.is_set():
                    break
                logger.warning(
                    "nbflow lost its notification connection to %s (%s) Readers poll every "
                    "%.1f s until it is back.",
                    self._url,
                    sentence(exc),
                    self._poll_interval,
                )
                if conn is not None:
                    conn.close()
                conn = None
                self._stopping.wait(1.0)
            except RuntimeClosedError:
                break

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after ``stopping`` is set and a notification woke it)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def close(self) -> None:
        """Close the session: the executor's lock is released."""
        if self._session is not None:
            self._session.close()
