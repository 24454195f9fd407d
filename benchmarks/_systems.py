"""The interface the workloads are written against, and its nbflow implementation.

A :class:`System` is opened on a fresh database (a :class:`~benchmarks._stores.Place`: a DuckDB or
SQLite file in a fresh directory, or a fresh PostgreSQL database) for one workload, used, and
closed. Its workflows are declared once, when its module is imported (DBOS needs its decorators to
run before ``DBOS.launch()``; nbflow finds workflows by their registered name).

The workflows are the same for every system:

- ``many_steps(n)``: calls a trivial step ``n`` times.
- ``write_items(n, key)``: writes ``n`` small dicts to stream ``key`` from the workflow body, closes it.
- ``write_stamped(n, pause, lead, key)``: waits ``lead`` s (so the reader is subscribed), then writes
  ``n`` items ``{"i": i, "t": time.perf_counter()}``, sleeping ``pause`` s after each; closes it.
- ``trivial(x)``: returns ``x``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import nbflow
from benchmarks._stores import Place

__all__ = ["NbflowSystem", "Started", "System", "item"]


def item(i: int) -> dict[str, Any]:
    """The small dict written as stream item ``i`` (the same for every system)."""
    return {"i": i, "name": "item", "ok": True}


@dataclass(frozen=True)
class Started:
    """A workflow started in the background."""

    workflow_id: str
    wait: Callable[[], Any]  # waits for the durable result and returns it


class System(Protocol):
    """What a workload needs from a workflow system."""

    name: str  # "nbflow" or "dbos": the key in results
    title: str  # the column title, e.g. "DBOS 3.4.0"
    place: Place | None  # where it is open; None while closed

    def open(self, place: Place) -> None:
        """Open a fresh database: ``place.pg_url`` if set, else a file in ``place.directory``."""

    def close(self) -> None:
        """Close it, stopping every thread the system started."""

    def run_steps(self, n: int) -> None:
        """Run ``many_steps(n)`` to its durable result."""

    def run_trivial(self) -> None:
        """Start ``trivial`` and wait for its durable result."""

    def start_items(self, n: int, key: str = "items") -> Started:
        """Start ``write_items(n, key)`` in the background."""

    def start_stamped(self, n: int, pause: float, lead: float, key: str = "stamped") -> Started:
        """Start ``write_stamped(n, pause, lead, key)`` in the background."""

    def read(self, workflow_id: str, key: str, *, poll: float | None = None) -> Iterator[Any]:
        """Iterate over a stream until it is closed. ``poll``: a polling interval, where used."""

    def make_durable(self) -> None:
        """Wait until the workflows started so far are in the database, for other processes."""


# -- nbflow ------------------------------------------------------------------------------------


@nbflow.step
def _nb_noop(i: int) -> int:
    return i


@nbflow.workflow(name="bench.many_steps")
def nb_many_steps(n: int) -> int:
    """Call a trivial step ``n`` times."""
    for i in range(n):
        _nb_noop(i)
    return n


@nbflow.workflow(name="bench.write_items")
def nb_write_items(n: int, key: str) -> int:
    """Write ``n`` small dicts to stream ``key`` from the workflow body, then close it."""
    write = nbflow.write_stream
    for i in range(n):
        write(key, item(i))
    nbflow.close_stream(key)
    return n


@nbflow.workflow(name="bench.write_stamped")
def nb_write_stamped(n: int, pause: float, lead: float, key: str) -> int:
    """Write ``n`` items stamped with ``time.perf_counter()``, ``pause`` s apart."""
    time.sleep(lead)
    for i in range(n):
        nbflow.write_stream(key, {"i": i, "t": time.perf_counter()})
        time.sleep(pause)
    nbflow.close_stream(key)
    return n


@nbflow.workflow(name="bench.trivial")
def nb_trivial(x: int) -> int:
    """Return ``x``."""
    return x


class NbflowSystem:
    """nbflow on a fresh DuckDB file (``nbflow.Runtime(path)``) or PostgreSQL database
    (``nbflow.Runtime(url)``), closed after each workload."""

    name = "nbflow"

    def __init__(self) -> None:
        self.title = f"nbflow {nbflow.__version__}"
        self.runtime: nbflow.Runtime | None = None
        self.place: Place | None = None

    @property
    def rt(self) -> nbflow.Runtime:
        assert self.runtime is not None, "open() first"
        return self.runtime

    def open(self, place: Place) -> None:
        self.runtime = nbflow.Runtime(place.pg_url or place.directory / "nbflow.duckdb")
        self.place = place

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
            self.place = None

    def run_steps(self, n: int) -> None:
        self.rt.start(nb_many_steps, n).result()

    def run_trivial(self) -> None:
        self.rt.start(nb_trivial, 1).result()

    def start_items(self, n: int, key: str = "items") -> Started:
        handle = self.rt.start(nb_write_items, n, key)
        return Started(handle.workflow_id, handle.result)

    def start_stamped(self, n: int, pause: float, lead: float, key: str = "stamped") -> Started:
        handle = self.rt.start(nb_write_stamped, n, pause, lead, key)
        return Started(handle.workflow_id, handle.result)

    def read(self, workflow_id: str, key: str, *, poll: float | None = None) -> Iterator[Any]:
        # nbflow's readers take no polling interval: they are woken by the committer (same
        # process) or by NOTIFY (other processes, PostgreSQL), with a 1 s poll as a fallback there.
        return self.rt.read_stream(workflow_id, key)

    def make_durable(self) -> None:
        self.rt.flush()
