"""What tracing costs a step: ``python -m benchmarks.tracing``.

A workflow of N trivial steps (workload a of ``benchmarks.compare``) runs on a fresh DuckDB file
in three ways, alternating round by round in one process:

  off        no tracer provider (tracing off: the step loop checks nothing);
  exported   traced through an SDK ``TracerProvider`` whose ``SimpleSpanProcessor`` hands each
             span to an in-memory exporter (cleared after each round);
  no export  traced through an SDK ``TracerProvider`` with no span processor: the spans are
             made and ended, and go nowhere.

Prints µs per step (start to durable result; median and best of the rounds) and what tracing
adds; asserts nothing. Needs the ``otel`` extra and ``opentelemetry-sdk`` (``dev``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbflow

__all__ = ["main", "measure"]


@nbflow.step(name="bench.tracing.trivial")
def trivial(i: int) -> int:
    return i


@nbflow.workflow(name="bench.tracing.steps")
def steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += trivial(i)
    return total


def measure(n: int, database: str, tracing: Any) -> float:
    """Seconds per step of one workflow of ``n`` steps (after a warm-up workflow)."""
    with nbflow.Runtime(database, tracing=tracing) as rt:
        rt.start(steps, 10).result()
        start = time.perf_counter()
        rt.start(steps, n).result()
        return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="steps per workflow (2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (7)")
    args = parser.parse_args(argv)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    exported = TracerProvider()
    exported.add_span_processor(SimpleSpanProcessor(exporter))
    ways: dict[str, Any] = {"off": False, "exported": exported, "no export": TracerProvider()}
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(max(1, args.rounds)):
        for way, tracing in ways.items():
            with tempfile.TemporaryDirectory() as folder:
                times[way].append(measure(args.n, str(Path(folder) / "bench.duckdb"), tracing))
            exporter.clear()
    off = statistics.median(times["off"])
    print(f"Python {sys.version.split()[0]}, DuckDB: {args.n} trivial steps per workflow, ")
    print(f"{len(times['off'])} rounds (the ways alternate in each)\n")
    print("| tracing | µs per step (median) | best | added per step (median) |")
    print("|---|---|---|---|")
    for way, found in times.items():
        median = statistics.median(found)
        added = "—" if way == "off" else f"{(median - off) * 1e6:+.1f} µs"
        print(f"| {way} | {median * 1e6:.1f} | {min(found) * 1e6:.1f} | {added} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
