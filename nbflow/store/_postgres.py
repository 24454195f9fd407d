"""The PostgreSQL store: one server shared by many processes and machines.

Tables live in their own schema (``nbflow`` unless the URL says ``?schema=name``), created by the same
ordered migrations as the DuckDB file. Connections:

- the committer thread has one of its own: each batch of the write log is one transaction, sent in
  pipeline mode, with bulk inserts over ``unnest()`` of arrays and one ``NOTIFY`` per workflow or
  queue it changed (:func:`~nbflow.store._ops.changes`; so a fast writer sends one notification per
  commit, not per item);
- reading threads borrow connections from a small pool and give them back;
- one session connection per runtime holds the executor's advisory lock and LISTENs; its thread
  (``nbflow-listener``) hands what other processes changed to the runtime.

The connections themselves (URL, schema set-up, pool, committer connection, session and listener)
are in :mod:`nbflow.store._pgconnect`.

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
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from nbflow._dberrors import DatabaseError
from nbflow._errors import ConfigurationError
from nbflow.store import _pgconnect as pg
from nbflow.store import _schema as schema
from nbflow.store._ops import (
    Changes,
    Consume,
    Enqueue,
    Finish,
    Op,
    SetEvent,
    StepRow,
    StreamRow,
    WorkflowRow,
    changes,
)
from nbflow.store._pgclaim import take_over
from nbflow.store._pgretry import RideOut
from nbflow.store._sql import (
    FINISH_UPDATE,
    STEP_COLUMNS,
    STREAM_COLUMNS,
    WORKFLOW_COLUMNS,
    Execute,
    SQLStore,
    Statement,
    finish_params,
)

__all__ = ["PostgresStore"]

#: The generic column types of :data:`~nbflow.store._schema.TABLES`, as PostgreSQL casts the
#: arrays of a bulk insert (``text`` arrays go into the ``VARCHAR`` columns as they are).
_DIALECT = {
    schema.TEXT: "text",
    schema.BLOB: "bytea",
    schema.DOUBLE: "float8",
    schema.INTEGER: "int4",
    schema.BIGINT: "int8",
    schema.BOOLEAN: "bool",
}
_TYPES = {table: tuple(_DIALECT[t] for _, t in columns) for table, columns in schema.TABLES.items()}
_CONFLICT = {"workflows": "(workflow_id)", "steps": "", "streams": "", "messages": ""}
#: A refreshed or expired step cache entry is replaced.
_CACHE_UPSERT = "ON CONFLICT (entry) DO UPDATE SET " + ", ".join(
    f"{name} = EXCLUDED.{name}" for name, _ in schema.TABLES["step_cache"][1:]
)


def _unnest(table: str, first: int) -> str:
    """``unnest($first::type[], …)``: rows of ``table`` from one array parameter per column."""
    columns = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(_TYPES[table]))
    return f"unnest({columns})"


def _arrays(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows (tuples) as one list per column, the parameters of :func:`_unnest`."""
    return [list(column) for column in zip(*rows, strict=True)]


# -- notifications: one per workflow or queue a commit changed ---------------------------------


def _payloads(change: Changes) -> list[str]:
    """The ``NOTIFY`` payloads that tell other processes about ``change``: ``w<workflow id>``,
    ``q<queue name>``."""
    return sorted([*(f"w{w}" for w in change.workflows), *(f"q{q}" for q in change.queues)])


def _change(payload: str) -> Changes | None:
    """What a payload of :func:`_payloads` tells (None: not one of them)."""
    kind, name = payload[:1], payload[1:]
    if kind == "w":
        return Changes({name}, set())
    if kind == "q":
        return Changes(set(), {name})
    return None


