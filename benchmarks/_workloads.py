"""The workloads, their sizes, and the metrics they report (with the goals from the issue).

Each workload ("unit") runs against one open :class:`~benchmarks._systems.System` and returns a
dict of metric values. Workloads (b) and (e) share one unit: (e) reads back the closed stream (b)
just wrote, in the same fresh file (for DBOS, writing 10,000 items takes half a minute; writing
them twice per round would double the run for no new information). With ``--only e`` the unit still
writes the stream, and reports only (e).

Workloads (h) and (h1) are one unit run twice: (h1) only changes DBOS's queue polling interval
(nbflow has none, so its (h1) is another run of (h)). Workload (i) reuses ``many_steps``.

Workload (r) kills a child process (:mod:`benchmarks._crashed`) to leave interrupted workflows
behind, so it closes the open system first and opens it again after the crash.

Workloads (x) and (x1) need a database that several processes share (the PostgreSQL store): the
writer is a child process (:mod:`benchmarks._xwriter`), the reader is this process.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks._sizes import FULL, QUICK, Sizes
from benchmarks._systems import System, Unavailable

__all__ = [
    "FULL",
    "METRICS",
    "QUICK",
    "UNITS",
    "Metric",
    "Sizes",
    "Unavailable",
    "Unit",
    "percentile",
]


@dataclass(frozen=True)
class Metric:
    """One row of the table."""

    key: str  # "a", "c.p50", ...
    workload: str  # the letter --only selects: "a", "c", "c1", ...
    label: Callable[[Sizes], str]
    unit: str
    higher_is_better: bool
    goal: float | None = None  # nbflow's goal (None: no goal)
    nbflow_only: bool = False

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return "—"
        sign = "≥" if self.higher_is_better else "≤"
        shown = f"{self.goal:,.0f}" if self.goal >= 1000 else f"{self.goal:g}"
        return f"{sign} {shown} {self.unit}"

    def meets(self, value: float) -> bool:
        assert self.goal is not None
        return value >= self.goal if self.higher_is_better else value <= self.goal


def _n(value: int) -> str:
    return f"{value:,}"


METRICS: list[Metric] = [
    Metric("a", "a", lambda s: f"per-step overhead ({_n(s.steps)} trivial steps)", "µs/step", False, 10),
    Metric("b", "b", lambda s: f"stream writes from the workflow body ({_n(s.stream_items)} dicts)", "items/s", True, 200_000),
    Metric("c.p50", "c", lambda s: f"write→read latency p50 ({_n(s.latency_items)} items, {s.latency_pause * 1e3:g} ms apart)", "ms", False, 1),
    Metric("c.p99", "c", lambda s: "write→read latency p99", "ms", False, 5),
    Metric("c1.p50", "c1", lambda s: "same, DBOS reader polling every 1 ms: p50", "ms", False),
    Metric("c1.p99", "c1", lambda s: "same, DBOS reader polling every 1 ms: p99", "ms", False),
    Metric("d", "d", lambda s: f"trivial workflow, start → result (median of {_n(s.trivial_runs)})", "ms", False, 1.5),
    Metric("e", "e", lambda s: f"read back a closed {_n(s.stream_items)}-item stream", "items/s", True, 1_000_000),
    Metric("f", "f", lambda s: f"peak RSS growth reading a closed {_n(s.rss_items)}-item stream", "MB", False, 100, nbflow_only=True),
    Metric("g", "g", lambda s: f"{s.writers} workflows writing concurrently ({s.writers} x {_n(s.writer_items)} items)", "items/s", True),
    Metric("h", "h", lambda s: f"fan-out: one workflow over {_n(s.fanout_items)} items, each a step sleeping {s.fanout_pause * 1e3:g} ms, {s.fanout_concurrency} at once (ideal {s.fanout_concurrency / s.fanout_pause:,.0f} items/s; all recorded, checked)", "items/s", True, 288),
    Metric("h1", "h1", lambda s: f"same, DBOS queue polling every {s.fanout_fast_poll * 1e3:g} ms (nbflow: same as h)", "items/s", True),
    Metric("i", "i", lambda s: f"{_n(s.small_workflows)} workflows of {s.small_steps} trivial steps, {s.small_batch} at a time", "workflows/s", True, 1000),
    Metric("r", "r", lambda s: f"recover {_n(s.recover_workflows)} interrupted workflows ({s.recover_steps} recorded steps each, their process killed): recover → all results", "s", False, 0.5),
    Metric("x.p50", "x", lambda s: f"cross-process write→read latency p50 (writer in a child process, {_n(s.latency_items)} items, {s.latency_pause * 1e3:g} ms apart)", "ms", False, 20),
    Metric("x.p99", "x", lambda s: "cross-process write→read latency p99", "ms", False),
    Metric("x1.p50", "x1", lambda s: "same, DBOS reader polling every 1 ms: p50", "ms", False),
    Metric("x1.p99", "x1", lambda s: "same, DBOS reader polling every 1 ms: p99", "ms", False),
]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _warm_up(system: System, sizes: Sizes) -> None:
    for _ in range(sizes.warmup):
        system.run_trivial()
    gc.collect()


def unit_steps(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(a) One workflow of ``sizes.steps`` trivial steps: µs per step, start to durable result."""
    _warm_up(system, sizes)
    t0 = time.perf_counter()
    system.run_steps(sizes.steps)
    elapsed = time.perf_counter() - t0
    return {"a": elapsed / sizes.steps * 1e6}


