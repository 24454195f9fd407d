"""Fixtures: a fresh runtime per test on a real database, and a guard against leaked threads.

Tests marked ``contract`` (whole modules: ``pytestmark = pytest.mark.contract``) run once per store:
on a DuckDB file, and on a throwaway PostgreSQL server the session starts itself
(:mod:`tests.pgserver`), each test in a schema of its own. Where no server can be started, the
PostgreSQL runs are skipped with the reason.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nbflow
from tests.helpers import Gate, nbflow_threads, wait_until
from tests.pgserver import PostgresServer, start_or_skip_reason

STORES = ("duckdb", "postgres")
_schemas = itertools.count()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every ``contract`` test that uses a database once per store."""
    if "database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("contract"):
        metafunc.parametrize("database", STORES, indirect=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (skips the test where none can start)."""
    server, reason = start_or_skip_reason()
    if server is None:
        pytest.skip(str(reason))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A database URL on the throwaway server, with a schema no other test uses."""
    url = pg_server.url
    return f"{url}{'&' if '?' in url else '?'}schema=t{os.getpid()}_{next(_schemas)}"


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves nbflow threads running after its runtimes are closed."""
    before = set(nbflow_threads())
    yield
    nbflow._api._close_default()
    try:
        wait_until(lambda: not (set(nbflow_threads()) - before), timeout=10)
    except AssertionError:
        leaked = sorted(t.name for t in set(nbflow_threads()) - before)
        pytest.fail(f"the test leaked nbflow threads: {leaked}")


@pytest.fixture
def spawnable_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spawned process pool reads ``__main__.__spec__``; an IPython shell an earlier test made
    leaves a ``__main__`` without one (as a notebook kernel does)."""
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a DuckDB file, not created yet."""
    return tmp_path / "nbflow.duckdb"


@pytest.fixture
def database(request: pytest.FixtureRequest, db_path: Path) -> str:
    """A fresh database location: a DuckDB file, or for ``contract`` tests each store in turn."""
    if getattr(request, "param", "duckdb") == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(db_path)


@pytest.fixture
def rt(database: str) -> Iterator[nbflow.Runtime]:
    """The default runtime, on a fresh database; closed after the test."""
    runtime = nbflow.configure(database)
    yield runtime
    nbflow._api._close_default()


@pytest.fixture
def gate(rt: nbflow.Runtime) -> Iterator[Callable[[], Gate]]:
    """Make gates; every gate is released before the runtime closes, even when a test fails."""
    made: list[Gate] = []

    def make() -> Gate:
        made.append(Gate())
        return made[-1]

    yield make
    for g in made:
        g.release.set()