def _guarded(ops: Sequence[Op]) -> tuple[list[str], list[str]]:
    """The workflows ``ops`` write to but do not create: all of them (their rows are locked
    first), and those written as their runner (steps, stream items, events, messages received,
    its own end), whose writes are fenced by their owner."""
    new: set[str] = set()
    touched: set[str] = set()
    owned: set[str] = set()
    for op in ops:
        if type(op) is StreamRow or type(op) is StepRow:
            owned.add(op.workflow_id)
        elif type(op) is SetEvent or type(op) is Consume:
            owned.add(op.step.workflow_id)
        elif type(op) is Finish:
            (touched if op.markers is None else owned).add(op.workflow_id)  # None: a cancel
        elif type(op) is WorkflowRow:
            new.add(op.workflow_id)
        elif type(op) is Enqueue:
            new.add(op.row.workflow_id)
    return sorted((touched | owned) - new), sorted(owned - new)


class PostgresStore(SQLStore):
    """A PostgreSQL database holding workflows, steps and streams, shared by processes.

    Args:
        url: ``postgresql://user:password@host:port/dbname``, optionally with ``?schema=name``
            (default ``nbflow``) to keep several independent nbflow histories in one database.
    """

    single_process = False
    poll_interval = 1.0

    def __init__(self, url: str) -> None:
        self.url = pg.redact(url)
        self._conninfo, self.schema = pg.split_schema(url)
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
        self._pool = pg.Pool(self._connect)
        self._own_pids: set[int] = set()  # backends whose notifications are this runtime's own
        self._writer = pg.Writer(lambda: self._connect(raw=False), self._own_pids)
        self._owned: list[str] = []  # workflows the batch being planned writes as runner
        self._executor_id: str | None = None  # set by attach()
        self._listener: pg.Listener | None = None  # set by attach()
        self._stopping = threading.Event()
        #: How a lost connection is ridden out (``seconds``: how long it keeps trying, 30 s).
        self.reconnect = RideOut(self.url, self._stopping)
        try:
            self._migrate()
        except psycopg.Error as exc:
            self._pool.close(0)
            raise DatabaseError(
                f"Cannot set up nbflow's tables in schema {self.schema!r} of {self.url!r}: "
                f"{pg.sentence(exc)} The user in the URL needs the right to create that schema "
                "and tables in it (or an administrator creates the schema and grants it).",
                path=self.url,
            ) from exc
        except BaseException:
            self._pool.close(0)
            raise

    # -- connections ---------------------------------------------------------------------------

    def _connect(self, *, raw: bool = True) -> psycopg.Connection[Any]:
        """A new connection; ``raw``: its cursors take ``$n`` placeholders (else ``%s``/``%b``)."""
        return pg.connect(self._conninfo, self.schema, self.url, raw=raw)

    def _fetchall(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:  # a lost connection is left out of the pool: the next try opens a new one
            return self.reconnect.run(lambda: self._query(query, params), lambda: None, "a query")
        except psycopg.OperationalError as exc:
            raise DatabaseError(
                f"The nbflow database {self.url!r} failed: {pg.sentence(exc)}", path=self.url
            ) from exc

    def _query(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection(self.url) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def sql(self, query: str, params: Sequence[Any] | None = None, frames: Any = None) -> Any:
        """Run SQL over the history (tables ``workflows``, ``steps``, ``streams``) and return its rows.

        Placeholders are PostgreSQL's own: ``$1, $2, …``. Values are JSON text: cast them
        (``value_json::jsonb ->> 'name'``) to query inside them. ``frames`` needs DuckDB.
        """
        if frames:
            raise ConfigurationError(
                "store.sql(frames=...) needs DuckDB, and this store is PostgreSQL: query the frame "
                "with duckdb.sql('SELECT ... FROM t'), t = runtime.read_value(workflow_id, step)."
            )
        return self._fetchall(query, params or ())

    # -- schema --------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._pool.connection(self.url) as conn:
            pg.migrate(conn, self.schema, self._lock_space, self.url)

    # -- writes (on the committer thread) ------------------------------------------------------

    def _insert(self, table: str, rows: Sequence[tuple[Any, ...]]) -> Statement:
        if table in ("streams", "steps") and self._owned:
            # Writes to a workflow another process cancelled (stream items), or took over (this
            # process was judged dead meanwhile), are left out (see commit()).
            n = len(_TYPES[table])
            cancelled = " AND w.status <> 'CANCELLED'" if table == "streams" else ""
            columns = STREAM_COLUMNS if table == "streams" else STEP_COLUMNS
            return (
                f"INSERT INTO {table} SELECT u.* FROM {_unnest(table, 1)} AS u({columns}) "
                f"WHERE u.workflow_id <> ALL(${n + 1}::text[]) OR EXISTS (SELECT 1 FROM "
                f"workflows w WHERE w.workflow_id = u.workflow_id AND w.executor_id = ${n + 2}"
                f"{cancelled}) ON CONFLICT DO NOTHING",
                [*_arrays(rows), self._owned, self._executor_id],
            )
        if table == "step_cache":
            return f"INSERT INTO {table} SELECT * FROM {_unnest(table, 1)} {_CACHE_UPSERT}", (
                _arrays(rows)
            )
        return (
            f"INSERT INTO {table} SELECT * FROM {_unnest(table, 1)} "
            f"ON CONFLICT {_CONFLICT[table]} DO NOTHING",
            _arrays(rows),
        )

    def _consume(self, op: Consume) -> Statement:
        # Only while the workflow is this process's (see commit()): its new owner receives it.
        sql, params = super()._consume(op)
        n = len(params)
        owned = f"SELECT 1 FROM workflows WHERE workflow_id = ${n + 1} AND executor_id = ${n + 2}"
        return f"{sql} AND EXISTS ({owned})", [*params, op.step.workflow_id, self._executor_id]

    def _finish(self, statements: list[Statement], op: Finish) -> None:
        # Only a PENDING workflow ends (FINISH_UPDATE says so for every store): a cancel from
        # another process is never overwritten, and end markers are written only by the end
        # that took effect.
        update = FINISH_UPDATE
        params = finish_params(op)
        if op.markers is not None:  # its own end: only while it is still this process's
            update += " AND executor_id = $9"
            params.append(self._executor_id)
        if op.markers is None:  # it runs elsewhere, or nowhere: close what it left open
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
                    [op.workflow_id, op.ended_at, op.status],
                )
            )
        elif op.markers:
            statements.append(
                (
                    f"WITH ended AS ({update} RETURNING workflow_id) INSERT INTO streams "
                    f"SELECT m.* FROM ended, {_unnest('streams', 10)} AS m ON CONFLICT DO NOTHING",
                    [*params, *_arrays(op.markers)],
                )
            )
        else:
            statements.append((update, params))

    def _finish_many(self, statements: list[Statement], finishes: list[Finish]) -> None:
        for op in finishes:  # (each fenced by its owner, its markers only if it took effect)
            self._finish(statements, op)

    def commit(self, ops: Sequence[Op]) -> set[str]:
        """Commit a batch; return the workflows whose writes in it were left out: those another
        process cancelled before it, and those another process took over.

        The batch first locks (``FOR SHARE``) the rows of the workflows it writes to. A cancel or
        a claim from another process updates that row, so it waits for this transaction, and
        this one waits for it: the cancel's end markers always come after every item written
        before it, and items of a cancelled workflow are never written after them. Every write
        of a workflow as its runner (steps, items, events, messages received, its end) is
        fenced by its owner: once another process has claimed it (this one was judged dead,
        e.g. its sessions were dropped while it ran on), nothing of it is written here.
        """
        guarded, self._owned = _guarded(ops)
        statements = self._plan(ops)
        if guarded:
            statements.insert(
                0,
                (
                    "SELECT workflow_id, status, executor_id = $2 OR NOT workflow_id = ANY($3) "
                    "FROM workflows WHERE workflow_id = ANY($1::text[]) ORDER BY workflow_id "
                    "FOR SHARE",
                    [guarded, self._executor_id, self._owned],
                ),
            )
        payloads = _payloads(changes(ops))
        if payloads:  # delivered when the transaction commits, once per workflow or queue
            statements.append(
                ("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [self._channel, payloads])
            )
        # A dropped connection: inserts skip rows that exist and a workflow ends only while
        # PENDING, so running the batch again is safe whether or not it committed.
        rows = self.reconnect.run(
            lambda: self._writer.run(statements, locks=bool(guarded)),
            self._writer.close,
            "a commit",
        )
        return {wid for wid, status, ours in rows if status == "CANCELLED" or not ours}

    # -- ownership -----------------------------------------------------------------------------

    def attach(self, executor_id: str, on_change: Callable[[Changes], None]) -> None:
        def on_payload(payload: str) -> None:
            change = _change(payload)
            if change is not None:
                on_change(change)

        self._executor_id = executor_id
        self._listener = pg.Listener(
            self._connect,
            url=self.url,
            channel=self._channel,
            lock_space=self._lock_space,
            executor_id=executor_id,
            own_pids=self._own_pids,
            on_payload=on_payload,
            stopping=self._stopping,
            poll_interval=self.poll_interval,
        )
        with self._pool.connection(self.url) as conn:  # forget executors that are gone
            alive = self._alive.format(executor="x.executor_id")
            conn.execute(f"DELETE FROM executors x WHERE NOT {alive}")
        assert self._listener.lock_id is not None
        self._writer.lock = (self._lock_space, self._listener.lock_id)
        self._listener.start()

    def executor_alive(self, executor_id: str | None) -> bool:
        if executor_id is None:
            return False
        if executor_id == self._executor_id:
            return not self._stopping.is_set()
        rows = self._fetchall(f"SELECT {self._alive.format(executor='$1')}", [executor_id])
        return bool(rows[0][0])

    def _others_alive(self, column: str) -> str:
        return self._alive.format(executor=column)

    _name_in = "name = ANY($4::text[])"
    _entry_in = "entry = ANY($1::text[])"
    _lock_taken = "FOR UPDATE SKIP LOCKED"
    _queue_notice = "SELECT pg_notify('nbflow_' || current_schema(), 'q' || $1)"  # _payloads'

    @contextlib.contextmanager
    def _queue_transaction(self, queue_name: str) -> Iterator[Execute]:
        with self._pool.connection(self.url) as conn, conn.transaction():
            # Dispatchers of one queue decide one after the other (the count must hold).
            conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", [self._queue_space, queue_name]
            )
            yield lambda query, params: conn.execute(query, params).fetchall()

    # -- removing history (store/_sqldelete.py): no file to shrink; autovacuum reuses the space

    _lock_rows = "FOR UPDATE"  # a claim or reopen by another process waits, or skips it

    @contextlib.contextmanager
    def _delete_transaction(self) -> Iterator[Execute]:
        with self._pool.connection(self.url) as conn, conn.transaction():

            def execute(query: str, params: list[Any]) -> list[tuple[Any, ...]]:
                cursor = conn.execute(query, params)
                return cursor.fetchall() if cursor.description is not None else []

            yield execute

    def _in_list(self, column: str, param: str, sql_type: str) -> str:
        return f"{column} = ANY({param}::{sql_type}[])"

    def claim(
        self,
        workflow_id: str,
        executor_id: str,
        now: float,
        *,
        reopen: bool = False,
        recovery: bool = False,
    ) -> WorkflowRow | None:
        alive = self._alive.format(executor="w.executor_id")
        with self._pool.connection(self.url) as conn, conn.transaction():
            return take_over(
                conn, alive, workflow_id, executor_id, now, reopen=reopen, recovery=recovery
            )

    def pending_workflows(self) -> list[WorkflowRow]:
        # Those of dead executors, and this process's own (the caller skips those it runs: one
        # whose thread could not start is interrupted while this process lives on).
        rows = self._fetchall(
            f"SELECT {WORKFLOW_COLUMNS} FROM workflows w WHERE status = 'PENDING' AND (NOT "
            f"{self._alive.format(executor='w.executor_id')} OR w.executor_id = $1) "
            "ORDER BY created_at",
            [self._executor_id or ""],
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
        self._writer.close_for_good()
        if listener is not None:
            listener.close()  # releases the executor lock
