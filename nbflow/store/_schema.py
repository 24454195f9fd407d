"""The schema, as ordered migrations. Never edit a released migration: append a new one.

Times are seconds since the epoch (DOUBLE); ``to_timestamp(created_at)`` turns them into timestamps
in SQL. Values are JSON text (``*_json``, queryable with DuckDB's JSON functions) or pickle bytes
(``*_pickle``); exactly one of the pair is set.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

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
]
