"""The schema is described once (``TABLES``): the row records and both migrated stores match it."""

from __future__ import annotations

import pytest

import nbflow
from nbflow.store import DuckDBStore
from nbflow.store._ops import CacheRow, MessageRow, StepRow, StreamRow, WorkflowRow
from nbflow.store._schema import BIGINT, BLOB, BOOLEAN, DOUBLE, INTEGER, TABLES, TEXT

pytestmark = pytest.mark.contract

ROWS = {
    "workflows": WorkflowRow,
    "steps": StepRow,
    "streams": StreamRow,
    "messages": MessageRow,
    "step_cache": CacheRow,
}

#: How information_schema.columns names the type of a migrated column of each generic type.
INFORMATION_SCHEMA_TYPES = {
    "duckdb": {
        TEXT: "VARCHAR",
        BLOB: "BLOB",
        DOUBLE: "DOUBLE",
        INTEGER: "INTEGER",
        BIGINT: "BIGINT",
        BOOLEAN: "BOOLEAN",
    },
    "postgres": {
        TEXT: "character varying",
        BLOB: "bytea",
        DOUBLE: "double precision",
        INTEGER: "integer",
        BIGINT: "bigint",
        BOOLEAN: "boolean",
    },
}

#: Tables a store keeps for itself, not described in TABLES (they hold no rows of the log).
OWN_TABLES = {"nbflow_schema", "executors"}


def test_every_table_has_a_row_record() -> None:
    assert set(ROWS) == set(TABLES)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_row_fields_are_the_table_columns_in_order(table: str) -> None:
    assert ROWS[table]._fields == tuple(name for name, _ in TABLES[table])


def test_migrated_database_has_exactly_the_described_columns(rt: nbflow.Runtime) -> None:
    store = rt.store
    dialect = "duckdb" if isinstance(store, DuckDBStore) else "postgres"
    rows = store._fetchall(  # type: ignore[attr-defined]
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_catalog = current_database() "
        "ORDER BY table_name, ordinal_position"
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        if table not in OWN_TABLES:
            found.setdefault(table, []).append((column, data_type))
    types = INFORMATION_SCHEMA_TYPES[dialect]
    expected = {
        table: [(name, types[kind]) for name, kind in columns] for table, columns in TABLES.items()
    }
    assert found == expected
