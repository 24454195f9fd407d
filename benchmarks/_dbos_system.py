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

Fan-out (workloads h, h1) is DBOS's documented way: the parent workflow enqueues one child
workflow per item on a queue with ``worker_concurrency`` = the concurrency and waits for each
child's result; each child calls the sleeping step once. DBOS 3.4 declares queues after launch
(``DBOS.register_queue``, stored in the system database); :meth:`DbosSystem.prepare_fanout`
registers it before the measured time and waits until DBOS's queue manager (which looks for new
queues once a second) has started its worker thread. The queue is polled every
``polling_interval_sec``: DBOS's default 1 s in (h), 50 ms in (h1).

The executor id is DBOS's default (``local``) in the benchmark process; the writer process of
workload (x) gives its own, so neither ``DBOS.launch()`` recovers the other's workflows. In
workload (r) the killed process has the default; the benchmark process reopens with one of its own
and recovers the killed one's workflows with ``DBOS._recover_pending_workflows(["local"])``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

from dbos import DBOS

from benchmarks._stores import Place
from benchmarks._systems import BLOCKER, Started, item

#: The queue of the fan-out's child workflows (in a fresh database for every workload).
FANOUT_QUEUE = "bench-fanout"

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


@DBOS.step()
def _dbos_sleep(i: int, pause: float) -> int:
    """Sleep ``pause`` s, return ``i``."""
    time.sleep(pause)
    return i


@DBOS.workflow(name="bench.fanout_item")
def dbos_fanout_item(i: int, pause: float) -> int:
    """One fan-out item: a child workflow calling the sleeping step once."""
    return _dbos_sleep(i, pause)


@DBOS.workflow(name="bench.fanout")
def dbos_fanout(n: int, pause: float, concurrency: int) -> int:
    """Enqueue ``n`` child workflows on the fan-out queue, then wait for all of them."""
    handles = [DBOS.enqueue_workflow(FANOUT_QUEUE, dbos_fanout_item, i, pause) for i in range(n)]
    results = [h.get_result() for h in handles]
    if results != list(range(n)):
        raise AssertionError("the children returned wrong results")
    return len(results)


@DBOS.workflow(name="bench.interrupted")
def dbos_interrupted(n: int) -> int:
    """Call a trivial step ``n`` times, then pass the blocker."""
    for i in range(n):
        _dbos_noop(i)
    BLOCKER.arrive()
    return n


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

    def start_steps(self, n: int) -> Started:
        handle = DBOS.start_workflow(dbos_many_steps, n)
        return Started(handle.workflow_id, handle.get_result)

    def prepare_fanout(self, concurrency: int, poll: float | None) -> None:
        options: Any = {} if poll is None else {"polling_interval_sec": poll}
        DBOS.register_queue(FANOUT_QUEUE, worker_concurrency=concurrency, **options)
        thread_name = f"queue-worker-{FANOUT_QUEUE}"
        deadline = time.monotonic() + 30
        while not any(t.name == thread_name for t in threading.enumerate()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"DBOS started no {thread_name} thread within 30 s")
            time.sleep(0.01)

    def run_fanout(self, n: int, pause: float, concurrency: int) -> str:
        handle = DBOS.start_workflow(dbos_fanout, n, pause, concurrency)
        handle.get_result()
        return handle.workflow_id

    def fanout_recorded(self, workflow_id: str) -> int:
        children = DBOS.list_workflows(
            parent_workflow_id=workflow_id, status="SUCCESS", load_input=False, load_output=False
        )
        step = _dbos_sleep.__qualname__
        return sum(
            1
            for child in children
            for s in DBOS.list_workflow_steps(child.workflow_id)
            if s["function_name"].endswith(step) and s["error"] is None
        )

    def start_interrupted(self, n: int) -> None:
        DBOS.start_workflow(dbos_interrupted, n)

    def reopen_after_crash(self, place: Place, expected: int) -> None:
        # An executor id other than the killed process's (``local``), so that launch() does not
        # recover its workflows in the background: recover_all() does, measured.
        executor_id, self.executor_id = self.executor_id, "nbflow-bench-recoverer"
        try:
            self.open(place)
        finally:
            self.executor_id = executor_id

    def recover_all(self) -> list[Any]:
        handles = DBOS._recover_pending_workflows(["local"])
        return [handle.get_result() for handle in handles]
