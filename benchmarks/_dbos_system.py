"""The DBOS Transact adapter. Importing this module imports ``dbos`` and declares its workflows.

Lifecycle: the workflows are declared once per process (here, at import: DBOS needs its decorators
before launch). A DBOS instance is bound to one system database URL when it is constructed, so a
fresh database per workload needs a fresh instance: :meth:`DbosSystem.open` constructs
``DBOS(config=...)`` on a new SQLite file or PostgreSQL database and calls ``DBOS.launch()``;
:meth:`DbosSystem.close` calls ``DBOS.destroy()``, which keeps the registry of declared workflows
(``destroy_registry=False``) and joins DBOS's background threads. So DBOS is launched once per
workload and round, and is never running while nbflow is measured.

The SQLite file is DBOS's default store, in its default (rollback) journal mode: nothing is changed.
On PostgreSQL (``system_database_url`` = the fresh database's ``postgresql://`` URL) DBOS keeps its
defaults too: ``use_listen_notify`` on (a reader in any process is woken by a NOTIFY, which DBOS
sends from a background thread that coalesces writes every ``notification_coalesce_sec`` = 10 ms),
and readers poll every ``notification_listener_polling_interval_sec`` = 1 s besides.

The executor id is DBOS's default (``local``) in the benchmark process; the writer process of
workload (x) gives its own, so neither ``DBOS.launch()`` recovers the other's workflows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

from dbos import DBOS

from benchmarks._stores import Place
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
    """DBOS Transact on a fresh SQLite file or PostgreSQL database, launched per workload and
    destroyed after it.

    Args:
        executor_id: DBOS's executor id; None: its default.
    """

    name = "dbos"

    def __init__(self, executor_id: str | None = None) -> None:
        self.title = f"DBOS {version('dbos')}"
        self.executor_id = executor_id
        self.place: Place | None = None

    def open(self, place: Place) -> None:
        url = place.pg_url or f"sqlite:///{place.directory / 'dbos.sqlite'}"
        config: Any = {
            "name": "nbflow-bench",
            "system_database_url": url,
            "log_level": "WARNING",
        }
        if self.executor_id is not None:
            config["executor_id"] = self.executor_id
        DBOS(config=config)
        self.place = place  # from here on, close() destroys the instance
        DBOS.launch()

    def close(self) -> None:
        if self.place is not None:
            DBOS.destroy()
            self.place = None

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

    def make_durable(self) -> None:
        pass  # DBOS.start_workflow returns after the workflow's row is committed
