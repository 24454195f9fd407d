"""The DuckDB store: one embedded file, one process, one cursor per thread."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from nbflow._errors import (
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    RuntimeClosedError,
    SchemaVersionError,
)
from nbflow.store._base import Op, Replay, ReplayRecord, StepRow, Store, WorkflowRow
from nbflow.store._schema import MIGRATIONS

__all__ = ["DuckDBStore"]

_LOCK_PID = re.compile(r"\(PID (\d+)\)")

_WORKFLOW_COLUMNS = (
    "workflow_id, name, status, inputs_json, inputs_pickle, output_json, output_pickle, error, "
    "error_pickle, created_at, updated_at, ended_at, executor_id, parent_id, error_step"
)
_STEP_COLUMNS = (
    "workflow_id, function_id, name, output_json, output_pickle, error, error_pickle, "
    "started_at, ended_at, attempts"
)
_STREAM_TYPES = (
    "VARCHAR",
    "VARCHAR",
    "BIGINT",
    "VARCHAR",
    "BLOB",
    "BOOLEAN",
    "INTEGER",
    "INTEGER",
    "DOUBLE",
)
_STEP_TYPES = (
    "VARCHAR",
    "INTEGER",
    "VARCHAR",
    "VARCHAR",
    "BLOB",
    "VARCHAR",
    "BLOB",
    "DOUBLE",
    "DOUBLE",
    "INTEGER",
)
_WORKFLOW_TYPES = (
    "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "BLOB", "VARCHAR", "BLOB", "VARCHAR", "BLOB",
    "DOUBLE", "DOUBLE", "DOUBLE", "VARCHAR", "VARCHAR", "INTEGER",
)  # fmt: skip


def _bulk_insert_sql(table: str, types: Sequence[str]) -> str:
    columns = ", ".join(f"unnest(${i + 1}::{t}[])" for i, t in enumerate(types))
    return f"INSERT INTO {table} SELECT {columns}"


def _values_insert_sql(table: str, columns: int, rows: int) -> str:
    row = f"({', '.join('?' * columns)})"
    return f"INSERT INTO {table} VALUES {', '.join([row] * rows)}"


#: Up to this many rows, a VALUES list is cheaper for DuckDB to run than unnest() over lists.
_VALUES_MAX_ROWS = 4


_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB file
_LOCKED = ("Could not set lock on file", "Conflicting lock is held")
_CORRUPT = ("not a valid DuckDB database file", "Could not read enough bytes", "corrupt")


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
        raise DatabaseError(f"Cannot read the nbflow database {path!r}: {exc}", path=path) from exc
    if head and head[8:12] != _MAGIC:
        raise _corrupt(path, "its header is not DuckDB's")


def _translate_open_error(path: str, exc: Exception) -> DatabaseError:
    """An nbflow error for what DuckDB said, matched on DuckDB's wording (not on the path)."""
    text = str(exc).replace(path, "<file>")
    if any(phrase in text for phrase in _LOCKED):
        match = _LOCK_PID.search(text)
        return DatabaseLockedError(path, int(match.group(1)) if match else None)
    if any(phrase in text for phrase in _CORRUPT):
        return _corrupt(path, str(exc))
    return DatabaseError(f"Cannot open the nbflow database {path!r}: {exc}", path=path)