def unit_stream(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(b) Write ``sizes.stream_items`` dicts from the workflow body: items/s to the durable
    result. (e) Then read the closed stream back from the start: items/s."""
    _warm_up(system, sizes)
    n = sizes.stream_items
    t0 = time.perf_counter()
    started = system.start_items(n)
    started.wait()
    write_s = time.perf_counter() - t0
    out: dict[str, float] = {}
    if "b" in wanted:
        out["b"] = n / write_s
    if "e" in wanted:
        gc.collect()
        t0 = time.perf_counter()
        count = 0
        for _ in system.read(started.workflow_id, "items"):
            count += 1
        read_s = time.perf_counter() - t0
        if count != n:
            raise AssertionError(f"read {count} items back, expected {n}")
        out["e"] = n / read_s
    return out


def _latency(system: System, sizes: Sizes, poll: float | None, prefix: str) -> dict[str, float]:
    """(c) A reader thread in this process while the workflow writes stamped items."""
    _warm_up(system, sizes)
    n = sizes.latency_items
    started = system.start_stamped(n, sizes.latency_pause, sizes.latency_lead)
    latencies: list[float] = []
    failure: list[BaseException] = []

    def reader() -> None:
        try:
            for value in system.read(started.workflow_id, "stamped", poll=poll):
                latencies.append(time.perf_counter() - value["t"])
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=reader, name="bench-reader", daemon=True)
    thread.start()
    started.wait()
    thread.join(timeout=60 + n * sizes.latency_pause)
    if thread.is_alive():
        raise TimeoutError("the reader did not end within a minute of the writer's end")
    if failure:
        raise failure[0]
    if len(latencies) != n:
        raise AssertionError(f"the reader got {len(latencies)} items, expected {n}")
    ms = [x * 1e3 for x in latencies]
    return {f"{prefix}.p50": percentile(ms, 50), f"{prefix}.p99": percentile(ms, 99)}


def unit_latency(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(c) Write→read latency with each system's default reader."""
    return _latency(system, sizes, None, "c")


def unit_latency_fast_poll(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(c1) The same with DBOS's reader polling every 1 ms (nbflow readers never poll)."""
    return _latency(system, sizes, 0.001, "c1")


def unit_trivial(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(d) Trivial workflows one after another: median ms from start to durable result."""
    _warm_up(system, sizes)
    times: list[float] = []
    for _ in range(sizes.trivial_runs):
        t0 = time.perf_counter()
        system.run_trivial()
        times.append(time.perf_counter() - t0)
    return {"d": statistics.median(times) * 1e3}


def unit_concurrent(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(g) ``sizes.writers`` workflows writing ``sizes.writer_items`` each at once: total items/s."""
    _warm_up(system, sizes)
    t0 = time.perf_counter()
    started = [system.start_items(sizes.writer_items) for _ in range(sizes.writers)]
    for s in started:
        s.wait()
    elapsed = time.perf_counter() - t0
    return {"g": sizes.writers * sizes.writer_items / elapsed}


def _fanout(system: System, sizes: Sizes, poll: float | None, key: str) -> dict[str, float]:
    """(h) One workflow over ``sizes.fanout_items`` sleeping steps, ``fanout_concurrency`` at once:
    items/s, start to durable result; then checks that every item is recorded as a step."""
    n = sizes.fanout_items
    system.prepare_fanout(sizes.fanout_concurrency, poll)
    _warm_up(system, sizes)
    t0 = time.perf_counter()
    workflow_id = system.run_fanout(n, sizes.fanout_pause, sizes.fanout_concurrency)
    rate = n / (time.perf_counter() - t0)
    recorded = system.fanout_recorded(workflow_id)
    if recorded != n:
        raise AssertionError(f"{recorded} of {n} items recorded as steps ({rate:.1f} items/s)")
    return {key: rate}


def unit_fanout(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(h) Fan-out with DBOS's default queue polling (1 s)."""
    return _fanout(system, sizes, None, "h")


def unit_fanout_fast_poll(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(h1) The same with DBOS's queue polled every ``sizes.fanout_fast_poll`` s."""
    return _fanout(system, sizes, sizes.fanout_fast_poll, "h1")


def unit_small_workflows(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(i) ``sizes.small_workflows`` workflows of ``sizes.small_steps`` trivial steps, started
    ``sizes.small_batch`` at a time (all of a batch started, then all waited for): workflows/s."""
    _warm_up(system, sizes)
    n, batch = sizes.small_workflows, sizes.small_batch
    t0 = time.perf_counter()
    for first in range(0, n, batch):
        started = [system.start_steps(sizes.small_steps) for _ in range(min(batch, n - first))]
        for s in started:
            if s.wait() != sizes.small_steps:
                raise AssertionError(f"workflow {s.workflow_id} returned a wrong result")
    return {"i": n / (time.perf_counter() - t0)}


def unit_recover(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(r) A child process starts ``sizes.recover_workflows`` workflows that record
    ``sizes.recover_steps`` steps each and block; it is killed with SIGKILL. Then the system,
    open again, recovers them: seconds from the call to recover until every result is durable."""
    from benchmarks._crashed import crash

    place = system.place
    assert place is not None
    n, steps = sizes.recover_workflows, sizes.recover_steps
    system.close()
    crash(system.name, place, n, steps)
    system.reopen_after_crash(place, n)
    _warm_up(system, sizes)
    t0 = time.perf_counter()
    results = system.recover_all()
    elapsed = time.perf_counter() - t0
    if results != [steps] * n:
        raise AssertionError(f"recovered {len(results)} of {n} workflows, or wrong results")
    return {"r": elapsed}


def _cross_process(
    system: System, sizes: Sizes, poll: float | None, prefix: str
) -> dict[str, float]:
    """(x) A reader thread in this process while a child process writes stamped items."""
    from benchmarks._xwriter import WriterProcess

    place = system.place
    if place is None or place.pg_url is None:
        raise RuntimeError("workload x needs a database shared by processes (--store postgres)")
    _warm_up(system, sizes)
    n = sizes.latency_items
    latencies: list[float] = []
    failure: list[BaseException] = []
    with WriterProcess(system.name, place.pg_url, sizes) as writer:
        workflow_id = writer.started()  # the workflow now waits cross_lead s before writing
        reading_since = time.perf_counter()

        def reader() -> None:
            try:
                for value in system.read(workflow_id, "stamped", poll=poll):
                    latencies.append(time.perf_counter() - value["t"])
                    if len(latencies) == 1 and value["t"] < reading_since:
                        raise AssertionError(
                            "the writer wrote its first item before this process began to read: "
                            "raise Sizes.cross_lead"
                        )
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=reader, name="bench-reader", daemon=True)
        thread.start()
        writer.finish(timeout=60 + sizes.cross_lead + n * (sizes.latency_pause + 0.05))
        thread.join(timeout=60)
    if thread.is_alive():
        raise TimeoutError("the reader did not end within a minute of the writer's end")
    if failure:
        raise failure[0]
    if len(latencies) != n:
        raise AssertionError(f"the reader got {len(latencies)} items, expected {n}")
    ms = [x * 1e3 for x in latencies]
    return {f"{prefix}.p50": percentile(ms, 50), f"{prefix}.p99": percentile(ms, 99)}


def unit_cross_process(system: System, sizes: Sizes, wanted: set[str]) -> dict[str, float]:
    """(x) Cross-process write→read latency with each system's default reader."""
    return _cross_process(system, sizes, None, "x")


def unit_cross_process_fast_poll(
    system: System, sizes: Sizes, wanted: set[str]
) -> dict[str, float]:
    """(x1) The same with DBOS's reader polling every 1 ms (nbflow's reader takes no interval)."""
    return _cross_process(system, sizes, 0.001, "x1")


@dataclass(frozen=True)
class Unit:
    """A workload run on an open system; ``covers``: the letters it reports; ``shared``: whether
    it needs a database that several processes can use at once (not a DuckDB file)."""

    name: str
    covers: frozenset[str]
    run: Callable[[System, Sizes, set[str]], dict[str, float]]
    shared: bool = False


#: In table order. (f) runs in a child process (see benchmarks._rss), not through a System.
UNITS: list[Unit] = [
    Unit("a", frozenset("a"), unit_steps),
    Unit("b+e", frozenset({"b", "e"}), unit_stream),
    Unit("c", frozenset({"c"}), unit_latency),
    Unit("c1", frozenset({"c1"}), unit_latency_fast_poll),
    Unit("d", frozenset("d"), unit_trivial),
    Unit("g", frozenset("g"), unit_concurrent),
    Unit("h", frozenset({"h"}), unit_fanout),
    Unit("h1", frozenset({"h1"}), unit_fanout_fast_poll),
    Unit("i", frozenset({"i"}), unit_small_workflows),
    Unit("r", frozenset({"r"}), unit_recover),
    Unit("x", frozenset({"x"}), unit_cross_process, shared=True),
    Unit("x1", frozenset({"x1"}), unit_cross_process_fast_poll, shared=True),
]
