"""How fast a durable cell is restored, against the floor: ``python -m benchmarks.restore``.

A durable cell (``%%nbflow step NAME``) that builds a large table runs in a real IPython shell
(``InteractiveShell``) on a fresh DuckDB file, and is recorded; ``--runs`` says how many times (a
notebook re-run with ``--force``, or edited and run again, keeps every run's record). Then, as
after a kernel restart, the namespace is emptied (``%reset -f``), the database is closed and opened
again, and the cell runs again: it is restored. The script prints, for each ``--runs``:

  build    building the table in plain Python (no nbflow), and the cell's first run (built and
           recorded);
  floor    the least a restore can cost, with no nbflow code: one DuckDB blob read (a table of
           one row holding the pickle, compressed as DuckDB does by default) plus
           ``pickle.loads`` (each round measures it just before the restore, so both run under the
           same load). nbflow's DuckDB store keeps long values uncompressed, so a restore can come
           in under this floor;
  restore  the restored cell, as the shell runs it (median of ``--rounds``), and its ratio to the
           floor.

The table is a pandas DataFrame of ``--rows`` rows (an int, two floats, a small int and a str
column) when pandas is installed, else the same columns as a dict of lists (say which in the
header). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

import nbflow

__all__ = ["main", "measure"]

CELL = """%%nbflow step build{force}
from benchmarks.restore import make_table
table = make_table({rows})
"""


def make_table(rows: int) -> Any:
    """A table of ``rows`` rows: a pandas DataFrame if pandas is installed, else a dict of lists."""
    ids = list(range(rows))
    columns: dict[str, Any] = {
        "id": ids,
        "x": [(i * 7919 % 10007) / 10007 for i in ids],
        "y": [(i * 104729 % 1299709) / 1299709 for i in ids],
        "cat": [i % 100 for i in ids],
        "name": [f"item-{i}" for i in ids],
    }
    try:
        import pandas as pd
    except ImportError:
        return columns
    return pd.DataFrame(columns)


def kind() -> str:
    """What :func:`make_table` builds, for the header."""
    try:
        import pandas as pd
    except ImportError:
        return "a dict of 5 lists (pandas is not installed)"
    return f"a pandas {pd.__version__} DataFrame of 5 columns"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def floor_table(blob: bytes, path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB file whose one row holds ``blob``, written and opened again."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    con.execute("INSERT INTO t VALUES (1, ?)", [blob])
    con.close()
    return duckdb.connect(str(path))


def floor(con: duckdb.DuckDBPyConnection) -> float:
    """Seconds of one DuckDB blob read plus ``pickle.loads`` (no nbflow code)."""
    gc.collect()
    start = time.perf_counter()
    (row,) = con.execute("SELECT b FROM t WHERE id = 1").fetchall()
    pickle.loads(row[0])
    return time.perf_counter() - start


def _shell(directory: Path) -> Any:
    """A real IPython shell with ``%load_ext nbflow``, on a fresh DuckDB file in ``directory``."""
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["JPY_SESSION_NAME"] = str(directory / "restore.ipynb")
    nbflow.configure(directory / "cells.duckdb")
    shell = InteractiveShell.instance()
    if "nbflow" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "nbflow")
    return shell


def _run(shell: Any, code: str) -> tuple[float, str]:
    """Run a cell; its seconds and what it printed (nbflow's note among it)."""
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        seconds, result = _timed(lambda: shell.run_cell(code))
    result.raise_error()
    return seconds, captured.stdout + captured.stderr


def measure(rows: int, runs: int, rounds: int) -> dict[str, Any]:
    """The figures for one size and number of recorded runs (seconds)."""
    from nbflow.notebook import _cells

    build, table = _timed(lambda: make_table(rows))
    blob = pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL)
    del table
    with tempfile.TemporaryDirectory(prefix="nbflow-restore-") as tmp:
        directory = Path(tmp)
        floor_con = floor_table(blob, directory / "floor.duckdb")
        shell = _shell(directory)
        first, _ = _run(shell, CELL.format(force="", rows=rows))
        for _ in range(runs - 1):
            _run(shell, CELL.format(force=" --force", rows=rows))
        floors, restores, notes = [], [], []
        for _ in range(rounds):  # a floor read, then a restore: both under the same load
            floors.append(floor(floor_con))
            shell.run_line_magic("reset", "-f")  # as a restarted kernel: nothing in the namespace,
            _cells._states.pop(shell, None)
            nbflow.runtime().close()  # and the database closed (checkpointed), then opened again
            nbflow.configure(directory / "cells.duckdb")
            gc.collect()
            seconds, printed = _run(shell, CELL.format(force="", rows=rows))
            restores.append(seconds)
            notes.append(printed.strip().splitlines()[-1])
        shell.run_line_magic("reset", "-f")
        nbflow.runtime().close()
        floor_con.close()
    base = statistics.median(floors)
    restore = statistics.median(restores)
    return {
        "rows": rows, "runs": runs, "pickle_mb": len(blob) / 1e6, "build": build, "first": first,
        "floor": base, "restore": restore, "ratio": restore / base, "note": notes[-1],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the table (1e6)")
    parser.add_argument(
        "--runs",
        default="1,3",
        help="records of the cell before the restore, comma-separated (1,3)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="restores, and floor reads (3)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the cell imports benchmarks
    print(
        f"Python {sys.version.split()[0]}, DuckDB {duckdb.__version__}, nbflow {nbflow.__version__}"
    )
    print(f"table: {kind()}, {args.rows:,} rows; medians of {args.rounds} rounds\n")
    print("| records | pickle MB | build s | first run s | floor s | restore s | restore / floor |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for runs in (int(r) for r in args.runs.split(",")):
        m = measure(args.rows, runs, args.rounds)
        print(
            f"| {runs} | {m['pickle_mb']:.1f} | {m['build']:.3f} | {m['first']:.3f} "
            f"| {m['floor']:.3f} | {m['restore']:.3f} | {m['ratio']:.1f}x |",
            flush=True,
        )
        notes.append(m["note"])
    print("\nlast note of each: " + " / ".join(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
