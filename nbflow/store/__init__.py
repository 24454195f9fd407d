"""Storage backends behind one small interface (:class:`Store`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbflow._errors import ConfigurationError
from nbflow.store._base import ReplayRecord, Store
from nbflow.store._duckdb import DuckDBStore, default_path
from nbflow.store._ops import StepRow, StreamRow, WorkflowRow

__all__ = [
    "DuckDBStore",
    "PostgresStore",
    "ReplayRecord",
    "StepRow",
    "Store",
    "StreamRow",
    "WorkflowRow",
    "open_store",
    "resolve_database",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # imported on use: psycopg is an optional dependency
        from nbflow.store._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_database(database: str | os.PathLike[str] | None) -> str:
    """Turn what the user gave into a database location.

    ``None`` means ``$NBFLOW_DATABASE``, else ``.nbflow/<notebook>.duckdb`` beside the notebook
    when the kernel knows its path, else ``.nbflow/nbflow.duckdb`` in the working directory.
    """
    if database is None:
        database = os.environ.get("NBFLOW_DATABASE") or default_path()
    if isinstance(database, os.PathLike):
        database = os.fspath(database)
    if not isinstance(database, str) or not database:
        raise ConfigurationError(
            f"database must be a path, 'duckdb:///path', ':memory:' or 'postgresql://…', "
            f"not {database!r}."
        )
    return database


def open_store(database: str | os.PathLike[str] | None) -> Store:
    """Open the store for a database location (see :func:`resolve_database`)."""
    location = resolve_database(database)
    if location.startswith(("postgresql://", "postgres://")):
        try:
            from nbflow.store._postgres import PostgresStore
        except ImportError as exc:
            raise ConfigurationError(
                f"A PostgreSQL database needs psycopg 3 ({exc}). Install the extra: "
                "pip install 'nbflow[postgres]'."
            ) from exc
        return PostgresStore(location)
    if location.startswith("duckdb://"):
        location = location[len("duckdb://") :] or ":memory:"
    elif "://" in location:
        raise ConfigurationError(
            f"Unknown database URL {location!r}: use a file path, 'duckdb:///path/file.duckdb', "
            "':memory:' or 'postgresql://…'."
        )
    if location != ":memory:":
        location = str(Path(location).expanduser())
    return DuckDBStore(location)
