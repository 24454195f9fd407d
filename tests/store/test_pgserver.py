"""The throwaway PostgreSQL server of the tests (tests/support/pgserver.py) itself."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.pgserver import PostgresServer, start_or_skip_reason

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """One server for this module; the tests are skipped, saying why, when none can start."""
    started, reason = start_or_skip_reason()
    if started is None:
        pytest.skip(reason or "no PostgreSQL server")
    yield started
    started.stop()


def test_server_accepts_connections_with_the_asked_settings(server: PostgresServer) -> None:
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        if not server.existing_url:
            settings: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings"
                    " WHERE name IN ('fsync', 'max_connections', 'listen_addresses')"
                ).fetchall()
            )
            assert settings == {
                "fsync": "off",
                "max_connections": "200",
                "listen_addresses": "127.0.0.1",
            }


def test_databases_are_independent(server: PostgresServer) -> None:
    first, second = server.create_database(), server.create_database()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    with psycopg.connect(second) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
        conn.execute("CREATE TABLE t (x text)")  # the same name, no clash
    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_drop_database(server: PostgresServer) -> None:
    url = server.create_database("nbflow_test_dropped")
    conn = psycopg.connect(url)  # left open: the drop closes it
    try:
        server.drop_database("nbflow_test_dropped")
        with psycopg.connect(server.url) as admin:
            rows = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'nbflow_test_dropped'"
            ).fetchall()
        assert rows == []
    finally:
        conn.close()


def test_stop_ends_the_server_and_removes_its_folder(server: PostgresServer) -> None:
    if server.existing_url:
        pytest.skip("an existing server is used ($NBFLOW_TEST_POSTGRES_URL): nothing to start")
    with PostgresServer() as own:
        directory, url = own.directory, own.url
        assert directory is not None and directory.is_dir()
        pid = own.pid
        assert pid is not None
        psycopg.connect(own.create_database()).close()
    assert not directory.exists()
    assert own.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()
    own.stop()  # a second stop does nothing
