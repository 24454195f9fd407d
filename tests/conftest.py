"""Fixtures: a fresh runtime on a real DuckDB file per test, and a guard against leaked threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nbflow
from tests.helpers import Gate, nbflow_threads, wait_until


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
def db_path(tmp_path: Path) -> Path:
    """A path for a DuckDB file, not created yet."""
    return tmp_path / "nbflow.duckdb"


@pytest.fixture
def rt(db_path: Path) -> Iterator[nbflow.Runtime]:
    """The default runtime, on a fresh DuckDB file; closed after the test."""
    runtime = nbflow.configure(db_path)
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
