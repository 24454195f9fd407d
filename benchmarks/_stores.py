"""Where the systems keep their databases: the ``--store`` of ``python -m benchmarks.compare``.

Each workload runs for each system in a fresh :class:`Place`, made by the store and removed after:

- ``duckdb`` (the default): a fresh temporary directory. nbflow opens ``nbflow.duckdb`` in it, DBOS
  its default SQLite file ``dbos.sqlite``.
- ``postgres``: a fresh temporary directory and a fresh, empty database on one PostgreSQL server
  (``CREATE DATABASE … TEMPLATE template0``), dropped after the workload. nbflow opens it as
  ``nbflow.Runtime(url)`` (its tables in schema ``nbflow``), DBOS as its ``system_database_url``
  (schema ``dbos``). Neither system ever sees the other's tables. The server is the one given by
  ``--pg-url`` (it must let that user create databases), or a throwaway server the benchmark starts
  with :class:`tests.support.pgserver.PostgresServer` (``fsync=True``: costs as on a user's server, data
  under ``$TMPDIR``) and stops at the end.
"""

from __future__ import annotations

import contextlib
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

__all__ = ["STORES", "BenchStore", "FileBenchStore", "Place", "PostgresBenchStore", "open_store"]

STORES = ("duckdb", "postgres")


@dataclass(frozen=True)
class Place:
    """Where one system runs one workload.

    Attributes:
        directory: A fresh, empty temporary directory (the DuckDB and SQLite files go there).
        pg_url: A fresh, empty PostgreSQL database (``postgresql://…``), on the PostgreSQL store.
    """

    directory: Path
    pg_url: str | None = None


class BenchStore(Protocol):
    """Makes a fresh :class:`Place` for each workload and system."""

    name: str  # "duckdb" or "postgres"
    shared: bool  # whether several processes can use one database at once

    def place(self, system: str) -> contextlib.AbstractContextManager[Place]:
        """A fresh place for ``system`` ("nbflow" or "dbos"), removed when the block ends."""

    def info(self) -> dict[str, Any]:
        """What the table's header says about the store."""

    def close(self) -> None:
        """Stop what the store started."""


class FileBenchStore:
    """Database files in fresh temporary directories (nbflow: DuckDB; DBOS: SQLite)."""

    name = "duckdb"
    shared = False

    @contextlib.contextmanager
    def place(self, system: str) -> Iterator[Place]:
        with tempfile.TemporaryDirectory(prefix=f"nbflow-bench-{system}-") as tmp:
            yield Place(Path(tmp))

    def info(self) -> dict[str, Any]:
        return {"store": self.name}

    def close(self) -> None:
        pass


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


class PostgresBenchStore:
    """Fresh databases on one PostgreSQL server: the given one, or a throwaway one with fsync.

    Args:
        url: A ``postgresql://`` URL of a server and a user that may create databases; None: start
            a throwaway server (:class:`tests.support.pgserver.PostgresServer` with ``fsync=True``).
    """

    name = "postgres"
    shared = True

    def __init__(self, url: str | None = None) -> None:
        from tests.support.pgserver import PostgresServer

        self.own = url is None
        self.server = PostgresServer(fsync=True, existing_url=url)
        self.server.start()
        self._settings = self._read_settings()

    def _read_settings(self) -> dict[str, str]:
        import psycopg

        names = (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
        )
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT array_agg(current_setting(n) ORDER BY i) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(n, i)",
                [list(names)],
            ).fetchone()
        assert row is not None
        return dict(zip(names, (str(value) for value in row[0]), strict=True))

    @property
    def url(self) -> str:
        """The server's URL (database ``postgres``, or the one ``--pg-url`` named)."""
        return self.server.url

    @contextlib.contextmanager
    def place(self, system: str) -> Iterator[Place]:
        with tempfile.TemporaryDirectory(prefix=f"nbflow-bench-{system}-") as tmp:
            url = self.server.create_database()
            try:
                yield Place(Path(tmp), url)
            finally:
                name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/"))
                self.server.drop_database(name)

    def info(self) -> dict[str, Any]:
        parts = urllib.parse.urlsplit(self.url)
        return {
            "store": self.name,
            "server": "throwaway, started by the benchmark" if self.own else "given by --pg-url",
            "host": f"{parts.hostname}:{parts.port or 5432}",
            "data_directory": str(self.server.directory) if self.server.directory else None,
            "psycopg": _package_version("psycopg"),
            "sqlalchemy": _package_version("sqlalchemy"),
            **self._settings,
        }

    def close(self) -> None:
        self.server.stop()


def open_store(name: str, pg_url: str | None = None) -> BenchStore:
    """The store called ``name``; for ``postgres``, on ``pg_url`` or a throwaway server."""
    if name == "postgres":
        return PostgresBenchStore(pg_url)
    return FileBenchStore()
