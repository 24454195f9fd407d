"""What the step cache costs: ``python -m benchmarks.cache``.

A workflow calls a cached step (``@nbflow.step(cache=True)``) over N distinct arguments. Three
runs are timed on a fresh DuckDB file (PostgreSQL with ``--pg-url``):

  miss    the first workflow: every call runs and its result is kept (durable before it is used);
  hit     a new workflow over the same arguments: every call takes the kept result (and records
          it as its own checkpoint);
  replay  a resume of a workflow that recorded the same N steps (not cached): the floor, a
          checkpoint replay.

Prints µs per call and the ratio hit / replay, with the goal (≤ 2x) beside it; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nbflow

__all__ = ["main", "measure"]


@nbflow.step(cache=True, name="bench.cache.cached")
def cached(x: int) -> dict[str, int]:
    """The cached step: a small dict, as a parsed record would be."""
    return {"x": x, "square": x * x}


@nbflow.step(name="bench.cache.plain")
def plain(x: int) -> dict[str, int]:
    """The same step, not cached."""
    return {"x": x, "square": x * x}


class Stop(Exception):
    """Ends a workflow after its steps, so that a resume replays them."""


@nbflow.workflow(name="bench.cache.with_cache")
def with_cache(n: int) -> int:
    return sum(cached(x)["square"] for x in range(n))


@nbflow.workflow(name="bench.cache.replayed")
def replayed(n: int, stop: bool) -> int:
    total = sum(plain(x)["square"] for x in range(n))
    if nbflow.run_step(_stop, stop):
        raise Stop
    return total


def _stop(stop: bool) -> bool:
    return stop


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(n: int, database: str) -> dict[str, float]:
    """Seconds per call of each run (see the module docstring)."""
    with nbflow.Runtime(database) as rt:
        miss = _timed(lambda: rt.start(with_cache, n).result())
        hit = _timed(lambda: rt.start(with_cache, n).result())
        wid = f"replay-{uuid.uuid4().hex[:8]}"
        with nbflow.set_workflow_id(wid):
            handle = rt.start(replayed, n, True)
        with contextlib.suppress(Stop):
            handle.result()
        start = time.perf_counter()
        _resume_finishing(rt, wid)
        replay = time.perf_counter() - start
    return {"miss": miss / n, "hit": hit / n, "replay": replay / n}


def _resume_finishing(rt: nbflow.Runtime, wid: str) -> None:
    """Resume ``wid``: its steps replay, then its last step raises again (it ends in ERROR)."""
    handle = rt.resume(wid)
    with contextlib.suppress(Stop):
        handle.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per workflow (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--pg-url", default=None, help="a PostgreSQL URL instead of DuckDB")
    args = parser.parse_args(argv)
    rounds: list[dict[str, float]] = []
    for _ in range(max(1, args.rounds)):
        with tempfile.TemporaryDirectory() as folder:
            database = args.pg_url or str(Path(folder) / "bench.duckdb")
            if args.pg_url:
                nbflow.Runtime(database).close()
            rounds.append(measure(args.n, database))
    med = {k: statistics.median(r[k] for r in rounds) for k in ("miss", "hit", "replay")}
    ratio = med["hit"] / med["replay"]
    store = "PostgreSQL" if args.pg_url else "DuckDB"
    print(f"Python {sys.version.split()[0]}, {store}: {args.n} calls per workflow, median of ")
    print(f"{len(rounds)} rounds\n")
    print("| run | µs per call | goal |\n|---|---|---|")
    print(f"| miss: runs and keeps | {med['miss'] * 1e6:.1f} | — |")
    print(f"| hit: takes the kept result | {med['hit'] * 1e6:.1f} | ≤ 2x replay |")
    print(f"| replay: a resume's checkpoints | {med['replay'] * 1e6:.1f} | — |")
    print(f"| hit / replay | {ratio:.2f}x | ≤ 2x {'✓' if ratio <= 2 else '✗'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
