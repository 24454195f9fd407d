"""How the DuckDB store inserts rows: the statement for a batch of rows of one table.

Three ways, chosen by the batch's size, each cheapest in its range (CPU a row, measured):

- up to 4 rows, a ``VALUES`` list of parameters;
- up to 199, one list per column, taken apart by ``unnest()``;
- from 200, one JSON text of columns, taken apart by DuckDB's ``from_json``: the committer holds
  the interpreter lock only while orjson writes the text, where converting lists of Python values
  to DuckDB's holds it for each value (a workflow of 20,000 steps: 17 → 11 µs a step). Rows that
  JSON cannot carry exactly (an infinite or NaN double, a value orjson refuses) go by lists.

Columns NULL in every row are left out (most of a step's): DuckDB's cost grows with each. A column
of one value in every row (a workflow's id, a stream's key) is sent once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from nbflow.store import _schema as schema

__all__ = ["insert_statement"]

#: The generic column types of :data:`~nbflow.store._schema.TABLES`, as DuckDB spells them.
_DIALECT = {
    schema.TEXT: "VARCHAR",
    schema.BLOB: "BLOB",
    schema.DOUBLE: "DOUBLE",
    schema.INTEGER: "INTEGER",
    schema.BIGINT: "BIGINT",
    schema.BOOLEAN: "BOOLEAN",
}
_TYPES = {table: tuple(_DIALECT[t] for _, t in columns) for table, columns in schema.TABLES.items()}


#: Types whose equal values are the same value: a column of one such value is sent once.
_SCALAR_TYPES = frozenset({"VARCHAR", "INTEGER", "BIGINT", "BOOLEAN"})
_NAMES = {table: tuple(name for name, _ in columns) for table, columns in schema.TABLES.items()}


Columns = list[tuple[Any, ...]]  # a batch's rows, column by column


def _kept(table: str, columns: Columns) -> list[int]:
    """The columns an insert names: those not NULL in every row (most of a step's: its pickle,
    error, where it was taken from), as DuckDB's cost grows with each column it takes apart;
    every column of a cache row (a replaced row is set anew)."""
    if table == "step_cache":
        return list(range(len(columns)))
    return [i for i, column in enumerate(columns) if any(v is not None for v in column)]


def _constants(table: str, columns: Columns, kept: list[int]) -> set[int]:
    """The kept columns that hold one value in every row (a batch of one workflow: its id, its
    steps' names, a stream's key): sent once, as a parameter, not once a row (1,000 step rows
    inserted and committed: 6.2 → 4.3 µs a row). Only types whose equal values are the same
    value; at least one column stays a list, as it gives the number of rows."""
    types = _TYPES[table]
    found = set()
    for i in kept:
        column = columns[i]
        first = column[0]
        if types[i] in _SCALAR_TYPES and column[-1] == first and column.count(first) == len(column):
            found.add(i)
    if len(found) == len(kept):
        found.discard(kept[0])
    return found


def _lists_insert(
    table: str, columns: Columns, kept: list[int], constants: set[int]
) -> tuple[str, list[Any]]:
    """An insert of the ``kept`` columns as one list each, taken apart by ``unnest()`` (a
    column of ``constants``: one value)."""
    names, types = _NAMES[table], _TYPES[table]
    into = ", ".join(f'"{names[i]}"' for i in kept)
    values = ", ".join(
        f"${n + 1}::{types[i]}" if i in constants else f"unnest(${n + 1}::{types[i]}[])"
        for n, i in enumerate(kept)
    )
    params = [columns[i][0] if i in constants else list(columns[i]) for i in kept]
    return f"INSERT INTO {table} ({into}) SELECT {values}", params


def _json_insert(
    table: str, columns: Columns, kept: list[int], constants: set[int]
) -> tuple[str, list[Any]] | None:
    """An insert of the ``kept`` columns as one JSON text taken apart by ``from_json``, blob
    columns as lists and the columns of ``constants`` as one value beside it; None when JSON
    cannot carry a value exactly (an infinite or NaN double, which orjson writes as null; a
    value orjson refuses)."""
    names, types = _NAMES[table], _TYPES[table]
    texts = [i for i in kept if types[i] != "BLOB" and i not in constants]
    for i in texts:
        if types[i] == "DOUBLE" and not math.isfinite(sum(filter(None, columns[i]))):
            return None
    try:
        payload = orjson.dumps({f"c{i}": columns[i] for i in texts})
    except orjson.JSONEncodeError:
        return None
    params: list[Any] = [payload.decode()]
    select = {i: f"unnest(j.c{i})" for i in texts}
    for i in kept:
        if i in constants:
            params.append(columns[i][0])
            select[i] = f"${len(params)}::{types[i]}"
        elif types[i] == "BLOB":
            params.append(list(columns[i]))
            select[i] = f"unnest(${len(params)}::BLOB[])"
    structure = ", ".join(f'"c{i}": "{types[i]}[]"' for i in texts)
    into = ", ".join(f'"{names[i]}"' for i in kept)
    values = ", ".join(select[i] for i in kept)
    sql = (
        f"INSERT INTO {table} ({into}) SELECT {values} "
        f"FROM (SELECT from_json($1::VARCHAR, '{{{structure}}}') AS j)"
    )
    return sql, params


def _values_insert(table: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """An insert of a few rows as a ``VALUES`` list of the columns not NULL in every row (a
    workflow's row has 24 columns, 14 of them NULL: naming the others saves 0.1 ms a commit)."""
    kept = _kept(table, list(zip(*rows, strict=True)))
    names = _NAMES[table]
    into = ", ".join(f'"{names[i]}"' for i in kept)
    values = f"({', '.join('?' * len(kept))})"
    sql = f"INSERT INTO {table} ({into}) VALUES {', '.join([values] * len(rows))}"
    return sql, [row[i] for row in rows for i in kept]


#: Up to this many rows, a VALUES list is cheaper for DuckDB to run than unnest() over lists.
_VALUES_MAX_ROWS = 4
#: From this many rows, one JSON text of columns costs less than lists (CPU a row: at 50 rows
#: 106 µs against 85, at 150 even, at 600 18 against 24, at 1,200 12 against 17).
_JSON_MIN_ROWS = 200


def insert_statement(table: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, Sequence[Any]]:
    """The statement (SQL, parameters) that inserts ``rows`` into ``table``, in one of the three
    ways above."""
    if len(rows) <= _VALUES_MAX_ROWS:
        return _values_insert(table, rows)
    columns: Columns = list(zip(*rows, strict=True))
    kept = _kept(table, columns)
    constants = _constants(table, columns, kept)
    found = None
    if len(rows) >= _JSON_MIN_ROWS:
        found = _json_insert(table, columns, kept, constants)
    return found if found is not None else _lists_insert(table, columns, kept, constants)
