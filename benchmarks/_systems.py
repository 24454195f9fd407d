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
- ``fanout(n, pause, concurrency)``: runs ``n`` items, each a step that sleeps ``pause`` s,
  ``concurrency`` at once, and returns how many ran. nbflow: ``nbflow.map`` of a step inside the
  workflow (each item a checkpointed step of it, on nbflow's worker threads); DBOS: the workflow
  enqueues ``n`` child workflows, each calling the step once, on a queue with
  ``worker_concurrency=concurrency``, and waits for their results.
- ``interrupted(n)``: calls the trivial step ``n`` times, then passes :data:`BLOCKER`, which blocks
  forever in the process of workload (r) that is killed (:mod:`benchmarks._crashed`) and nowhere
  else; returns ``n``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import nbflow
from benchmarks._stores import Place

__all__ = ["BLOCKER", "Blocker", "NbflowSystem", "Started", "System", "Unavailable", "item"]


def item(i: int) -> dict[str, Any]:
    """The small dict written as stream item ``i`` (the same for every system)."""
    return {"i": i, "name": "item", "ok": True}


class Blocker:
    """Where ``interrupted`` blocks in the process that is killed (``blocking`` set there only):
    each workflow that arrives releases ``reached`` once, then waits forever."""

    def __init__(self) -> None:
        self.blocking = False
        self.reached = threading.Semaphore(0)

    def arrive(self) -> None:
        if self.blocking:
            self.reached.release()
            threading.Event().wait()


#: The one blocker of this process.
BLOCKER = Blocker()


class Unavailable(Exception):
    """This system cannot run this workload (e.g. a feature of nbflow not there yet): the table
    shows n/a, and the reason under it; not an error."""


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

    def start_steps(self, n: int) -> Started:
        """Start ``many_steps(n)`` in the background."""

    def prepare_fanout(self, concurrency: int, poll: float | None) -> None:
        """Set up what ``run_fanout`` needs, outside the measured time (DBOS: its queue, polled
        every ``poll`` s, None: DBOS's default). Raises :class:`Unavailable` if it cannot run."""

    def run_fanout(self, n: int, pause: float, concurrency: int) -> str:
        """Run ``fanout(n, pause, concurrency)`` to its durable result; its workflow id."""

    def fanout_recorded(self, workflow_id: str) -> int:
        """How many items of that fan-out the database holds as recorded steps."""

    def start_interrupted(self, n: int) -> None:
        """Start ``interrupted(n)`` in the background (in the process that is killed)."""

    def reopen_after_crash(self, place: Place, expected: int) -> None:
        """Open ``place`` again after the killed process left ``expected`` interrupted workflows
        there, recovering none of them yet (DBOS: with an executor id of its own)."""

    def recover_all(self) -> list[Any]:
        """Recover the interrupted workflows and wait for their durable results; the results."""


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


@nbflow.step
def _nb_fanout_item(item: tuple[int, float]) -> int:
    """One fan-out item ``(i, pause)``: sleep ``pause`` s, return ``i``."""
    i, pause = item
    time.sleep(pause)
    return i


@nbflow.workflow(name="bench.fanout")
def nb_fanout(n: int, pause: float, concurrency: int) -> int:
    """``nbflow.map`` the sleeping step over ``n`` items, ``concurrency`` at once."""
    items = [(i, pause) for i in range(n)]
    results = nbflow.map(_nb_fanout_item, items, concurrency=concurrency)
    if list(results) != list(range(n)):
        raise AssertionError("nbflow.map returned results out of order")
    return len(results)


@nbflow.workflow(name="bench.interrupted")
def nb_interrupted(n: int) -> int:
    """Call a trivial step ``n`` times, then pass the blocker."""
    for i in range(n):
        _nb_noop(i)
    BLOCKER.arrive()
    return n


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

    def start_steps(self, n: int) -> Started:
        handle = self.rt.start(nb_many_steps, n)
        return Started(handle.workflow_id, handle.result)

    def prepare_fanout(self, concurrency: int, poll: float | None) -> None:
        if not callable(getattr(nbflow, "map", None)):
            raise Unavailable("nbflow.map not available")

    def run_fanout(self, n: int, pause: float, concurrency: int) -> str:
        handle = self.rt.start(nb_fanout, n, pause, concurrency)
        handle.result()
        return handle.workflow_id

    def fanout_recorded(self, workflow_id: str) -> int:
        name = _nb_fanout_item.name
        return sum(
            1 for s in self.rt.list_steps(workflow_id) if s.name == name and s.status == "SUCCESS"
        )

    def start_interrupted(self, n: int) -> None:
        self.rt.start(nb_interrupted, n)

    def reopen_after_crash(self, place: Place, expected: int) -> None:
        self.open(place)
        deadline = time.monotonic() + 30  # PostgreSQL: until the server saw the process go
        while len(self.rt.store.pending_workflows()) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {expected} interrupted workflows after 30 s")
            time.sleep(0.05)

    def recover_all(self) -> list[Any]:
        recovered = self.rt.recover()
        return [handle.result() for handle in recovered]
