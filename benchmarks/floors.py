"""DuckDB's own floors for nbflow's latency-bound workloads: ``python -m benchmarks.floors``.

nbflow cannot make an item durable faster than DuckDB can commit it. This script measures, with no
nbflow code at all, what plain DuckDB costs on this machine in the two patterns behind workloads
(c) and (d) of ``benchmarks.compare``, on nbflow's own schema:

  c-floor  a writer thread hands one item every 1 ms to a committer thread, which inserts every
           queued item into ``streams`` in one statement and commits; latency = commit end minus
           hand-over (no reader, no decoding, no wake-up).
  d-floor  one row inserted into ``workflows`` (a finished trivial workflow's, as nbflow inserts
           it) and committed (autocommit), one after the other;
           and the same while another thread runs Python without pause (a body in a tight
           loop): DuckDB's client takes the interpreter lock back between a query's tasks.
  parts    the pieces: an empty transaction, a one-row insert inside an open transaction, and
           the commit that follows it.

And, in a second table, the throughput floors behind workloads (a), (b) and (e), on nbflow's whole
schema (every migration), each the median of ``--rounds`` / 30 runs:

  a-floor  the Python a recorded step cannot do without (a call, a dict lookup, a list append);
           and 1,000 rows inserted into ``steps`` in one statement and committed (µs a row), as
           nbflow's committer does (one JSON text of columns, ``from_json``, a column of one
           value sent once) and, where pyarrow is installed, from an Arrow table (DuckDB's
           fastest path); and the least a 1,000-step workflow commits, one statement after the
           other: its row, its steps (one insert), its end (µs a step)
  b-floor  10,000 rows inserted into ``streams`` the same two ways (rows/s), and the least a
           workflow writing them commits, as for a (items/s)
  e-floor  10,000 stream values fetched (one query, one column) and decoded by orjson (items/s)
  start    a thread started and joined (the least a workflow in a new thread costs), and a value
           handed to a waiting thread and back (a workflow in a kept thread: two hand-offs)
"""

from __future__ import annotations

import argparse
import importlib.util
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson

from nbflow.store._schema import MIGRATIONS

__all__ = ["main", "measure", "throughput"]

_STREAM_ROW = "(" + ", ".join("?" * 9) + ")"
#: A finished trivial workflow's row as nbflow inserts it: the columns it does not leave NULL.
_WORKFLOW_COLUMNS = (
    "workflow_id, name, status, inputs_json, output_json, created_at, updated_at, ended_at, "
    "executor_id, code"
)
_WORKFLOW_INSERT = f"INSERT INTO workflows ({_WORKFLOW_COLUMNS}) VALUES ({', '.join('?' * 10)})"


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB file with nbflow's whole schema, opened as nbflow opens it (one thread)."""
    con = duckdb.connect(str(path), config={"threads": 1})
    for migration in MIGRATIONS:
        for statement in migration:
            con.execute(statement)
    return con


def _workflow_row(i: int) -> tuple[object, ...]:
    args = '{"args":[],"kwargs":{}}'
    return (f"wf-{i}", "floors.trivial", "SUCCESS", args, "1", 1.0, 1.0, 1.0, "executor", "c" * 32)


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


def commits_beside_python(path: Path, rounds: int) -> list[float]:
    """Durations (s) of one-row autocommit inserts into ``workflows`` while another thread runs
    Python without pause (a workflow body in a tight loop): DuckDB's client takes the
    interpreter lock back between the tasks of a query (to check for Ctrl-C), each time waiting
    for the other thread to let it go."""
    con = _open(path)
    cur = con.cursor()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin, name="floors-spin", daemon=True)
    thread.start()
    times = []
    try:
        for i in range(rounds):
            start = time.perf_counter()
            cur.execute(_WORKFLOW_INSERT, _workflow_row(i))
            times.append(time.perf_counter() - start)
    finally:
        stop.set()
        thread.join()
        con.close()
    return times


def parts(path: Path, rounds: int) -> dict[str, list[float]]:
    """Durations (s) of an empty transaction, an insert in a transaction, and its commit."""
    con = _open(path)
    cur = con.cursor()
    names = ("empty transaction", "insert in a transaction", "its commit")
    out: dict[str, list[float]] = {name: [] for name in names}
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


