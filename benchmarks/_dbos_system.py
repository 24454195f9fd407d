"""The DBOS Transact adapter. Importing this module imports ``dbos`` and declares its workflows.

Lifecycle: the workflows are declared once per process (here, at import: DBOS needs its decorators
before launch). A DBOS instance is bound to one system database URL when it is constructed, so a
fresh database file per workload needs a fresh instance: :meth:`DbosSystem.open` constructs
``DBOS(config=...)`` on a new SQLite file and calls ``DBOS.launch()``; :meth:`DbosSystem.close`
calls ``DBOS.destroy()``, which keeps the registry of declared workflows (``destroy_registry=False``)
and joins DBOS's background threads. So DBOS is launched once per workload and round, and is never
running while nbflow is measured.

The SQLite file is DBOS's default store, in its default (rollback) journal mode: nothing is changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dbos import DBOS

from benchmarks._systems import Started, item

__all__ = ["DbosSystem"]


@DBOS.step()
def _dbos_noop(i: int) -> int:
    return i


@DBOS.workflow(name="bench.many_steps")
def dbos_many_steps(n: int) -> int:
    """Call a trivial step ``n`` times."""
    for i in range(n):
        _dbos_noop(i)
    return n


@DBOS.workflow(name="bench.write_items")
def dbos_write_items(n: int, key: str) -> int:
    """Write ``n`` small dicts to stream ``key`` from the workflow body, then close it."""
    write = DBOS.write_stream
    for i in range(n):
        write(key, item(i))
    DBOS.close_stream(key)
    return n


@DBOS.workflow(name="bench.write_stamped")
def dbos_write_stamped(n: int, pause: float, lead: float, key: str) -> int:
    """Write ``n`` items stamped with ``time.perf_counter()``, ``pause`` s apart."""
    time.sleep(lead)
    for i in range(n):
        DBOS.write_stream(key, {"i": i, "t": time.perf_counter()})
        time.sleep(pause)
    DBOS.close_stream(key)
    return n


@DBOS.workflow(name="bench.trivial")
def dbos_trivial(x: int) -> int:
    """Return ``x``."""
    return x


class DbosSystem:
    """DBOS Transact on a fresh SQLite file, launched per workload and destroyed after it."""

    name = "dbos"

    def __init__(self) -> None:
        self.title = f"DBOS {version('dbos')}"
        self._open = False

    def open(self, directory: Path) -> None:
        DBOS(
            config={
                "name": "nbflow-bench",
                "system_database_url": f"sqlite:///{directory / 'dbos.sqlite'}",
                "log_level": "WARNING",
            }
        )
        DBOS.launch()
        self._open = True

    def close(self) -> None:
        if self._open:
            DBOS.destroy()
            self._open = False

    def run_steps(self, n: int) -> None:
        DBOS.start_workflow(dbos_many_steps, n).get_result()

    def run_trivial(self) -> None:
        DBOS.start_workflow(dbos_trivial, 1).get_result()

    def start_items(self, n: int, key: str = "items") -> Started:
        handle = DBOS.start_workflow(dbos_write_items, n, key)
        return Started(handle.workflow_id, handle.get_result)

    def start_stamped(self, n: int, pause: float, lead: float, key: str = "stamped") -> Started:
        handle = DBOS.start_workflow(dbos_write_stamped, n, pause, lead, key)
        return Started(handle.workflow_id, handle.get_result)

    def read(self, workflow_id: str, key: str, *, poll: float | None = None) -> Iterator[Any]:
        return DBOS.read_stream(workflow_id, key, polling_interval_sec=poll)
