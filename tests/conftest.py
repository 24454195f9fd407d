"""Fixtures: a fresh runtime per test on a real database; guards against leaked threads and slow
teardowns; skips for what needs an extra that is not installed.

Tests marked ``contract`` (whole modules: ``pytestmark = pytest.mark.contract``) run once per store:
on a DuckDB file, and on a throwaway PostgreSQL server the session starts itself
(:mod:`tests.support.pgserver`), each test in a schema of its own (those runs are marked
``postgres``). Where no server can be started, the PostgreSQL runs are skipped with the reason.

The tiers (``python3 dev.py test --fast`` runs the first): tests that need no browser, no kernel,
no PostgreSQL and no kill -9 (``-m "not browser and not kernel and not postgres and not crash"``);
then everything.

A test module that imports a package of an extra that is not installed is skipped with the extra's
name, and so is a test that needs one when it runs (``pytest`` collects in a venv without them).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nbflow
from tests.support.helpers import Gate, nbflow_threads, wait_until
from tests.support.pgserver import PostgresServer, start_or_skip_reason

STORES = ("duckdb", "postgres")
_schemas = itertools.count()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every ``contract`` test that uses a database once per store."""
    if "database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("contract"):
        stores = [pytest.param("duckdb"), pytest.param("postgres", marks=pytest.mark.postgres)]
        metafunc.parametrize("database", stores, indirect=True, ids=STORES)


#: The packages of nbflow's extras a test may need, and the extra that brings each.
EXTRAS = {
    "IPython": "notebook",
    "ipykernel": "notebook",
    "ipywidgets": "notebook",
    "jupyter_client": "notebook",
    "nbformat": "dev",
    "nbclient": "dev",
    "nbval": "dev",
    "tqdm": "dev",
    "playwright": "dev",
    "jupyterlab": "dev",
    "notebook": "dev",
    "psycopg": "postgres",
    "distributed": "dask",
    "dbos": "bench",
}
_MISSING = re.compile(r"No module named '([\w.]+)'")


def _missing_extra(text: str) -> str | None:
    """The skip reason when ``text`` (an error) says an extra's package is not installed."""
    found = _MISSING.search(text)
    package = found.group(1).split(".")[0] if found else None
    if package not in EXTRAS:
        return None
    return f"{package} is not installed (pip install -e '.[{EXTRAS[package]}]')"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A test module that imports an extra's missing package is skipped, saying which."""
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        reason = _missing_extra(str(report.longrepr))
        if reason is not None:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, f"Skipped: {reason}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that needs an extra's missing package when it runs is skipped, saying which."""
    report = yield
    error = None if call.excinfo is None else call.excinfo.value
    while error is not None and not isinstance(error, ModuleNotFoundError):
        error = error.__cause__ or error.__context__  # (nbflow's error saying which extra)
    if report.failed and error is not None:
        reason = _missing_extra(str(error))
        if reason is not None:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {reason}")
    return report


#: Seconds a test's own teardown may take (its function-scoped fixtures: closing runtimes,
#: joining threads). A longer one means something the test left running had to be waited for.
TEARDOWN_LIMIT = 2.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Fail a test whose teardown took longer than :data:`TEARDOWN_LIMIT` seconds. Only between
    two tests of one module: there only the test's own fixtures end (a module's or the session's,
    such as a server, end after its last test)."""
    started = time.monotonic()
    result = yield
    took = time.monotonic() - started
    same_module = nextitem is not None and nextitem.module is item.module
    if same_module and took > TEARDOWN_LIMIT:
        raise pytest.fail.Exception(
            f"the teardown of {item.nodeid} took {took:.1f} s (at most {TEARDOWN_LIMIT:.0f} s): "
            "something the test left running (a workflow blocked in plain Python, a thread) had "
            "to be waited for; end it in the test"
        )
    return result


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
