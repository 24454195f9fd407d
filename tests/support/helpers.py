"""Helpers shared by the tests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import nbflow

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.005) -> T:
    """Wait until ``predicate()`` is truthy and return it; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def nbflow_threads() -> list[threading.Thread]:
    """The live threads nbflow started."""
    return [t for t in threading.enumerate() if t.name.startswith("nbflow-")]


class Gate:
    """A step body that says when it was entered and waits until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def wait(self) -> None:
        self.calls += 1
        self.entered.set()
        if not self.release.wait(30):
            raise AssertionError("the test never released the gate")

    def reached(self) -> None:
        assert self.entered.wait(10), "the workflow never reached the gate"


def interrupt(runtime: nbflow.Runtime, *gates: Gate) -> None:
    """Close ``runtime`` under workflows blocked in a step, as a crash would: they stay PENDING."""
    runtime.close(timeout=0)
    for g in gates:
        g.release.set()
    wait_until(lambda: not [t for t in nbflow_threads() if t.name.startswith("nbflow-workflow")])


def sql(runtime: nbflow.Runtime, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a raw SQL query over the system database, on either store.

    ``?`` placeholders become ``$1, $2, …``, which both DuckDB and PostgreSQL accept.
    """
    counter = iter(range(1, len(params) + 1))
    query = re.sub(r"\?", lambda _: f"${next(counter)}", query)
    result = runtime.store.sql(query, list(params))  # type: ignore[attr-defined]
    return result if isinstance(result, list) else result.fetchall()