def _columns_insert(table: str, columns: dict[str, tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    """The statement and its parameters that insert ``columns`` (name → (type, values)) as one
    JSON text of columns taken apart by ``from_json``, a column of one value (a workflow's id)
    sent once beside it."""
    varying = {n: c for n, c in columns.items() if c[1].count(c[1][0]) != len(c[1])}
    constant = [n for n in columns if n not in varying]
    structure = ", ".join(f'"{name}": "{kind}[]"' for name, (kind, _) in varying.items())
    into = ", ".join(f'"{name}"' for name in columns)
    values = ", ".join(
        f'unnest(j."{name}")' if name in varying else f"${constant.index(name) + 2}::{kind}"
        for name, (kind, _) in columns.items()
    )
    sql = (
        f"INSERT INTO {table} ({into}) SELECT {values} "
        f"FROM (SELECT from_json($1::VARCHAR, '{{{structure}}}') AS j)"
    )
    text = orjson.dumps({name: values for name, (_, values) in varying.items()}).decode()
    return sql, [text, *(columns[name][1][0] for name in constant)]


def _step_columns(workflow_id: str, rows: int) -> dict[str, tuple[str, list[Any]]]:
    now = time.time()
    return {
        "workflow_id": ("VARCHAR", [workflow_id] * rows),
        "function_id": ("INTEGER", list(range(1, rows + 1))),
        "name": ("VARCHAR", ["floors.step"] * rows),
        "output_json": ("VARCHAR", [str(i) for i in range(rows)]),
        "started_at": ("DOUBLE", [now + i * 1e-6 for i in range(rows)]),
        "ended_at": ("DOUBLE", [now + i * 1e-6 for i in range(rows)]),
        "attempts": ("INTEGER", [1] * rows),
        "code": ("VARCHAR", ["0123456789abcdef" * 2] * rows),
        "args_hash": ("VARCHAR", [f"#i{i}" for i in range(rows)]),
        "args_text": ("VARCHAR", [str(i) for i in range(rows)]),
    }


def _stream_columns(workflow_id: str, rows: int) -> dict[str, tuple[str, list[Any]]]:
    now = time.time()
    return {
        "workflow_id": ("VARCHAR", [workflow_id] * rows),
        "key": ("VARCHAR", ["s"] * rows),
        "offset": ("BIGINT", list(range(rows))),
        "value_json": ("VARCHAR", [orjson.dumps({"i": i, "v": "x"}).decode() for i in range(rows)]),
        "is_end": ("BOOLEAN", [False] * rows),
        "function_id": ("INTEGER", list(range(1, rows + 1))),
        "created_at": ("DOUBLE", [now + i * 1e-6 for i in range(rows)]),
    }


def _insert_seconds(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, tuple[str, list[Any]]],
    arrow: bool,
) -> float:
    """Seconds to insert ``columns`` into ``table`` in one statement and commit (autocommit)."""
    cur = con.cursor()
    start = time.perf_counter()
    if arrow:
        import pyarrow

        frame = pyarrow.table({name: values for name, (_, values) in columns.items()})  # noqa: F841
        into = ", ".join(f'"{name}"' for name in columns)
        cur.execute(f"INSERT INTO {table} ({into}) SELECT * FROM frame")
    else:
        cur.execute(*_columns_insert(table, columns))
    return time.perf_counter() - start


def _workflow_seconds(
    con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, tuple[str, list[Any]]]
) -> float:
    """Seconds for the least a workflow writing ``columns`` to ``table`` commits, one statement
    after the other, each committed: its row, its rows in one insert, its end."""
    cur = con.cursor()
    workflow_id = columns["workflow_id"][1][0]
    now = time.time()
    start = time.perf_counter()
    cur.execute(
        "INSERT INTO workflows (workflow_id, name, status, inputs_json, created_at, updated_at, "
        "executor_id) VALUES (?, 'floors.workflow', 'PENDING', '{\"args\":[1000]}', ?, ?, 'x')",
        [workflow_id, now, now],
    )
    cur.execute(*_columns_insert(table, columns))
    cur.execute(
        "UPDATE workflows SET status = 'SUCCESS', output_json = '1000', ended_at = ?, "
        "updated_at = ? WHERE workflow_id = ? AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')",
        [now, now, workflow_id],
    )
    return time.perf_counter() - start


def _python_step_seconds(steps: int) -> float:
    """Seconds a step's least Python takes: a call, a dict lookup, a list append."""
    recorded: dict[int, object] = {}
    log: list[object] = []

    def step(x: int) -> int:
        return x

    start = time.perf_counter()
    for i in range(steps):
        recorded.get(i)
        log.append(step(i))
    return (time.perf_counter() - start) / steps