class DuckDBStore(Store):
    """A DuckDB file (or ``:memory:``) holding workflows, steps and streams.

    DuckDB lets one process open a file for writing; inside it, every thread gets its own cursor.
    """

    single_process = True

    def __init__(self, path: str) -> None:
        self.url = path
        if path != ":memory:":
            _check_header(path)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # No extension is ever fetched or loaded behind the user's back (e.g. to read SQLite).
            self._con = duckdb.connect(path, config=_CONFIG)
        except duckdb.Error as exc:
            raise _translate_open_error(path, exc) from exc
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._idle = threading.Condition(threading.Lock())  # guards the three below
        self._busy = 0  # queries running now
        self._closed = False
        try:
            self._migrate()
        except duckdb.Error as exc:
            self._con.close()
            raise _translate_open_error(path, exc) from exc
        except BaseException:
            self._con.close()
            raise

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
        with self._using() as cursor:
            return cursor.execute(sql, params).fetchall()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run SQL on this thread's cursor and return a DuckDB relation (``.fetchall()``; ``.df()`` needs pandas).

        The relation is evaluated when fetched: fetch it before the runtime is closed.
        """
        with self._using() as cursor:
            return cursor.sql(query, params=params)

    # -- schema --------------------------------------------------------------------------------

    def _migrate(self) -> None:
        con = self._con
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

    def commit(self, ops: Sequence[Op]) -> None:
        statements = self._plan(ops)
        with self._using() as cur:
            if len(statements) == 1:  # one statement commits by itself: no BEGIN/COMMIT
                cur.execute(*statements[0])
                return
            cur.execute("BEGIN TRANSACTION")
            try:
                for sql, params in statements:
                    cur.execute(sql, params)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _plan(self, ops: Sequence[Op]) -> list[tuple[str, Sequence[Any]]]:
        """The statements that apply ``ops``: consecutive inserts become one bulk insert per table.

        A workflow whose row and final status are in the same batch (a short workflow) is inserted
        finished, with no UPDATE.
        """
        statements: list[tuple[str, Sequence[Any]]] = []
        pending: dict[str, list[Any]] = {"workflow": [], "step": [], "item": []}
        unwritten: dict[str, int] = {}  # workflow id -> index of its row in pending["workflow"]
        for op in ops:
            kind = op[0]
            if kind == "workflow":
                unwritten[op[1].workflow_id] = len(pending["workflow"])
                pending["workflow"].append(op[1])
            elif kind in pending:
                pending[kind].append(op[1])
            elif kind == "finish" and op[1] in unwritten and op[8] is not None:
                index = unwritten[op[1]]
                _, _, status, output_json, output_pickle, error, error_pickle, ended_at, markers, error_step = op  # fmt: skip
                pending["workflow"][index] = pending["workflow"][index]._replace(
                    status=status, output_json=output_json, output_pickle=output_pickle,
                    error=error, error_pickle=error_pickle, ended_at=ended_at,
                    updated_at=ended_at, error_step=error_step,
                )  # fmt: skip
                pending["item"].extend(markers)
            else:
                self._flush(statements, pending)
                unwritten.clear()
                if kind == "finish":
                    self._finish(statements, op)
                elif kind == "reopen":
                    self._reopen(statements, op)
                else:  # pragma: no cover - a programming error
                    raise ValueError(f"unknown operation {kind!r}")
        self._flush(statements, pending)
        return statements

    @staticmethod
    def _flush(statements: list[tuple[str, Sequence[Any]]], pending: dict[str, list[Any]]) -> None:
        for kind, table, types in (
            ("workflow", "workflows", _WORKFLOW_TYPES),
            ("step", "steps", _STEP_TYPES),
            ("item", "streams", _STREAM_TYPES),
        ):
            rows = pending[kind]
            if not rows:
                continue
            if len(rows) <= _VALUES_MAX_ROWS:
                params = [value for row in rows for value in row]
                statements.append((_values_insert_sql(table, len(types), len(rows)), params))
            else:
                columns = [list(c) for c in zip(*rows, strict=True)]
                statements.append((_bulk_insert_sql(table, types), columns))
            pending[kind] = []

    @classmethod
    def _finish(cls, statements: list[tuple[str, Sequence[Any]]], op: Op) -> None:
        _, workflow_id, status, output_json, output_pickle, error, error_pickle, ended_at, markers, error_step = op  # fmt: skip
        statements.append(
            (
                "UPDATE workflows SET status = ?, output_json = ?, output_pickle = ?, error = ?, "
                "error_pickle = ?, ended_at = ?, updated_at = ?, error_step = ? "
                "WHERE workflow_id = ?",
                [
                    status,
                    output_json,
                    output_pickle,
                    error,
                    error_pickle,
                    ended_at,
                    ended_at,
                    error_step,
                    workflow_id,
                ],
            )
        )
        if markers is None:
            statements.append(
                (
                    'INSERT INTO streams SELECT workflow_id, key, max("offset") + 1, NULL, NULL, '
                    "TRUE, NULL, NULL, ? FROM streams WHERE workflow_id = ? "
                    "GROUP BY workflow_id, key HAVING NOT bool_or(is_end)",
                    [ended_at, workflow_id],
                )
            )
        elif markers:
            cls._flush(statements, {"workflow": [], "step": [], "item": list(markers)})

    @staticmethod
    def _reopen(statements: list[tuple[str, Sequence[Any]]], op: Op) -> None:
        _, workflow_id, updated_at = op
        statements += [
            # The step whose error ended the workflow runs again (e.g. after its bug was fixed).
            (
                "DELETE FROM steps WHERE workflow_id = $1 AND error IS NOT NULL AND function_id = "
                "(SELECT error_step FROM workflows WHERE workflow_id = $1)",
                [workflow_id],
            ),
            (
                "UPDATE workflows SET status = 'PENDING', output_json = NULL, "
                "output_pickle = NULL, error = NULL, error_pickle = NULL, ended_at = NULL, "
                "error_step = NULL, updated_at = ? WHERE workflow_id = ?",
                [updated_at, workflow_id],
            ),
            (
                "DELETE FROM streams WHERE workflow_id = ? AND is_end AND function_id IS NULL",
                [workflow_id],
            ),
        ]

    # -- reads ---------------------------------------------------------------------------------

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        rows = self._fetchall(
            f"SELECT {_WORKFLOW_COLUMNS} FROM workflows WHERE workflow_id = ?", [workflow_id]
        )
        return WorkflowRow(*rows[0]) if rows else None

    def get_status(self, workflow_id: str) -> str | None:
        rows = self._fetchall("SELECT status FROM workflows WHERE workflow_id = ?", [workflow_id])
        return rows[0][0] if rows else None

    def load_replay(self, workflow_id: str) -> Replay:
        rows = self._fetchall(
            "SELECT function_id, 'step', name, output_json, output_pickle, error, error_pickle "
            "FROM steps WHERE workflow_id = $1 "
            "UNION ALL SELECT function_id, CASE WHEN is_end THEN 'close' ELSE 'write' END, key, "
            "NULL, NULL, NULL, NULL FROM streams "
            "WHERE workflow_id = $1 AND attempt IS NULL AND function_id IS NOT NULL "
            "UNION ALL SELECT max(\"offset\") + 1, 'stream', key, NULL, NULL, NULL, NULL "
            "FROM streams WHERE workflow_id = $1 GROUP BY key "
            "UNION ALL SELECT 1, 'closed', key, NULL, NULL, NULL, NULL FROM streams "
            "WHERE workflow_id = $1 AND is_end AND function_id IS NOT NULL "
            "UNION ALL SELECT function_id, 'attempt', CAST(max(attempt) AS VARCHAR), NULL, NULL, "
            "NULL, NULL FROM streams WHERE workflow_id = $1 AND attempt IS NOT NULL "
            "GROUP BY function_id",
            [workflow_id],
        )
        records: list[ReplayRecord] = []
        streams: dict[str, tuple[int, bool]] = {}
        closed: set[str] = set()
        attempts: dict[int, int] = {}
        for row in rows:
            kind = row[1]
            if kind == "attempt":
                attempts[int(row[0])] = int(row[2])
            elif kind == "stream":
                streams[row[2]] = (int(row[0]), False)
            elif kind == "closed":
                closed.add(row[2])
            else:
                records.append(ReplayRecord(*row))
        for key in closed:
            streams[key] = (streams[key][0], True)
        records.sort(key=lambda r: r.function_id)
        return Replay(records, streams, attempts)

    def read_stream(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[tuple[int, str | None, bytes | None, bool]]:
        return self._fetchall(  # type: ignore[return-value]
            'SELECT "offset", value_json, value_pickle, is_end FROM streams '
            'WHERE workflow_id = ? AND key = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
            [workflow_id, key, start, limit],
        )

    def list_workflows(self, status: str | None, name: str | None, limit: int) -> list[WorkflowRow]:
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._fetchall(
            f"SELECT {_WORKFLOW_COLUMNS} FROM workflows {clause} "
            "ORDER BY created_at DESC, workflow_id DESC LIMIT ?",
            [*params, limit],
        )
        return [WorkflowRow(*row) for row in rows]

    def pending_workflows(self) -> list[WorkflowRow]:
        rows = self._fetchall(
            f"SELECT {_WORKFLOW_COLUMNS} FROM workflows WHERE status = 'PENDING' ORDER BY created_at"
        )
        return [WorkflowRow(*row) for row in rows]

    def list_steps(self, workflow_id: str) -> list[StepRow]:
        rows = self._fetchall(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE workflow_id = ? ORDER BY function_id",
            [workflow_id],
        )
        return [StepRow(*row) for row in rows]

    def list_streams(self, workflow_id: str) -> list[tuple[str, int, bool, float, float]]:
        return self._fetchall(  # type: ignore[return-value]
            "SELECT key, count(*) FILTER (WHERE NOT is_end), bool_or(is_end), min(created_at), "
            "max(created_at) FROM streams WHERE workflow_id = ? GROUP BY key ORDER BY key",
            [workflow_id],
        )

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
        self._con.close()


def default_path() -> str:
    """The default database file (see :func:`nbflow.store.resolve_database`)."""
    notebook = os.environ.get("JPY_SESSION_NAME")
    if notebook and notebook.endswith(".ipynb"):
        nb = Path(notebook)
        return str(nb.parent / ".nbflow" / f"{nb.stem}.duckdb")
    return str(Path(".nbflow") / "nbflow.duckdb")
