"""DuckDB's own floors for nbflow's latency-bound workloads: ``python -m benchmarks.floors``.

nbflow cannot make an item durable faster than DuckDB can commit it. This script measures, with no
nbflow code at all, what plain DuckDB costs on this machine in the two patterns behind workloads
(c) and (d) of ``benchmarks.compare``, on nbflow's own schema:

  c-floor  a writer thread hands one item every 1 ms to a committer thread, which inserts every
           queued item into ``streams`` in one statement and commits; latency = commit end minus
           hand-over (no reader, no decoding, no wake-up).
  d-floor  one row inserted into ``workflows`` and committed (autocommit), one after the other.
  parts    the pieces: an empty transaction, a one-row insert inside an open transaction, and
           the commit that follows it.
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from nbflow.store._schema import MIGRATIONS

__all__ = ["main", "measure"]

_STREAM_ROW = "(" + ", ".join("?" * 9) + ")"
_WORKFLOW_INSERT = "INSERT INTO workflows VALUES (" + ", ".join("?" * 15) + ")"


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    return con


def _workflow_row(i: int) -> tuple[object, ...]:
    return (f"wf-{i}", "floors.trivial", "SUCCESS", '{"args":[],"kwargs":{}}', None, "1",
            None, None, None, 1.0, 1.0, 1.0, "executor", None, None)  # fmt: skip


def stream_latency(path: Path, items: int) -> list[float]:
    """Latencies (s) of the c-floor pattern."""
    con = _open(path)
    cur = con.cursor()
    handed: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    latencies: list[float] = []

    def committer() -> None:
        while True:
            batch = [handed.get()]
            while not handed.empty():
                batch.append(handed.get())
            done = batch[-1] is None
            rows = [b for b in batch if b is not None]
            if rows:
                params = [
                    v for i, _ in rows for v in ("w", "k", i, "1.0", None, False, 1, None, 1.0)
                ]
                cur.execute(
                    f"INSERT INTO streams VALUES {', '.join([_STREAM_ROW] * len(rows))}", params
                )
                now = time.perf_counter()
                latencies.extend(now - t for _, t in rows)
            if done:
                return

    thread = threading.Thread(target=committer, name="floors-committer")
    thread.start()
    for i in range(items):
        handed.put((i, time.perf_counter()))
        time.sleep(0.001)
    handed.put(None)
    thread.join()
    con.close()
    return latencies


def workflow_commits(path: Path, rounds: int) -> list[float]:
    """Durations (s) of one-row autocommit inserts into ``workflows``."""
    con = _open(path)
    cur = con.cursor()
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        cur.execute(_WORKFLOW_INSERT, _workflow_row(i))
        times.append(time.perf_counter() - start)
    con.close()
    return times


def parts(path: Path, rounds: int) -> dict[str, list[float]]:
    """Durations (s) of an empty transaction, an insert in a transaction, and its commit."""
    con = _open(path)
    cur = con.cursor()
    out: dict[str, list[float]] = {"empty transaction": [], "insert in a transaction": [], "its commit": []}  # fmt: skip
    for i in range(rounds):
        t0 = time.perf_counter()
        cur.execute("BEGIN TRANSACTION")
        cur.execute("COMMIT")
        t1 = time.perf_counter()
        cur.execute("BEGIN TRANSACTION")
        t2 = time.perf_counter()
        cur.execute(_WORKFLOW_INSERT, _workflow_row(10**6 + i))
        t3 = time.perf_counter()
        cur.execute("COMMIT")
        t4 = time.perf_counter()
        out["empty transaction"].append(t1 - t0)
        out["insert in a transaction"].append(t3 - t2)
        out["its commit"].append(t4 - t3)
    con.close()
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def measure(items: int = 1000, rounds: int = 300) -> list[tuple[str, float, float]]:
    """Rows ``(what, p50 ms, p99 ms)``."""
    with tempfile.TemporaryDirectory(prefix="nbflow-floors-") as tmp:
        lat = stream_latency(Path(tmp) / "c.duckdb", items)
        wf = workflow_commits(Path(tmp) / "d.duckdb", rounds)
        pieces = parts(Path(tmp) / "p.duckdb", rounds)
    rows = [
        ("c-floor: item handed over → committed (1 ms apart)", _pct(lat, 0.5), _pct(lat, 0.99)),
        ("d-floor: one workflows row, insert + commit", _pct(wf, 0.5), _pct(wf, 0.99)),
    ]
    rows += [(f"part: {name}", _pct(v, 0.5), _pct(v, 0.99)) for name, v in pieces.items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="items for c-floor (1000)")
    parser.add_argument("--rounds", type=int, default=300, help="commits for d-floor (300)")
    args = parser.parse_args(argv)
    print(f"DuckDB {duckdb.__version__}: floors on this machine (no nbflow code)\n")
    print("| measurement | p50 ms | p99 ms |\n|---|---|---|")
    for what, p50, p99 in measure(args.items, args.rounds):
        print(f"| {what} | {p50:.2f} | {p99:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