def _read_seconds(con: duckdb.DuckDBPyConnection, workflow_id: str) -> float:
    """Seconds to fetch a stream's values in one query and decode each with orjson."""
    start = time.perf_counter()
    rows = con.execute(
        'SELECT value_json FROM streams WHERE workflow_id = ? AND key = ? ORDER BY "offset"',
        [workflow_id, "s"],
    ).fetchall()
    loads = orjson.loads
    [loads(text) for (text,) in rows]
    return time.perf_counter() - start


def _thread_seconds() -> float:
    start = time.perf_counter()
    thread = threading.Thread(target=lambda: None, name="floors-start")
    thread.start()
    thread.join()
    return time.perf_counter() - start


def _handoff_seconds(rounds: int = 200) -> float:
    """Median seconds for a value handed to another (waiting) thread and one handed back."""
    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while (value := there.get()) is not None:
            back.put(value)

    thread = threading.Thread(target=echo, name="floors-echo")
    thread.start()
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        there.put(i)
        back.get()
        times.append(time.perf_counter() - start)
    there.put(None)
    thread.join()
    return statistics.median(times)


def throughput(rounds: int) -> list[tuple[str, float, str]]:
    """Rows ``(what, median, unit)`` of the throughput floors."""
    ways = [False] + ([True] if importlib.util.find_spec("pyarrow") is not None else [])
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="nbflow-floors-") as tmp:
        con = _open(Path(tmp) / "t.duckdb")
        for n in range(rounds):
            out.setdefault("a: Python of a step (µs)", []).append(
                _python_step_seconds(100_000) * 1e6
            )
            for arrow in ways:
                how = "Arrow table" if arrow else "JSON text of columns"
                steps = _step_columns(f"a-{arrow}-{n}", 1000)
                seconds = _insert_seconds(con, "steps", steps, arrow)
                out.setdefault(
                    f"a: 1,000 step rows, one insert + commit, {how} (µs a row)", []
                ).append(seconds / 1000 * 1e6)
                items = _stream_columns(f"b-{arrow}-{n}", 10_000)
                seconds = _insert_seconds(con, "streams", items, arrow)
                out.setdefault(
                    f"b: 10,000 stream rows, one insert + commit, {how} (rows/s)", []
                ).append(10_000 / seconds)
            seconds = _workflow_seconds(con, "steps", _step_columns(f"aw-{n}", 1000))
            out.setdefault(
                "a: a 1,000-step workflow's row, steps and end, each committed (µs a step)", []
            ).append(seconds / 1000 * 1e6)
            seconds = _workflow_seconds(con, "streams", _stream_columns(f"bw-{n}", 10_000))
            out.setdefault(
                "b: a 10,000-item workflow's row, items and end, each committed (items/s)", []
            ).append(10_000 / seconds)
            out.setdefault("e: 10,000 stream values fetched and decoded (items/s)", []).append(
                10_000 / _read_seconds(con, f"b-False-{n}")
            )
            out.setdefault("d: a thread started and joined (ms)", []).append(
                _thread_seconds() * 1e3
            )
            out.setdefault("d: a value handed to a waiting thread and back (ms)", []).append(
                _handoff_seconds() * 1e3
            )
        con.close()
    return [
        (what, statistics.median(values), what.rsplit("(", 1)[1].rstrip(")"))
        for what, values in out.items()
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def measure(items: int = 1000, rounds: int = 300) -> list[tuple[str, float, float]]:
    """Rows ``(what, p50 ms, p99 ms)``."""
    with tempfile.TemporaryDirectory(prefix="nbflow-floors-") as tmp:
        lat = stream_latency(Path(tmp) / "c.duckdb", items)
        wf = workflow_commits(Path(tmp) / "d.duckdb", rounds)
        beside = commits_beside_python(Path(tmp) / "g.duckdb", max(10, rounds // 10))
        pieces = parts(Path(tmp) / "p.duckdb", rounds)
    rows = [
        ("c-floor: item handed over → committed (1 ms apart)", _pct(lat, 0.5), _pct(lat, 0.99)),
        ("d-floor: one workflows row, insert + commit", _pct(wf, 0.5), _pct(wf, 0.99)),
        ("the same, another thread running Python", _pct(beside, 0.5), _pct(beside, 0.99)),
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
    print("\n| throughput floor | median |\n|---|---|")
    for what, median, unit in throughput(max(3, args.rounds // 30)):
        shown = f"{median:,.0f}" if median >= 1000 else f"{median:.2f}"
        print(f"| {what.rsplit(' (', 1)[0]} | {shown} {unit} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
