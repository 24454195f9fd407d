"""What reading the history costs: ``python -m benchmarks.history``.

Fills a fresh DuckDB file (PostgreSQL with ``--pg-url``, in a schema of its own that is dropped
first) with N workflows (100,000) of S steps each (5), written in bulk through the store's commit,
then times what a person asks of a big history, through the runtime as a user calls it:

  list_workflows: the newest 100; those with a status; with a name; created in the last day;
  with an id prefix; the page at offset 50,000; and step_stats() over every step.

Prints the median of several runs in ms per call with the goal (≤ 50 ms) beside it; asserts
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbflow
from nbflow.store import Store
from nbflow.store._ops import StepRow, WorkflowRow

__all__ = ["fill", "main", "measure"]

NAMES = [f"bench.history.pipeline{i}" for i in range(10)]
STATUSES = ["SUCCESS"] * 17 + ["ERROR", "CANCELLED"] + ["SUCCESS"]
BATCH = 10_000  # workflows per commit
DAY = 86_400.0
GOAL_MS = 50.0
SCHEMA = "nbflow_bench_history"


def _rows(first: int, count: int, steps: int, now: float, total: int) -> list[Any]:
    """The rows of workflows ``first`` … ``first + count - 1``: created over the last 30 days,
    oldest first, each with ``steps`` steps (one in 20 with a retry, one in 50 failed)."""
    ops: list[Any] = []
    span = 30 * DAY / total
    for i in range(first, first + count):
        created = now - 30 * DAY + i * span
        status = STATUSES[i % len(STATUSES)]
        workflow_id = f"wf-{i:07d}" if i % 10 else f"wf_{i:07d}"
        ops.append(
            WorkflowRow(
                workflow_id, NAMES[i % len(NAMES)], status, "[1]", None, "2",
                created_at=created, updated_at=created + 1, ended_at=created + 1,
            )
        )  # fmt: skip
        for f in range(1, steps + 1):
            started = created + f * 0.1
            error = "ValueError: bad" if (i + f) % 50 == 0 else None
            ops.append(
                StepRow(
                    workflow_id, f, f"bench.history.step{f}", None if error else '"out"', None,
                    error, None, started, started + 0.01 * f + (i % 7) * 0.001,
                    2 if (i + f) % 20 == 0 else 1,
                )
            )  # fmt: skip
    return ops


def fill(store: Store, workflows: int, steps: int) -> float:
    """Write the workflows and their steps in bulk; the seconds it took."""
    began = time.perf_counter()
    now = time.time()
    for first in range(0, workflows, BATCH):
        store.commit(_rows(first, min(BATCH, workflows - first), steps, now, workflows))
    return time.perf_counter() - began


def _timed(call: Callable[[], Any], runs: int) -> tuple[float, int]:
    """The median seconds of ``runs`` calls (after one to warm up), and how many rows it got."""
    got = len(call())
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times), got


def queries(rt: nbflow.Runtime, workflows: int) -> dict[str, Callable[[], Any]]:
    """What is timed, by the row's label."""
    now = time.time()
    return {
        "list_workflows()": lambda: rt.list_workflows(),
        "list_workflows(status='ERROR')": lambda: rt.list_workflows(status="ERROR"),
        f"list_workflows(name='{NAMES[3]}')": lambda: rt.list_workflows(name=NAMES[3]),
        "list_workflows(since=a day ago)": lambda: rt.list_workflows(since=now - DAY),
        "list_workflows(id_prefix='wf-00123')": lambda: rt.list_workflows(id_prefix="wf-00123"),
        f"list_workflows(offset={workflows // 2:,})": lambda: rt.list_workflows(
            offset=workflows // 2
        ),
        "step_stats()": lambda: rt.step_stats(),
    }


def measure(database: str, workflows: int, steps: int, runs: int) -> tuple[float, list[Any]]:
    """Fill ``database`` and time the queries: the fill's seconds, and rows ``(label, median
    seconds, rows returned)``."""
    with nbflow.Runtime(database) as rt:
        filled = fill(rt.store, workflows, steps)
        timed = [(label, *_timed(call, runs)) for label, call in queries(rt, workflows).items()]
    return filled, timed


@contextlib.contextmanager
def _database(pg_url: str | None) -> Iterator[str]:
    """A fresh database: a DuckDB file in a temporary folder, or a PostgreSQL schema."""
    if pg_url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield str(Path(folder) / "history.duckdb")
        return
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    yield f"{pg_url}{'&' if '?' in pg_url else '?'}schema={SCHEMA}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=100_000, help="workflows (100,000)")
    parser.add_argument("--steps", type=int, default=5, help="steps per workflow (5)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query (7)")
    parser.add_argument("--pg-url", default=None, help="a PostgreSQL URL instead of DuckDB")
    args = parser.parse_args(argv)
    with _database(args.pg_url) as database:
        filled, timed = measure(database, args.workflows, args.steps, args.runs)
    store = "PostgreSQL" if args.pg_url else "DuckDB"
    print(f"Python {sys.version.split()[0]}, {store}: {args.workflows:,} workflows of")
    print(f"{args.steps} steps, written in {filled:.1f} s; median of {args.runs} runs\n")
    print("| query | ms | rows | goal |\n|---|---|---|---|")
    for label, seconds, rows in timed:
        mark = "✓" if seconds * 1000 <= GOAL_MS else "✗"
        print(f"| {label} | {seconds * 1000:.1f} | {rows} | ≤ {GOAL_MS:.0f} ms {mark} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
