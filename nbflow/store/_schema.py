"""The schema: the current tables (:data:`TABLES`), and the ordered migrations that build them.

Never edit a released migration: append a new one, and change :data:`TABLES` to what the tables are
after it (a test checks that a freshly migrated database has exactly the columns of :data:`TABLES`,
and that the row records of :mod:`nbflow.store._ops` have them too, in order).

Times are seconds since the epoch (DOUBLE); ``to_timestamp(created_at)`` turns them into timestamps
in SQL. Values are JSON text (``*_json``, queryable with DuckDB's JSON functions) or pickle bytes
(``*_pickle``); exactly one of the pair is set.
"""

from __future__ import annotations

__all__ = [
    "BIGINT",
    "BLOB",
    "BOOLEAN",
    "DOUBLE",
    "INTEGER",
    "MIGRATIONS",
    "TABLES",
    "TEXT",
    "column_list",
]

# Generic column types; each store spells them in its own dialect.
TEXT = "text"
BLOB = "blob"
DOUBLE = "double"  # 8-byte float
INTEGER = "integer"  # 4 bytes
BIGINT = "bigint"  # 8 bytes
BOOLEAN = "boolean"

#: Every table's columns ``(name, generic type)``, in the order the migrations leave them.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "workflows": (
        ("workflow_id", TEXT),
        ("name", TEXT),
        ("status", TEXT),
        ("inputs_json", TEXT),
        ("inputs_pickle", BLOB),
        ("output_json", TEXT),
        ("output_pickle", BLOB),
        ("error", TEXT),
        ("error_pickle", BLOB),
        ("created_at", DOUBLE),
        ("updated_at", DOUBLE),
        ("ended_at", DOUBLE),
        ("executor_id", TEXT),
        ("parent_id", TEXT),
        ("error_step", INTEGER),
        ("queue_name", TEXT),
        ("deadline", DOUBLE),
        ("code", TEXT),
        ("priority", INTEGER),
        ("deduplication_id", TEXT),
        ("partition_key", TEXT),
        ("available_at", DOUBLE),
        ("started_at", DOUBLE),
        ("recovery_attempts", INTEGER),
    ),
    "steps": (
        ("workflow_id", TEXT),
        ("function_id", INTEGER),
        ("name", TEXT),
        ("output_json", TEXT),
        ("output_pickle", BLOB),
        ("error", TEXT),
        ("error_pickle", BLOB),
        ("started_at", DOUBLE),
        ("ended_at", DOUBLE),
        ("attempts", INTEGER),
        ("code", TEXT),
        ("args_hash", TEXT),
        ("cached_from", TEXT),
        ("args_text", TEXT),
    ),
    "streams": (
        ("workflow_id", TEXT),
        ("key", TEXT),
        ("offset", BIGINT),
        ("value_json", TEXT),
        ("value_pickle", BLOB),
        ("is_end", BOOLEAN),
        ("function_id", INTEGER),
        ("attempt", INTEGER),
        ("created_at", DOUBLE),
    ),
    "messages": (
        ("message_id", TEXT),
        ("destination_id", TEXT),
        ("topic", TEXT),
        ("value_json", TEXT),
        ("value_pickle", BLOB),
        ("created_at", DOUBLE),
        ("consumed_at", DOUBLE),
    ),
    "step_cache": (
        ("entry", TEXT),
        ("name", TEXT),
        ("code", TEXT),
        ("args_hash", TEXT),
        ("output_json", TEXT),
        ("output_pickle", BLOB),
        ("workflow_id", TEXT),
        ("created_at", DOUBLE),
        ("detail", TEXT),
    ),
}

_RESERVED = {"offset"}  # column names quoted in SQL


def column_list(table: str) -> str:
    """The table's columns, in order, as SQL: ``workflow_id, key, "offset", …``."""
    return ", ".join(f'"{n}"' if n in _RESERVED else n for n, _ in TABLES[table])


MIGRATIONS: list[list[str]] = [
    # 1: workflows, steps, streams
    [
        """
        CREATE TABLE workflows (
            workflow_id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            inputs_json VARCHAR,
            inputs_pickle BLOB,
            output_json VARCHAR,
            output_pickle BLOB,
            error VARCHAR,
            error_pickle BLOB,
            created_at DOUBLE NOT NULL,
            updated_at DOUBLE NOT NULL,
            ended_at DOUBLE,
            executor_id VARCHAR,
            parent_id VARCHAR,
            error_step INTEGER
        )
        """,
        """
        CREATE TABLE steps (
            workflow_id VARCHAR NOT NULL,
            function_id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            output_json VARCHAR,
            output_pickle BLOB,
            error VARCHAR,
            error_pickle BLOB,
            started_at DOUBLE NOT NULL,
            ended_at DOUBLE NOT NULL,
            attempts INTEGER NOT NULL,
            PRIMARY KEY (workflow_id, function_id)
        )
        """,
        """
        CREATE TABLE streams (
            workflow_id VARCHAR NOT NULL,
            key VARCHAR NOT NULL,
            "offset" BIGINT NOT NULL,
            value_json VARCHAR,
            value_pickle BLOB,
            is_end BOOLEAN NOT NULL,
            function_id INTEGER,
            attempt INTEGER,
            created_at DOUBLE NOT NULL,
            PRIMARY KEY (workflow_id, key, "offset")
        )
        """,
    ],
    # 2: messages; queues and deadlines on workflows
    [
        """
        CREATE TABLE messages (
            message_id VARCHAR PRIMARY KEY,
            destination_id VARCHAR NOT NULL,
            topic VARCHAR,
            value_json VARCHAR,
            value_pickle BLOB,
            created_at DOUBLE NOT NULL
        )
        """,
        "ALTER TABLE workflows ADD COLUMN queue_name VARCHAR",
        "ALTER TABLE workflows ADD COLUMN deadline DOUBLE",
    ],
    # 3: code fingerprints and argument hashes of checkpoints; the step cache
    [
        "ALTER TABLE workflows ADD COLUMN code VARCHAR",
        "ALTER TABLE steps ADD COLUMN code VARCHAR",
        "ALTER TABLE steps ADD COLUMN args_hash VARCHAR",
        "ALTER TABLE steps ADD COLUMN cached_from VARCHAR",
        """
        CREATE TABLE step_cache (
            entry VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            code VARCHAR NOT NULL,
            args_hash VARCHAR NOT NULL,
            output_json VARCHAR,
            output_pickle BLOB,
            workflow_id VARCHAR,
            created_at DOUBLE NOT NULL,
            detail VARCHAR
        )
        """,
    ],
    # 4: queue options (priority, deduplication, partitions, delays), the start time rate limits
    # count, how often a workflow was recovered; a short form of each step call's arguments (the
    # steps table's); when a message sent with an idempotency key was received (it is kept, so
    # the key never delivers again)
    [
        "ALTER TABLE workflows ADD COLUMN priority INTEGER",
        "ALTER TABLE workflows ADD COLUMN deduplication_id VARCHAR",
        "ALTER TABLE workflows ADD COLUMN partition_key VARCHAR",
        "ALTER TABLE workflows ADD COLUMN available_at DOUBLE",
        "ALTER TABLE workflows ADD COLUMN started_at DOUBLE",
        "ALTER TABLE workflows ADD COLUMN recovery_attempts INTEGER",
        "ALTER TABLE steps ADD COLUMN args_text VARCHAR",
        "ALTER TABLE messages ADD COLUMN consumed_at DOUBLE",
    ],
]
